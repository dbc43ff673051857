"""The one pool of graph-walk scratch buffers an index keeps: taken whole by one call, given back after.

A walk needs, per thread row: a visited table (uint8 epochs), a frontier heap as wide as the
graph, and a result heap of width ``ef``. Allocating them per call costs more than a small walk,
so an index keeps a pool. A set of buffers belongs to exactly one call between :meth:`take` and
:meth:`give` (two concurrent searches never share one: the second gets its own), which is what
makes concurrent searches safe.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np

from ..kernels.visited import new_visited

# Free sets kept per thread-row count (more concurrent callers than this allocate and drop).
MAX_FREE_PER_SHAPE = 4


class WalkScratch(NamedTuple):
    """Buffers of one walk call for ``rows`` threads over a graph of ``capacity`` nodes:
    ``visited`` uint8 (rows, capacity), ``epochs`` int32 (rows,), frontier ``cand_s`` f32 /
    ``cand_i`` int32 (rows, capacity), result heap ``top_s`` f32 / ``top_i`` int32 (rows, width)."""

    visited: np.ndarray
    epochs: np.ndarray
    cand_s: np.ndarray
    cand_i: np.ndarray
    top_s: np.ndarray
    top_i: np.ndarray

    @property
    def rows(self) -> int:
        return int(self.visited.shape[0])

    @property
    def capacity(self) -> int:
        return int(self.visited.shape[1])

    @property
    def width(self) -> int:
        return int(self.top_s.shape[1])


def new_scratch(rows: int, capacity: int, width: int) -> WalkScratch:
    """Fresh buffers (see :class:`WalkScratch`)."""
    capacity = max(capacity, 1)
    visited, epochs = new_visited(rows, capacity)
    return WalkScratch(visited, epochs, np.empty((rows, capacity), np.float32), np.empty((rows, capacity), np.int32),
                       np.empty((rows, width), np.float32), np.empty((rows, width), np.int32))


class ScratchPool:
    """Reusable :class:`WalkScratch` sets of one index; thread-safe."""

    def __init__(self) -> None:
        self._free: dict[int, list[WalkScratch]] = {}
        self._lock = threading.Lock()

    def take(self, rows: int, capacity: int, ef: int) -> WalkScratch:
        """A set for ``rows`` threads, at least ``capacity`` nodes and result width ``ef``, owned by
        the caller until :meth:`give`."""
        with self._lock:
            free = self._free.get(rows, [])
            while free:
                scratch = free.pop()
                if scratch.capacity >= capacity and scratch.width >= ef:
                    return scratch
        return new_scratch(rows, capacity, max(ef, 64))

    def give(self, scratch: WalkScratch) -> None:
        """Return a set taken with :meth:`take`."""
        with self._lock:
            free = self._free.setdefault(scratch.rows, [])
            if len(free) < MAX_FREE_PER_SHAPE:
                free.append(scratch)

    @contextmanager
    def borrow(self, rows: int, capacity: int, ef: int) -> Iterator[WalkScratch]:
        """``with pool.borrow(rows, capacity, ef) as scratch:`` take and give back."""
        scratch = self.take(rows, capacity, ef)
        try:
            yield scratch
        finally:
            self.give(scratch)

    def clear(self) -> None:
        """Drop every free set (after the graph was renumbered or shrunk)."""
        with self._lock:
            self._free.clear()
