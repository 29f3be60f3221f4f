"""Row-wise top-k, shared by models, indexes and evaluation (no heavy imports)."""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest entries per row, sorted descending."""
    n_rows, n_cols = scores.shape
    k_eff = min(k, n_cols)
    if k_eff <= 0:
        return np.empty((n_rows, 0), np.int64), np.empty((n_rows, 0), np.float32)
    part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    part_scores = np.take_along_axis(scores, part, 1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, 1)
    vals = np.take_along_axis(part_scores, order, 1)
    idx = np.where(np.isfinite(vals), idx, -1)
    if k_eff < k:
        idx = np.pad(idx, ((0, 0), (0, k - k_eff)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, k - k_eff)), constant_values=-np.inf)
    return idx.astype(np.int64), vals.astype(np.float32)
