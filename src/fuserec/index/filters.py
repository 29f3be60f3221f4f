"""Attribute filters over the item table, turned into the ``allow`` masks indexes take.

A filter is written ``attr_year>=2000`` or ``year >= 2000`` (the ``attr_`` prefix is optional),
``category==rock``, ``price<20``; operators are ``==``, ``!=``, ``>=``, ``<=``, ``>`` and ``<``.
Numeric columns compare as numbers, the others as strings. A text value may list several
values separated by ``|`` (a film's genres, ``Action|Comedy``): ``==`` holds when one of them
is the value, ``!=`` when none is. Items whose value is missing never pass a filter on that
attribute. A filter is at most :data:`MAX_FILTER_CHARS` characters, and
parsing it takes time linear in its length (no backtracking regular expression).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fuserec.data.schema import ATTR_PREFIX

OPERATORS = ("==", "!=", ">=", "<=", ">", "<")
#: separates the values of a text attribute that has several (``Action|Comedy``)
MULTI_VALUE = "|"
#: the longest filter expression accepted (anything longer is refused before parsing)
MAX_FILTER_CHARS = 512
_SPELLINGS = ("==", "!=", ">=", "<=", ">", "<", "=")  # two-character operators first
_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")


class FilterError(ValueError):
    """A filter that cannot be parsed or applied; the message says why."""


@dataclass(frozen=True)
class AttributeFilter:
    """One comparison ``column op value`` on an ``attr_`` column of the item table."""

    column: str
    op: str
    value: str

    def mask(self, items: pd.DataFrame) -> np.ndarray:
        """Boolean mask over the rows of ``items`` that pass this filter."""
        if self.column not in items.columns:
            known = ", ".join(c for c in items.columns if str(c).startswith(ATTR_PREFIX)) or "none"
            raise FilterError(f"unknown attribute {self.column!r}; known attributes: {known}")
        col = items[self.column]
        numeric = pd.to_numeric(col, errors="coerce")
        if self.op in (">=", "<=", ">", "<") or (numeric.notna().any()
                                                  and col.map(_is_number_like).all()):
            try:
                target = float(self.value)
            except ValueError:
                if self.op in (">=", "<=", ">", "<"):
                    raise FilterError(f"{self.column} {self.op} needs a number, got "
                                      f"{self.value!r}") from None
            else:
                values = numeric.to_numpy(dtype=float)
                with np.errstate(invalid="ignore"):
                    out = _compare(values, self.op, target)
                return out & ~np.isnan(values)
        strings = col.astype("string").fillna("").to_numpy(dtype=object)
        present = col.notna().to_numpy() & (strings != "")
        eq = np.fromiter((s == self.value or (MULTI_VALUE in s and self.value
                                               in s.split(MULTI_VALUE)) for s in strings),
                         dtype=bool, count=len(strings))
        return (eq if self.op == "==" else ~eq) & present

    def __str__(self) -> str:
        return f"{self.column}{self.op}{self.value}"


def _is_number_like(value: object) -> bool:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return True
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def _compare(values: np.ndarray, op: str, target: float) -> np.ndarray:
    return {"==": values == target, "!=": values != target, ">=": values >= target,
            "<=": values <= target, ">": values > target, "<": values < target}[op]


def _check_length(text: str) -> None:
    if len(text) > MAX_FILTER_CHARS:
        raise FilterError(f"a filter is at most {MAX_FILTER_CHARS} characters; this one has "
                          f"{len(text):,} ({text[:40]!r}...)")


def parse_filter(text: str) -> AttributeFilter:
    """Parse ``"year>=2000"`` into an :class:`AttributeFilter` (``attr_`` is added if absent).

    One left-to-right scan: strip the text, read the attribute name, skip spaces, take the
    operator, and the rest (stripped, quotes removed) is the value.
    """
    text = text or ""
    _check_length(text)
    s = text.strip()
    end = 0
    if s and s[0] in _NAME_START:
        end = 1
        while end < len(s) and s[end] in _NAME_CHARS:
            end += 1
    name = s[:end]
    rest = s[end:].lstrip()
    op = next((o for o in _SPELLINGS if rest.startswith(o)), None)
    value = rest[len(op):].strip() if op else ""
    if not name or op is None or not value or "\n" in value:
        raise FilterError(f"cannot read filter {text!r}; write it like 'year>=2000' or "
                          f"'category==rock' (operators: {' '.join(OPERATORS)})")
    if op == "=":
        op = "=="
    column = name if name.startswith(ATTR_PREFIX) else ATTR_PREFIX + name
    return AttributeFilter(column, op, value.strip("'\""))


def parse_filters(texts: Iterable[str] | None) -> list[AttributeFilter]:
    """Parse several filters (all must hold); blank ones are skipped, over-long ones refused."""
    out = []
    for t in texts or []:
        if not t:
            continue
        _check_length(t)
        if t.strip():
            out.append(parse_filter(t))
    return out


def filter_mask(items: pd.DataFrame, filters: Iterable[AttributeFilter]) -> np.ndarray | None:
    """The rows of ``items`` that pass every filter, or None when there are no filters."""
    mask = None
    for f in filters:
        m = f.mask(items)
        mask = m if mask is None else mask & m
    return mask
