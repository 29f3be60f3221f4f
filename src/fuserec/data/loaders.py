"""Table loaders (CSV, JSONL/NDJSON, Parquet) and :func:`load_catalog`.

Parsing problems are per record: a row with the wrong number of fields, a line that is not
valid UTF-8 or not valid JSON becomes a :class:`~fuserec.data.validate.Rejection`; the other
rows load normally.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from fuserec.data.features import attach_features, read_feature_files
from fuserec.data.schema import ID, ITEM_ID, USER_ID, Catalog
from fuserec.data.validate import (
    SOURCE_ATTR,
    TABLES,
    CatalogError,
    Rejection,
    ValidationLimits,
    ValidationReport,
    clean_id,
    normalize_table,
    validate_catalog,
)

CSV_EXTENSIONS = (".csv",)
JSONL_EXTENSIONS = (".jsonl", ".ndjson")
PARQUET_EXTENSIONS = (".parquet", ".pq")
_DEFAULT_EXTENSIONS = (".csv", ".jsonl", ".parquet")

_SURROGATE = re.compile("[\ud800-\udfff]")
_CSV_FIELD_LIMIT = 2**31 - 1
#: ``DataFrame.attrs`` keys set by :func:`read_table`: each parsed row's position among all the
#: file's records (rows that failed to parse count too), and the number of records in the file
RECORD_ORDER_ATTR = "record_order"
RECORD_COUNT_ATTR = "record_count"

#: what a reader returns: rows, their source labels, columns, parse problems, record positions
_Parsed = tuple[list[dict[str, Any]], list[str], list[str], list[Rejection], list[int]]


def _record_label(row: dict[str, Any], table: str, fallback: str) -> str:
    """The record's id if it has a clean one, else the fallback (``line N``)."""
    if table == "interactions":
        return fallback
    rid = clean_id(row.get(ID))
    if rid and not _SURROGATE.search(rid):
        return rid
    return fallback


def _bad_field(row: dict[str, Any]) -> str | None:
    """Name of the first field holding text that was not valid UTF-8, if any."""
    for col, value in row.items():
        if isinstance(value, str) and _SURROGATE.search(value):
            return str(col)
        if isinstance(value, list) and any(
            isinstance(v, str) and _SURROGATE.search(v) for v in value
        ):
            return str(col)
    return None


def _read_csv(path: Path, table: str) -> _Parsed:
    rows: list[dict[str, Any]] = []
    labels: list[str] = []
    order: list[int] = []
    issues: list[Rejection] = []
    old_limit = csv.field_size_limit()
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
            reader = csv.reader(fh)
            try:
                header = next(reader)
            except StopIteration:
                return [], [], [], [], []
            columns = [
                h.encode("utf-8", "surrogateescape").decode("utf-8", "replace").strip()
                for h in header
            ]
            last_line = reader.line_num
            while True:
                start = last_line + 1
                try:
                    fields = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    issues.append(Rejection(table, f"line {start}", f"malformed CSV row ({exc})"))
                    last_line = reader.line_num
                    continue
                last_line = reader.line_num
                label = f"line {start}"
                if not fields:
                    continue  # blank line
                if len(fields) != len(columns):
                    issues.append(Rejection(
                        table, label,
                        f"malformed CSV row: {len(fields)} fields, header has {len(columns)}",
                    ))
                    continue
                row = dict(zip(columns, fields, strict=True))
                bad = _bad_field(row)
                if bad is not None:
                    issues.append(Rejection(
                        table, _record_label(row, table, label),
                        f"not valid UTF-8 in field '{bad}'", field=bad,
                    ))
                    continue
                order.append(len(rows) + len(issues))
                rows.append(row)
                labels.append(label)
    finally:
        csv.field_size_limit(old_limit)
    return rows, labels, columns, issues, order


def _read_jsonl(path: Path, table: str) -> _Parsed:
    rows: list[dict[str, Any]] = []
    labels: list[str] = []
    order: list[int] = []
    issues: list[Rejection] = []
    columns: dict[str, None] = {}
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            label = f"line {n}"
            if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                issues.append(Rejection(
                    table, label, f"line is not valid UTF-8 (byte {exc.start}: {exc.reason})"
                ))
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                issues.append(Rejection(table, label, f"malformed JSON ({exc.msg}, column "
                                                      f"{exc.colno})"))
                continue
            except RecursionError:
                issues.append(Rejection(table, label, "malformed JSON (nested too deeply)"))
                continue
            if not isinstance(obj, dict):
                issues.append(Rejection(
                    table, label, f"expected a JSON object, got {type(obj).__name__}"
                ))
                continue
            bad = _bad_field(obj)
            if bad is not None:
                issues.append(Rejection(
                    table, _record_label(obj, table, label),
                    f"not valid UTF-8 in field '{bad}' (lone surrogate)", field=bad,
                ))
                continue
            for key in obj:
                columns.setdefault(str(key), None)
            order.append(len(rows) + len(issues))
            rows.append({str(k): v for k, v in obj.items()})
            labels.append(label)
    return rows, labels, list(columns), issues, order


def _read_parquet(path: Path, table: str) -> _Parsed:
    import pyarrow.parquet as pq

    try:
        data = pq.read_table(path)
    except Exception as exc:
        raise CatalogError(f"{path}: cannot read Parquet file ({exc})") from exc
    columns = [str(c) for c in data.column_names]
    rows: list[dict[str, Any]] = []
    labels: list[str] = []
    issues: list[Rejection] = []
    order: list[int] = []
    for n, row in enumerate(data.to_pylist(), start=1):
        label = f"row {n}"
        decoded: dict[str, Any] = {}
        bad = None
        for key, value in row.items():
            if isinstance(value, bytes):
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError:
                    bad = bad or str(key)
            decoded[str(key)] = value
        bad = bad or _bad_field(decoded)
        if bad is not None:
            issues.append(Rejection(
                table, _record_label(decoded, table, label),
                f"not valid UTF-8 in field '{bad}'", field=bad,
            ))
            continue
        order.append(len(rows) + len(issues))
        rows.append(decoded)
        labels.append(label)
    return rows, labels, columns, issues, order


