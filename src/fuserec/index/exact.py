"""Exact search: one matrix product over every vector (numpy). The reference for all others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fuserec.index.base import INDEXES, VectorIndex, _empty
from fuserec.io import read_npy, write_npy
from fuserec.ranking import top_k

_GROW = 1.5


@INDEXES.register("exact")
class ExactIndex(VectorIndex):
    """Brute-force inner product in numpy; exact, and fine up to tens of thousands of items."""

    name = "exact"
    exact = True

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self._data = np.empty((0, dim), np.float32)

    @property
    def vectors(self) -> np.ndarray:
        """The stored vectors (a view, positions in order)."""
        return self._data[: self._ntotal]

    def _add(self, vectors: np.ndarray) -> None:
        need = self._ntotal + len(vectors)
        if need > len(self._data):  # amortised growth, so adding one item is cheap
            grown = np.empty((max(need, int(len(self._data) * _GROW)), self.dim), np.float32)
            grown[: self._ntotal] = self._data[: self._ntotal]
            self._data = grown
        self._data[self._ntotal: need] = vectors

    def _scores(self, queries: np.ndarray) -> np.ndarray:
        return queries @ self.vectors.T

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return top_k(self._scores(queries), k)

    def _search_filtered(self, queries: np.ndarray, k: int, excl: list[np.ndarray],
                         allow: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if allow is not None and not allow.any():
            return _empty(len(queries), k)
        scores = self._scores(queries)
        if allow is not None:
            scores[:, ~allow] = -np.inf
        for row, e in enumerate(excl):
            if len(e):
                scores[row, e[(e >= 0) & (e < self._ntotal)]] = -np.inf
        return top_k(scores, k)  # pads with -1 / -inf past the catalog

    def reconstruct(self, positions: np.ndarray) -> np.ndarray:
        return self.vectors[np.asarray(positions, dtype=np.int64)]

    def config(self) -> dict[str, Any]:
        return {}

    def _save(self, folder: Path) -> None:
        write_npy(folder / "vectors.npy", self.vectors)

    def _load(self, folder: Path, ntotal: int) -> None:
        data = read_npy(folder / "vectors.npy").astype(np.float32, copy=False)
        if data.shape != (ntotal, self.dim):
            raise ValueError(f"{folder}: vectors.npy has shape {data.shape}, "
                             f"expected ({ntotal}, {self.dim})")
        self._data = np.ascontiguousarray(data)
