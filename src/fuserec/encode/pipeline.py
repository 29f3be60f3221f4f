"""Encode catalog records with caching, batching, progress and per-file error reporting.

Texts are keyed by :func:`~fuserec.encode.hashing.text_hash`, media files by
:func:`~fuserec.encode.hashing.file_hash`, so unchanged content is never encoded twice, even
under another path. Only cache misses are computed; each finished batch is written to the
cache at once, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fuserec.data import schema
from fuserec.encode.base import Encoder, Modality
from fuserec.encode.cache import EmbeddingCache
from fuserec.encode.hashing import file_hash, text_hash

MEDIA_COLUMN: dict[str, str] = {"image": schema.IMAGES, "audio": schema.AUDIO}


@dataclass
class EncodedView:
    """One modality of one table: a vector per record, zeros where the record has none."""

    ids: list[str]
    vectors: np.ndarray  # (n, dim) float32
    present: np.ndarray  # (n,) bool
    errors: list[tuple[str, str]] = field(default_factory=list)  # (record id, reason)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def n_present(self) -> int:
        return int(self.present.sum())


@contextmanager
def _progress(enabled: bool, desc: str, total: int):
    """A Rich progress bar over batches; yields ``advance(n=1)``."""
    if not enabled or total == 0:
        yield lambda n=1: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("batches"), TimeElapsedColumn(), TimeRemainingColumn(),
                  transient=False) as bar:
        task = bar.add_task(desc, total=total)
        yield lambda n=1: bar.advance(task, n)


def _compute_missing(inputs: Sequence[Any], keys: Sequence[str], encoder: Encoder,
                     cache: EmbeddingCache, batch_size: int, progress: bool, desc: str
                     ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Encode ``inputs`` (cache misses), storing each batch; returns vectors and errors by key."""
    done: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    total = math.ceil(len(inputs) / batch_size) if inputs else 0
    with _progress(progress, desc, total) as advance:
        for batch in encoder.encode_batches(inputs, batch_size):
            if batch.indices:
                batch_keys = [keys[i] for i in batch.indices]
                cache.put_many(encoder, batch_keys, batch.vectors)
                done.update(zip(batch_keys, batch.vectors, strict=True))
            for i, reason in batch.errors:
                failed[keys[i]] = reason
            advance(1)
    return done, failed


def encode_texts(texts: Sequence[str], encoder: Encoder, cache: EmbeddingCache | None = None,
                 batch_size: int = 64, progress: bool = True, desc: str = "Encoding texts"
                 ) -> np.ndarray:
    """Embed ``texts`` into ``(n, dim)`` float32, reusing and filling ``cache``."""
    cache = cache if cache is not None else EmbeddingCache(None)
    texts = [t if isinstance(t, str) else "" if t is None else str(t) for t in texts]
    keys = [text_hash(t) for t in texts]
    found = cache.get_many(encoder, list(dict.fromkeys(keys)))
    todo: dict[str, str] = {}
    for k, t in zip(keys, texts, strict=True):
        if k not in found and k not in todo:
            todo[k] = t
    if todo:
        done, failed = _compute_missing(list(todo.values()), list(todo), encoder, cache,
                                        batch_size, progress, desc)
        if failed:
            from fuserec.encode.base import EncodeError

            raise EncodeError(next(iter(failed.values())))
        found.update(done)
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    for row, k in enumerate(keys):
        out[row] = found[k]
    return out


def _hash_files(paths: Sequence[Path]) -> dict[Path, str | Exception]:
    def one(p: Path) -> str | Exception:
        try:
            return file_hash(p)
        except OSError as exc:
            return exc

    if len(paths) < 8:
        return {p: one(p) for p in paths}
    with ThreadPoolExecutor(4) as pool:
        return dict(zip(paths, pool.map(one, paths), strict=True))