def read_table(path: Path, table: str) -> tuple[pd.DataFrame, list[Rejection]]:
    """Read one table (by extension: .csv, .jsonl/.ndjson, .parquet) and normalise it.

    Returns the frame and the per-record parse problems. Raises :class:`CatalogError` (a
    ``ValueError``) naming the file when a required column (``id``; ``user_id``/``item_id`` for
    interactions) is missing or the format is not supported, ``FileNotFoundError`` when the
    file does not exist.
    """
    path = Path(path)
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}")
    if not path.is_file():
        raise FileNotFoundError(f"{table} table not found: {path}")
    ext = path.suffix.lower()
    if ext in CSV_EXTENSIONS:
        rows, labels, columns, issues, order = _read_csv(path, table)
    elif ext in JSONL_EXTENSIONS:
        rows, labels, columns, issues, order = _read_jsonl(path, table)
    elif ext in PARQUET_EXTENSIONS:
        rows, labels, columns, issues, order = _read_parquet(path, table)
    else:
        raise CatalogError(
            f"{path}: unsupported table format {ext or '(no extension)'!r}; "
            "use .csv, .jsonl, .ndjson or .parquet"
        )
    required = (USER_ID, ITEM_ID) if table == "interactions" else (ID,)
    missing = [c for c in required if c not in columns]
    if missing and (rows or columns):
        names = ", ".join(repr(c) for c in missing)
        raise CatalogError(f"{path}: {table} table has no {names} column (columns: "
                           f"{columns})")
    if not columns:
        columns = list(required)
    frame = pd.DataFrame(
        {c: pd.Series([r.get(c) for r in rows], dtype=object) for c in columns},
        index=pd.RangeIndex(len(rows)),
    )
    frame.attrs[SOURCE_ATTR] = labels
    out = normalize_table(frame, table)
    out.attrs[RECORD_ORDER_ATTR] = order
    out.attrs[RECORD_COUNT_ATTR] = len(rows) + len(issues)
    return out, issues


def _pick(root: Path, given: str | None, stem: str) -> Path | None:
    if given is not None:
        return root / given
    for ext in _DEFAULT_EXTENSIONS:
        candidate = root / f"{stem}{ext}"
        if candidate.is_file():
            return candidate
    return None


def load_catalog(
    root: Path,
    items: str = "items.csv",
    users: str | None = None,
    interactions: str | None = None,
    limits: ValidationLimits | None = None,
    progress: bool = True,
) -> tuple[Catalog, ValidationReport]:
    """Load and validate a catalog rooted at ``root``.

    ``users``/``interactions`` default to the first existing ``users.{csv,jsonl,parquet}`` /
    ``interactions.{csv,jsonl,parquet}``; when absent the table is empty (users are then implied
    by the interactions). Returns the validated catalog and the full report (parse problems
    first, then validation issues).

    Precomputed vectors (``features/<name>.npy``, ``features/users/<name>.npy`` or
    ``feature_<name>`` list columns) become ``catalog.item_features`` / ``user_features``, rows
    realigned to the records that passed validation (:mod:`fuserec.data.features`); a NaN or
    infinite row is reported (``action="dropped_feature"``) and marked not present.

    Raises :class:`CatalogError` naming the items file when the catalog cannot be used: a table
    without its id column, an items file with no records, or no item that passed validation;
    naming the feature file when it has the wrong number of rows or is not a numeric 2-D array.
    """
    root = Path(root)
    parse_issues: list[Rejection] = []
    items_path = root / items
    items_frame, issues = read_table(items_path, "items")
    if len(items_frame) == 0 and not issues:
        raise CatalogError(f"{items_path}: the items table has no records; a catalog needs at "
                           f"least one item (a header line with an 'id' column, then one line "
                           f"per item)")
    parse_issues += issues
    frames: dict[str, pd.DataFrame] = {}
    paths: dict[str, Path] = {"items": items_path}
    for table, given in (("users", users), ("interactions", interactions)):
        path = _pick(root, given, table)
        if path is None:
            continue
        frames[table], issues = read_table(path, table)
        paths[table] = path
        parse_issues += issues
    parsed = {"items": items_frame, "users": frames.get("users")}
    # precomputed vectors: checked against the files' record counts before the slow media checks
    feature_files = {
        table: read_feature_files(
            root, table, paths.get(table),
            frame.attrs.get(RECORD_COUNT_ATTR, len(frame)) if frame is not None else 0)
        for table, frame in parsed.items()
    }
    catalog = Catalog(root=root, items=items_frame, **frames)
    validated, report = validate_catalog(catalog, limits=limits, progress=progress)
    full = ValidationReport(ok=dict(report.ok), issues=parse_issues + report.issues)
    if len(validated.items) == 0:
        rejected = full.rejected("items")
        first = f"; first: {rejected[0].record}: {rejected[0].reason}" if rejected else ""
        raise CatalogError(f"{items_path}: no valid items, all {len(rejected)} item records "
                           f"were rejected{first}", report=full)
    for table, frame in parsed.items():
        order = frame.attrs.get(RECORD_ORDER_ATTR, range(len(frame))) if frame is not None else []
        full.issues += attach_features(validated, table, paths.get(table), feature_files[table],
                                       frame, order)
    return validated, full
