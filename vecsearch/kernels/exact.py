"""Exact top-k scans: every query against all rows (or a subset of rows), parallel over queries."""

from __future__ import annotations

from numba import prange

from ._jit import jit_parallel
from .distances import score
from .heaps import maxheap_replace_top, maxheap_sort


@jit_parallel
def topk_scan(metric, queries, vectors, n_rows, k, out_scores, out_rows):
    """Exact top-k of ``queries`` (nq, d) f32 over ``vectors[:n_rows]`` (n, d) f32.

    Writes ascending scores into ``out_scores`` (nq, k) f32 and row numbers into ``out_rows``
    (nq, k) int64; both must be pre-filled with +inf / -1 (padding when n_rows < k).
    """
    for qi in prange(queries.shape[0]):
        hs = out_scores[qi]
        hi = out_rows[qi]
        q = queries[qi]
        for i in range(n_rows):
            s = score(metric, q, vectors[i])
            if s < hs[0]:
                maxheap_replace_top(hs, hi, k, s, i)
        maxheap_sort(hs, hi, k)


@jit_parallel
def topk_scan_rows(metric, queries, vectors, rows, k, out_scores, out_rows):
    """Exact top-k of ``queries`` (nq, d) over the subset ``vectors[rows]``; ``rows`` (m,) int64.

    Output as in :func:`topk_scan`, holding row numbers from ``rows``.
    """
    for qi in prange(queries.shape[0]):
        hs = out_scores[qi]
        hi = out_rows[qi]
        q = queries[qi]
        for j in range(rows.shape[0]):
            r = rows[j]
            s = score(metric, q, vectors[r])
            if s < hs[0]:
                maxheap_replace_top(hs, hi, k, s, r)
        maxheap_sort(hs, hi, k)


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
