"""Content hashes used as cache keys: sha256 hex of a text's UTF-8 bytes or a file's bytes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_CHUNK = 1 << 20


def text_hash(text: str) -> str:
    """sha256 hex digest of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# Encode, describe and serving all key their caches by file hash: remember each file's digest
# for as long as its size and modification time are unchanged, so a run reads it once.
_MEMO: dict[tuple[str, int, int], str] = {}
_MEMO_MAX = 1_000_000


def file_hash(path: str | os.PathLike[str]) -> str:
    """sha256 hex digest of a file's contents, read in 1 MiB chunks (memoised per file state)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    digest = _MEMO.get(key)
    if digest is not None:
        return digest
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.clear()
    _MEMO[key] = digest
    return digest
