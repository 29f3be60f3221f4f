"""An append-only JSON-lines journal of the server's writes (feedback, undos, new items).

Each write is one line, appended, flushed and fsynced before the server changes its memory, so a
restart that replays the journal recovers every write it acknowledged (the folder is synced
too when the file is created).

Writes are committed in groups by one committer thread: :meth:`Journal.submit` puts a line
and a callback in the open group and returns at once; the committer takes the open group,
writes all its lines with one ``write`` and one ``fsync``, then calls the group's callbacks in
the order their lines were submitted (the lines submitted meanwhile form the next group). So a
callback runs only after the fsync that covers its own line, however many lines share that
fsync, and callbacks run one at a time in journal order: the serving state applies each write
to memory in its callback, so memory changes in the order a replay will repeat. An event loop
submits without blocking (:meth:`submit`, the server's async endpoints: no thread waits per
request); :meth:`append` is the blocking form for threads. If the write or fsync of a group
fails, every callback of that group gets the ``OSError`` (and no other does); the file is cut
back to where the group started, so a write reported as failed is never replayed. Group commit
can be switched off (one write + fsync per event, one at a time: the baseline of
``benchmarks/serve_load.py``) with ``Journal(..., group_commit=False)`` or the environment
variable ``FUSEREC_JOURNAL_GROUP_COMMIT=0``.

A crash can at worst leave a torn last line (the write was never
acknowledged): replay skips it with a warning and cuts it off the file, and the first append
does the same if no replay ran, so a new line is never glued onto the fragment. A bad line
anywhere else means the file was damaged or edited, and replay stops with its line number.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

#: environment variable: "0" switches group commit off (see the module docstring)
GROUP_COMMIT_ENV = "FUSEREC_JOURNAL_GROUP_COMMIT"
#: seconds an idle committer thread waits for work before it exits (the next submit restarts it)
COMMITTER_IDLE_S = 5.0

#: called by the committer once a line is on disk (None) or could not be written (the error)
Done = Callable[[BaseException | None], None]


class JournalError(ValueError):
    """The journal cannot be replayed; the message names the file and line."""


class _Group:
    """Lines committed together by one write + fsync, with their callbacks."""

    __slots__ = ("done", "lines")

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.done: list[Done] = []


class Journal:
    """Appends events to ``path`` (created on first write) and replays them in order.

    :meth:`submit` and :meth:`append` are thread-safe and commit concurrent writes in groups
    (module docstring).
    """

    def __init__(self, path: str | os.PathLike[str], group_commit: bool | None = None) -> None:
        self.path = Path(path)
        if group_commit is None:
            group_commit = os.environ.get(GROUP_COMMIT_ENV, "1").strip() != "0"
        self.group_commit = group_commit
        self._lock = threading.Lock()  # the file: torn-tail repair and group writes
        self._tail_checked = False
        self._cond = threading.Condition(threading.Lock())  # the open group, the committer
        self._open: _Group | None = None  # lines waiting for the next flush
        self._committer: threading.Thread | None = None
        self._broken: str | None = None  # a failed group could not be cut off the file

    def submit(self, event: Mapping[str, Any], done: Done) -> None:
        """Queue ``event`` for the next group commit and return at once.

        ``done(None)`` is called on the committer thread once the line is on disk (fsynced),
        ``done(error)`` if it could not be written; callbacks run one at a time, in submit
        order, and should be quick (the next group waits for them). A ``done`` that raises is
        ignored. Refuses events that are not JSON (ValueError / TypeError) before queueing.
        """
        line = (json.dumps(event, separators=(",", ":"), allow_nan=False) + "\n").encode()
        with self._cond:
            if self._open is None:
                self._open = _Group()
            self._open.lines.append(line)
            self._open.done.append(done)
            if self._committer is None:
                self._committer = threading.Thread(target=self._commit_loop,
                                                   name=f"journal-committer {self.path.name}",
                                                   daemon=True)
                self._committer.start()
            else:
                self._cond.notify()

    def append(self, event: Mapping[str, Any]) -> None:
        """Write ``event`` as one line; returns once it is on disk (fsynced), else OSError."""
        finished = threading.Event()
        outcome: list[BaseException | None] = []

        def done(error: BaseException | None) -> None:
            outcome.append(error)
            finished.set()

        self.submit(event, done)
        finished.wait()
        if outcome[0] is not None:  # a new exception per writer, chained to the group's
            raise self.failure(outcome[0]) from outcome[0]

    def _commit_loop(self) -> None:
        """The committer: flush the open group, call back, repeat; exit when idle."""
        while True:
            with self._cond:
                while self._open is None:
                    self._cond.wait(COMMITTER_IDLE_S)
                    if self._open is None:  # idle: end; the next submit starts a new thread
                        self._committer = None
                        return
                group, self._open = self._open, None
            if self.group_commit:
                batches = [(group.lines, group.done)]
            else:  # the baseline: every event alone, one after the other
                batches = [([line], [done]) for line, done in zip(group.lines, group.done,
                                                                  strict=True)]
            for lines, callbacks in batches:
                error = None
                try:
                    self._write_group(lines)
                except BaseException as exc:  # reported to every writer of the group
                    error = exc
                for done in callbacks:
                    # the state's callbacks catch their own errors; a bug in another caller's
                    # must not stop the committer, which every later write waits for
                    with contextlib.suppress(Exception):
                        done(error)

    def failure(self, err: BaseException) -> OSError:
        """An OSError for a write that failed with ``err``, naming the journal."""
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
