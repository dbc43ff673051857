"""``vecsearch.warmup()``: compile (or load from the cache) the kernels of every index type."""

from __future__ import annotations

import time

import numpy as np

from . import (
    indexes,  # noqa: F401  (defines, and so registers, every index type)
    registry,
)


def warmup(verbose: bool = False) -> float:
    """Build and query a tiny index of every registered type and metric; returns seconds spent.

    Call once at service start so the first user query does not pay numba's compile or
    cache-load time.
    """
    start = time.perf_counter()
    data = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    for record in sorted(registry.all_types(), key=lambda r: r.name):
        t0 = time.perf_counter()
        record.cls.warmup_kernels(data)
        if verbose:
            print(f"warmup {record.name}: {time.perf_counter() - t0:.2f}s")
    return time.perf_counter() - start
