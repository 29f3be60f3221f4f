"""Content hashes used as cache keys: sha256 hex of a text's UTF-8 bytes or a file's bytes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_CHUNK = 1 << 20


def text_hash(text: str) -> str:
    """sha256 hex digest of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_hash(path: str | os.PathLike[str]) -> str:
    """sha256 hex digest of a file's contents, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(Path(path), "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()
