"""Full-ranking accuracy metrics on top-k lists.

``ranked`` is an (n_users, k) array of item indices, best first (-1 = padding); ``relevant``
is a list of sets (or a CSR matrix row per user) of held-out items. Definitions follow the
published full-ranking protocol (LightGCN, Cornac):

* Recall@k = |top-k ∩ relevant| / |relevant|
* NDCG@k = DCG@k / IDCG@k with binary gains, DCG = Σ_r 1[hit at rank r] / log2(r + 1) and the
  ideal DCG over min(k, |relevant|) hits.
* Precision@k = |top-k ∩ relevant| / k
* MRR@k = 1 / rank of the first hit within the top k (0 without a hit)
* HitRate@k = 1 if the top k hold any relevant item, else 0

Users with no relevant items are skipped (they are not counted in the mean).

Beyond accuracy (``ranked`` as above; padding is ignored):

* coverage@k: share of the catalog that appears in at least one user's top k.
* intra-list diversity@k: mean over users of the mean pairwise cosine *distance* (1 - cos)
  between the content vectors of the items in the list.
* novelty@k: mean self-information -log2(p_i) of recommended items, p_i = share of users who
  interacted with item i in training (items nobody interacted with count as one user).
* popularity@k: mean p_i of recommended items (average recommendation popularity, as a share
  of users, so it is comparable across datasets).
* exposure Gini@k: Gini coefficient of how often each catalog item is recommended (0 = every
  item shown equally often, towards 1 = a few items get all the exposure).
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


def _first_hit_ranks(ranked: np.ndarray, relevant: Sequence[set[int]], k: int) -> np.ndarray:
    hits = _hits(ranked, relevant, k)
    any_hit = hits.any(1)
    first = np.where(any_hit, hits.argmax(1) + 1, 0)
    return first


def _mask(relevant: Sequence[set[int]]) -> np.ndarray:
    return np.array([len(r) > 0 for r in relevant], dtype=bool)


def precision_at_k(ranked: np.ndarray, relevant: Sequence[set[int]], k: int) -> float:
    """Mean precision@k (hits in the top k divided by k) over users with relevant items."""
    mask = _mask(relevant)
    if not mask.any():
        return 0.0
    hits = _hits(ranked, relevant, k).sum(1)
    return float(np.mean(hits[mask] / k))


def mrr_at_k(ranked: np.ndarray, relevant: Sequence[set[int]], k: int) -> float:
    """Mean reciprocal rank of the first hit within the top k (0 without one)."""
    mask = _mask(relevant)
    if not mask.any():
        return 0.0
    first = _first_hit_ranks(ranked, relevant, k)
    rr = np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)
    return float(np.mean(rr[mask]))


def hit_rate_at_k(ranked: np.ndarray, relevant: Sequence[set[int]], k: int) -> float:
    """Share of users (with relevant items) that have at least one hit in the top k."""
    mask = _mask(relevant)
    if not mask.any():
        return 0.0
    hit = _hits(ranked, relevant, k).any(1)
    return float(np.mean(hit[mask]))


def catalog_coverage(ranked: np.ndarray, n_items: int, k: int) -> float:
    """Share of the ``n_items`` catalog recommended to at least one user within the top k."""
    top = np.asarray(ranked)[:, :k]
    shown = np.unique(top[top >= 0])
    return float(len(shown) / n_items) if n_items else 0.0


def intra_list_diversity(ranked: np.ndarray, vectors: np.ndarray, k: int) -> float:
    """Mean over lists of the mean pairwise cosine distance (1 - cos) of their content vectors.

    Lists with fewer than two items are skipped; 0.0 when no list qualifies.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    values = []
    for row in np.asarray(ranked)[:, :k]:
        items = row[row >= 0]
        n = len(items)
        if n < 2:
            continue
        sims = unit[items] @ unit[items].T
        mean_sim = (sims.sum() - np.trace(sims)) / (n * (n - 1))
        values.append(1.0 - mean_sim)
    return float(np.mean(values)) if values else 0.0


def item_popularity(train: sp.spmatrix) -> np.ndarray:
    """Share of users who interacted with each item in ``train`` (users x items)."""
    binary = sp.csr_matrix(train, copy=True)
    binary.data = np.ones_like(binary.data)
    binary.eliminate_zeros()
    counts = np.asarray(binary.sum(0)).ravel()
    return counts / max(binary.shape[0], 1)


def novelty(ranked: np.ndarray, popularity: np.ndarray, n_users: int, k: int) -> float:
    """Mean self-information -log2(p_i) of the recommended items (see the module docstring).

    ``popularity`` is :func:`item_popularity`'s share of users; an item no user interacted
    with counts as one user, so its self-information is log2(n_users).
    """
    top = np.asarray(ranked)[:, :k]
    items = top[top >= 0]
    if len(items) == 0:
        return 0.0
    p = np.maximum(np.asarray(popularity, dtype=np.float64)[items], 1.0 / max(n_users, 1))
    return float(np.mean(-np.log2(p)))


def mean_popularity(ranked: np.ndarray, popularity: np.ndarray, k: int) -> float:
    """Mean popularity (share of users) of the recommended items: the list's popularity bias."""
    top = np.asarray(ranked)[:, :k]
    items = top[top >= 0]
    if len(items) == 0:
        return 0.0
    return float(np.mean(np.asarray(popularity, dtype=np.float64)[items]))


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 for equal values, (n-1)/n for one non-zero."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = len(x)
    if n == 0 or x.sum() <= 0:
        return 0.0
    index = np.arange(1, n + 1)
    return float(np.sum((2 * index - n - 1) * x) / (n * x.sum()))


def exposure_gini(ranked: np.ndarray, n_items: int, k: int) -> float:
    """Gini of how often each of the ``n_items`` catalog items appears in the top-k lists."""
    top = np.asarray(ranked)[:, :k]
    counts = np.bincount(top[top >= 0], minlength=n_items)
    return gini(counts)


ACCURACY = {"recall": recall_at_k, "ndcg": ndcg_at_k, "precision": precision_at_k,
            "mrr": mrr_at_k, "hit_rate": hit_rate_at_k}
"""Accuracy metric functions by name, each ``f(ranked, relevant, k) -> float``."""


def all_metrics(ranked: np.ndarray, relevant: Sequence[set[int]], ks: Sequence[int], *,
                n_items: int, train: sp.spmatrix | None = None,
                vectors: np.ndarray | None = None) -> dict[str, float]:
    """Every accuracy metric at every k, plus the beyond-accuracy ones that the inputs allow.

    ``train`` (users x items) gives novelty, popularity and exposure Gini; ``vectors`` (content
    embeddings, one row per item) gives intra-list diversity. Keys look like ``"ndcg@10"``.
    """
    out: dict[str, float] = {}
    pop = item_popularity(train) if train is not None else None
    for k in ks:
        for name, fn in ACCURACY.items():
            out[f"{name}@{k}"] = fn(ranked, relevant, k)
        out[f"coverage@{k}"] = catalog_coverage(ranked, n_items, k)
        out[f"exposure_gini@{k}"] = exposure_gini(ranked, n_items, k)
        if vectors is not None:
            out[f"diversity@{k}"] = intra_list_diversity(ranked, vectors, k)
        if pop is not None:
            out[f"novelty@{k}"] = novelty(ranked, pop, train.shape[0], k)
            out[f"popularity@{k}"] = mean_popularity(ranked, pop, k)
    return out
