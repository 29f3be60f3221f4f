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

Items added after fit get their column of ``B`` exactly: appending item ``j`` with content
similarities ``g`` (to every fitted item) and no interactions to ``G + λI`` gives, by the block
inverse, ``B_{:,j} = P g = (I - B) (diag(P) ⊙ g)``, so the model keeps ``diag(P)`` and the
normalised, α-weighted features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from fuserec.fuse.base import View
from fuserec.fuse.sum import DEFAULT_MODES
from fuserec.models.base import MODELS, NewItems
from fuserec.models.content_side import ContentBlocks
from fuserec.models.ease import EASE


@MODELS.register("mmease")
class MultimodalEASE(EASE):
    """EASE on interactions plus per-modality content similarity (weights ``alpha``)."""

    name = "mmease"
    needs_content = True

    def __init__(self, l2: float = 50.0, alpha: Mapping[str, float] | float = 10.0,
                 modalities: Sequence[str] | None = None) -> None:
        super().__init__(float(l2))
        self.blocks: ContentBlocks | None = None
        self.features: dict[str, np.ndarray] = {}
        self.diagonal: np.ndarray | None = None
        self.alpha = alpha if isinstance(alpha, (int, float)) else dict(alpha)
        self.modalities = list(modalities) if modalities else None

    def _alpha(self, modality: str) -> float:
        if isinstance(self.alpha, dict):
            return float(self.alpha.get(modality, 0.0))
        return float(self.alpha)

    def content_gram(self, item_features: Mapping[str, View]) -> np.ndarray:
        """``Σ_m α_m F_m F_mᵀ`` over the modalities used (their normalisers and the
        normalised features are kept for items added after fit)."""
        n = next(iter(item_features.values())).vectors.shape[0]
        gram = np.zeros((n, n), np.float64)
        used = [m for m in self.modalities or sorted(item_features) if self._alpha(m) > 0]
        self.blocks = ContentBlocks.fit(item_features, DEFAULT_MODES, used)
        self.features = self.blocks.transform(item_features, n)
        for m, f in self.features.items():
            f64 = f.astype(np.float64)
            gram += self._alpha(m) * (f64 @ f64.T)
        return gram

    def score_new_items(self, history: sp.csr_matrix, items: NewItems) -> np.ndarray | None:
        """Exact scores of items added after fit, from their content similarity to the
        fitted items (see the module docstring)."""
        if not self.features or len(items) == 0 or self.diagonal is None:
            return None
        new = self.blocks.transform(items.views, len(items))
        g = sum(self._alpha(m) * (self.features[m] @ new[m].T) for m in self.features)
        h = sp.csr_matrix(history, dtype=np.float32)
        residual = np.asarray(h.todense()) - np.asarray(h @ self.weights)
        return (residual @ (self.diagonal[:, None] * g)).astype(np.float32)

    def fit(self, interactions: sp.csr_matrix, item_features: Mapping[str, View] | None = None,
            user_features: Mapping[str, View] | None = None) -> MultimodalEASE:
        if not item_features:
            raise ValueError("mmease needs item_features (per-modality views)")
        missing = [m for m in self.modalities or [] if m not in item_features]
        if missing:
            raise ValueError(f"no item view for modalities {missing}")
        gram = self.gram(interactions) + self.content_gram(item_features)
        self.weights, self.diagonal = self.solve_with_diagonal(gram, self.l2)
        return self

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {"weights": self.weights}
        config: dict[str, Any] = {"l2": self.l2, "alpha": self.alpha,
                                  "modalities": self.modalities}
        if self.features and self.diagonal is not None:
            block_arrays, config["content_modes"] = self.blocks.state("content")
            arrays.update(block_arrays)
            arrays["diagonal"] = self.diagonal
            arrays.update({f"features.{m}": f for m, f in self.features.items()})
        return arrays, config

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray],
                   config: Mapping[str, Any]) -> MultimodalEASE:
        model = cls(config["l2"], config["alpha"], config.get("modalities"))
        model.weights = np.asarray(arrays["weights"])
        if "content_modes" in config:
            model.blocks = ContentBlocks.from_state(arrays, config["content_modes"], "content")
            model.diagonal = np.asarray(arrays["diagonal"])
            model.features = {m: np.asarray(arrays[f"features.{m}"])
                              for m in config["content_modes"]}
        return model
