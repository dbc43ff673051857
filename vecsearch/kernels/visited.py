"""Epoch-based visited tables for graph walks: no clearing between queries.

A table is an int32 array ``(n_threads, capacity)``; thread ``t`` owns row ``t`` and a counter
``epochs[t]`` (int32 ``(n_threads,)``). A node is visited in the current walk iff
``visited[t, node] == epochs[t]``. Starting a walk only increments the counter; the row is zeroed
once every ~2^31 walks when the counter wraps (hnswlib clears its uint16 list every 65,535).
"""

from __future__ import annotations

import numpy as np

from ._jit import jit

EPOCH_LIMIT = np.int32(2**31 - 2)


@jit(inline="always")
def next_epoch(visited, epochs, t):
    """Start a new walk for thread ``t``; returns the epoch value that marks "visited" (int32)."""
    e = epochs[t] + 1
    if e >= EPOCH_LIMIT:
        visited[t, :] = 0
        e = 1
    epochs[t] = e
    return e


def new_visited(n_threads: int, capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """An empty visited table: int32 ``(n_threads, capacity)`` zeros and int32 ``(n_threads,)`` epochs."""
    return np.zeros((n_threads, max(capacity, 1)), np.int32), np.zeros(n_threads, np.int32)
