"""Full-ranking accuracy metrics on top-k lists.

``ranked`` is an (n_users, k) array of item indices, best first (-1 = padding); ``relevant``
is a list of sets (or a CSR matrix row per user) of held-out items. Definitions follow the
published full-ranking protocol (LightGCN, Cornac):

* Recall@k = |top-k ∩ relevant| / |relevant|
* NDCG@k = DCG@k / IDCG@k with binary gains, DCG = Σ_r 1[hit at rank r] / log2(r + 1) and the
  ideal DCG over min(k, |relevant|) hits.

Users with no relevant items are skipped (they are not counted in the mean).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp


def relevant_sets(test: sp.csr_matrix) -> list[set[int]]:
    """Held-out items per user from a users x items matrix."""
    test = test.tocsr()
    return [set(test.indices[test.indptr[u]:test.indptr[u + 1]].tolist())
            for u in range(test.shape[0])]


def _hits(ranked: np.ndarray, relevant: Sequence[set[int]], k: int) -> np.ndarray:
    top = ranked[:, :k]
    return np.array([[int(i) in rel for i in row] for row, rel in zip(top, relevant, strict=True)],
                    dtype=np.float64).reshape(len(relevant), -1)


def recall_at_k(ranked: np.ndarray, relevant: Sequence[set[int]], k: int) -> float:
    """Mean recall@k over users that have relevant items."""
    sizes = np.array([len(r) for r in relevant], dtype=np.float64)
    mask = sizes > 0
    if not mask.any():
        return 0.0
    hits = _hits(ranked, relevant, k).sum(1)
    return float(np.mean(hits[mask] / sizes[mask]))


def ndcg_at_k(ranked: np.ndarray, relevant: Sequence[set[int]], k: int) -> float:
    """Mean NDCG@k (binary relevance) over users that have relevant items."""
    sizes = np.array([len(r) for r in relevant])
    mask = sizes > 0
    if not mask.any():
        return 0.0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    hits = _hits(ranked, relevant, k)
    dcg = (hits * discounts[: hits.shape[1]]).sum(1)
    idcg = np.array([discounts[: min(k, s)].sum() for s in sizes])
    return float(np.mean(dcg[mask] / idcg[mask]))
