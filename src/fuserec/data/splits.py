"""Train / validation / test splits of an interaction log."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fuserec.data.schema import TIMESTAMP, USER_ID

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


SPLIT_LABELS = ("train", "validation", "test")


def _require_time(interactions: pd.DataFrame) -> pd.Series:
    if TIMESTAMP not in interactions:
        raise ValueError(f"a temporal split needs a {TIMESTAMP!r} column in the interactions")
    ts = interactions[TIMESTAMP]
    if ts.isna().any():
        raise ValueError(f"{int(ts.isna().sum())} interactions have no {TIMESTAMP}")
    return ts


def leave_last_out(interactions: pd.DataFrame, n_test: int = 1, n_validation: int = 0,
                   min_train: int = 1) -> pd.DataFrame:
    """Temporal split per user: each user's last ``n_test`` interactions go to test and the
    ``n_validation`` before them to validation; at least ``min_train`` stay in train.

    Ties in time are broken by row order, so the split is deterministic.
    """
    if n_test < 0 or n_validation < 0:
        raise ValueError("n_test and n_validation must be non-negative")
    ts = _require_time(interactions)
    order = pd.DataFrame({"u": interactions[USER_ID].to_numpy(), "t": ts.to_numpy(),
                          "row": np.arange(len(interactions))})
    order = order.sort_values(["u", "t", "row"], kind="stable")
    size = order.groupby("u", sort=False)["row"].transform("size").to_numpy()
    # position counted from each user's end: 0 = most recent
    from_end = size - 1 - order.groupby("u", sort=False).cumcount().to_numpy()
    spare = np.maximum(size - min_train, 0)
    n_t = np.minimum(n_test, spare)
    n_v = np.minimum(n_validation, spare - n_t)
    labels_sorted = np.where(from_end < n_t, "test",
                             np.where(from_end < n_t + n_v, "validation", "train"))
    labels = np.empty(len(interactions), dtype=object)
    labels[order["row"].to_numpy()] = labels_sorted
    out = interactions.copy()
    out[SPLIT] = labels
    return out


def global_time_split(interactions: pd.DataFrame, test_fraction: float = 0.2,
                      validation_fraction: float = 0.0) -> pd.DataFrame:
    """Temporal split at global time cuts: the latest ``test_fraction`` of all interactions
    (by timestamp) is test, the ``validation_fraction`` before it validation, the rest train.

    Every interaction at or after the test cut time is test, so a cut never splits one moment.
    Users and items that appear only after the cut are the split's natural cold start.
    """
    if not 0 <= test_fraction < 1 or not 0 <= validation_fraction < 1 \
            or test_fraction + validation_fraction >= 1:
        raise ValueError("fractions must lie in [0, 1) and sum to less than 1")
    ts = _require_time(interactions)
    values = np.sort(ts.to_numpy())
    n = len(values)
    labels = np.full(n, "train", dtype=object)
    if n:
        t_test = values[min(n - 1, int(np.floor(n * (1 - test_fraction))))] \
            if test_fraction else None
        t_val = values[min(n - 1, int(np.floor(n * (1 - test_fraction - validation_fraction))))] \
            if validation_fraction else None
        raw = ts.to_numpy()
        if t_val is not None:
            labels[raw >= t_val] = "validation"
        if t_test is not None:
            labels[raw >= t_test] = "test"
    out = interactions.copy()
    out[SPLIT] = labels
    return out


def published_split(interactions: pd.DataFrame, column: str = SPLIT) -> pd.DataFrame:
    """Use a split shipped with the data, as given: ``column`` must hold train / validation /
    test labels (``valid`` and ``val`` are read as validation). Nothing is moved."""
    if column not in interactions:
        raise ValueError(f"the interactions have no {column!r} column to take the split from")
    aliases = {"valid": "validation", "val": "validation", "dev": "validation"}
    labels = interactions[column].astype(str).str.strip().str.lower().replace(aliases)
    unknown = sorted(set(labels) - set(SPLIT_LABELS))
    if unknown:
        raise ValueError(f"unknown split labels {unknown}; expected {list(SPLIT_LABELS)}")
    out = interactions.copy()
    out[SPLIT] = labels.to_numpy(dtype=object)
    return out


SPLITTERS = {
    "given": published_split,
    "random": random_split_per_user,
    "leave-last-out": leave_last_out,
    "time": global_time_split,
}
"""Split methods by name, each ``f(interactions, **options) -> interactions + split column``."""


def split_interactions(interactions: pd.DataFrame, method: str = "given",
                       **options: object) -> pd.DataFrame:
    """Apply the split method ``method`` (a key of :data:`SPLITTERS`)."""
    if method not in SPLITTERS:
        raise ValueError(f"unknown split {method!r}; known: {', '.join(SPLITTERS)}")
    return SPLITTERS[method](interactions, **options)  # type: ignore[operator]
