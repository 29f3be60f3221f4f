"""On-disk embedding cache keyed by content hash, encoder name and encoder version.

Layout::

    root/<safe encoder name>/<sha256(version)[:16]>/version.json
    root/<safe encoder name>/<sha256(version)[:16]>/part-<time>-<rand>.parquet

Each shard is a Parquet table with a ``key`` string column and a ``vector`` column of
fixed-size float32 lists. Shards are written atomically (temp file + rename), one per
:meth:`EmbeddingCache.put_many` call, so an interrupted run keeps every finished batch.
Shards are read lazily, on the first lookup for an encoder version; :meth:`compact` merges
them into one. Entries of different encoder versions never mix.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fuserec.encode.base import Encoder
from fuserec.io import write_json, write_with

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A file-system-safe folder name for an encoder name."""
    return _SAFE.sub("_", name).strip("._") or "encoder"


def version_hash(version: str) -> str:
    return hashlib.sha256(version.encode("utf-8")).hexdigest()[:16]


class _Table:
    """The loaded entries of one encoder version: key -> row of a float32 matrix."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.index: dict[str, tuple[int, int]] = {}  # key -> (block, row)
        self.blocks: list[np.ndarray] = []

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        b = len(self.blocks)
        self.blocks.append(vectors)
        for row, key in enumerate(keys):
            self.index[key] = (b, row)

    def get(self, key: str) -> np.ndarray | None:
        loc = self.index.get(key)
        return None if loc is None else self.blocks[loc[0]][loc[1]]

    def matrix(self) -> tuple[list[str], np.ndarray]:
        keys = list(self.index)
        if not keys:
            return keys, np.zeros((0, self.dim), np.float32)
        return keys, np.stack([self.blocks[b][r] for b, r in self.index.values()])


class EmbeddingCache:
    """Embeddings by ``(encoder name, encoder version, content key)``.

    ``root=None`` keeps everything in memory (nothing is written).
    """

    def __init__(self, root: Path | str | None) -> None:
        self.root = None if root is None else Path(root)
        self._tables: dict[tuple[str, str], _Table] = {}

    # -- paths -------------------------------------------------------------------------
    def directory(self, encoder: Encoder) -> Path | None:
        """Folder holding ``encoder``'s shards (None for an in-memory cache)."""
        if self.root is None:
            return None
        return self.root / safe_name(encoder.name) / version_hash(encoder.version)

    def shards(self, encoder: Encoder) -> list[Path]:
        d = self.directory(encoder)
        return sorted(d.glob("part-*.parquet")) if d is not None and d.is_dir() else []

    # -- lookups -----------------------------------------------------------------------
    def _table(self, encoder: Encoder) -> _Table:
        key = (encoder.name, encoder.version)
        table = self._tables.get(key)
        if table is None:
            table = _Table(encoder.dim)
            for shard in self.shards(encoder):
                loaded = _read_shard(shard, encoder.dim)
                if loaded is not None:
                    table.add(*loaded)
            self._tables[key] = table
        return table

    def get_many(self, encoder: Encoder, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``keys`` (missing keys are simply absent)."""
        table = self._table(encoder)
        found: dict[str, np.ndarray] = {}
        for key in keys:
            vec = table.get(key)
            if vec is not None:
                found[key] = vec
        return found

    def __len__(self) -> int:
        return sum(len(t.index) for t in self._tables.values())

    def count(self, encoder: Encoder) -> int:
        """Number of vectors stored for ``encoder``'s current version."""
        return len(self._table(encoder).index)

    # -- writes ------------------------------------------------------------------------
    def put_many(self, encoder: Encoder, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Store ``vectors[i]`` under ``keys[i]``; on disk, one new shard per call."""
        keys = [str(k) for k in keys]
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(keys), encoder.dim):
            raise ValueError(f"vectors shape {vectors.shape} != {(len(keys), encoder.dim)}")
        if not keys:
            return
        table = self._table(encoder)
        d = self.directory(encoder)
        if d is not None:
            if not (d / "version.json").exists():
                write_json(d / "version.json", {"encoder": encoder.name,
                                                "version": encoder.version,
                                                "dim": encoder.dim})
            _write_shard(d / f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet",
                         keys, vectors)
        table.add(keys, vectors.copy())

    def compact(self, encoder: Encoder | None = None) -> int:
        """Merge each version folder's shards into one (all versions when ``encoder`` is None).

        Returns the number of shard files removed. Later duplicates of a key win.
        """
        if self.root is None or not self.root.is_dir():
            return 0
        dirs = ([self.directory(encoder)] if encoder is not None
                else [p.parent for p in self.root.glob("*/*/version.json")])
        removed = 0
        for d in dirs:
            if d is None or not d.is_dir():
                continue
            shards = sorted(d.glob("part-*.parquet"))
            if len(shards) <= 1:
                continue
            keys: dict[str, np.ndarray] = {}
            dim = None
            for shard in shards:
                loaded = _read_shard(shard, None)
                if loaded is None:
                    continue
                ks, vs = loaded
                dim = vs.shape[1]
                keys.update(zip(ks, vs, strict=True))
            if dim is None:
                continue
            merged = np.stack(list(keys.values())) if keys else np.zeros((0, dim), np.float32)
            _write_shard(d / f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet",
                         list(keys), merged)
            for shard in shards:
                shard.unlink(missing_ok=True)
                removed += 1
        return removed


def _write_shard(path: Path, keys: list[str], vectors: np.ndarray) -> None:
    dim = vectors.shape[1]
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    table = pa.table({"key": pa.array(keys, type=pa.string()),
                      "vector": pa.FixedSizeListArray.from_arrays(flat, dim)})
    write_with(path, lambda tmp: pq.write_table(table, tmp))


def _read_shard(path: Path, dim: int | None) -> tuple[list[str], np.ndarray] | None:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException):
        return None  # unreadable shard: ignore it, the entries will be recomputed
    col = table.column("vector").combine_chunks()
    width = col.type.list_size
    if dim is not None and width != dim:
        return None
    vectors = col.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return table.column("key").to_pylist(), vectors.reshape(-1, width)
