"""IVF-PQ list scan restricted to the rows whose slot passes a filter mask.

List layout as in :mod:`vecsearch.kernels.ivf` (read only): list ``l`` holds rows
``offsets[l] .. offsets[l] + sizes[l]`` of ``codes`` (N, m) uint8 and ``slots`` (N,) int32.
``allowed`` is a bool array over slots (True: the slot passes the predicate and is live).

Each query ranks the lists by its centroid scores and scans its first ``min_probe`` lists, then
keeps taking lists, IVF_PROBE_CHUNK at a time, while fewer than ``target`` allowed rows were seen:
nprobe rises as the filter gets tighter.

A query whose first lists pass far less often than the filter does overall sits where the filter
fails (an anti-correlated filter): the allowed rows nearest to it lie in lists far down its probe
order, and they score close to one another within the PQ error. Such a query ("doubtful") is
judged from its first ``min_probe`` lists before any code is scored, and scanned with its target
raised by the global / near passing share (rounded up to a power of two, at most ``widen_max``)
and with ``doubt_rerank`` times more candidates re-ranked exactly.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit
from .distances import METRIC_L2, score
from .heaps import maxheap_replace_top, maxheap_sort
from .ivf import centroid_scores, list_l2_lut, query_tables, take_best_lists

# Lists taken after the first min_probe, per step (116k, nlist 512: ordering 64 lists up front cost
# 7 us per query more than 16, and usually only the first 16 are scanned).
IVF_PROBE_CHUNK = 16


@jit(inline="always")
def _gather_passing(start, size, slots, allowed, out, n_out):
    """Append the rows ``start .. start + size`` whose slot passes to ``out`` from ``n_out``; returns
    the new length. Branch-free: a branch on the mask per row is mispredicted about half the time
    at 50% selectivity (116k, nlist 512, m 48, nprobe 16, single queries, random filter:
    9,408 -> 11,603 QPS at 50%, 6,031 -> 7,914 at 10%)."""
    for i in range(start, start + size):
        out[n_out] = i
        n_out += np.int64(allowed[slots[i]])
    return n_out


@jit(inline="always")
def _doubt_factor(near, near_rows, selectivity, min_near_ratio, near_min_expected, widen_max):
    """Widening factor of a query whose first lists (``near_rows`` rows) pass at share ``near``:
    1.0 unless it is doubtful (see the module docstring), else the power of two at or above
    ``selectivity / near``, at most ``widen_max``."""
    if widen_max <= 1.0 or near_rows * selectivity < near_min_expected or near >= min_near_ratio * selectivity:
        return 1.0
    widen = selectivity / max(near, 1e-9)
    return min(2.0 ** math.ceil(math.log2(widen)), widen_max)


@jit
def _ivf_masked_query(q, centroids_t, c_sq_norms, n_probe_max, min_probe, target, selectivity, min_near_ratio,
                      near_min_expected, widen_max, doubt_rerank, centroids, codebooks_t, cb_sq_norms, l2_table,
                      codes, slots, offsets, sizes, metric, allowed, n_cand, vectors, os_, oi):
    """One query of :func:`ivfpq_search_masked`; returns its widening factor (1.0: not doubtful)."""
    m = codebooks_t.shape[0]
    has_table = l2_table.shape[0] > 0
    qlut, lut = query_tables(q, codebooks_t, metric)
    nlist = centroids_t.shape[1]
    buf = np.empty(nlist, np.float32)
    centroid_scores(q, centroids_t, c_sq_norms, metric, buf)
    lists = np.empty(nlist, np.int64)
    coarse = np.empty(nlist, np.float32)
    n_first = take_best_lists(buf, lists[: min(min_probe, n_probe_max, nlist)],
                              coarse[: min(min_probe, n_probe_max, nlist)])
    n_lists = n_first

    # The first lists' passing rows, gathered once: their share judges the query before scoring.
    near_rows = 0
    for p in range(n_first):
        near_rows += sizes[lists[p]]
    first_passing = np.empty(near_rows, np.int64)
    first_end = np.empty(n_first, np.int64)
    n_near = 0
    for p in range(n_first):
        n_near = _gather_passing(offsets[lists[p]], sizes[lists[p]], slots, allowed, first_passing, n_near)
        first_end[p] = n_near
    near = n_near / near_rows if near_rows > 0 else 1.0
    factor = _doubt_factor(near, near_rows, selectivity, min_near_ratio, near_min_expected, widen_max)
    if factor > 1.0:
        target = np.int64(math.ceil(target * factor))
        n_probe_max = np.int64(math.ceil(n_probe_max * factor))
        if vectors.shape[0] > 0:
            n_cand = n_cand * doubt_rerank
    n_probe_max = min(n_probe_max, nlist)

    hs = np.full(n_cand, np.inf, np.float32)
    hi = np.full(n_cand, -1, np.int64)
    passing = np.empty(sizes.max() if sizes.shape[0] else 0, np.int64)
    seen = 0
    for p in range(n_probe_max):
        if p >= min_probe and seen >= target:
            break
        if p == n_lists:  # take the next chunk of lists, nearest first
            want = min(IVF_PROBE_CHUNK, n_probe_max - n_lists)
            n_lists += take_best_lists(buf, lists[n_lists : n_lists + want], coarse[n_lists : n_lists + want])
            if p == n_lists:
                break
        lst = lists[p]
        if metric == METRIC_L2:
            list_l2_lut(lst, has_table, l2_table, centroids, codebooks_t, cb_sq_norms, qlut, lut)
        bias = coarse[p]
        if p < n_first:
            rows = first_passing[(first_end[p - 1] if p > 0 else 0) : first_end[p]]
        else:
            rows = passing[: _gather_passing(offsets[lst], sizes[lst], slots, allowed, passing, 0)]
        seen += rows.shape[0]
        for r in range(rows.shape[0]):
            i = rows[r]
            acc = bias
            for j in range(m):
                acc += lut[j, codes[i, j]]
            if acc < hs[0]:
                maxheap_replace_top(hs, hi, n_cand, acc, slots[i])
    if vectors.shape[0] > 0:
        for c in range(n_cand):
            slot = hi[c]
            if slot >= 0:
                s = score(metric, q, vectors[slot])
                if s < os_[0]:
                    maxheap_replace_top(os_, oi, os_.shape[0], s, slot)
        maxheap_sort(os_, oi, os_.shape[0])
    else:
        maxheap_sort(hs, hi, n_cand)
        for c in range(os_.shape[0]):
            os_[c] = hs[c]
            oi[c] = hi[c]
    return factor


@jit
def ivfpq_search_masked(queries, centroids_t, c_sq_norms, n_probe_max, min_probe, target, selectivity,
                        min_near_ratio, near_min_expected, widen_max, doubt_rerank, centroids, codebooks_t,
                        cb_sq_norms, l2_table, codes, slots, offsets, sizes, metric, allowed, n_cand, vectors,
                        out_scores, out_slots, out_factor, start, stop):
    """IVF-PQ search over the ``allowed`` slots only: the ADC runs on rows whose slot passes.

    ``centroids_t`` (d, nlist) f32 and ``c_sq_norms`` (nlist,) f32 rank the lists; a query scans at
    least ``min_probe`` lists and keeps probing until ``target`` allowed rows were scanned (or
    ``n_probe_max`` lists were). A doubtful query (module docstring; ``selectivity`` is the
    filter's passing share over all rows, ``min_near_ratio``, ``near_min_expected``, ``widen_max``
    f64 and ``doubt_rerank`` int the thresholds; ``widen_max`` 1.0 turns the judgement off) gets
    ``target`` and ``n_probe_max`` times its factor and ``n_cand * doubt_rerank`` candidates.
    Other arguments as in :func:`vecsearch.kernels.ivf.ivfpq_search` (``l2_table`` (nlist, m, ksub)
    or (0, m, ksub); ``vectors`` (n_slots, d) f32 re-ranks the best ADC candidates exactly when
    non-empty, else the ``n_cand`` (>= k) best ADC scores are returned). Outputs (nq, k) f32 /
    int64 pre-filled +inf / -1, best first, and ``out_factor`` f32 (nq,): each query's widening
    factor (1.0: not doubtful). Queries ``start .. stop - 1``, serially: the index hands row ranges to
    its threads (a ``prange`` twin of this kernel cost ~4 s of compilation).
    """
    for qi in range(start, stop):
        out_factor[qi] = _ivf_masked_query(queries[qi], centroids_t, c_sq_norms, n_probe_max, min_probe, target,
                                           selectivity, min_near_ratio, near_min_expected, widen_max, doubt_rerank,
                                           centroids, codebooks_t, cb_sq_norms, l2_table, codes, slots, offsets,
                                           sizes, metric, allowed, n_cand, vectors, out_scores[qi], out_slots[qi])


