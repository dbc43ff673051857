"""Argument validation shared by every index: metrics, dims, k, vectors, ids (errors name the argument).

Every check raises ``ValueError`` or ``TypeError`` whose message names the argument, what was
expected and what was received.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .kernels.distances import METRIC_IP, METRIC_L2
from .kernels.rows import ROWS_NOT_FINITE, ROWS_OK, check_rows

METRICS = ("l2", "ip", "cosine")


def check_metric(metric: Any) -> str:
    """Return ``metric`` if it is one of :data:`METRICS`, else raise ``ValueError``."""
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
    return metric


def metric_code(metric: str) -> int:
    """Kernel metric code: METRIC_L2 for ``l2``, METRIC_IP for ``ip`` and ``cosine``."""
    return METRIC_L2 if metric == "l2" else METRIC_IP


def check_dim(dim: Any) -> int:
    """Validate a vector dimension (positive int)."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim: expected a positive integer, got {dim!r}")
    return int(dim)


def check_k(k: Any) -> int:
    """Validate the number of neighbors ``k`` (positive int)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k: expected a positive integer, got {type(k).__name__} {k!r}")
    if k <= 0:
        raise ValueError(f"k: expected a positive integer, got {k}")
    return int(k)


def as_vectors(x: Any, dim: int, name: str, *, allow_single: bool = False, check_finite: bool = True) -> np.ndarray:
    """Validate and convert ``x`` to a C-contiguous float32 ``(n, dim)`` array.

    A 1-D ``(dim,)`` input is accepted as one row when ``allow_single`` (queries). Raises
    ``TypeError`` for non-numeric input and ``ValueError`` for wrong rank or dimension and
    for NaN/inf values (unless ``check_finite=False``: the caller checks), naming ``name``, what
    was expected and what was received.
    """
    arr = x if type(x) is np.ndarray else np.asarray(x)
    if arr.dtype != np.float32:
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
        if np.issubdtype(arr.dtype, np.complexfloating) or arr.dtype == np.bool_:
            raise TypeError(f"{name}: expected a real-valued float or integer array, got dtype {arr.dtype}")
    if arr.ndim == 1 and allow_single:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        expected = f"(n, {dim})" + (f" or ({dim},)" if allow_single else "")
        raise ValueError(f"{name}: expected shape {expected}, got {arr.ndim}-D shape {arr.shape}")
    if arr.shape[1] != dim:
        raise ValueError(f"{name}: expected dimension {dim}, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if check_finite and arr.size and not np.isfinite(arr).all():
        raise _not_finite_error(name, int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0]))
    return arr


def _not_finite_error(name: str, row: int) -> ValueError:
    return ValueError(f"{name}: expected finite values, got NaN or inf in row {row}")


def _zero_row_error(name: str, row: int) -> ValueError:
    return ValueError(f"{name}: cosine metric needs non-zero vectors, got a zero vector in row {row}")


def normalize_rows(x: np.ndarray, name: str = "vectors") -> np.ndarray:
    """Return a row-normalized float32 copy of ``x`` (n, d); zero rows are rejected for cosine."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if x.shape[0] and (norms == 0).any():
        raise _zero_row_error(name, int(np.flatnonzero(norms[:, 0] == 0)[0]))
    return np.ascontiguousarray(x / norms, dtype=np.float32)


_NO_OUTPUT = np.empty((0, 0), np.float32)


def writable_queries(arr: np.ndarray) -> np.ndarray:
    """``arr``, copied when read-only (a memory map, a Ray object-store view): numba would compile
    every search kernel again for read-only arrays, and a query batch is cheap to copy."""
    return arr if arr.flags.writeable else arr.copy()


def prepare_query_rows(x: Any, dim: int, name: str, normalize: bool) -> np.ndarray:
    """:func:`as_vectors` (single rows allowed) plus, for cosine, :func:`normalize_rows`, in one kernel pass.

    The latency path of ``search``: numpy's finite check, norms and division cost several
    microseconds of call overhead per query. Same errors as the numpy path.
    """
    arr = writable_queries(as_vectors(x, dim, name, allow_single=True, check_finite=False))
    out = np.empty_like(arr) if normalize else _NO_OUTPUT  # only written when normalizing
    status, row = check_rows(arr, normalize, out)
    if status == ROWS_OK:
        return out if normalize else arr
    raise _not_finite_error(name, row) if status == ROWS_NOT_FINITE else _zero_row_error(name, row)


def as_external_ids(ids: Any, n: int, name: str = "ids") -> np.ndarray:
    """Validate user ids: int64 ``(n,)``, integer dtype, no duplicates within the batch."""
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name}: expected integer ids, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n},) to match the vectors, got {arr.shape}")
    arr = arr.astype(np.int64, copy=False)
    if n and (arr < 0).any():
        raise ValueError(f"{name}: expected non-negative ids (-1 marks padding), got {int(arr[arr < 0][0])}")
    if n > 1:
        uniq, counts = np.unique(arr, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"{name}: duplicate id {int(uniq[counts > 1][0])} within the batch")
    return arr


def scores_to_distances(scores: np.ndarray, metric: str) -> np.ndarray:
    """Convert kernel scores (smaller is better) to user distances in place; +inf padding stays."""
    if metric == "cosine":
        scores += np.float32(1.0)
    return scores


# Query batches up to this many rows are checked and normalized by one kernel call.
QUERY_KERNEL_MAX_ROWS = 64
