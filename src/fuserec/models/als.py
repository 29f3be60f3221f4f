"""Implicit-feedback ALS (Hu, Koren and Volinsky, ICDM 2008), trained by the ``implicit`` library.

Each observed interaction counts with confidence ``alpha``; user and item factors come from
alternating (conjugate-gradient) least squares. Fast on a CPU: on a catalog of thousands of
items it trains in seconds, which makes it a cheap, strong partner for EASE-type models in a
blend. A user with fresh feedback is folded in exactly: their factors are recomputed by the
same least-squares step with the item factors fixed (``implicit``'s ``recalculate_user``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from fuserec.fuse.base import View
from fuserec.models.base import MODELS
from fuserec.models.torch_base import EmbeddingRecommender


@MODELS.register("als")
class ALS(EmbeddingRecommender):
    """Weighted matrix factorisation of implicit feedback by alternating least squares."""

    name = "als"

    def __init__(self, factors: int = 64, regularization: float = 0.1, alpha: float = 4.0,
                 iterations: int = 15, seed: int = 0) -> None:
        self.factors = int(factors)
        self.regularization = float(regularization)
        self.alpha = float(alpha)
        self.iterations = int(iterations)
        self.seed = int(seed)
        self._solver: Any = None

    def _implicit(self) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        # one thread, BLAS included (implicit warns otherwise): the pipeline runs on small
        # machines beside other work, and implicit's own threads would fight BLAS's
        with threadpool_limits(1, "blas"):
            return AlternatingLeastSquares(
                factors=self.factors, regularization=self.regularization, alpha=self.alpha,
                iterations=self.iterations, random_state=self.seed, num_threads=1)

    def fit(self, interactions: sp.csr_matrix, item_features: Mapping[str, View] | None = None,
            user_features: Mapping[str, View] | None = None) -> ALS:
        from threadpoolctl import threadpool_limits

        x = sp.csr_matrix(interactions, dtype=np.float32)
        x.sum_duplicates()
        x.data[:] = 1.0
        self.interactions = x
        solver = self._implicit()
        with threadpool_limits(1, "blas"):
            solver.fit(x, show_progress=False)
        self._solver = solver
        self.user_factors = np.asarray(solver.user_factors, np.float32)
        self.item_factors = np.asarray(solver.item_factors, np.float32)
        self.fit_content_map(item_features)
        return self

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        """Users recomputed from their history rows by ALS's least-squares step, scored."""
        return self._fold_in(history) @ np.asarray(self.item_factors, np.float32).T

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        if self._solver is None:  # loaded from disk: an ALS around the saved factors
            self._solver = self._implicit()
            self._solver.item_factors = np.ascontiguousarray(self.item_factors, np.float32)
            self._solver.user_factors = np.ascontiguousarray(self.user_factors, np.float32)
        rows = sp.csr_matrix(history, dtype=np.float32)
        users = self._solver.recalculate_user(np.arange(rows.shape[0]), rows)
        return np.atleast_2d(np.asarray(users, np.float32))
