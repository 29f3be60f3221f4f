"""Record validation for a :class:`~fuserec.data.schema.Catalog` and the report it produces.

:func:`validate_catalog` normalises the three tables, drops bad records (each becomes a
:class:`Rejection` with ``action="rejected"``) and drops bad media paths from otherwise good
records (``action="dropped_media"``). One bad record or file never aborts the run.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from fuserec import io
from fuserec.data.media import MediaError, check_audio, check_image, resolve_media
from fuserec.data.schema import (
    AUDIO,
    ID,
    IMAGES,
    ITEM_ID,
    MEDIA_COLUMNS,
    TIMESTAMP,
    USER_ID,
    WEIGHT,
    Catalog,
    attribute_columns,
    media_paths,
    text_columns,
)

if TYPE_CHECKING:
    from rich.console import Console

TABLES = ("items", "users", "interactions")
REJECTED = "rejected"
DROPPED_MEDIA = "dropped_media"
#: a precomputed feature row (NaN/inf) was dropped: that view is not present for the record
DROPPED_FEATURE = "dropped_feature"
#: ``DataFrame.attrs`` key under which loaders store one source label per row ("line 7").
SOURCE_ATTR = "source_records"

_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_PRINT_ROWS = 50


class CatalogError(ValueError):
    """This catalog cannot be used at all (a table without its id column, an unreadable or
    unsupported table file, no valid items); the one-line message names the file.

    ``report`` holds the validation report when validation ran (e.g. every item rejected).
    """

    def __init__(self, message: str, report: ValidationReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ValidationLimits:
    """Limits applied to records and media files."""

    max_text_chars: int = 20_000
    max_media_per_record: int = 16
    max_file_bytes: int = 50 * 2**20
    max_image_pixels: int = 50_000_000
    max_audio_seconds: float = 900.0
    max_attribute_chars: int = 2_000


@dataclass
class Rejection:
    """One problem found: a dropped record (``rejected``) or a dropped media path."""

    table: str
    record: str
    reason: str
    field: str | None = None
    path: str | None = None
    action: str = REJECTED


@dataclass
class ValidationReport:
    """Records kept per table and every issue found while loading and validating."""

    ok: dict[str, int] = field(default_factory=dict)
    issues: list[Rejection] = field(default_factory=list)

    @property
    def n_ok(self) -> int:
        return sum(self.ok.values())

    @property
    def n_rejected(self) -> int:
        return sum(1 for r in self.issues if r.action == REJECTED)

    @property
    def n_dropped_media(self) -> int:
        return sum(1 for r in self.issues if r.action == DROPPED_MEDIA)

    def rejected(self, table: str | None = None) -> list[Rejection]:
        """Rejections that dropped a whole record, optionally for one table."""
        return [
            r for r in self.issues
            if r.action == REJECTED and (table is None or r.table == table)
        ]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready summary: totals, per-table counts and every issue."""
        tables = list(dict.fromkeys([*TABLES, *self.ok, *(r.table for r in self.issues)]))
        per_table = {
            t: {
                "ok": self.ok.get(t, 0),
                "rejected": sum(1 for r in self.issues if r.table == t and r.action == REJECTED),
                "dropped_media": sum(
                    1 for r in self.issues if r.table == t and r.action == DROPPED_MEDIA
                ),
            }
            for t in tables
        }
        return {
            "ok": self.n_ok,
            "rejected": self.n_rejected,
            "dropped_media": self.n_dropped_media,
            "per_table": per_table,
            "issues": [asdict(r) for r in self.issues],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        """Rebuild a report from :meth:`to_dict` output."""
        ok = {t: int(v.get("ok", 0)) for t, v in data.get("per_table", {}).items()}
        return cls(ok=ok, issues=[Rejection(**r) for r in data.get("issues", [])])

    def write_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON, atomically."""
        return io.write_json(path, self.to_dict())

    @classmethod
    def read_json(cls, path: str | Path) -> ValidationReport:
        """Read a report written by :meth:`write_json`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def merge(self, other: ValidationReport) -> ValidationReport:
        """Add ``other``'s counts and issues to this report (in place); returns ``self``."""
        for table, n in other.ok.items():
            self.ok[table] = self.ok.get(table, 0) + n
        self.issues.extend(other.issues)
        return self

    def print(self, console: Console | None = None) -> None:
        """Print a summary and a table of issues (at most about 50 rows)."""
        from rich.console import Console
        from rich.table import Table

        console = console or Console(stderr=True)
        parts = ", ".join(f"{t}: {n}" for t, n in self.ok.items())
        n_features = sum(1 for r in self.issues if r.action == DROPPED_FEATURE)
        console.print(
            f"[bold]Validation[/bold]: {self.n_ok} records ok ({parts or 'none'}), "
            f"{self.n_rejected} rejected, {self.n_dropped_media} media paths dropped"
            + (f", {n_features} feature rows not usable" if n_features else "")
        )
        if not self.issues:
            return
        table = Table(show_lines=False)
        for name in ("table", "record", "action", "field", "path", "reason"):
            table.add_column(name, overflow="fold")
        for r in self.issues[:_MAX_PRINT_ROWS]:
            table.add_row(r.table, r.record, r.action, r.field or "", r.path or "", r.reason)
        extra = len(self.issues) - _MAX_PRINT_ROWS
        if extra > 0:
            table.add_row("...", f"and {extra} more", "", "", "", "")
        console.print(table)


# ----------------------------------------------------------------------------- normalisation


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def clean_id(value: Any) -> str:
    """An id as a stripped string; missing values become ``""``."""
    if _is_missing(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _text_value(value: Any) -> str:
    if _is_missing(value):
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def _weight_value(value: Any) -> Any:
    """Parse a weight; null/empty -> 1.0; NaN stays NaN and unparsable values stay as they are
    (both rejected later)."""
    if value is None or value is pd.NA or (isinstance(value, str) and not value.strip()):
        return 1.0
    if isinstance(value, bool):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _timestamps(series: pd.Series) -> pd.Series:
    """Numeric timestamps (as strings or numbers) -> numbers; anything else kept as is."""
    values = [None if _is_missing(v) or v == "" else v for v in series.tolist()]
    present = [v for v in values if v is not None]
    if not present:
        return pd.Series(values, index=series.index, dtype=object)
    numeric = pd.to_numeric(pd.Series(present, dtype=object), errors="coerce")
    if numeric.notna().all():
        out = pd.to_numeric(pd.Series(values, index=series.index, dtype=object), errors="coerce")
        if out.notna().all() and (out == out.round()).all():
            return out.astype("int64")
        return out.astype("float64")
    return pd.Series(values, index=series.index, dtype=object)


def _required_columns(table: str) -> tuple[str, ...]:
    return (USER_ID, ITEM_ID) if table == "interactions" else (ID,)


def normalize_table(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """Normalise one table to the schema's types (ids str, media lists, weight float...).

    Text and ``attr_`` columns become strings (missing -> ``""``). Weights that cannot be parsed
    are left as they are so that :func:`validate_catalog` can reject those records.
    Raises ``ValueError`` when a required id column is missing.
    """
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}")
    missing = [c for c in _required_columns(table) if c not in frame.columns]
    if missing:
        raise CatalogError(f"{table} table has no {', '.join(repr(c) for c in missing)} "
                           f"column")
    source = frame.attrs.get(SOURCE_ATTR)
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    text_cols = set(text_columns(frame))
    attr_cols = set(attribute_columns(frame))
    for col in frame.columns:
        values = frame[col].tolist()
        if col in (ID, USER_ID, ITEM_ID):
            out[col] = pd.Series([clean_id(v) for v in values], dtype=object)
        elif col in MEDIA_COLUMNS:
            out[col] = pd.Series([media_paths(v) for v in values], dtype=object)
        elif col == WEIGHT:
            out[col] = pd.Series([_weight_value(v) for v in values], dtype=object)
        elif col == TIMESTAMP:
            out[col] = _timestamps(pd.Series(values, dtype=object)).to_numpy()
        elif col in text_cols or col in attr_cols:
            out[col] = pd.Series([_text_value(v) for v in values], dtype=object)
        else:
            out[col] = pd.Series(values, dtype=object)
    if table != "interactions":
        for col in MEDIA_COLUMNS:
            if col not in out.columns:
                out[col] = pd.Series([[] for _ in range(len(out))], dtype=object)
    elif WEIGHT not in out.columns:
        out[WEIGHT] = 1.0
    first = list(_required_columns(table))
    out = out[first + [c for c in out.columns if c not in first]]
    if source is not None and len(source) == len(out):
        out.attrs[SOURCE_ATTR] = list(source)
    return out


def _finalize(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """Set final dtypes once bad records are gone."""
    frame = frame.reset_index(drop=True)
    frame.attrs = {}
    for col in frame.columns:
        if col in (ID, USER_ID, ITEM_ID) or (
            col not in MEDIA_COLUMNS and col not in (WEIGHT, TIMESTAMP)
            and frame[col].map(lambda v: isinstance(v, str)).all()
        ):
            frame[col] = frame[col].astype(str)
    if table == "interactions":
        frame[WEIGHT] = frame[WEIGHT].astype("float64")
    return frame


# ----------------------------------------------------------------------------- validation


def _labels(frame: pd.DataFrame) -> list[str]:
    source = frame.attrs.get(SOURCE_ATTR)
    if source is not None and len(source) == len(frame):
        return [str(s) for s in source]
    return [f"row {i + 1}" for i in range(len(frame))]


def _check_entity(
    row: dict[str, Any], text_cols: list[str], attr_cols: list[str], limits: ValidationLimits
) -> tuple[str, str | None] | None:
    """Return ``(reason, field)`` if the record must be rejected, else ``None``."""
    for col, value in row.items():
        if isinstance(value, str) and _SURROGATE.search(value):
            return f"not valid UTF-8 in field '{col}'", col
    for col in text_cols:
        value = row.get(col)
        if isinstance(value, str) and len(value) > limits.max_text_chars:
            return (
                f"text field '{col}' is {len(value)} characters long, over the limit of "
                f"{limits.max_text_chars}",
                col,
            )
    for col in attr_cols:
        value = row.get(col)
        if isinstance(value, str) and len(value) > limits.max_attribute_chars:
            return (
                f"attribute '{col}' is {len(value)} characters long, over the limit of "
                f"{limits.max_attribute_chars}",
                col,
            )
    n_media = sum(len(row.get(c) or []) for c in MEDIA_COLUMNS)
    if n_media > limits.max_media_per_record:
        return (
            f"record has {n_media} media paths, over the limit of {limits.max_media_per_record}",
            None,
        )
    return None


def _validate_entities(
    frame: pd.DataFrame, table: str, limits: ValidationLimits, report: ValidationReport
) -> tuple[list[int], set[str]]:
    """Record-level checks for items or users. Returns kept row positions and rejected ids."""
    labels = _labels(frame)
    text_cols = text_columns(frame)
    attr_cols = attribute_columns(frame)
    seen: dict[str, str] = {}
    keep: list[int] = []
    rejected_ids: set[str] = set()
    for pos, row in enumerate(frame.to_dict("records")):
        rid = row.get(ID) or ""
        usable = bool(rid) and not _SURROGATE.search(rid)
        record = rid if usable else labels[pos]
        try:
            if not rid:
                problem: tuple[str, str | None] | None = ("missing or empty id", ID)
            elif not usable:
                problem = ("not valid UTF-8 in field 'id'", ID)
            elif rid in seen:
                problem = (f"duplicate id '{rid}' (first seen at {seen[rid]})", ID)
            else:
                problem = _check_entity(row, text_cols, attr_cols, limits)
        except Exception as exc:  # never let one record abort the run
            problem = (f"could not validate record ({type(exc).__name__}: {exc})", None)
        if usable and rid not in seen:
            seen[rid] = labels[pos]
        if problem is None:
            keep.append(pos)
            continue
        reason, fld = problem
        report.issues.append(Rejection(table, record, reason, field=fld))
        if usable and not reason.startswith("duplicate id"):
            rejected_ids.add(rid)
    return keep, rejected_ids


def _check_media_paths(
    frames: dict[str, pd.DataFrame],
    root: Path,
    limits: ValidationLimits,
    report: ValidationReport,
    progress: bool,
) -> None:
    """Drop every bad media path from the (already filtered) frames, in place."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    total = sum(
        len(v) for f in frames.values() for c in MEDIA_COLUMNS if c in f.columns for v in f[c]
    )
    cache: dict[tuple[str, str], str | None] = {}
    checkers = {IMAGES: check_image, AUDIO: check_audio}
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not progress or total == 0,
        transient=True,
    ) as bar:
        task = bar.add_task("checking media", total=total)
        for table, frame in frames.items():
            for col in MEDIA_COLUMNS:
                if col not in frame.columns:
                    continue
                new_values = []
                for rid, paths in zip(frame[ID].tolist(), frame[col].tolist(), strict=True):
                    kept = []
                    for rel in paths:
                        key = (col, rel)
                        if key not in cache:
                            cache[key] = _media_problem(root, rel, checkers[col], limits)
                        reason = cache[key]
                        bar.advance(task)
                        if reason is None:
                            kept.append(rel)
                        else:
                            report.issues.append(
                                Rejection(table, rid, reason, field=col, path=rel,
                                          action=DROPPED_MEDIA)
                            )
                    new_values.append(kept)
                frame[col] = pd.Series(new_values, index=frame.index, dtype=object)


def _media_problem(root: Path, rel: str, checker: Any, limits: ValidationLimits) -> str | None:
    try:
        checker(resolve_media(root, rel), limits)
    except MediaError as exc:
        return str(exc)
    except Exception as exc:  # a checker bug or an odd file must not abort the catalog
        return f"file could not be checked ({type(exc).__name__}: {exc})"
    return None


def _weight_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"weight {value!r} is not a number"
    if math.isnan(value):
        return "weight is NaN"
    if math.isinf(value):
        return "weight is infinite"
    if value < 0:
        return f"weight {value:g} is negative"
    return None


def _validate_interactions(
    frame: pd.DataFrame,
    item_ids: set[str],
    rejected_items: set[str],
    user_ids: set[str] | None,
    rejected_users: set[str],
    report: ValidationReport,
) -> list[int]:
    """Interaction checks; ``user_ids=None`` means users are implied by interactions."""
    labels = _labels(frame)
    keep: list[int] = []
    for pos, row in enumerate(frame.to_dict("records")):
        uid, iid = row.get(USER_ID) or "", row.get(ITEM_ID) or ""
        try:
            problem: tuple[str, str | None] | None = None
            if not uid:
                problem = ("missing or empty user_id", USER_ID)
            elif not iid:
                problem = ("missing or empty item_id", ITEM_ID)
            elif iid in rejected_items:
                problem = (f"item '{iid}' was rejected (see items)", ITEM_ID)
            elif iid not in item_ids:
                problem = (f"unknown item id '{iid}'", ITEM_ID)
            elif uid in rejected_users:
                problem = (f"user '{uid}' was rejected (see users)", USER_ID)
            elif user_ids is not None and uid not in user_ids:
                problem = (f"unknown user id '{uid}'", USER_ID)
            else:
                for col, value in row.items():
                    if isinstance(value, str) and _SURROGATE.search(value):
                        problem = (f"not valid UTF-8 in field '{col}'", col)
                        break
                if problem is None:
                    reason = _weight_problem(row.get(WEIGHT, 1.0))
                    if reason:
                        problem = (reason, WEIGHT)
        except Exception as exc:
            problem = (f"could not validate record ({type(exc).__name__}: {exc})", None)
        if problem is None:
            keep.append(pos)
        else:
            reason, fld = problem
            report.issues.append(Rejection("interactions", labels[pos], reason, field=fld))
    return keep


def validate_catalog(
    catalog: Catalog, limits: ValidationLimits | None = None, progress: bool = True
) -> tuple[Catalog, ValidationReport]:
    """Normalise and validate ``catalog``; return the cleaned catalog and a report.

    Bad records are dropped (``action="rejected"``), bad media paths are removed from their
    record (``action="dropped_media"``). If the users table is empty, users are implied by the
    interactions; otherwise interactions with unknown or rejected users are rejected.
    """
    limits = limits or ValidationLimits()
    report = ValidationReport()
    root = Path(catalog.root)

    items = normalize_table(catalog.items, "items")
    users = normalize_table(catalog.users, "users")
    inter = normalize_table(catalog.interactions, "interactions")
    users_implied = len(users) == 0

    keep_items, rejected_items = _validate_entities(items, "items", limits, report)
    keep_users, rejected_users = _validate_entities(users, "users", limits, report)
    items = items.iloc[keep_items].reset_index(drop=True)
    users = users.iloc[keep_users].reset_index(drop=True)

    _check_media_paths({"items": items, "users": users}, root, limits, report, progress)

    item_ids = set(items[ID])
    keep_inter = _validate_interactions(
        inter, item_ids, rejected_items - item_ids,
        None if users_implied else set(users[ID]), rejected_users - set(users[ID]), report,
    )
    inter = inter.iloc[keep_inter].reset_index(drop=True)
    if users_implied:
        implied = list(dict.fromkeys(inter[USER_ID].tolist()))
        users = pd.DataFrame({ID: pd.Series(implied, dtype=object)})

    items = _finalize(items, "items")
    users = _finalize(users, "users")
    inter = _finalize(inter, "interactions")
    report.ok = {"items": len(items), "users": len(users), "interactions": len(inter)}
    return Catalog(root=root, items=items, users=users, interactions=inter), report
