"""Worker processes that contain native crashes and never outlive their parent.

:class:`CrashIsolatingPool` maps a function over inputs in a process pool. When a worker
dies (a segmentation fault in compiled code, an out-of-memory kill), Python's pool breaks and
fails every pending input; this pool instead re-runs each input that was in flight alone in a
fresh process, so only the input that really kills its process is reported, as a
:class:`WorkerCrash` naming the signal, and the rest of the run goes on.

Every worker watches its parent: when the parent dies (``kill -9`` included) the worker exits
within about a second instead of lingering.
"""

from __future__ import annotations

import contextlib
import faulthandler
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WorkerCrash:
    """An input whose worker process died while handling it."""

    reason: str


def _watch_parent(parent: int, interval: float = 0.5) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent:
            os._exit(1)


def _worker_init(parent: int, initializer: Callable[[], None] | None) -> None:
    # a crash is reported by the parent, naming the input; an inherited fault handler would
    # only add a traceback of the parent's stack to stderr
    faulthandler.disable()
    # a daemon thread: it never keeps the worker alive, and it ends it once reparented
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                     name="fuserec-parent-watch").start()
    if initializer is not None:
        initializer()


def _context(method: str | None = None) -> mp.context.BaseContext:
    # fork by default: workers start in milliseconds and need no ``__main__`` guard
    if method is None:
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    return mp.get_context(method)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"worker process killed by {signal.Signals(-code).name}"
    return f"worker process exited with code {code}"


def _run_one(fn: Callable[[Any], Any], item: Any, queue: Any, parent: int,
             initializer: Callable[[], None] | None) -> None:
    _worker_init(parent, initializer)
    queue.put(fn(item))


def run_isolated(fn: Callable[[Any], Any], item: Any, initializer: Callable[[], None] | None
                 = None, timeout: float | None = None, start_method: str | None = None) -> Any:
    """``fn(item)`` in a fresh process of its own; a :class:`WorkerCrash` if that process dies."""
    ctx = _context(start_method)
    queue = ctx.SimpleQueue()
    proc = ctx.Process(target=_run_one, args=(fn, item, queue, os.getpid(), initializer),
                       daemon=True)
    proc.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    # read before join: a large result would otherwise block the child on a full pipe
    while proc.is_alive() and queue.empty():
        if deadline is not None and time.monotonic() > deadline:
            proc.kill()
            proc.join()
            return WorkerCrash(f"worker process timed out after {timeout:g} s")
        proc.join(0.05)
    if not queue.empty():
        result = queue.get()
        proc.join()
        return result
    proc.join()
    return WorkerCrash(_exit_reason(proc.exitcode))


class CrashIsolatingPool:
    """A process pool whose results come back in input order, crashes as values.

    Args:
        workers: processes in the pool.
        initializer: called once in every worker (e.g. to limit its threads).
        start_method: ``"fork"`` (the default where available) or ``"spawn"`` (for processes
            that must not be forked, e.g. ones holding a cluster runtime's connections).
    """

    def __init__(self, workers: int, initializer: Callable[[], None] | None = None,
                 start_method: str | None = None) -> None:
        self.workers = max(1, workers)
        self.initializer = initializer
        self.start_method = start_method
        self._pool: ProcessPoolExecutor | None = None
        #: inputs re-run alone after a worker died, and those that crashed again
        self.retried = 0
        self.crashed = 0

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=_context(self.start_method),
                                             initializer=_worker_init,
                                             initargs=(os.getpid(), self.initializer))
        return self._pool

    def _discard(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):
                pool.shutdown(wait=True, cancel_futures=True)

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """Yield ``fn(item)`` for each item, in order; a :class:`WorkerCrash` where the item
        killed its worker. ``fn`` and the items must pickle (module-level functions)."""
        todo = deque(enumerate(items))
        window: deque[tuple[int, Any, Future]] = deque()
        while todo or window:
            while todo and len(window) < 2 * self.workers:
                i, item = todo.popleft()
                try:
                    window.append((i, item, self._executor().submit(fn, item)))
                except BrokenProcessPool:
                    todo.appendleft((i, item))
                    if not window:  # broken before anything was in flight: start afresh
                        self._discard()
                        continue
                    break  # the futures in flight will show the break
            i, item, future = window.popleft()
            try:
                yield future.result()
                continue
            except BrokenProcessPool:
                pass
            # the pool is broken: every input still in flight is a suspect; run each alone
            suspects = [(i, item)] + [(j, it) for j, it, _ in window]
            self._discard()
            results = {}
            for j, it in suspects:
                done = next((f for k, _, f in [(i, item, future), *window] if k == j), None)
                if (done is not None and done.done() and not done.cancelled()
                        and done.exception() is None):
                    results[j] = done.result()
                    continue
                self.retried += 1
                results[j] = run_isolated(fn, it, self.initializer,
                                          start_method=self.start_method)
                self.crashed += isinstance(results[j], WorkerCrash)
            window.clear()
            for j, _ in suspects:
                yield results[j]

    def close(self) -> None:
        """Stop the workers."""
        self._discard()

    def __enter__(self) -> CrashIsolatingPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
