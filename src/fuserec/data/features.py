"""Precomputed embeddings that come with a catalog ("bring your own" CLIP or audio vectors).

Two ways to ship them, for items and for users:

``features/<name>.npy`` (``features/users/<name>.npy`` for users)
    A 2-D numeric array with one row per record of the table's file, in file order (records
    that fail to parse or validate count too: their rows are dropped with them).
A column ``feature_<name>`` of the table itself
    A list of numbers per record (Parquet or JSONL lists; in CSV a string ``"v1,v2,..."``);
    an empty cell means the record has no vector.

Each becomes a view ``<name>`` of :attr:`Catalog.item_features` / ``user_features`` (a
:class:`~fuserec.data.views.View`: float32 vectors in the loaded table's row order and a
``present`` mask). A row with NaN or infinite values is marked not present and reported as a
validation issue naming the record, the feature and the reason; an all-zero row (or an empty
cell) simply means "no vector" and is not present either. A file that cannot be used at all
(wrong number of rows, not 2-D, no dimensions, not numeric, unreadable) is a
:class:`~fuserec.data.validate.CatalogError` naming the file.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fuserec.data.media import MediaError, resolve_media
from fuserec.data.schema import FEATURE_PREFIX, FEATURES_DIR, ID, Catalog
from fuserec.data.validate import DROPPED_FEATURE, CatalogError, Rejection
from fuserec.data.views import View

#: a feature's name: it becomes a view name (and an artifact key ``<table>.<name>``)
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
#: names taken by the encoded views and the fused one
RESERVED_NAMES = frozenset({"text", "image", "audio", "fused"})
#: where each table's feature files live, relative to the catalog root
FEATURE_FOLDERS = {"items": FEATURES_DIR, "users": f"{FEATURES_DIR}/users"}


def _check_name(name: str, where: str) -> None:
    if not NAME_PATTERN.match(name):
        raise CatalogError(f"{where}: feature name {name!r} is not valid; use a letter, then "
                           f"letters, digits, '_' or '-' (at most 64 characters)")
    if name in RESERVED_NAMES:
        raise CatalogError(f"{where}: feature name {name!r} is reserved for the encoded views "
                           f"({', '.join(sorted(RESERVED_NAMES))}); rename the file")


def read_feature_files(root: Path, table: str, table_path: Path | None,
                       n_records: int) -> dict[str, tuple[str, np.ndarray]]:
    """Open and check every ``<table folder>/<name>.npy``; returns ``{name: (relative path,
    array)}`` with arrays of shape ``(n_records, dim)`` (memory-mapped, not yet copied).

    Raises :class:`CatalogError` naming the file when one cannot be used, or when user
    features come without a users table to align them with (``table_path`` None).
    """
    root = Path(root)
    folder = root / FEATURE_FOLDERS[table]
    if not folder.is_dir():
        return {}
    out: dict[str, tuple[str, np.ndarray]] = {}
    for path in sorted(folder.glob("*.npy")):
        rel = path.relative_to(root).as_posix()
        _check_name(path.stem, str(path))
        if table_path is None:
            raise CatalogError(f"{path}: {table} features need a {table} table to align with "
                               f"(one row per record of {table}.csv|jsonl|parquet), and this "
                               f"catalog has none")
        try:
            resolve_media(root, rel)
        except MediaError as exc:
            raise CatalogError(f"{path}: cannot use this feature file ({exc})") from None
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise CatalogError(f"{path}: not a readable .npy array ({exc})") from None
        if not isinstance(array, np.ndarray):
            raise CatalogError(f"{path}: expected one array, found {type(array).__name__}")
        kind = array.dtype
        if not (np.issubdtype(kind, np.integer) or np.issubdtype(kind, np.floating)):
            raise CatalogError(f"{path}: feature values must be numbers (integer or float), "
                               f"the array holds {kind}")
        if array.ndim != 2:
            raise CatalogError(f"{path}: expected a 2-D array (one row per {table[:-1]} "
                               f"record, one column per dimension), got shape "
                               f"{tuple(array.shape)}")
        if array.shape[1] < 1:
            raise CatalogError(f"{path}: the vectors have no dimensions (shape "
                               f"{tuple(array.shape)})")
        if array.shape[0] != n_records:
            raise CatalogError(f"{path}: {array.shape[0]} rows, but {table_path} has "
                               f"{n_records} {table[:-1]} records; a feature file needs exactly "
                               f"one row per record, in file order")
        out[path.stem] = (rel, array)
    return out


def _finish(name: str, source: str, table: str, ids: Sequence[str], vectors: np.ndarray,
            problems: dict[int, str]) -> tuple[View, list[Rejection]]:
    """float32 vectors + present mask; NaN/inf rows become issues and are not present."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(vectors, dtype=np.float32)
    finite = np.isfinite(out).all(axis=1) if out.size else np.ones(len(out), bool)
    for row in np.flatnonzero(~finite):
        problems.setdefault(int(row), "has NaN or infinite values")
    issues = []
    bad = np.zeros(len(out), bool)
    for row, why in sorted(problems.items()):
        bad[row] = True
        issues.append(Rejection(
            table, str(ids[row]),
            f"precomputed feature '{name}' {why}; this record's '{name}' view is marked not "
            f"present", field=name, path=source, action=DROPPED_FEATURE))
    out[bad] = 0.0
    present = ~bad & np.any(out != 0, axis=1)
    return View(np.ascontiguousarray(out), present), issues


