"""The one numba decorator wrapper: cache switch, nogil and the fastmath policy.

Every kernel in ``vecsearch.kernels`` is decorated with :func:`jit` (or :func:`jit_parallel`).
Nothing is compiled at import: numba compiles lazily on the first call, and with the on-disk
cache (``cache=True``) later processes load the machine code instead of recompiling.

Environment switches
--------------------
``VECSEARCH_NUMBA_CACHE=0``  disable the on-disk compile cache (default: enabled).

Fastmath policy: explicit flags, never ``fastmath=True``. ``nnan``/``ninf`` are left out on
purpose because the kernels use ``+inf`` as the "empty slot" sentinel in heaps and results.
"""

from __future__ import annotations

import os

import numba

CACHE_ENABLED = os.environ.get("VECSEARCH_NUMBA_CACHE", "1").strip().lower() not in ("0", "false", "no")
FASTMATH_FLAGS = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})


def jit(func=None, *, inline: str = "never"):
    """Compile ``func`` as a serial nopython kernel (cached, nogil, explicit fastmath)."""

    def wrap(f):
        return numba.njit(cache=CACHE_ENABLED, nogil=True, fastmath=set(FASTMATH_FLAGS), inline=inline)(f)

    return wrap(func) if func is not None else wrap


def jit_parallel(func=None):
    """Compile ``func`` as a ``parallel=True`` kernel (``prange`` loops run on numba's threads)."""

    def wrap(f):
        return numba.njit(cache=CACHE_ENABLED, nogil=True, fastmath=set(FASTMATH_FLAGS), parallel=True)(f)

    return wrap(func) if func is not None else wrap


def num_threads() -> int:
    """Number of threads numba's parallel kernels use (``NUMBA_NUM_THREADS`` / set_num_threads)."""
    return numba.get_num_threads()
