"""Make embeddings from different encoders comparable before they are added up.

Pretrained embeddings are anisotropic: every EfficientNet feature is positive, so any two images
have cosine ~0.7, while MiniLM sentences sit around 0.1-0.3, and handcrafted audio descriptors
mix units (decibels, hertz, beats per minute). Before fusion each modality is therefore

1. centred on the catalog mean (removes the shared direction that makes everything look alike),
2. optionally scaled to unit variance per dimension (``zscore``; needed for handcrafted
   descriptors whose dimensions have unrelated units), and
3. L2-normalised, so that within every modality a dot product is a cosine in [-1, 1].

The statistics are fitted on the item catalog and applied unchanged to users and to new items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Mode = Literal["center", "zscore", "none"]
EPS = 1e-8


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(norms > EPS, x / np.maximum(norms, EPS), 0.0).astype(np.float32)


@dataclass
class ModalityNormalizer:
    """Centre (and optionally standardise) one modality, then L2-normalise."""

    mode: Mode = "center"
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None

    def fit(self, x: np.ndarray, present: np.ndarray | None = None) -> ModalityNormalizer:
        x = np.asarray(x, dtype=np.float32)
        rows = x if present is None else x[np.asarray(present, dtype=bool)]
        dim = x.shape[1]
        if len(rows) == 0:
            self.mean, self.scale = np.zeros(dim, np.float32), np.ones(dim, np.float32)
            return self
        centre = self.mode != "none"
        self.mean = rows.mean(0).astype(np.float32) if centre else np.zeros(dim, np.float32)
        if self.mode == "zscore" and len(rows) > 1:
            std = rows.std(0)
            # constant dimensions carry no information: switch them off instead of dividing by ~0
            self.scale = np.where(std > 1e-6, 1.0 / np.maximum(std, 1e-6), 0.0).astype(np.float32)
        else:
            self.scale = np.ones(dim, np.float32)
        return self

    def transform(self, x: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
        """Normalised rows; rows not ``present`` become zero vectors."""
        if self.mean is None or self.scale is None:
            raise RuntimeError("ModalityNormalizer.transform called before fit")
        out = l2_normalize((np.asarray(x, dtype=np.float32) - self.mean) * self.scale)
        if present is not None:
            out[~np.asarray(present, dtype=bool)] = 0.0
        return out
