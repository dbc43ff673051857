"""Grouped batch scan of 4-bit fast-scan lists: the whole batch list by list, the lists shared by threads.

The per-query scan (:func:`vecsearch.kernels.fastscan.fastscan_query`) reads a probed list's codes
once per query. At 1M vectors the codes no longer stay in cache between queries, so a batch is
scanned list by list instead (faiss' ``search_implem_12``): the ``(query, probe)`` *pairs* of the
whole batch are sorted by list (:func:`sort_pairs`) and ``QUERY_GROUP`` queries probing a list
share each code load (:func:`vecsearch.kernels.fastscan.scan_group`). Sharing grows with the
queries per list: on 1M token vectors (nlist 4096, nprobe 32) the scan of 1,000 queries took
29 ms cut into slices of 125 queries, 22 ms in slices of 500 (a scratch timing outside bench/; the
end-to-end figures are ``bench/bench_scale.py``'s).

So the batch is not cut by queries. The caller cuts the sorted pairs into units of about equal
work (:func:`pair_units`) that threads take in turn (:func:`scan_pairs`); a list's pairs may be
split between units (a flat index is one list). Each thread keeps its own candidate heaps
``heaps`` int64 ``(n_threads, nq, n_cand)`` (:mod:`vecsearch.kernels.candidates`), so no heap is
written by two threads; :func:`merge_and_finish` merges a query's heaps and re-ranks. The threads share one
bound per query, ``tops`` f32 ``(nq,)``: a thread lowers ``tops[q]`` to its heap's top after each
block and skips sums not below ``min(own top, tops[q])``. Any value written there is the top of
some thread's full heap, so ``n_cand`` kept candidates are at least as good: a code at or above it
cannot be among the best ``n_cand`` of the merged heaps, whatever order the threads run in (a
stale read only admits more codes). Candidates rank by (key, slot), so the result is the per-query
scan's, on any number of threads.

Pairs of each query's nearest list come first (their candidates set tight bounds early):
the first ``n_first`` sorted pairs are the nearest-list pairs, then the others.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit
from .candidates import heap_replace_top
from .fastscan import CHUNK_BYTES, finish_query, query_luts, scan_blocks, scan_group
from .fastscan_simd import BLOCK, QUERY_GROUP


@jit
def batch_tables(metric, by_residual, queries, lo, hi, probe_lists, probe_scores, codebooks_t, cb_sq_norms,
                 centroids, l2_terms, lut_all, bias_all, scales, offsets):
    """Quantized shared tables of queries ``lo .. hi - 1`` (:func:`vecsearch.kernels.fastscan.query_luts`).

    Writes ``lut_all[i]`` uint8 ``(m_pad, 16)``, ``bias_all[i]`` f32 ``(nprobe,)``, ``scales[i]`` f32
    and ``offsets[i]`` f64 of each query ``i``. Shared tables only (not L2 by residual).
    """
    for i in range(lo, hi):
        scales[i], offsets[i] = query_luts(metric, by_residual, queries[i], probe_lists[i], probe_scores[i],
                                           codebooks_t, cb_sq_norms, centroids, l2_terms, lut_all[i:i + 1],
                                           bias_all[i])


@jit
def sort_pairs(probe_lists, bias_all, nlist, pair_q, pair_list, pair_bias):
    """Sort the ``(query, probe)`` pairs of a batch by list, nearest-list pairs first.

    ``probe_lists`` int64 ``(nq, nprobe)`` (-1 = none), ``bias_all`` f32 ``(nq, nprobe)``. Fills the
    first ``n_pairs`` entries of ``pair_q`` / ``pair_list`` int64 and ``pair_bias`` f32
    ``(nq * nprobe,)``: the pairs of probe 0 grouped by list, then those of the other probes grouped
    by list (a counting sort: queries in order within a list). Returns ``(n_pairs, n_first)``.
    """
    nq, nprobe = probe_lists.shape
    n_buckets = 2 * nlist  # bucket = list for probe 0, nlist + list for the others
    starts = np.zeros(n_buckets + 1, np.int64)
    for qi in range(nq):
        for p in range(nprobe):
            if probe_lists[qi, p] >= 0:
                starts[probe_lists[qi, p] + (0 if p == 0 else nlist) + 1] += 1
    for bucket in range(n_buckets):
        starts[bucket + 1] += starts[bucket]
    for qi in range(nq):
        for p in range(nprobe):
            lst = probe_lists[qi, p]
            if lst >= 0:
                bucket = lst + (0 if p == 0 else nlist)
                at = starts[bucket]
                pair_q[at] = qi
                pair_list[at] = lst
                pair_bias[at] = bias_all[qi, p]
                starts[bucket] += 1
    return starts[n_buckets - 1], starts[nlist - 1]


@jit(inline="always")
def pair_weight(pair_list, sizes, i):
    """Work of scanning pair ``i``: its list's blocks + 1."""
    return (sizes[pair_list[i]] + BLOCK - 1) // BLOCK + 1


