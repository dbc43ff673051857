"""Argument validation shared by every index: metrics, dims, k, vectors, ids (errors name the argument).

Every check raises ``ValueError`` or ``TypeError`` whose message names the argument, what was
expected and what was received.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .kernels.distances import METRIC_IP, METRIC_L2
from .kernels.rows import ROWS_NOT_FINITE, ROWS_OK, ROWS_ZERO, check_rows

METRICS = ("l2", "ip", "cosine")

# Largest squared norm of an l2 / ip vector or query: then every squared distance
# (<= (|q| + |x|)^2 <= 4 * MAX_SQ_NORM), inner product and partial sum stays below half of
# float32's maximum, so no score overflows to inf (which the kernels read as "no result").
# Norm ~6.5e18. Cosine has no bound: rows are normalized in float64 first.
MAX_SQ_NORM = float(np.finfo(np.float32).max) / 8
MAX_NORM = float(np.sqrt(MAX_SQ_NORM))
# search(k) returns (nq, k) padded with -1 / +inf; a k beyond both the live count and this is
# capped at the larger of the two (k=10**9 on 5 vectors would otherwise allocate 8 GB of padding).
MAX_PADDED_K = 4096


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


def check_k(k: Any, name: str = "k") -> int:
    """Validate the number of neighbors ``k`` (positive int); errors name ``name``."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{name}: expected a positive integer, got {type(k).__name__} {k!r}")
    if k <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {k}")
    return int(k)


def result_width(k: int, n_live: int) -> int:
    """Columns of a search result for ``k``: ``k``, capped at ``max(n_live, MAX_PADDED_K)``."""
    return min(k, max(n_live, MAX_PADDED_K))


