"""Validation metrics inside the models layer (early stopping, blend weights).

The full evaluation lives in :mod:`fuserec.evaluate`, a later stage that models must not import;
training only needs Recall@k and NDCG@k of a score function on a held-out matrix.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from fuserec.ranking import ranked_metrics


def scored_metrics(score: Callable[[np.ndarray], np.ndarray], seen: sp.csr_matrix,
                   target: sp.csr_matrix, k: int = 20, batch: int = 2048,
                   candidates: np.ndarray | None = None) -> dict[str, float]:
    """Recall@k and NDCG@k over users with target items, full ranking with ``seen`` excluded
    (the shared kernel :func:`fuserec.ranking.ranked_metrics` at one cut-off).

    ``score(user_ids)`` returns a (len(user_ids), n_items) array for a batch of users, in the
    order of the users that have target items; ``candidates`` restricts ranking to those items.
    """
    out = ranked_metrics(score, target, (k,), seen, candidates, batch)
    out.pop("users")
    return out
