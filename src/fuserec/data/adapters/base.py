"""The benchmark dataset: train / validation / test matrices plus item content views."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from fuserec.data.views import View
from fuserec.registry import Registry


@dataclass
class Dataset:
    """Interactions as users x items CSR matrices (same shape) and per-modality item views.

    ``validation`` is for early stopping and tuning; ``test`` is only ever scored. When a
    source ships no validation split, :meth:`with_validation` carves one out of ``train``.
    """

    name: str
    train: sp.csr_matrix
    validation: sp.csr_matrix | None
    test: sp.csr_matrix
    item_features: dict[str, View] = field(default_factory=dict)
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    #: users' own content views (a bio, an avatar), row-aligned with the users
    user_features: dict[str, View] = field(default_factory=dict)
    #: each item's unified text (what text models read), row-aligned with the items
    item_texts: list[str] | None = None
    #: each user's own text (a bio, a taste profile; may be empty), row-aligned with the users
    user_texts: list[str] | None = None

    def __post_init__(self) -> None:
        shape = self.train.shape
        for split in ("validation", "test"):
            m = getattr(self, split)
            if m is not None and m.shape != shape:
                raise ValueError(f"{split} has shape {m.shape}, train {shape}")
        for m, view in self.item_features.items():
            if view.vectors.shape[0] != shape[1]:
                raise ValueError(
                    f"view {m!r} has {view.vectors.shape[0]} rows for {shape[1]} items")
        for what, texts, n in (("item_texts", self.item_texts, shape[1]),
                               ("user_texts", self.user_texts, shape[0])):
            if texts is not None and len(texts) != n:
                raise ValueError(f"{what} has {len(texts)} rows for {n} records")
        if self.user_ids is None:
            self.user_ids = np.arange(shape[0])
        if self.item_ids is None:
            self.item_ids = np.arange(shape[1])

    @property
    def n_users(self) -> int:
        return int(self.train.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.train.shape[1])

    def seen(self) -> sp.csr_matrix:
        """Everything a model may have learned from: excluded when ranking the test split."""
        if self.validation is None:
            return self.train
        return _binary(self.train + self.validation)

    def with_validation(self, fraction: float = 0.1, seed: int = 0) -> Dataset:
        """This dataset, with a per-user validation split carved out of train if it has none."""
        if self.validation is not None:
            return self
        train, validation = carve_validation(self.train, fraction, seed)
        return replace(self, train=train, validation=validation)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name, "users": self.n_users, "items": self.n_items,
            "train": int(self.train.nnz),
            "validation": int(self.validation.nnz) if self.validation is not None else 0,
            "test": int(self.test.nnz),
            "views": {m: list(v.vectors.shape) for m, v in self.item_features.items()},
        }


def _binary(m: sp.spmatrix) -> sp.csr_matrix:
    out = sp.csr_matrix(m, dtype=np.float32)
    out.sum_duplicates()
    out.data[:] = 1.0
    out.eliminate_zeros()
    return out


def binarize(m: sp.spmatrix) -> sp.csr_matrix:
    """Implicit feedback: every stored non-zero becomes 1.0 (float32 CSR, sorted indices)."""
    out = _binary(m)
    out.sort_indices()
    return out


def carve_validation(train: sp.csr_matrix, fraction: float = 0.1, seed: int = 0,
                     min_train: int = 1) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Move a random ``fraction`` of each user's train items (at least one when the user has
    more than ``min_train``) into a validation matrix. Deterministic for a given seed."""
    if not 0 < fraction < 1:
        raise ValueError("fraction must lie in (0, 1)")
    train = binarize(train)
    rng = np.random.default_rng(seed)
    counts = np.diff(train.indptr)
    rows = np.repeat(np.arange(train.shape[0]), counts)
    keys = rng.random(train.nnz)
    order = np.lexsort((keys, rows))  # random order within each row
    rank = np.empty(train.nnz, np.int64)
    rank[order] = np.arange(train.nnz) - np.repeat(train.indptr[:-1], counts)
    n_val = np.where(counts > min_train,
                     np.minimum(counts - min_train, np.maximum(1, np.rint(counts * fraction))), 0)
    to_val = rank < n_val[rows]
    cols = train.indices

    def build(mask: np.ndarray) -> sp.csr_matrix:
        return binarize(sp.csr_matrix((np.ones(int(mask.sum()), np.float32),
                                       (rows[mask], cols[mask])), shape=train.shape))

    return build(~to_val), build(to_val)


def cold_start_split(dataset: Dataset, fraction: float = 0.1,
                     seed: int = 0) -> tuple[Dataset, np.ndarray]:
    """Hold out a random ``fraction`` of items entirely: none of their interactions stay in
    train or validation, and the returned dataset's ``test`` holds all their interactions (from
    every split). Returns the dataset and the held-out (cold) item indices."""
    rng = np.random.default_rng(seed)
    n_cold = max(1, round(dataset.n_items * fraction))
    cold = np.sort(rng.choice(dataset.n_items, n_cold, replace=False))
    is_cold = np.zeros(dataset.n_items, bool)
    is_cold[cold] = True
    keep_warm = sp.diags((~is_cold).astype(np.float32))
    keep_cold = sp.diags(is_cold.astype(np.float32))
    everything = dataset.train + dataset.test
    if dataset.validation is not None:
        everything = everything + dataset.validation
    validation = (binarize(dataset.validation @ keep_warm)
                  if dataset.validation is not None else None)
    return replace(dataset, name=f"{dataset.name}-cold", train=binarize(dataset.train @ keep_warm),
                   validation=validation, test=binarize(everything @ keep_cold)), cold


ADAPTERS: Registry[Dataset] = Registry("dataset")
"""Dataset loaders by name, each called as ``loader(data_dir=..., **options)``."""


def load_dataset(name: str, data_dir: str | os.PathLike[str], **options: Any) -> Dataset:
    """Load a registered dataset (``tiktok``, ``matrices``, ``movielens``) from ``data_dir``."""
    return ADAPTERS.create(name, data_dir=data_dir, **options)
