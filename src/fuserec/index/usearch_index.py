"""usearch: a compact HNSW index (single file, memory-mappable), an alternative to FAISS.

usearch reports inner-product *distances* as ``1 - <q, x>``; they are turned back into scores.
Files: ``index.usearch`` (usearch's own format, written to a temp file and renamed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fuserec.index.base import INDEXES, VectorIndex
from fuserec.io import write_with


@INDEXES.register("usearch")
class USearchIndex(VectorIndex):
    """HNSW inner-product search through usearch."""

    name = "usearch"

    def __init__(self, dim: int, connectivity: int = 32, expansion_add: int = 128,
                 expansion_search: int = 128, threads: int = 0) -> None:
        super().__init__(dim)
        self.connectivity = connectivity
        self.expansion_add = expansion_add
        self.expansion_search = expansion_search
        self.threads = threads
        self._index = self._new()

    def _new(self) -> Any:
        from usearch.index import Index

        return Index(ndim=self.dim, metric="ip", dtype="f32", connectivity=self.connectivity,
                     expansion_add=self.expansion_add, expansion_search=self.expansion_search)

    def _add(self, vectors: np.ndarray) -> None:
        keys = np.arange(self._ntotal, self._ntotal + len(vectors), dtype=np.uint64)
        self._index.add(keys, vectors, threads=self.threads)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        matches = self._index.search(queries, k, threads=self.threads)
        keys = np.atleast_2d(np.asarray(matches.keys)).astype(np.int64)
        dist = np.atleast_2d(np.asarray(matches.distances)).astype(np.float32)
        # a one-row batch comes back as a single ``Matches`` without ``counts``
        counts = np.atleast_1d(np.asarray(getattr(matches, "counts", keys.shape[1])))
        valid = np.arange(keys.shape[1])[None, :] < counts[:, None]
        pos = np.where(valid, keys, -1)
        scores = np.where(valid, 1.0 - dist, -np.inf).astype(np.float32)
        return pos, scores

    def reconstruct(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.uint64)
        if len(positions) == 0:
            return np.empty((0, self.dim), np.float32)
        return np.asarray(self._index.get(positions), dtype=np.float32).reshape(-1, self.dim)

    def config(self) -> dict[str, Any]:
        return {"connectivity": self.connectivity, "expansion_add": self.expansion_add,
                "expansion_search": self.expansion_search, "threads": self.threads}

    def _save(self, folder: Path) -> None:
        write_with(folder / "index.usearch", lambda tmp: self._index.save(str(tmp)))

    def _load(self, folder: Path, ntotal: int) -> None:
        index = self._new()
        index.load(str(folder / "index.usearch"))
        if len(index) != ntotal:
            raise ValueError(f"{folder}: index.usearch holds {len(index)} vectors, "
                             f"expected {ntotal}")
        self._index = index
