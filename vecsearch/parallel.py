"""When a query batch runs on the calling thread and when it enters numba's parallel region.

Starting a parallel region costs more than one query's work, and under load a woken worker may
wait for a core (single queries stalled for milliseconds on a busy 2-core machine). Every index
asks :func:`run_serial` before choosing between its serial and parallel kernel.
"""

from __future__ import annotations

import numba

# Batches of at most this many queries run on the calling thread.
SERIAL_MAX_QUERIES = 1


def run_serial(n_queries: int) -> bool:
    """True when a batch of ``n_queries`` should run on the calling thread."""
    return n_queries <= SERIAL_MAX_QUERIES or numba.get_num_threads() == 1


def thread_rows(n_queries: int) -> int:
    """Rows of per-thread scratch a batch of ``n_queries`` needs (1 when it runs serially)."""
    return 1 if run_serial(n_queries) else int(numba.config.NUMBA_NUM_THREADS)