def _cell_vector(value: Any) -> np.ndarray | str | None:
    """A cell of a ``feature_`` column as a 1-D float64 array, None (no vector) or a reason."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str):
        text = value.strip().strip("[]").strip()
        if not text:
            return None
        parts = [p for p in re.split(r"[,\s]+", text) if p]
    elif isinstance(value, (list, tuple, np.ndarray)):
        parts = list(value)
    else:
        return f"is not a list of numbers ({type(value).__name__})"
    if not parts:
        return None
    try:
        vec = np.array([np.nan if p is None else p for p in parts], dtype=np.float64)
    except (TypeError, ValueError):
        return "holds values that are not numbers"
    if vec.ndim != 1:
        return f"is not a flat list of numbers (shape {vec.shape})"
    return vec


def column_feature(frame: pd.DataFrame, column: str, table: str,
                   table_path: Path) -> tuple[View, list[Rejection]]:
    """The view held by the list column ``column`` of the (validated) ``frame``."""
    name = column[len(FEATURE_PREFIX):]
    where = f"{table_path} column {column!r}"
    _check_name(name, where)
    cells = [_cell_vector(v) for v in frame[column].tolist()]
    lengths = Counter(len(c) for c in cells if isinstance(c, np.ndarray))
    if not lengths:
        raise CatalogError(f"{where}: no record has a vector (expected a list of numbers per "
                           f"record)")
    dim = lengths.most_common(1)[0][0]
    vectors = np.zeros((len(cells), dim), np.float64)
    problems: dict[int, str] = {}
    for row, cell in enumerate(cells):
        if isinstance(cell, str):
            problems[row] = cell
        elif cell is not None and len(cell) != dim:
            problems[row] = f"has {len(cell)} values where the column's vectors have {dim}"
        elif cell is not None:
            vectors[row] = cell
    return _finish(name, column, table, frame[ID].tolist(), vectors, problems)


def file_feature(name: str, source: str, array: np.ndarray, table: str,
                 parsed_ids: Sequence[str], order: Sequence[int],
                 ids: Sequence[str]) -> tuple[View, list[Rejection]]:
    """Rows of ``array`` (one per record of the file) for the records that survived.

    ``parsed_ids`` / ``order`` are the parsed rows' ids and positions among the file's records;
    ``ids`` the validated table's ids. A surviving record is the first parsed row with its id.
    """
    first: dict[str, int] = {}
    for pos, rid in enumerate(parsed_ids):
        first.setdefault(str(rid), pos)
    missing = [rid for rid in ids if str(rid) not in first]
    if missing:  # e.g. users implied by the interactions: no file rows to take them from
        raise CatalogError(f"{source}: {table} record {missing[0]!r} has no row in this file "
                           f"(it does not come from the {table} table)")
    rows = np.fromiter((order[first[str(rid)]] for rid in ids), dtype=np.int64, count=len(ids))
    return _finish(name, source, table, ids, np.asarray(array[rows]), {})


def attach_features(catalog: Catalog, table: str, table_path: Path | None,
                    files: dict[str, tuple[str, np.ndarray]],
                    parsed: pd.DataFrame | None, order: Sequence[int]) -> list[Rejection]:
    """Set ``catalog.<table[:-1]>_features`` from the feature files and ``feature_`` columns of
    the validated table (and drop those columns from it); returns the issues found."""
    frame = catalog.items if table == "items" else catalog.users
    views: dict[str, View] = {}
    issues: list[Rejection] = []
    ids = frame[ID].astype(str).tolist()
    for name, (source, array) in files.items():
        assert parsed is not None
        views[name], found = file_feature(name, source, array, table,
                                          parsed[ID].astype(str).tolist(), order, ids)
        issues += found
    columns = [c for c in frame.columns if str(c).startswith(FEATURE_PREFIX)]
    for column in columns:
        name = column[len(FEATURE_PREFIX):]
        if name in views:
            raise CatalogError(f"{table_path}: feature {name!r} is given twice, as column "
                               f"{column!r} and as {files[name][0]}")
        assert table_path is not None
        views[name], found = column_feature(frame, column, table, table_path)
        issues += found
    if columns:
        frame = frame.drop(columns=columns)
        if table == "items":
            catalog.items = frame
        else:
            catalog.users = frame
    if table == "items":
        catalog.item_features = views
    else:
        catalog.user_features = views
    return issues


__all__ = ["FEATURE_FOLDERS", "NAME_PATTERN", "RESERVED_NAMES", "attach_features",
           "column_feature", "file_feature", "read_feature_files"]
