"""Multimodal EASE: EASE whose item-item Gram matrix also counts content similarity.

EASE solves ``min ||X - X B||² + λ||B||²`` with ``diag(B) = 0`` from the Gram matrix ``XᵀX``.
Here each modality adds its items' feature similarity as if every feature dimension were one
more "user" who interacted with the items in proportion to their features (the collective
idea of side-information EASE): ``G = XᵀX + Σ_m α_m F_m F_mᵀ`` with ``F_m`` the centred,
L2-normalised features (missing rows zero). The closed form is unchanged, so fitting is one
``n_items x n_items`` inverse; items that share few interactions but look or sound alike now
share weight, which helps most on sparse logs. Items without any interactions get weights from
their content alone, so they are recommended (cold start).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from fuserec.fuse.base import View
from fuserec.fuse.normalize import ModalityNormalizer, l2_normalize
from fuserec.fuse.sum import DEFAULT_MODES
from fuserec.models.base import MODELS, Recommender, top_k


@MODELS.register("mmease")
class MultimodalEASE(Recommender):
    """EASE on interactions plus per-modality content similarity (weights ``alpha``)."""

    name = "mmease"
    needs_content = True

    def __init__(self, l2: float = 50.0, alpha: Mapping[str, float] | float = 10.0,
                 modalities: Sequence[str] | None = None) -> None:
        self.l2 = float(l2)
        self.alpha = alpha if isinstance(alpha, (int, float)) else dict(alpha)
        self.modalities = list(modalities) if modalities else None
        self.weights: np.ndarray | None = None

    def _alpha(self, modality: str) -> float:
        if isinstance(self.alpha, dict):
            return float(self.alpha.get(modality, 0.0))
        return float(self.alpha)

    def content_gram(self, item_features: Mapping[str, View]) -> np.ndarray:
        """``Σ_m α_m F_m F_mᵀ`` over the modalities used."""
        n = next(iter(item_features.values())).vectors.shape[0]
        gram = np.zeros((n, n), np.float64)
        for m in self.modalities or sorted(item_features):
            view, a = item_features[m], self._alpha(m)
            if a <= 0:
                continue
            present = np.asarray(view.present, bool)
            mode = DEFAULT_MODES.get(m, "center")
            f = ModalityNormalizer(mode).fit(view.vectors, present).transform(view.vectors, present)
            f = l2_normalize(f).astype(np.float64)
            f[~present] = 0.0
            gram += a * (f @ f.T)
        return gram

    def fit(self, interactions: sp.csr_matrix, item_features: Mapping[str, View] | None = None,
            user_features: Mapping[str, View] | None = None) -> MultimodalEASE:
        if not item_features:
            raise ValueError("mmease needs item_features (per-modality views)")
        missing = [m for m in self.modalities or [] if m not in item_features]
        if missing:
            raise ValueError(f"no item view for modalities {missing}")
        x = sp.csr_matrix(interactions, dtype=np.float64)
        x.data[:] = 1.0
        self.interactions = x.astype(np.float32)
        gram = np.asarray((x.T @ x).todense()) + self.content_gram(item_features)
        gram[np.diag_indices_from(gram)] += self.l2
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)[None, :]
        b[np.diag_indices_from(b)] = 0.0
        self.weights = b.astype(np.float32)
        return self

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        return np.asarray(self.interactions[user_ids] @ self.weights, np.float32)

    def item_vectors(self) -> np.ndarray:
        return self.weights

    def similar_items(self, item_ids: Sequence[int] | np.ndarray,
                      k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Items with the largest learned weights from each item (itself excluded)."""
        items = np.atleast_1d(np.asarray(item_ids, dtype=np.int64))
        s = self.weights[items].copy()
        s[np.arange(len(items)), items] = -np.inf
        return top_k(s, k)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"weights": self.weights}, {"l2": self.l2, "alpha": self.alpha,
                                           "modalities": self.modalities}

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray],
                   config: Mapping[str, Any]) -> MultimodalEASE:
        model = cls(config["l2"], config["alpha"], config.get("modalities"))
        model.weights = np.asarray(arrays["weights"])
        return model
