"""An append-only JSON-lines journal of the server's writes (feedback, new items).

Each write is one line, appended, flushed and fsynced before the server changes its memory, so a
restart that replays the journal recovers every write it acknowledged (the folder is synced
too when the file is created). A crash can at worst leave a torn last line (the write was never
acknowledged): replay skips it with a warning and cuts it off the file, and the first append
does the same if no replay ran, so a new line is never glued onto the fragment. A bad line
anywhere else means the file was damaged or edited, and replay stops with its line number.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any


class JournalError(ValueError):
    """The journal cannot be replayed; the message names the file and line."""


class Journal:
    """Appends events to ``path`` (created on first write) and replays them in order."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._tail_checked = False

    def append(self, event: Mapping[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"), allow_nan=False) + "\n"
        with self._lock:
            if not self._tail_checked:  # never glue a new line onto a torn one
                self._cut_torn_tail()
                self._tail_checked = True
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            if created:  # the new directory entry must survive a crash too
                _fsync_dir(self.path.parent)

    def events(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(line number, event) for every complete event, oldest first.

        An unfinished last line (no newline: that write was never acknowledged) is skipped with
        a warning and, once every complete line was read, cut off the file (file and folder
        synced), so the next append starts on a fresh line.
        """
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        cut = data.rfind(b"\n") + 1
        lines = data[:cut].split(b"\n")[:-1]
        for n, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                event = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise JournalError(f"{self.path}: line {n} is not valid UTF-8; the journal "
                                   f"was damaged") from None
            except json.JSONDecodeError as exc:
                raise JournalError(f"{self.path}: line {n} is not valid JSON ({exc.msg}); "
                                   f"the journal was damaged") from None
            if not isinstance(event, dict) or "event" not in event:
                raise JournalError(f"{self.path}: line {n} is not a journal event")
            yield n, event
        if cut < len(data):
            warnings.warn(f"{self.path}: line {len(lines) + 1} is an unfinished write and is "
                          f"skipped (cut off the file)", stacklevel=2)
            with self._lock:
                self._cut_torn_tail()
                self._tail_checked = True

    def _cut_torn_tail(self) -> int:
        """Truncate the file after its last newline, sync it and its folder; bytes removed."""
        try:
            f = open(self.path, "r+b")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return 0
        with f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return 0
            cut, pos = 0, size
            while pos > 0:  # scan back, a block at a time, for the last complete line
                start = max(0, pos - _BLOCK)
                f.seek(start)
                i = f.read(pos - start).rfind(b"\n")
                if i >= 0:
                    cut = start + i + 1
                    break
                pos = start
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(self.path.parent)
        return size - cut


_BLOCK = 1 << 16


def _fsync_dir(folder: Path) -> None:
    """Make a created, renamed or truncated entry of ``folder`` durable (POSIX only)."""
    if os.name == "nt":  # Windows cannot open a folder for fsync; NTFS journals metadata
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
