"""Row-wise top-k and the one ranking-and-metrics kernel, shared by models, indexes and
evaluation (no heavy imports)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp


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


def apply_filters(scores: np.ndarray, users: np.ndarray, exclude: sp.spmatrix | None = None,
                  candidates: np.ndarray | None = None) -> np.ndarray:
    """Set to -inf (in place) what a ranking of ``users`` must not return: the items of their
    rows of ``exclude`` (users x items), and every item outside ``candidates`` (indices or a
    boolean mask). Returns ``scores``."""
    if exclude is not None:
        seen = sp.csr_matrix(exclude)[users]
        scores[np.repeat(np.arange(len(users)), np.diff(seen.indptr)), seen.indices] = -np.inf
    if candidates is not None:
        allowed = np.asarray(candidates)
        if allowed.dtype != bool:
            keep = np.zeros(scores.shape[1], bool)
            keep[allowed.astype(np.int64)] = True
            allowed = keep
        scores[:, ~allowed] = -np.inf
    return scores


def ranked_metrics(score: Callable[[np.ndarray], np.ndarray], target: sp.csr_matrix,
                   ks: Sequence[int] = (10,), exclude: sp.csr_matrix | None = None,
                   candidates: np.ndarray | None = None, batch: int = 1024,
                   advance: Callable[[int], None] | None = None) -> dict[str, float]:
    """The one ranking-and-metrics kernel: Recall@k and NDCG@k (binary relevance) of a score
    function over every user with ``target`` items, full ranking.

    ``score(user_ids)`` returns (len(user_ids), n_items) scores; ``exclude`` (users x items)
    is never ranked; ``candidates`` (item indices or a boolean mask) restricts the ranking.
    Evaluation, early stopping, blend weights and model selection all rank through here.
    Returns ``{"recall@k": ..., "ndcg@k": ..., "users": n}``.
    """
    per_user = user_metrics(score, target, ks, exclude, candidates, batch, advance)
    n = len(per_user["users"])
    out: dict[str, float] = {key: float(v.sum()) / max(n, 1)
                             for key, v in per_user.items() if key != "users"}
    out["users"] = int(n)
    return out


def user_metrics(score: Callable[[np.ndarray], np.ndarray], target: sp.csr_matrix,
                 ks: Sequence[int] = (10,), exclude: sp.csr_matrix | None = None,
                 candidates: np.ndarray | None = None, batch: int = 1024,
                 advance: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """:func:`ranked_metrics` per user: ``{"users": ids, "recall@k": values, ...}``, one value
    per user with ``target`` items (so any subset of users can be averaged afterwards)."""
    target = sp.csr_matrix(target)
    users = np.flatnonzero(np.diff(target.indptr) > 0)
    max_k = max(ks)
    discounts = 1.0 / np.log2(np.arange(2, max_k + 2))
    out = {f"{m}@{k}": np.zeros(len(users)) for k in ks for m in ("recall", "ndcg")}
    for start in range(0, len(users), batch):
        b = users[start:start + batch]
        s = apply_filters(np.array(score(b), dtype=np.float32), b, exclude, candidates)
        top, _ = top_k(s, max_k)
        truth = target[b]
        n_rel = np.diff(truth.indptr).astype(np.float64)
        dense = truth.toarray() > 0
        hits = np.take_along_axis(dense, np.maximum(top, 0), 1) & (top >= 0)
        for k in ks:
            h = hits[:, :k]
            idcg = np.array([discounts[: min(k, int(n))].sum() for n in n_rel])
            out[f"recall@{k}"][start:start + len(b)] = h.sum(1) / n_rel
            out[f"ndcg@{k}"][start:start + len(b)] = (h * discounts[:k]).sum(1) / idcg
        if advance is not None:
            advance(len(b))
    return {"users": users, **out}
