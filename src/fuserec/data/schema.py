"""The catalog schema: items, users and interactions as pandas tables.

Items
    ``id`` (unique string), any number of text columns, ``images`` and ``audio`` (zero or more
    paths relative to the catalog root; in CSV several paths are separated by ``|``, in JSONL and
    Parquet they may also be lists), and attribute columns named ``attr_<name>``.
Users
    ``id`` and, optionally, their own text columns, ``images`` and ``audio``, like items.
Interactions
    ``user_id``, ``item_id``, optional ``weight`` (default 1.0) and ``timestamp``.

In the loaded :class:`Catalog` the ``images`` and ``audio`` columns always hold lists of
relative path strings, ``id`` columns hold strings, and ``weight`` is float.

Precomputed embeddings (bring your own CLIP or audio vectors) come as ``features/<name>.npy``
(``features/users/<name>.npy`` for users: one row per record of the table's file, in file
order) or as a list column ``feature_<name>``; they are loaded into
:attr:`Catalog.item_features` / :attr:`Catalog.user_features` (see
:mod:`fuserec.data.features`) and never count as text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fuserec.data.views import View

ID = "id"
IMAGES = "images"
AUDIO = "audio"
ATTR_PREFIX = "attr_"
#: a column ``feature_<name>`` holds a precomputed vector per record (a list of numbers)
FEATURE_PREFIX = "feature_"
#: the catalog folder holding precomputed vectors: ``features/<name>.npy``, ``features/users/``
FEATURES_DIR = "features"
USER_ID = "user_id"
ITEM_ID = "item_id"
WEIGHT = "weight"
TIMESTAMP = "timestamp"
MEDIA_COLUMNS = (IMAGES, AUDIO)
PATH_SEPARATOR = "|"

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"})
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".mp3"})


def media_paths(value: Any) -> list[str]:
    """The one parser of a media cell: stripped relative paths from ``a|b`` strings, lists,
    tuples and arrays; missing values (None, NaN, NA) give ``[]``."""
    if value is None or value is pd.NA or value is pd.NaT:
        return []
    if isinstance(value, float):
        return [] if math.isnan(value) else [str(value)]
    if isinstance(value, str):
        items: list[Any] = value.split(PATH_SEPARATOR)
    elif isinstance(value, list | tuple) or hasattr(value, "tolist"):
        items = value.tolist() if hasattr(value, "tolist") else list(value)
        if not isinstance(items, list):  # a numpy scalar
            items = [items]
    else:
        items = [value]
    out = []
    for v in items:
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            continue
        text = str(v).strip()
        if text:
            out.append(text)
    return out


def text_columns(frame: pd.DataFrame) -> list[str]:
    """Columns that hold free text: everything but ids, media and attributes."""
    reserved = {ID, IMAGES, AUDIO, USER_ID, ITEM_ID, WEIGHT, TIMESTAMP}
    return [c for c in frame.columns if c not in reserved
            and not str(c).startswith((ATTR_PREFIX, FEATURE_PREFIX))]


def attribute_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if str(c).startswith(ATTR_PREFIX)]


def record_text(row: pd.Series, columns: list[str]) -> str:
    """One string from a record's text fields, in column order, blanks skipped."""
    parts = []
    for col in columns:
        value = row.get(col)
        if isinstance(value, str) and value.strip():
            parts.append(value.strip())
    return ". ".join(parts)


@dataclass
class Catalog:
    """Items, users and interactions, with media paths relative to ``root``."""

    root: Path
    items: pd.DataFrame
    users: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({ID: pd.Series(dtype=str)}))
    interactions: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            {USER_ID: pd.Series(dtype=str), ITEM_ID: pd.Series(dtype=str),
             WEIGHT: pd.Series(dtype=float)}
        )
    )
    #: precomputed vectors by view name, rows in ``items`` / ``users`` order
    item_features: dict[str, View] = field(default_factory=dict)
    user_features: dict[str, View] = field(default_factory=dict)

    @property
    def item_ids(self) -> list[str]:
        return self.items[ID].tolist()

    @property
    def user_ids(self) -> list[str]:
        return self.users[ID].tolist()

    def item_texts(self) -> list[str]:
        cols = text_columns(self.items)
        return [record_text(row, cols) for _, row in self.items.iterrows()]

    def user_texts(self) -> list[str]:
        cols = text_columns(self.users)
        return [record_text(row, cols) for _, row in self.users.iterrows()]

    def media_path(self, relative: str) -> Path:
        return self.root / relative