@jit
def pair_units(pair_list, n_pairs, n_first, sizes, n_units, bounds):
    """Cut the sorted pairs into units of about ``1 / n_units`` of the work each; returns their number.

    A pair weighs its list's blocks + 1. Units do not straddle ``n_first`` (nearest-list pairs
    first), and those of the nearest-list pairs are a quarter the size, so every thread starts
    on them. ``bounds`` int64 ``(>= 4 * n_units + 3,)`` receives the first pair of each unit, then
    ``n_pairs``.
    """
    total = 0
    for i in range(n_pairs):
        total += pair_weight(pair_list, sizes, i)
    target = max(1, -(-total // n_units))
    n = 0
    i = 0
    for part in range(2):
        hi = n_first if part == 0 else n_pairs
        goal = max(1, target // 4) if part == 0 else target
        while i < hi:
            bounds[n] = i
            n += 1
            done = 0
            while i < hi and done < goal:
                done += pair_weight(pair_list, sizes, i)
                i += 1
    bounds[n] = n_pairs
    return n


@jit
def scan_pairs(p0, p1, pair_q, pair_list, pair_bias, lut_all, packed, slots, block_offsets, slot_offsets, sizes,
               heaps, tops):
    """Scan sorted pairs ``p0 .. p1 - 1`` into one thread's candidate heaps ``heaps`` int64
    ``(nq, n_cand)`` (:mod:`vecsearch.kernels.candidates`) under the shared bounds ``tops`` f32
    ``(nq,)`` (module docstring).

    Consecutive pairs of one list share its code loads, ``QUERY_GROUP`` queries at a time (fewer
    left: one query at a time); a long list is read in ``CHUNK_BYTES`` parts, each by every group.
    ``lut_all`` uint8 ``(nq, m_pad, 16)``; lists as :func:`vecsearch.kernels.fastscan.fastscan_search_serial`.
    """
    queries_g = np.empty(QUERY_GROUP, np.int64)
    biases_g = np.empty(QUERY_GROUP, np.float32)
    offsets_g = np.empty(QUERY_GROUP, np.int64)
    thresholds_g = np.empty(QUERY_GROUP, np.int64)
    sums_g = np.empty((QUERY_GROUP, BLOCK), np.uint16)
    masks_g = np.empty(QUERY_GROUP, np.uint64)
    table_bytes = lut_all.shape[1] * lut_all.shape[2]
    chunk_blocks = max(1, CHUNK_BYTES // table_bytes)
    start = p0
    while start < p1:
        lst = pair_list[start]
        stop = start + 1
        while stop < p1 and pair_list[stop] == lst:
            stop += 1
        n_blocks = (sizes[lst] + BLOCK - 1) // BLOCK
        for first in range(0, n_blocks, chunk_blocks):
            n_codes = min(sizes[lst] - first * BLOCK, chunk_blocks * BLOCK)
            i = start
            while i + QUERY_GROUP <= stop:
                for g in range(QUERY_GROUP):
                    queries_g[g] = pair_q[i + g]
                    biases_g[g] = pair_bias[i + g]
                scan_group(lut_all, packed, block_offsets[lst] + first, n_codes, slots,
                           slot_offsets[lst] + first * BLOCK, queries_g, biases_g, heaps, tops, offsets_g,
                           thresholds_g, sums_g, masks_g)
                i += QUERY_GROUP
            while i < stop:
                qi = pair_q[i]
                scan_blocks(lut_all, qi * table_bytes, packed, block_offsets[lst] + first, n_codes, pair_bias[i],
                            slots, slot_offsets[lst] + first * BLOCK, heaps[qi], sums_g[0], tops, qi)
                i += 1
        start = stop


@jit
def merge_and_finish(metric, queries, lo, hi, heaps, scales, offsets, vectors, out_scores, out_slots):
    """Queries ``lo .. hi - 1``: merge the threads' candidate heaps ``heaps`` int64 ``(n_threads, nq,
    n_cand)`` into thread 0's, then re-rank or dequantize (:func:`vecsearch.kernels.fastscan.finish_query`)
    into ``out_scores`` / ``out_slots`` ``(nq, k)``.
    """
    n_threads, _, n_cand = heaps.shape
    for qi in range(lo, hi):
        heap = heaps[0, qi]
        for w in range(1, n_threads):
            for c in range(n_cand):
                if heaps[w, qi, c] < heap[0]:
                    heap_replace_top(heap, n_cand, heaps[w, qi, c])
        finish_query(metric, queries[qi], heap, scales[qi], offsets[qi], vectors, out_scores[qi], out_slots[qi])
