"""An append-only JSON-lines journal of the server's writes (feedback, new items).

Each write is one line, appended, flushed and fsynced before the server changes its memory, so a
restart that replays the journal recovers every write it acknowledged. A crash can at worst
leave a torn last line (the write was never acknowledged): replay skips it with a warning. A bad
line anywhere else means the file was damaged or edited, and replay stops with its line number.
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

    def append(self, event: Mapping[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"), allow_nan=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())

    def events(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(line number, event) for every complete event, oldest first."""
        if not self.path.exists():
            return
        lines = self.path.read_text(encoding="utf-8").split("\n")
        torn_tail = lines[-1] != ""  # the last write did not finish its newline
        lines = lines[:-1] if not torn_tail else lines
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError as exc:
                if torn_tail and n == len(lines):
                    warnings.warn(f"{self.path}: line {n} is an unfinished write and is "
                                  f"skipped", stacklevel=2)
                    return
                raise JournalError(f"{self.path}: line {n} is not valid JSON ({exc.msg}); "
                                   f"the journal was damaged") from None
            if not isinstance(event, dict) or "event" not in event:
                raise JournalError(f"{self.path}: line {n} is not a journal event")
            yield n, event
