"""What the serving layer refuses and why: its error type, request bounds and the checks of
uploaded ids and files."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fuserec.data.media import MediaError, check_audio, check_image
from fuserec.data.schema import (
    AUDIO,
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    IMAGES,
)
from fuserec.data.validate import ValidationLimits

MODALITY_OF_MEDIA = {IMAGES: "image", AUDIO: "audio"}
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")



class ServeError(Exception):
    """A request the state cannot answer; ``status`` is the HTTP status to report."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ServeLimits:
    """Bounds on what one request may ask for."""

    max_k: int = 100
    max_request_bytes: int = 25 * 2**20
    max_upload_bytes: int = 10 * 2**20
    max_files_per_item: int = 8
    max_text_chars: int = 2_000
    max_audio_seconds: float = 120.0
    max_image_pixels: int = 40_000_000
    max_feedback_weight: float = 100.0
    #: candidates re-ranked by MMR: max(mmr_pool_factor * k, mmr_pool_min)
    mmr_pool_factor: int = 5
    mmr_pool_min: int = 50

    def media_limits(self) -> ValidationLimits:
        """The catalog validation limits applied to uploads."""
        return ValidationLimits(max_file_bytes=self.max_upload_bytes,
                                max_image_pixels=self.max_image_pixels,
                                max_audio_seconds=self.max_audio_seconds)


def _media_columns(media: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """An item's media as stored: a list of paths for each media column."""
    return {c: list(media.get(c, [])) for c in (IMAGES, AUDIO)}


def modality_of_file(filename: str) -> str | None:
    """``"image"`` or ``"audio"`` from a file name's extension, None if neither."""
    ext = Path(filename or "").suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    return None


def check_item_id(item_id: str) -> None:
    """ServeError 422 unless ``item_id`` is a valid item id (1-128 safe characters)."""
    if not _ID_PATTERN.fullmatch(item_id or ""):
        raise ServeError("item ids are 1-128 characters: letters, digits and . _ : @ -", 422)


def check_upload(path: Path, modality: str, limits: ServeLimits) -> None:
    """Run the catalog's image or audio checks on an uploaded file; raise ServeError (422)."""
    checker = check_image if modality == "image" else check_audio
    try:
        checker(path, limits.media_limits())
    except MediaError as exc:
        raise ServeError(f"the uploaded {modality} was rejected: {exc}", 422) from None
