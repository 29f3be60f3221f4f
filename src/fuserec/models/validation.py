"""Validation metrics inside the models layer (early stopping, blend weights).

The full evaluation lives in :mod:`fuserec.evaluate`, a later stage that models must not import;
training only needs Recall@k and NDCG@k of a score function on a held-out matrix.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp


def scored_metrics(score: Callable[[np.ndarray], np.ndarray], seen: sp.csr_matrix,
                   target: sp.csr_matrix, k: int = 20, batch: int = 2048,
                   candidates: np.ndarray | None = None) -> dict[str, float]:
    """Recall@k and NDCG@k over users with target items, full ranking with ``seen`` excluded.

    ``score(user_ids)`` returns a (len(user_ids), n_items) array for a batch of users, in the
    order of the users that have target items; ``candidates`` restricts ranking to those items.
    """
    target = target.tocsr()
    users = np.flatnonzero(np.diff(target.indptr) > 0)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    recalls, ndcgs = [], []
    for start in range(0, len(users), batch):
        b = users[start:start + batch]
        s = np.array(score(b), dtype=np.float32)
        sub = seen[b]
        s[np.repeat(np.arange(len(b)), np.diff(sub.indptr)), sub.indices] = -np.inf
        if candidates is not None:
            mask = np.full(s.shape[1], -np.inf, np.float32)
            mask[candidates] = 0.0
            s = s + mask
        kk = min(k, s.shape[1])
        top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(s, top, 1), axis=1), 1)
        truth = target[b].toarray() > 0
        hits = np.take_along_axis(truth, top, 1) & np.isfinite(np.take_along_axis(s, top, 1))
        n_rel = truth.sum(1)
        recalls.append(hits.sum(1) / n_rel)
        dcg = (hits * discounts[:kk]).sum(1)
        idcg = np.array([discounts[: min(kk, n)].sum() for n in n_rel])
        ndcgs.append(dcg / idcg)
    if not recalls:
        return {f"recall@{k}": 0.0, f"ndcg@{k}": 0.0}
    return {f"recall@{k}": float(np.concatenate(recalls).mean()),
            f"ndcg@{k}": float(np.concatenate(ndcgs).mean())}
