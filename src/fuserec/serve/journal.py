"""An append-only JSON-lines journal of the server's writes (feedback, new items).

Each write is one line, appended, flushed and fsynced before the server changes its memory, so a
restart that replays the journal recovers every write it acknowledged (the folder is synced
too when the file is created).

Writes are committed in groups: a writer puts its line in the open group and waits; whoever finds
no flush in progress takes the open group and writes all its lines with one ``write`` and one
``fsync``, then wakes that group's writers (the writers who arrived meanwhile form the next
group). :meth:`Journal.append` returns only after the fsync that covers its own line, so every
acknowledged write is on disk, however many writers share an fsync. If the write or fsync of a
group fails, every writer of that group gets an ``OSError`` (and no other writer does); the file
is cut back to where the group started, so a write reported as failed is never replayed.
Group commit can be switched off (one write + fsync per event, one at a time: the baseline of
``benchmarks/serve_load.py``) with ``Journal(..., group_commit=False)`` or the environment
variable ``FUSEREC_JOURNAL_GROUP_COMMIT=0``.

A crash can at worst leave a torn last line (the write was never
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

#: environment variable: "0" switches group commit off (see the module docstring)
GROUP_COMMIT_ENV = "FUSEREC_JOURNAL_GROUP_COMMIT"


class JournalError(ValueError):
    """The journal cannot be replayed; the message names the file and line."""


class _Group:
    """Lines committed together by one write + fsync, and how that went."""

    __slots__ = ("done", "error", "lines")

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.done = False
        self.error: BaseException | None = None


class Journal:
    """Appends events to ``path`` (created on first write) and replays them in order.

    :meth:`append` is thread-safe and commits concurrent appends in groups (module docstring).
    """

    def __init__(self, path: str | os.PathLike[str], group_commit: bool | None = None) -> None:
        self.path = Path(path)
        if group_commit is None:
            group_commit = os.environ.get(GROUP_COMMIT_ENV, "1").strip() != "0"
        self.group_commit = group_commit
        self._lock = threading.Lock()  # the file: torn-tail repair and group writes
        self._tail_checked = False
        self._cond = threading.Condition(threading.Lock())  # the groups
        self._open: _Group | None = None  # lines waiting for the next flush
        self._flushing = False
        self._broken: str | None = None  # a failed group could not be cut off the file

    def append(self, event: Mapping[str, Any]) -> None:
        """Write ``event`` as one line; returns once it is on disk (fsynced), else OSError."""
        line = (json.dumps(event, separators=(",", ":"), allow_nan=False) + "\n").encode()
        if not self.group_commit:  # the baseline: every event alone, one after the other
            try:
                self._write_group([line])
            except BaseException as exc:
                raise self._failure(exc) from exc
            return
        with self._cond:
            group = self._open
            if group is None:
                group = self._open = _Group()
            group.lines.append(line)
            while not group.done:
                if self._flushing:  # another writer is flushing an earlier group: wait
                    self._cond.wait()
                    continue
                # no flush in progress, so our group is still the open one: flush it
                todo, self._open = group, None
                self._flushing = True
                self._cond.release()
                try:
                    error = None
                    try:
                        self._write_group(todo.lines)
                    except BaseException as exc:  # reported to every writer of the group
                        error = exc
                finally:
                    self._cond.acquire()
                    todo.done, todo.error = True, error
                    self._flushing = False
                    self._cond.notify_all()
        if group.error is not None:  # a new exception per writer, chained to the group's
            raise self._failure(group.error) from group.error

    def _failure(self, err: BaseException) -> OSError:
        if isinstance(err, OSError):
            return OSError(err.errno, f"{err.strerror or err} (journal {self.path})")
        return OSError(f"the journal write failed: {err!r} (journal {self.path})")

    def _write_group(self, lines: list[bytes]) -> None:
        """Append ``lines`` with one write and one fsync; on failure cut them off again."""
        with self._lock:
            if self._broken is not None:
                raise OSError(self._broken)
            if not self._tail_checked:  # never glue a new line onto a torn one
                self._cut_torn_tail()
                self._tail_checked = True
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            data = b"".join(lines)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                         | getattr(os, "O_BINARY", 0), 0o644)
            try:
                start = os.fstat(fd).st_size
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                    if created:  # the new directory entry must survive a crash too
                        _fsync_dir(self.path.parent)
                except BaseException:
                    self._cut_back(fd, start)
                    raise
            finally:
                os.close(fd)

    def _cut_back(self, fd: int, start: int) -> None:
        """Remove a failed group's bytes (never acknowledged) so replay never applies them."""
        try:
            os.ftruncate(fd, start)
            os.fsync(fd)
        except OSError as exc:  # the file may hold unacknowledged lines: stop writing to it
            self._broken = (f"{self.path}: a failed write could not be removed ({exc}); the "
                            f"journal refuses further writes until the server is restarted")

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


def fsync_dir(folder: Path) -> None:
    """Make a created, renamed or truncated entry of ``folder`` durable (POSIX only)."""
    _fsync_dir(folder)
