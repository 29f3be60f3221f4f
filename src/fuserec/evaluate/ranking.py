"""Evaluate a fitted recommender on held-out interactions with full ranking."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from rich.progress import Progress

from fuserec.models.base import Recommender
from fuserec.ranking import ranked_metrics


def evaluate_ranking(model: Recommender, test: sp.csr_matrix, ks: Sequence[int] = (10,),
                     batch_size: int = 1024, progress: bool = False,
                     desc: str = "evaluating", exclude: sp.csr_matrix | None = None,
                     candidates: np.ndarray | None = None) -> dict[str, float]:
    """Recall@k and NDCG@k over every user with test items, ranked by the model's scores
    through the shared kernel (:func:`fuserec.ranking.ranked_metrics`).

    ``exclude`` (users x items) is never ranked: default the model's training items (pass
    train + validation when scoring a test split); ``candidates`` restricts the ranking to
    those items (the cold-start protocol). Returns ``{"recall@10": ..., "ndcg@10": ...,
    "users": n}``.
    """
    test = test.tocsr()
    n_users = int((np.diff(test.indptr) > 0).sum())
    seen = exclude if exclude is not None else model.interactions
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(desc, total=n_users)
        return ranked_metrics(model.score, test, ks, seen, candidates, batch_size,
                              advance=lambda n: bar.advance(task, n))