def encode_records(frame: pd.DataFrame, root: Path, modality: Modality, encoder: Encoder,
                   cache: EmbeddingCache | None = None, batch_size: int | None = None,
                   progress: bool = True, text_columns: list[str] | None = None,
                   desc: str | None = None) -> EncodedView:
    """Encode one modality of a table of records (items or users).

    Text: the record's fields joined by :func:`fuserec.data.schema.record_text`; a record with
    no text is not present. Image/audio: every file in the record's list is encoded once
    (cached by content hash) and the record gets the mean of its files' vectors; records
    without a decodable file are not present and failures are listed in ``errors``.
    """
    if encoder.modality != modality:
        raise ValueError(f"encoder {encoder.name!r} encodes {encoder.modality}, not {modality}")
    cache = cache if cache is not None else EmbeddingCache(None)
    bs = batch_size or encoder.default_batch_size
    ids = [str(i) for i in frame[schema.ID].tolist()] if schema.ID in frame else \
        [str(i) for i in range(len(frame))]
    n = len(frame)
    vectors = np.zeros((n, encoder.dim), dtype=np.float32)
    present = np.zeros(n, dtype=bool)
    errors: list[tuple[str, str]] = []
    label = desc or f"{modality} ({encoder.name})"

    if modality == "text":
        cols = text_columns if text_columns is not None else schema.text_columns(frame)
        texts = [schema.record_text(row, cols) for _, row in frame.iterrows()] if cols \
            else [""] * n
        keys = [text_hash(t) for t in texts]
        wanted = {k: t for k, t in zip(keys, texts, strict=True) if t}
        found = cache.get_many(encoder, list(wanted))
        todo = {k: t for k, t in wanted.items() if k not in found}
        if todo:
            done, failed = _compute_missing(list(todo.values()), list(todo), encoder, cache,
                                            bs, progress, label)
            found.update(done)
        else:
            failed = {}
        for row, (k, t) in enumerate(zip(keys, texts, strict=True)):
            if t and k in found:
                vectors[row] = found[k]
                present[row] = True
            elif t and k in failed:
                errors.append((ids[row], failed[k]))
        return EncodedView(ids, vectors, present, errors)

    column = MEDIA_COLUMN[modality]
    root = Path(root)
    per_record = [schema.media_paths(v) for v in frame[column].tolist()] if column in frame \
        else [[] for _ in range(n)]
    unique = list(dict.fromkeys(root / p for paths in per_record for p in paths))
    hashes = _hash_files(unique)
    path_error: dict[Path, str] = {
        p: f"cannot read {p}: {type(h).__name__}: {h}" for p, h in hashes.items()
        if isinstance(h, Exception)}
    key_of = {p: h for p, h in hashes.items() if isinstance(h, str)}
    found = cache.get_many(encoder, list(dict.fromkeys(key_of.values())))
    todo: dict[str, Path] = {}
    for p, k in key_of.items():
        if k not in found and k not in todo:
            todo[k] = p
    if todo:
        done, failed = _compute_missing(list(todo.values()), list(todo), encoder, cache, bs,
                                        progress, label)
        found.update(done)
        for p, k in key_of.items():
            if k in failed:
                path_error[p] = failed[k]
    for row, paths in enumerate(per_record):
        good = []
        for rel in paths:
            p = root / rel
            if p in path_error:
                errors.append((ids[row], f"{rel}: {path_error[p]}"))
            elif key_of.get(p) in found:
                good.append(found[key_of[p]])
        if good:
            vectors[row] = np.mean(good, axis=0)
            present[row] = True
    return EncodedView(ids, vectors, present, errors)


def _has_content(frame: pd.DataFrame, modality: str) -> bool:
    if frame is None or len(frame) == 0:
        return False
    if modality == "text":
        cols = schema.text_columns(frame)
        return bool(cols) and any(schema.record_text(r, cols) for _, r in frame.iterrows())
    column = MEDIA_COLUMN[modality]
    return column in frame and any(schema.media_paths(v) for v in frame[column].tolist())


def encode_catalog(catalog: schema.Catalog, encoders: dict[str, Encoder],
                   cache: EmbeddingCache | None = None, progress: bool = True
                   ) -> dict[str, dict[str, EncodedView]]:
    """Encode items and users with ``encoders`` (by modality name).

    Returns ``{"items": {modality: view}, "users": {...}}``; a modality is left out for a
    table with no such column or no content in it. The catalog's precomputed vectors
    (``catalog.item_features`` / ``user_features``) follow the encoded views under their own
    names, sorted; they need no encoder and no cache.
    """
    cache = cache if cache is not None else EmbeddingCache(None)
    out: dict[str, dict[str, EncodedView]] = {}
    for table_name, frame, features in (("items", catalog.items, catalog.item_features),
                                        ("users", catalog.users, catalog.user_features)):
        views: dict[str, EncodedView] = {}
        for modality, encoder in encoders.items():
            if encoder is None or not _has_content(frame, modality):
                continue
            views[modality] = encode_records(
                frame, catalog.root, modality, encoder, cache, progress=progress,
                desc=f"{table_name} {modality} ({encoder.name})")
        ids = [str(i) for i in frame[schema.ID].tolist()] if schema.ID in frame else []
        for name in sorted(features or {}):
            if name in views:
                raise ValueError(f"precomputed {table_name} view {name!r} clashes with an "
                                 f"encoded modality of the same name")
            view = features[name]
            views[name] = EncodedView(ids, np.asarray(view.vectors, dtype=np.float32),
                                      np.asarray(view.present, dtype=bool))
        out[table_name] = views
    return out
