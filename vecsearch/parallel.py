"""How a batch is spread over threads: serial kernels run on chunks in a thread pool, never ``prange``.

Every numba kernel is compiled ``nogil``, so Python threads running them run in parallel. A batch
(queries, or the nodes of an insertion batch) is cut into contiguous chunks; the calling thread
takes the first, workers of one shared pool the others (:func:`run_chunks`). Compared with numba's
``parallel=True`` regions this compiles each kernel once (no parallel twin; the parfor passes were
most of the graph kernels' compile time), and a single query or small batch never wakes another
thread: starting a parallel region costs more than one query's work, and under load a woken worker
may wait for a core (single queries stalled for milliseconds on a busy 2-core machine).

The thread count is numba's (``NUMBA_NUM_THREADS``, ``numba.set_num_threads``), read per call.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba

# Batches of at most this many queries run on the calling thread.
SERIAL_MAX_QUERIES = 1

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def run_serial(n_queries: int) -> bool:
    """True when a batch of ``n_queries`` should run on the calling thread."""
    return n_queries <= SERIAL_MAX_QUERIES or numba.get_num_threads() == 1


def thread_rows(n_queries: int) -> int:
    """Rows of per-thread scratch a batch of ``n_queries`` needs (1 when it runs serially)."""
    return workers_for(n_queries)


def workers_for(n_items: int) -> int:
    """How many threads a batch of ``n_items`` uses (1 for a serial batch)."""
    if run_serial(n_items):
        return 1
    return max(1, min(int(numba.get_num_threads()), n_items))


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(1, int(numba.config.NUMBA_NUM_THREADS) - 1),
                                       thread_name_prefix="vecsearch")
        return _POOL


def run_chunks(fn: Callable[[int, int, int], None], n_items: int, n_workers: int) -> None:
    """Call ``fn(start, stop, worker)`` on ``n_workers`` contiguous chunks of ``range(n_items)``.

    Worker 0 runs on the calling thread, the others on the shared pool; ``worker`` indexes the
    caller's per-thread scratch. Returns when every chunk is done; the first exception is raised.
    """
    n_workers = max(1, min(n_workers, n_items))
    bounds = [n_items * w // n_workers for w in range(n_workers + 1)]
    if n_workers == 1:
        fn(0, n_items, 0)
        return
    futures = [_pool().submit(fn, bounds[w], bounds[w + 1], w) for w in range(1, n_workers)]
    try:
        fn(bounds[0], bounds[1], 0)
    finally:
        for future in futures:
            future.result()


def run_shared(fn: Callable[[int, int, int], None], n_items: int, n_workers: int, grain: int) -> None:
    """Call ``fn(start, stop, worker)`` on chunks of at most ``grain`` items of ``range(n_items)``, handed
    out one at a time to ``n_workers`` threads (the calling thread is worker 0) until none is left.

    For work whose chunks cost unequal time, or a machine where a thread may wait for a core: a
    worker that is slowed takes fewer chunks instead of holding the others at the end (with
    :func:`run_chunks` every worker waits for the slowest chunk). ``fn`` must give the same result
    however the range is cut (each item's work independent of which chunk holds it).
    """
    grain = max(1, int(grain))
    n_chunks = -(-n_items // grain)
    n_workers = max(1, min(n_workers, n_chunks))
    if n_workers == 1:  # the calling thread alone: no pool hand-over
        for start in range(0, n_items, grain):
            fn(start, min(n_items, start + grain), 0)
        return
    counter = itertools.count()  # next() on it is atomic: each chunk goes to exactly one worker

    def drain(worker: int) -> None:
        while (c := next(counter)) < n_chunks:
            fn(c * grain, min(n_items, (c + 1) * grain), worker)

    futures = [_pool().submit(drain, w) for w in range(1, n_workers)]
    try:
        drain(0)
    finally:
        for future in futures:
            future.result()
