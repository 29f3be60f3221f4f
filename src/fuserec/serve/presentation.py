"""How items and users are shown: titles, records for the API, media files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from fuserec.data.media import MediaError, resolve_media
from fuserec.data.schema import (
    ATTR_PREFIX,
    AUDIO,
    IMAGES,
)
from fuserec.serve.limits import ServeError


class Presentation:
    """Mixin of :class:`~fuserec.serve.state.ServingState`: records for the HTTP layer."""

    # -- media -----------------------------------------------------------------------------
    def media_file(self, relative: str) -> Path:
        """The file behind a media path that belongs to an item or user; ServeError 404 else."""
        if relative not in self.media_paths:
            raise ServeError("no item or user in this catalog has that media file", 404)
        try:
            return resolve_media(self.catalog_root, relative)
        except MediaError as exc:
            raise ServeError(f"media file unavailable: {exc}", 404) from None

    # -- presentation ----------------------------------------------------------------------
    def title(self, pos: int) -> str:
        row = self.items.iloc[pos]
        for col in ("title", "name", *self.text_columns):
            value = row.get(col) if col in self.items.columns else None
            if isinstance(value, str) and value.strip():
                return value.strip()
        return self.item_ids[pos]

    def item_record(self, pos: int) -> dict[str, Any]:
        """An item as plain data: id, title, text, fields, attributes and media paths."""
        row = self.items.iloc[pos]
        media = self.item_media[pos]
        return {
            "id": self.item_ids[pos], "title": self.title(pos), "text": self.item_texts[pos],
            "fields": {c: _plain(row.get(c)) for c in self.text_columns},
            "attributes": {c[len(ATTR_PREFIX):]: _plain(row.get(c))
                           for c in self.attribute_columns},
            "images": media[IMAGES], "audio": media[AUDIO],
        }

    def user_record(self, user_id: str) -> dict[str, Any]:
        row = self.user_row.get(user_id)
        media = self.user_media[row] if row is not None else {IMAGES: [], AUDIO: []}
        seen = self.seen_positions(user_id) if self.has_user(user_id) else np.empty(0, np.int64)
        return {"id": user_id, "text": self.user_texts[row] if row is not None else "",
                "images": media[IMAGES], "audio": media[AUDIO],
                "n_interactions": int(len(seen)),
                "n_feedback": len(self.feedback.get(user_id, {})),
                "in_catalog": row is not None}




def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    return value
