"""The one exact top-k: Flat's search and every exact scan of allowed rows (prefilter) use it.

Small batches run the numba scan (:mod:`vecsearch.kernels.scan` over float32 rows); from :data:`BLAS_MIN_QUERIES`
queries up, a BLAS matrix product per block of rows pre-selects the top k, whose scores are then
recomputed exactly (the GEMM form ``||x||^2 - 2<q,x> + ||q||^2`` cancels badly for close
neighbours), so both paths return the same exact distances.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .kernels.distances import METRIC_L2
from .kernels.heaps import empty_heaps, sort_heaps, topk_merge_block
from .kernels.scan import rescore_sorted, scan_rows
from .kernels.storage import NO_STORAGE, STORE_F32, Storage, make_storage
from .parallel import run_chunks, workers_for

# Batches at least this large use BLAS. bench/bench_flat.py (116,659 x 384, 2 cores): with
# OMP_WAIT_POLICY=PASSIVE BLAS wins from nq=1 (4.9 vs 6.0 ms); under the default OpenMP policy,
# alternating OpenBLAS' threads and numba's OpenMP threads stalls each small call for ~12 ms
# (5,000 rows, nq=1: 12.2 ms vs 0.12 ms for the scan), so small batches stay on the numba scan;
# from 8 queries up the GEMM path wins by 2-10x and amortizes a stall.
BLAS_MIN_QUERIES = 8
# Elements of one (queries x rows) score matrix; bounds temporary memory to ~64 MB.
BLAS_BLOCK_ELEMENTS = 1 << 24
# A filter passing at most this fraction of the slots is scanned through its row list, a larger
# one through its mask (contiguous reads). Chosen, not separately benchmarked.
ROWS_SCAN_MAX_FRACTION = 0.125

_NO_ROWS = np.empty(0, np.int64)
_NO_RERANK = tuple(NO_STORAGE)
_NO_MASK = np.empty(0, np.bool_)


def exact_topk(metric: int, queries: np.ndarray, vectors: np.ndarray, k: int, *, n_rows: int | None = None,
               allowed: Any = None, sq_norms: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of ``queries`` (nq, d) f32 over rows of ``vectors`` (n, d) f32.

    Rows: the slots of ``allowed`` (:class:`vecsearch.filtering.compile.AllowedSlots`) when
    given, else ``0 .. n_rows - 1`` (all rows by default). ``sq_norms`` (n,) f32: the rows'
    squared norms when the caller keeps them (saves the BLAS path computing them for l2).
    Returns ``(rows int64 (nq, k), scores f32 (nq, k))``, ascending, padded with -1 / +inf.
    """
    n_rows = vectors.shape[0] if n_rows is None else n_rows
    nq = queries.shape[0]
    st = float_storage(metric, vectors)
    if nq >= BLAS_MIN_QUERIES:
        rows = None if allowed is None else allowed.slots
        return _blas_topk(st, queries, k, n_rows, rows, sq_norms)
    rows, mask = allowed_rows(allowed)
    return scan(st, _NO_RERANK, queries, queries, k, n_rows, rows, mask, k)


def scan(st: tuple, sec: tuple, queries: np.ndarray, queries_full: np.ndarray, k: int, n_rows: int,
         rows: np.ndarray, mask: np.ndarray, n_cand: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of ``queries`` (nq, d) f32 over the selected rows of ``st`` (``rows`` int64, else ``mask``
    bool, else ``0 .. n_rows - 1``), the best ``n_cand`` re-scored by ``sec`` with ``queries_full``
    unless ``sec`` is ``NO_STORAGE`` (:func:`vecsearch.kernels.scan.scan_query`), on the thread pool;
    storages as plain tuples (``tuple(storage)``).
    Returns ``(rows int64 (nq, k), scores f32 (nq, k))``, ascending, padded with -1 / +inf."""
    nq = queries.shape[0]
    scores, out_rows = empty_heaps(nq, k)

    def run(start: int, stop: int, _worker: int) -> None:
        scan_rows(st, sec, queries, queries_full, start, stop, n_rows, rows, mask, n_cand, out_rows, scores)

    run_chunks(run, nq, workers_for(nq))
    return out_rows, scores


def float_storage(metric: int, vectors: np.ndarray) -> tuple:
    """float32 rows ``vectors`` (n, d) as a scan storage scored by ``metric`` (the kernel metric code),
    in the plain-tuple form kernels take."""
    return tuple(make_storage(STORE_F32, metric, f32=vectors))


def allowed_rows(allowed: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, mask)`` for a scan of the slots of ``allowed`` (None: every row): the row list for a
    sparse filter, the mask (contiguous reads) for a dense one; the other empty."""
    if allowed is None:
        return _NO_ROWS, _NO_MASK
    if allowed.count <= ROWS_SCAN_MAX_FRACTION * allowed.mask.shape[0]:
        return allowed.slots, _NO_MASK
    return _NO_ROWS, allowed.mask


def _blas_topk(st: tuple, queries: np.ndarray, k: int, n_rows: int,
               rows: np.ndarray | None, sq_norms: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """BLAS pre-selection over ``rows`` (or the first ``n_rows``), then the exact re-score."""
    vectors = Storage(*st).f32
    nq = queries.shape[0]
    heap_scores, heap_pos = empty_heaps(nq, k)
    block = max(1024, BLAS_BLOCK_ELEMENTS // max(nq, 1))
    total = n_rows if rows is None else rows.shape[0]
    is_l2 = Storage(*st).mode == METRIC_L2
    for start in range(0, total, block):
        stop = min(total, start + block)
        sub = vectors[start:stop] if rows is None else vectors[rows[start:stop]]
        scores = queries @ sub.T
        if is_l2:
            # ||q - x||^2 = ||x||^2 - 2<q, x> + ||q||^2; ||q||^2 is the same for a row: left out.
            scores *= np.float32(-2.0)
            if sq_norms is not None and rows is None:
                scores += sq_norms[start:stop]
            else:
                scores += np.einsum("ij,ij->i", sub, sub)
        else:
            np.negative(scores, out=scores)
        topk_merge_block(scores, start, heap_scores, heap_pos)
    sort_heaps(heap_scores, heap_pos)
    out_rows = heap_pos if rows is None else np.where(heap_pos >= 0, rows[np.maximum(heap_pos, 0)], -1)
    rescore_sorted(st, queries, out_rows, heap_scores)
    return out_rows, heap_scores
