"""On-disk cache of generated texts keyed by content hash, producer name and producer version.

It mirrors :class:`fuserec.encode.EmbeddingCache`, with JSON payloads instead of vectors::

    root/<safe producer name>/<sha256(version)[:16]>/version.json
    root/<safe producer name>/<sha256(version)[:16]>/part-<time>-<rand>.parquet

Each shard is a Parquet table with ``key`` and ``value`` (a JSON document) string columns,
written atomically, one per :meth:`TextCache.put_many` call. Producers are describers (the key
is the media file's sha256) and LLM backends (the key is the sha256 of the prompt), so a
description or an LLM answer is never computed twice for the same content and model.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fuserec.encode.cache import safe_name, version_hash
from fuserec.io import write_json, write_with


class TextCache:
    """JSON values by ``(producer name, producer version, key)``; ``root=None`` is in memory."""

    def __init__(self, root: Path | str | None) -> None:
        self.root = None if root is None else Path(root)
        self._tables: dict[tuple[str, str], dict[str, Any]] = {}

    def directory(self, name: str, version: str) -> Path | None:
        if self.root is None:
            return None
        return self.root / safe_name(name) / version_hash(version)

    def _table(self, name: str, version: str) -> dict[str, Any]:
        table = self._tables.get((name, version))
        if table is None:
            table = {}
            d = self.directory(name, version)
            if d is not None and d.is_dir():
                for shard in sorted(d.glob("part-*.parquet")):
                    table.update(_read_shard(shard))
            self._tables[(name, version)] = table
        return table

    def get_many(self, name: str, version: str, keys: Sequence[str]) -> dict[str, Any]:
        """The cached values among ``keys`` (missing keys are absent)."""
        table = self._table(name, version)
        return {k: table[k] for k in keys if k in table}

    def put_many(self, name: str, version: str, values: Mapping[str, Any]) -> None:
        """Store JSON-serialisable ``values`` by key; on disk, one new shard per call."""
        if not values:
            return
        table = self._table(name, version)
        d = self.directory(name, version)
        if d is not None:
            if not (d / "version.json").exists():
                write_json(d / "version.json", {"producer": name, "version": version})
            keys = list(values)
            docs = [json.dumps(values[k], sort_keys=True) for k in keys]
            arrow = pa.table({"key": pa.array(keys, pa.string()),
                              "value": pa.array(docs, pa.string())})
            write_with(d / f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet",
                       lambda tmp: pq.write_table(arrow, tmp))
        table.update(values)

    def count(self, name: str, version: str) -> int:
        return len(self._table(name, version))


def _read_shard(path: Path) -> dict[str, Any]:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException):
        return {}  # unreadable shard: its entries are recomputed
    out: dict[str, Any] = {}
    for key, doc in zip(table.column("key").to_pylist(), table.column("value").to_pylist(),
                        strict=True):
        try:
            out[key] = json.loads(doc)
        except (TypeError, ValueError):
            continue
    return out
