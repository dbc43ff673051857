"""``vecsearch.warmup()``: compile (or load from the cache) the kernels of every index type."""

from __future__ import annotations

import time

import numpy as np


def warmup(verbose: bool = False) -> float:
    """Build and query a tiny index of every registered type and metric; returns seconds spent.

    Call once at service start so the first user query does not pay numba's compile or
    cache-load time.
    """
    from .base import INDEX_TYPES
    from .io import _import_all_index_modules

    _import_all_index_modules()
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    data = rng.standard_normal((300, 8)).astype(np.float32)
    for type_name, cls in sorted(INDEX_TYPES.items()):
        t0 = time.perf_counter()
        warm = getattr(cls, "_warmup", None)
        if warm is not None:
            warm(data)
        else:
            for metric in ("l2", "ip", "cosine"):
                index = cls(8, metric)
                index.add(data)
                index.search(data[:1], 5)
                index.search(data[:32], 5)
        if verbose:
            print(f"warmup {type_name}: {time.perf_counter() - t0:.2f}s")
    return time.perf_counter() - start
