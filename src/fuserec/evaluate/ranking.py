"""Evaluate a fitted recommender on held-out interactions with full ranking."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from rich.progress import Progress

from fuserec.evaluate.metrics import ndcg_at_k, recall_at_k, relevant_sets
from fuserec.models.base import Recommender


def evaluate_ranking(model: Recommender, test: sp.csr_matrix, ks: Sequence[int] = (10,),
                     batch_size: int = 1024, progress: bool = False,
                     desc: str = "evaluating", exclude: sp.csr_matrix | None = None,
                     candidates: np.ndarray | None = None) -> dict[str, float]:
    """Recall@k and NDCG@k over every user with test items, ranked by ``model.recommend``.

    ``exclude`` (users x items) is never ranked: default the model's training items (pass
    train + validation when scoring a test split); ``candidates`` restricts the ranking to
    those items (the cold-start protocol). Returns ``{"recall@10": ..., "ndcg@10": ...,
    "users": n}``.
    """
    test = test.tocsr()
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    max_k = max(ks)
    ranked = np.empty((len(users), max_k), dtype=np.int64)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(desc, total=len(users))
        for start in range(0, len(users), batch_size):
            batch = users[start:start + batch_size]
            ranked[start:start + len(batch)], _ = model.recommend(
                batch, k=max_k, exclude=exclude, candidates=candidates)
            bar.advance(task, len(batch))
    all_sets = relevant_sets(test)
    relevant = [all_sets[u] for u in users]
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = recall_at_k(ranked, relevant, k)
        out[f"ndcg@{k}"] = ndcg_at_k(ranked, relevant, k)
    out["users"] = int(len(users))
    return out
