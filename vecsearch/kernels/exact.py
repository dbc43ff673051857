"""Exact top-k scans: every query against all rows, a list of rows or the rows of a mask.

One per-query function (:func:`exact_query`) serves the batch (parallel over queries) and the
serial entry point, and every row selection: Flat's search, the filtered exact scan (prefilter)
and the re-score of a BLAS pre-selection all run on it.
"""

from __future__ import annotations

from numba import prange

from ._jit import jit, jit_parallel
from .distances import score
from .heaps import maxheap_replace_top, maxheap_sort


@jit
def exact_query(metric, q, vectors, n_rows, rows, mask, k, hs, hi):
    """Exact top-``k`` of one query ``q`` (d,) f32 into ``hs`` (k,) f32 / ``hi`` (k,) int64 (pre-filled +inf / -1).

    Rows scanned: ``rows`` (m,) int64 when non-empty; else the ``r`` with ``mask[r]`` when ``mask``
    (n,) bool is non-empty; else ``0 .. n_rows - 1``. ``vectors`` (>= n, d) f32. Ascending on return.
    """
    if rows.shape[0] > 0:
        for j in range(rows.shape[0]):
            r = rows[j]
            s = score(metric, q, vectors[r])
            if s < hs[0]:
                maxheap_replace_top(hs, hi, k, s, r)
    elif mask.shape[0] > 0:
        for r in range(mask.shape[0]):
            if mask[r]:
                s = score(metric, q, vectors[r])
                if s < hs[0]:
                    maxheap_replace_top(hs, hi, k, s, r)
    else:
        for r in range(n_rows):
            s = score(metric, q, vectors[r])
            if s < hs[0]:
                maxheap_replace_top(hs, hi, k, s, r)
    maxheap_sort(hs, hi, k)


@jit_parallel
def exact_batch(metric, queries, vectors, n_rows, rows, mask, k, out_scores, out_rows):
    """:func:`exact_query` for every row of ``queries`` (nq, d) f32, parallel over queries;
    ``out_scores`` (nq, k) f32 / ``out_rows`` (nq, k) int64 pre-filled with +inf / -1."""
    for qi in prange(queries.shape[0]):
        exact_query(metric, queries[qi], vectors, n_rows, rows, mask, k, out_scores[qi], out_rows[qi])


@jit
def exact_serial(metric, queries, vectors, n_rows, rows, mask, k, out_scores, out_rows):
    """:func:`exact_batch` on the calling thread (one or a few queries: no parallel region)."""
    for qi in range(queries.shape[0]):
        exact_query(metric, queries[qi], vectors, n_rows, rows, mask, k, out_scores[qi], out_rows[qi])


@jit_parallel
def rescore_sorted(metric, queries, vectors, rows, scores):
    """Recompute ``scores`` (nq, k) f32 exactly for ``rows`` (nq, k) int64 (-1 = padding) and re-sort.

    Used after a BLAS pre-selection, whose ``||x||^2 - 2<q,x> + ||q||^2`` form loses precision
    for near neighbors; rows stay ascending by the exact score, padding last.
    """
    k = rows.shape[1]
    for qi in prange(queries.shape[0]):
        for j in range(k):
            r = rows[qi, j]
            if r >= 0:
                scores[qi, j] = score(metric, queries[qi], vectors[r])
        # insertion sort: k is small and the order is already nearly right
        for j in range(1, k):
            s = scores[qi, j]
            r = rows[qi, j]
            i = j - 1
            while i >= 0 and scores[qi, i] > s:
                scores[qi, i + 1] = scores[qi, i]
                rows[qi, i + 1] = rows[qi, i]
                i -= 1
            scores[qi, i + 1] = s
            rows[qi, i + 1] = r
