"""EASE (Steck, WWW 2019): a closed-form linear item-item model.

``B = argmin ||X - X B||² + λ||B||²`` subject to ``diag(B) = 0``, solved exactly as
``P = (XᵀX + λI)⁻¹``, ``B_ij = -P_ij / P_jj`` (``B_jj = 0``); ``score(u) = x_u B``. One
``n_items x n_items`` inverse, so it suits catalogs up to some tens of thousands of items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from fuserec.fuse.base import View
from fuserec.models.base import MODELS, Recommender, top_k


@MODELS.register("ease")
class EASE(Recommender):
    """Embarrassingly shallow autoencoder: item-item weights in closed form."""

    name = "ease"

    def __init__(self, l2: float = 500.0) -> None:
        self.l2 = l2
        self.weights: np.ndarray | None = None

    def fit(self, interactions: sp.csr_matrix, item_features: Mapping[str, View] | None = None,
            user_features: Mapping[str, View] | None = None) -> EASE:
        self.weights = self.solve(self.gram(interactions), self.l2)
        return self

    def gram(self, interactions: sp.csr_matrix) -> np.ndarray:
        """Binarise the interactions (kept as this model's history) and return ``XᵀX``."""
        x = sp.csr_matrix(interactions, dtype=np.float64)
        x.data[:] = 1.0
        self.interactions = x.astype(np.float32)
        return np.asarray((x.T @ x).todense())

    @staticmethod
    def solve(gram: np.ndarray, l2: float) -> np.ndarray:
        """EASE's closed form for a Gram matrix: ``B = -P / diag(P)``, ``P = (G + λI)⁻¹``."""
        return EASE.solve_with_diagonal(gram, l2)[0]

    @staticmethod
    def solve_with_diagonal(gram: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
        """``B`` and ``diag(P)``: with both, ``P = (I - B) diag(P)`` is known without keeping
        ``P`` (a new item's column needs it; see :mod:`fuserec.models.mmease`)."""
        gram = gram.copy()
        gram[np.diag_indices_from(gram)] += l2
        p = np.linalg.inv(gram)
        diag = np.diag(p).copy()
        b = -p / diag[None, :]
        b[np.diag_indices_from(b)] = 0.0
        return b.astype(np.float32), diag.astype(np.float32)

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        return self.score_history(self.interactions[user_ids])

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray(sp.csr_matrix(history, dtype=np.float32) @ self.weights, np.float32)

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
        return {"weights": self.weights}, {"l2": self.l2}

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> EASE:
        model = cls(config["l2"])
        model.weights = np.asarray(arrays["weights"])
        return model
