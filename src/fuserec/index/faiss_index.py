"""FAISS, the default index: exact flat inner product for small catalogs, HNSW or IVF above.

``structure="auto"`` (the default) picks a flat index while the first batch of vectors is at
most ``threshold`` long and an HNSW graph above it (``large="ivf"`` picks an inverted file
instead). HNSW needs no training and takes new items one at a time, which suits a catalog that
grows while serving; IVF builds faster on very large catalogs. The structure is fixed when the
first vectors arrive.

Files: ``index.faiss`` (FAISS's own binary format, written to a temp file and renamed).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fuserec.index.base import INDEXES, VectorIndex
from fuserec.io import write_with

Structure = Literal["auto", "flat", "hnsw", "ivf"]
#: Up to this many items, ``auto`` uses exact flat search (~3 ms per query at ~1.9k dims on
#: one core); above it, a graph answers in well under a millisecond.
DEFAULT_THRESHOLD = 5_000


def _faiss():
    import faiss

    return faiss


@INDEXES.register("faiss")
class FaissIndex(VectorIndex):
    """FAISS inner-product index: flat (exact), HNSW or IVF-flat."""

    name = "faiss"

    def __init__(self, dim: int, structure: Structure = "auto",
                 threshold: int = DEFAULT_THRESHOLD, large: Literal["hnsw", "ivf"] = "hnsw",
                 hnsw_m: int = 32, ef_construction: int = 80, ef_search: int = 128,
                 nlist: int | None = None, nprobe: int | None = None,
                 train_size: int = 40_000, threads: int | None = None,
                 built: str | None = None) -> None:
        super().__init__(dim)
        if structure not in ("auto", "flat", "hnsw", "ivf"):
            raise ValueError(f"unknown FAISS structure {structure!r}; use auto, flat, hnsw or ivf")
        self.structure = structure
        self.threshold = int(threshold)
        self.large = large
        self.hnsw_m, self.ef_construction, self.ef_search = hnsw_m, ef_construction, ef_search
        self.nlist, self.nprobe, self.train_size = nlist, nprobe, train_size
        self.threads = threads
        self.built: str | None = built  # the structure actually in use, once decided
        self._index = None
        if threads is not None:
            _faiss().omp_set_num_threads(int(threads))

    @property
    def exact(self) -> bool:  # type: ignore[override]
        return self.built == "flat" or (self.built is None and self.structure == "flat")

    @property
    def faiss_index(self) -> Any:
        """The underlying ``faiss.Index`` (None before the first add)."""
        return self._index

    def _create(self, first: np.ndarray) -> None:
        faiss = _faiss()
        kind = self.structure
        if kind == "auto":
            kind = "flat" if len(first) <= self.threshold else self.large
        ip = faiss.METRIC_INNER_PRODUCT
        if kind == "flat":
            index = faiss.IndexFlatIP(self.dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, ip)
            index.hnsw.efConstruction = self.ef_construction
        else:
            nlist = self.nlist or max(1, min(4096, int(4 * math.sqrt(len(first)))))
            self.nlist = nlist
            quantizer = faiss.IndexFlatIP(self.dim)
            index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, ip)
            rng = np.random.default_rng(0)
            sample = first if len(first) <= self.train_size else \
                first[rng.choice(len(first), self.train_size, replace=False)]
            index.cp.niter = 12
            index.cp.max_points_per_centroid = max(1, self.train_size // nlist)
            index.train(np.ascontiguousarray(sample))
            index.make_direct_map()
        self.built = kind
        self._index = index
        self._tune()

    def set_threads(self, n: int) -> None:
        """FAISS's OpenMP threads (process-wide). One query at a time is fastest on one
        thread: idle OpenMP workers spin and, on a busy machine, steal the core."""
        self.threads = int(n)
        _faiss().omp_set_num_threads(self.threads)

    def _tune(self) -> None:
        if self.built == "hnsw":
            self._index.hnsw.efSearch = self.ef_search
        elif self.built == "ivf":
            self._index.nprobe = self.nprobe or min(self._index.nlist, 32)

    def _add(self, vectors: np.ndarray) -> None:
        if self._index is None:
            self._create(vectors)
        self._index.add(vectors)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, pos = self._index.search(queries, k)
        return pos.astype(np.int64), scores.astype(np.float32)

    def reconstruct(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        if len(positions) == 0:
            return np.empty((0, self.dim), np.float32)
        return self._index.reconstruct_batch(positions).astype(np.float32, copy=False)

    def config(self) -> dict[str, Any]:
        return {"structure": self.structure, "threshold": self.threshold, "large": self.large,
                "hnsw_m": self.hnsw_m, "ef_construction": self.ef_construction,
                "ef_search": self.ef_search, "nlist": self.nlist, "nprobe": self.nprobe,
                "train_size": self.train_size, "threads": self.threads, "built": self.built}

    def _save(self, folder: Path) -> None:
        if self._index is None:
            return
        faiss = _faiss()
        write_with(folder / "index.faiss", lambda tmp: faiss.write_index(self._index, str(tmp)))

    def _load(self, folder: Path, ntotal: int) -> None:
        if ntotal == 0:
            return
        index = _faiss().read_index(str(folder / "index.faiss"))
        if index.ntotal != ntotal or index.d != self.dim:
            raise ValueError(f"{folder}: index.faiss holds {index.ntotal} x {index.d}, "
                             f"expected {ntotal} x {self.dim}")
        if self.built == "ivf":
            index.make_direct_map()
        self._index = index
        self._tune()
