"""Multimodal EASE: EASE whose item-item Gram matrix also counts content similarity.

EASE solves ``min ||X - X B||² + λ||B||²`` with ``diag(B) = 0`` from the Gram matrix ``XᵀX``.
Here each modality adds its items' feature similarity as if every feature dimension were one
more "user" who interacted with the items in proportion to their features (the collective
idea of side-information EASE): ``G = XᵀX + Σ_m α_m F_m F_mᵀ`` with ``F_m`` the features
normalised as :class:`~fuserec.fuse.SumFusion` does (centred, audio standardised, then unit
length; missing rows zero). The closed form is unchanged, so fitting is one
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
from fuserec.models.base import MODELS
from fuserec.models.ease import EASE


@MODELS.register("mmease")
class MultimodalEASE(EASE):
    """EASE on interactions plus per-modality content similarity (weights ``alpha``)."""

    name = "mmease"
    needs_content = True

    def __init__(self, l2: float = 50.0, alpha: Mapping[str, float] | float = 10.0,
                 modalities: Sequence[str] | None = None) -> None:
        super().__init__(float(l2))
        self.alpha = alpha if isinstance(alpha, (int, float)) else dict(alpha)
        self.modalities = list(modalities) if modalities else None

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
        gram = self.gram(interactions) + self.content_gram(item_features)
        self.weights = self.solve(gram, self.l2)
        return self

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"weights": self.weights}, {"l2": self.l2, "alpha": self.alpha,
                                           "modalities": self.modalities}

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray],
                   config: Mapping[str, Any]) -> MultimodalEASE:
        model = cls(config["l2"], config["alpha"], config.get("modalities"))
        model.weights = np.asarray(arrays["weights"])
        return model
