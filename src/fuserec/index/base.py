"""The index extension point: top-k inner-product retrieval over item vectors, with filters.

An index holds vectors at *positions* ``0 .. ntotal-1`` (the item columns of the model, in the
order they were added) and answers ``search(queries, k)`` with positions and inner-product
scores, best first. Fused vectors are direct sums of L2-normalised blocks, so inner product is
the model's cosine score.

Filters are handled here, once, for every backend:

* ``exclude``: positions a query must never return (the user's seen items), and
* ``allow``: a boolean mask over positions (attribute filters such as ``attr_year >= 2000``).

Approximate backends over-fetch and filter, growing the fetch until ``k`` results survive; when
the allowed set is small the search runs exactly over just those vectors instead, so a tight
filter never starves the result.

Persistence uses safe formats only (JSON config plus ``.npy`` or the backend's own binary index
format), each file written atomically; nothing is pickled.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fuserec.io import write_json
from fuserec.ranking import top_k
from fuserec.registry import Registry

CONFIG_FILE = "index.json"
#: Filtered searches run exactly over the allowed vectors when at most this many are allowed.
EXACT_SUBSET_MAX = 4096

Exclude = np.ndarray | Sequence[Sequence[int] | np.ndarray] | None


class VectorIndex(ABC):
    """Top-k maximum-inner-product search over vectors addressed by position.

    Subclasses implement ``_add``, ``_search``, ``reconstruct``, ``_save``/``_load`` and
    ``config``; filtering, padding and persistence of the config live here.
    """

    name: str
    #: True when ``_search`` returns the exact top-k (used by tests and benchmarks).
    exact: bool = False

    def __init__(self, dim: int) -> None:
        if dim <= 0:
            raise ValueError(f"index dimension must be positive, got {dim}")
        self.dim = int(dim)
        self._ntotal = 0

    # -- backend hooks -------------------------------------------------------------------
    @abstractmethod
    def _add(self, vectors: np.ndarray) -> None:
        """Append ``vectors`` (float32, C-contiguous, (n, dim)) at the next positions."""

    @abstractmethod
    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Unfiltered top-``k`` (1 <= k <= ntotal): positions (-1 padded) and scores."""

    @abstractmethod
    def reconstruct(self, positions: np.ndarray) -> np.ndarray:
        """The stored vectors at ``positions`` as a float32 (len, dim) array."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments (``type(self)(dim, **config)`` rebuilds it empty)."""

    @abstractmethod
    def _save(self, folder: Path) -> None:
        """Write the backend's data files into ``folder`` atomically."""

    @abstractmethod
    def _load(self, folder: Path, ntotal: int) -> None:
        """Read what :meth:`_save` wrote."""

    # -- public API ----------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        """Number of vectors in the index."""
        return self._ntotal

    def __len__(self) -> int:
        return self._ntotal

    def add(self, vectors: np.ndarray) -> np.ndarray:
        """Append vectors; returns the positions they were given."""
        vectors = _as_matrix(vectors, self.dim, "vectors")
        if len(vectors) == 0:
            return np.empty(0, np.int64)
        start = self._ntotal
        self._add(vectors)
        self._ntotal += len(vectors)
        return np.arange(start, self._ntotal, dtype=np.int64)

    def search(self, queries: np.ndarray, k: int, exclude: Exclude = None,
               allow: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` positions and scores per query, best first, after filtering.

        ``exclude`` is one array of positions shared by every query, or one per query;
        ``allow`` is a boolean mask of length ``ntotal``. Rows with fewer than ``k`` surviving
        items are padded with position -1 and score -inf.
        """
        queries = _as_matrix(queries, self.dim, "queries")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        nq, n = len(queries), self._ntotal
        excl = _per_query(exclude, nq)
        if allow is not None:
            allow = np.asarray(allow, dtype=bool)
            if allow.shape != (n,):
                raise ValueError(f"allow mask has shape {allow.shape}, expected ({n},)")
        if n == 0:
            return _empty(nq, k)
        if allow is None and not any(len(e) for e in excl):
            pos, scores = self._search(queries, min(k, n))
            return _pad(pos, scores, k)
        return self._search_filtered(queries, k, excl, allow)

    def save(self, folder: str | Path) -> Path:
        """Write the index into ``folder`` (``index.json`` plus the backend's files)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._save(folder)
        write_json(folder / CONFIG_FILE, {"kind": self.name, "dim": self.dim,
                                          "ntotal": self._ntotal, "config": self.config()})
        return folder

    # -- filtering strategies ------------------------------------------------------------
    def _search_filtered(self, queries: np.ndarray, k: int, excl: list[np.ndarray],
                         allow: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Pick a strategy: exact over a small allowed subset, else over-fetch and filter."""
        n_allowed = int(allow.sum()) if allow is not None else self._ntotal
        if n_allowed == 0:
            return _empty(len(queries), k)
        if allow is not None and n_allowed <= EXACT_SUBSET_MAX:
            return self._search_subset(queries, k, excl, np.flatnonzero(allow))
        return self._search_overfetch(queries, k, excl, allow, n_allowed)

    def _search_subset(self, queries: np.ndarray, k: int, excl: list[np.ndarray],
                       allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vecs = self.reconstruct(allowed)
        scores = queries @ vecs.T
        for row, e in enumerate(excl):
            if len(e):
                scores[row, np.isin(allowed, e)] = -np.inf
        top, vals = top_k(scores, min(k, len(allowed)))
        pos = np.where(top >= 0, allowed[np.maximum(top, 0)], -1)
        return _pad(pos, vals, k)

    def _search_overfetch(self, queries: np.ndarray, k: int, excl: list[np.ndarray],
                          allow: np.ndarray | None, n_allowed: int
                          ) -> tuple[np.ndarray, np.ndarray]:
        n = self._ntotal
        out_pos = np.full((len(queries), k), -1, np.int64)
        out_val = np.full((len(queries), k), -np.inf, np.float32)
        todo = np.arange(len(queries))
        max_excl = max(len(e) for e in excl)
        fetch = math.ceil((k + max_excl) * n / n_allowed * 1.25) + 8
        while len(todo):
            fetch = min(fetch, n)
            pos, vals = self._search(queries[todo], fetch)
            still = []
            for row, q in enumerate(todo):
                p, v = pos[row], vals[row]
                keep = p >= 0
                if allow is not None:
                    keep &= allow[np.maximum(p, 0)]
                if len(excl[q]):
                    keep &= ~np.isin(p, excl[q])
                p, v = p[keep][:k], v[keep][:k]
                out_pos[q, : len(p)], out_val[q, : len(p)] = p, v
                if len(p) < k and fetch < n:
                    still.append(q)
            todo = np.asarray(still, dtype=np.int64)
            fetch *= 4
        return out_pos, out_val


def _as_matrix(x: np.ndarray, dim: int, what: str) -> np.ndarray:
    x = np.ascontiguousarray(np.atleast_2d(np.asarray(x, dtype=np.float32)))
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{what} must have shape (n, {dim}), got {x.shape}")
    return x


def _per_query(exclude: Exclude, nq: int) -> list[np.ndarray]:
    if exclude is None:
        return [np.empty(0, np.int64)] * nq
    if isinstance(exclude, np.ndarray) and exclude.dtype != object and exclude.ndim <= 1:
        shared = exclude.astype(np.int64).ravel()
        return [shared] * nq
    rows = [np.asarray(e, dtype=np.int64).ravel() for e in exclude]
    if len(rows) != nq:
        raise ValueError(f"exclude has {len(rows)} rows for {nq} queries")
    return rows


def _pad(pos: np.ndarray, vals: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    pos = np.asarray(pos, np.int64)
    vals = np.asarray(vals, np.float32).copy()
    vals[pos < 0] = -np.inf
    if pos.shape[1] < k:
        extra = k - pos.shape[1]
        pos = np.pad(pos, ((0, 0), (0, extra)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, extra)), constant_values=-np.inf)
    return pos, vals


def _empty(nq: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((nq, k), -1, np.int64), np.full((nq, k), -np.inf, np.float32)


class _IndexRegistry(Registry[VectorIndex]):
    def get(self, name: str) -> type[VectorIndex]:
        if name not in self:
            raise KeyError(f"unknown index {name!r}; known: {', '.join(self.names())}")
        return self._factories[name]  # type: ignore[return-value]


INDEXES = _IndexRegistry("index")
#: The index ``build_index`` uses when none is named.
DEFAULT_INDEX = "faiss"


def build_index(vectors: np.ndarray, kind: str = DEFAULT_INDEX, **config: Any) -> VectorIndex:
    """An index of registered ``kind`` holding ``vectors`` at positions 0..n-1."""
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    index = INDEXES.get(kind)(vectors.shape[1], **config)
    index.add(vectors)
    return index


def load_index(folder: str | Path) -> VectorIndex:
    """Load an index written by :meth:`VectorIndex.save` (no pickle involved)."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{folder} holds no index ({CONFIG_FILE} is missing)")
    meta = json.loads(path.read_text())
    index = INDEXES.get(meta["kind"])(int(meta["dim"]), **meta.get("config", {}))
    index._load(folder, int(meta["ntotal"]))
    index._ntotal = int(meta["ntotal"])
    return index