def padded_results(nq: int, width: int, ids: np.ndarray | None = None,
                   distances: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(ids int64, distances f32)`` of shape ``(nq, width)``: -1 / +inf, with ``ids`` / ``distances``
    (nq, k <= width) copied into the first k columns when given."""
    out_ids = np.full((nq, width), -1, np.int64)
    out_d = np.full((nq, width), np.inf, np.float32)
    if ids is not None and distances is not None:
        out_ids[:, : ids.shape[1]] = ids
        out_d[:, : ids.shape[1]] = distances
    return out_ids, out_d


def as_array(x: Any, name: str) -> np.ndarray:
    """``np.asarray(x)`` with an error naming ``name`` for ragged or mixed nested sequences."""
    if type(x) is np.ndarray:
        return x
    try:
        return np.asarray(x)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"{name}: expected a rectangular array (every row the same length, one element "
                         f"type), got a {type(x).__name__} numpy cannot stack ({exc})") from None


def as_ids(ids: Any, name: str = "ids") -> np.ndarray:
    """Ids to look up (``remove``, ``update_attributes``, ``reconstruct``): a scalar or a 1-D sequence
    of integers -> int64 ``(n,)``. Raises ``TypeError`` for non-integers and ``ValueError`` for other
    ranks or values outside int64, naming ``name``."""
    arr = as_array(ids, name)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected one id or a 1-D sequence of ids, got shape {arr.shape}")
    if arr.size == 0:
        return np.empty(0, np.int64)
    if arr.dtype.kind in "fO" and isinstance(ids, (list, tuple)) and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in ids):
        bad = next((int(v) for v in ids if not -(2**63) <= int(v) < 2**63), None)  # numpy gave up on int64
        if bad is not None:
            raise ValueError(f"{name}: id {bad} is outside int64")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name}: expected integer ids, got dtype {arr.dtype}")
    if arr.dtype == np.uint64 and int(arr.max()) >= 2**63:
        raise ValueError(f"{name}: id {int(arr.max())} is outside int64")
    return np.ascontiguousarray(arr, dtype=np.int64)


def as_vectors(x: Any, dim: int, name: str, *, allow_single: bool = False, check_finite: bool = True) -> np.ndarray:
    """Validate and convert ``x`` to a C-contiguous float32 ``(n, dim)`` array.

    A 1-D ``(dim,)`` input is accepted as one row when ``allow_single`` (queries). Raises
    ``TypeError`` for non-numeric input and ``ValueError`` for wrong rank or dimension and
    for NaN/inf values (unless ``check_finite=False``: the caller checks), naming ``name``, what
    was expected and what was received.
    """
    arr = as_array(x, name)
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


def _too_large_error(name: str, row: int, norm: float, metric: str) -> ValueError:
    return ValueError(
        f"{name}: row {row} has norm {norm:.3g}; under the {metric!r} metric distances of vectors above "
        f"norm {MAX_NORM:.3g} overflow float32 (the largest finite float32 is 3.4e38): scale the vectors down"
    )


# Rows per block when computing float64 norms of a large batch (bounds the temporary).
_NORM_BLOCK = 8192


def _sq_norms64(x: np.ndarray) -> np.ndarray:
    """Squared row norms of ``x`` (n, d) f32 in float64: no overflow or underflow for finite input."""
    out = np.empty(x.shape[0], np.float64)
    for start in range(0, x.shape[0], _NORM_BLOCK):
        block = x[start : start + _NORM_BLOCK].astype(np.float64)
        out[start : start + _NORM_BLOCK] = np.einsum("ij,ij->i", block, block)
    return out


# Squared float32 norms outside this range lost precision (or overflowed) in float32: recomputed in float64.
_SQ_SAFE = (1e-30, 1e30)


def normalize_rows(x: np.ndarray, name: str = "vectors") -> np.ndarray:
    """Return a row-normalized float32 copy of ``x`` (n, d); zero rows are rejected for cosine.

    Rows of ordinary magnitude are normalized in float32 (one pass); rows whose squared norm
    over- or underflows float32 (components around 1e19, or 1e-20) are normalized in float64, so
    finite rows of any magnitude come out unit-norm instead of zero or NaN.
    """
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):  # extreme rows: redone below
        sq = np.einsum("ij,ij->i", x, x)
        extreme = ~((sq >= _SQ_SAFE[0]) & (sq <= _SQ_SAFE[1]))
        out = np.ascontiguousarray(x / np.sqrt(sq)[:, None], dtype=np.float32) if x.size else x.copy()
    if extreme.any():
        rows = np.flatnonzero(extreme)
        sq64 = _sq_norms64(x[rows])
        if (sq64 == 0).any():
            raise _zero_row_error(name, int(rows[np.flatnonzero(sq64 == 0)[0]]))
        out[rows] = x[rows].astype(np.float64) / np.sqrt(sq64)[:, None]
    return out


def check_magnitude(x: np.ndarray, name: str, metric: str) -> None:
    """Raise ``ValueError`` naming ``name`` when a row of ``x`` (n, d) f32 is too large for ``metric``
    (``l2`` / ``ip``: norm above :data:`MAX_NORM`); cosine rows are normalized and never are."""
    if metric == "cosine" or x.size == 0:
        return
    if max(float(x.max()), -float(x.min())) * np.sqrt(x.shape[1]) <= MAX_NORM:  # cheap passes, no temporary
        return
    sq = _sq_norms64(x)
    if (sq > MAX_SQ_NORM).any():
        row = int(np.flatnonzero(sq > MAX_SQ_NORM)[0])
        raise _too_large_error(name, row, float(np.sqrt(sq[row])), metric)


def check_stored_vectors(x: np.ndarray, name: str, metric: str, *, max_norm: float = MAX_NORM) -> None:
    """Raise ``ValueError`` naming ``name`` unless restored vectors ``x`` (n, d) f32 are what ``add``
    could have stored: finite, unit-norm under ``cosine`` (within 1e-3), at most ``max_norm`` otherwise."""
    if x.size == 0:
        return
    sq = _sq_norms64(x)
    bad = ~np.isfinite(sq)
    if metric == "cosine":
        bad |= np.abs(sq - 1.0) > 1e-3
        what = "finite unit-norm rows (cosine)"
    else:
        bad |= sq > max_norm**2
        what = f"finite rows of norm at most {max_norm:.3g}"
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: expected {what}, row {row} has squared norm {sq[row]:.6g}")


_NO_OUTPUT = np.empty((0, 0), np.float32)


def writable_queries(arr: np.ndarray) -> np.ndarray:
    """``arr``, copied when read-only (a memory map, a Ray object-store view): numba would compile
    every search kernel again for read-only arrays, and a query batch is cheap to copy."""
    return arr if arr.flags.writeable else arr.copy()


def prepare_query_rows(x: Any, dim: int, name: str, metric: str) -> np.ndarray:
    """:func:`as_vectors` (single rows allowed) plus :func:`normalize_rows` (cosine) or
    :func:`check_magnitude` (l2, ip), in one kernel pass.

    The latency path of ``search``: numpy's finite check, norms and division cost several
    microseconds of call overhead per query. Same errors as the numpy path.
    """
    arr = writable_queries(as_vectors(x, dim, name, allow_single=True, check_finite=False))
    normalize = metric == "cosine"
    out = np.empty_like(arr) if normalize else _NO_OUTPUT  # only written when normalizing
    status, row = check_rows(arr, normalize, np.inf if normalize else MAX_SQ_NORM, out)
    if status == ROWS_OK:
        return out if normalize else arr
    if status == ROWS_NOT_FINITE:
        raise _not_finite_error(name, row)
    if status == ROWS_ZERO:
        raise _zero_row_error(name, row)
    raise _too_large_error(name, row, float(np.sqrt(_sq_norms64(arr[row : row + 1])[0])), metric)


def as_external_ids(ids: Any, n: int, name: str = "ids") -> np.ndarray:
    """Validate user ids: int64 ``(n,)``, integer dtype, no duplicates within the batch."""
    arr = as_ids(ids, name)
    if arr.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n},) to match the vectors, got ({arr.shape[0]},)")
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
