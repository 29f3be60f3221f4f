"""How often the server recommended each item: a counter in memory, for the overview.

One integer per item position, grown in blocks when items are added while serving, so memory is
bounded by the catalog (never by the traffic), and counting an answer is a few array
increments under a short lock. The counts start at zero with every server start: they describe
this server's answers, not the users' behaviour (that is popularity).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

_GROW = 1024  # new items arrive one by one: grow in blocks, not on every add


class RecommendationCounter:
    """Counts of recommended item positions, thread-safe."""

    def __init__(self, n_items: int = 0) -> None:
        self._counts = np.zeros(max(n_items, 0), np.int64)
        self._lock = threading.Lock()
        self.answers = 0  # recommendation answers counted
        self.total = 0  # item slots in them

    def add(self, positions: Iterable[int]) -> None:
        """Count one answer's recommended positions."""
        pos = np.fromiter((int(p) for p in positions), dtype=np.int64)
        pos = pos[pos >= 0]
        with self._lock:
            self.answers += 1
            if not len(pos):
                return
            need = int(pos.max()) + 1
            if need > len(self._counts):
                self._counts = np.concatenate(
                    [self._counts, np.zeros(need - len(self._counts) + _GROW, np.int64)])
            np.add.at(self._counts, pos, 1)  # add.at: a position twice in one answer counts 2
            self.total += len(pos)

    def top(self, k: int) -> list[tuple[int, int]]:
        """The ``k`` most recommended (position, count), most first; ties by position."""
        with self._lock:
            counts = self._counts.copy()
        hit = np.flatnonzero(counts)
        order = hit[np.lexsort((hit, -counts[hit]))][:k]
        return [(int(p), int(counts[p])) for p in order]

    def distinct(self) -> int:
        """How many different items were recommended at least once."""
        with self._lock:
            return int(np.count_nonzero(self._counts))
