"""Train / validation / test splits of an interaction log."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fuserec.data.schema import USER_ID

SPLIT = "split"


def random_split_per_user(interactions: pd.DataFrame, test_fraction: float = 0.2,
                          validation_fraction: float = 0.0, seed: int = 0,
                          min_train: int = 1) -> pd.DataFrame:
    """Return ``interactions`` with a ``split`` column: "train", "validation" or "test".

    For every user, a random ``test_fraction`` of their interactions (rounded, at least one
    when the user has more than ``min_train``) goes to test and ``validation_fraction`` to
    validation; at least ``min_train`` stay in train. Deterministic for a given seed.
    """
    if not 0 <= test_fraction < 1 or not 0 <= validation_fraction < 1:
        raise ValueError("fractions must lie in [0, 1)")
    rng = np.random.default_rng(seed)
    labels = np.full(len(interactions), "train", dtype=object)
    positions = np.arange(len(interactions))
    for _, idx in interactions.groupby(USER_ID, sort=True).indices.items():
        idx = positions[idx]
        n = len(idx)
        spare = n - min_train
        if spare <= 0:
            continue
        order = rng.permutation(idx)
        n_test = min(spare, max(1, round(n * test_fraction))) if test_fraction else 0
        n_val = min(spare - n_test, round(n * validation_fraction)) if validation_fraction else 0
        labels[order[:n_test]] = "test"
        labels[order[n_test:n_test + n_val]] = "validation"
    out = interactions.copy()
    out[SPLIT] = labels
    return out
