"""4-bit PQ fast-scan kernels: packed code blocks, uint8 look-up tables, the in-register block scan.

André, Kermarrec & Le Scouarnec (2015, 2017); faiss ``IndexPQFastScan`` / ``IndexIVFPQFastScan``.
A 4-bit sub-quantizer has 16 codewords, so one query's table for one sub-space is 16 bytes once
quantized to uint8: it fits in a SIMD register and a byte shuffle (``pshufb``) looks up 16 (SSE),
32 (AVX2) or 64 (AVX-512) codes at once. Sums accumulate in uint16.

Packed layout (``BLOCK`` = 32 vectors per block, ``m_pad`` = ``m`` rounded up to ``SUBQ_ALIGN``)
-----------------------------------------------------------------------------------------------
``packed`` uint8 ``(n_blocks, m_pad, 16)``, C order. Vector ``32 * b + t`` (``t < 16``) has its
code of sub-quantizer ``j`` in the low nibble of ``packed[b, j, t]``; vector ``32 * b + 16 + t``
in the high nibble of the same byte. So the 16 bytes ``packed[b, j]`` hold sub-quantizer ``j`` of
all 32 vectors of the block: one 16-byte load, masked and shifted, feeds 32 look-ups in the
16-byte table of sub-quantizer ``j``. Consecutive sub-quantizers are consecutive 16-byte rows,
so one 32/64-byte load serves 2/4 sub-quantizers against 2/4 tables loaded side by side.
Padding sub-quantizers ``j >= m`` and padding vectors (after the last real one) have code 0;
the padding rows of a quantized table are 0, so they add nothing to a sum.
Bytes per vector: ``m_pad / 2`` (faiss: ``roundup(m, 2) / 2``).

Inverted lists in this layout: list ``l`` owns blocks ``block_offsets[l] .. block_offsets[l+1]``
(int64 ``(nlist + 1,)``) of which the first ``sizes[l]`` (int64 ``(nlist,)``) positions are
vectors; position ``i`` of list ``l`` has the caller's row number ``slots[slot_offsets[l] + i]``
(``slots`` int32, ``slot_offsets`` int64 ``(nlist + 1,)``; a list's slot range holds at least its
size and at most its ``32 * blocks`` positions, unused ones -1). The slots are not padded to
blocks: 4 bytes per vector, not per position (faiss pads its 8-byte ids neither).
A flat (non-IVF) code array is one list.

Quantized tables (faiss ``quantize_LUT_and_bias``)
--------------------------------------------------
Float tables ``luts`` f32 ``(n_tab, m, 16)`` (smaller is better) become ``lut_q`` uint8
``(n_tab, m_pad, 16)``: ``lut_q[t, j, c] = round((luts[t, j, c] - min_c luts[t, j, :]) * scale)``
with one ``scale`` per query (``255 / max span`` of any sub-space, lowered if needed so a sum of
``m_pad`` entries stays below 65535). A probed list ``p`` adds the float ``bias_q[p]``
(its coarse term plus its table's minima, in table units relative to the smallest), so the
*key* of a code is ``sum_j lut_q[t, j, code_j] + bias_q[p]`` and its distance estimate is
``key / scale + offset``. Keys of all probed lists are on one scale, so one heap ranks them
(:mod:`vecsearch.kernels.candidates`: a candidate is one int64, its key and slot).

Scans
-----
:func:`block_sums` (an intrinsic: LLVM does not turn a 16-entry table look-up into a shuffle by
itself) computes the 32 sums of a block and the mask of those below a uint16 threshold derived
from the top of the query's candidate heap, so only codes that can enter the heap leave the SIMD
registers (faiss' ``HeapHandler``). Per query (:func:`fastscan_query`) the probed lists are
scanned nearest first; the best ``n_cand`` keys are then re-scored with the float32 vectors
or dequantized (:func:`finish_query`). Large batches scan list by list instead, ``QUERY_GROUP``
queries per code load (:func:`scan_group` over :func:`group_block_sums`), like faiss'
``search_implem_12``: at 1M vectors a list no longer stays in cache between queries. The batch
kernels, whose units threads take in turn, are in :mod:`vecsearch.kernels.fastscan_batch`.
Entry point of the per-query scan: :func:`fastscan_search_serial` (queries in turn, on the calling
thread; callers run slices of a batch on the thread runner).

Scores are smaller-is-better (``METRIC_L2`` squared L2, ``METRIC_IP`` negative inner product),
as everywhere in :mod:`vecsearch.kernels`.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import jit, jit_parallel
from .candidates import EMPTY, candidate_key, candidate_slot, heap_replace_top, pack_candidate
from .distances import METRIC_L2
from .fastscan_simd import (
    BLOCK,
    QUERY_GROUP,
    SUM_LIMIT,
    block_sums,
    group_block_sums,
    lowest_bit,
)
from .ivf import list_l2_lut
from .pq_tables import inner_table_row, scaled_table_row
from .prefetch import prefetch_row
from .scan import rerank_exact

# Code bytes of a long list scanned by all query groups before the next part (stays in L2).
CHUNK_BYTES = 1 << 18


@jit
def write_codes(codes, packed, first):
    """Write ``codes`` uint8 ``(n, m)`` (values < 16) to positions ``first .. first + n - 1`` of ``packed``.

    ``packed`` uint8 ``(n_blocks, m_pad, 16)`` (module docstring layout); the other nibble of each
    touched byte is kept, so appends into a partly filled block are a plain call.
    """
    n, m = codes.shape
    for i in range(n):
        pos = first + i
        b = pos // BLOCK
        t = pos % BLOCK
        if t < 16:
            for j in range(m):
                packed[b, j, t] = (packed[b, j, t] & np.uint8(0xF0)) | (codes[i, j] & np.uint8(0x0F))
        else:
            for j in range(m):
                packed[b, j, t - 16] = (packed[b, j, t - 16] & np.uint8(0x0F)) | np.uint8(codes[i, j] << 4)


@jit
def read_codes(packed, first, out):
    """Codes of positions ``first .. first + n - 1`` of ``packed`` into ``out`` uint8 ``(n, m)``."""
    n, m = out.shape
    for i in range(n):
        pos = first + i
        b = pos // BLOCK
        t = pos % BLOCK
        if t < 16:
            for j in range(m):
                out[i, j] = packed[b, j, t] & np.uint8(0x0F)
        else:
            for j in range(m):
                out[i, j] = packed[b, j, t - 16] >> 4


@jit
def pack_lists(codes, order, block_offsets, slot_offsets, sizes, packed, slots):
    """Pack ``codes`` uint8 ``(n, m)`` into inverted lists: list ``l`` gets rows
    ``order[sum(sizes[:l]) : sum(sizes[:l + 1])]`` (``order`` int64 ``(n,)``, rows grouped by list).

    ``block_offsets`` / ``slot_offsets`` int64 ``(nlist + 1,)`` and ``sizes`` int64 ``(nlist,)``
    describe the target layout; ``packed`` uint8 ``(block_offsets[-1], m_pad, 16)`` must be zeroed
    and ``slots`` int32 ``(slot_offsets[-1],)`` filled with -1 by the caller; ``slots`` receives the
    row numbers.
    """
    src = 0
    for lst in range(sizes.shape[0]):
        first = block_offsets[lst] * BLOCK
        for i in range(sizes[lst]):
            row = order[src + i]
            write_codes(codes[row:row + 1], packed, first + i)
            slots[slot_offsets[lst] + i] = row
        src += sizes[lst]


# ---- look-up tables ---------------------------------------------------------------------------
@jit(inline="always")
def table_is_used(t, n_tab, biases):
    """Table ``t`` of ``n_tab`` serves some probed list: the shared table, or list ``t``'s own."""
    if n_tab == 1:
        return True
    return biases[t] < np.inf


@jit
def quantize_tables(luts, biases, lut_q, bias_q):
    """Quantize float tables to uint8 with one scale; returns ``(scale, offset)`` (float32, float64).

    ``luts`` f32 ``(n_tab, m, 16)``; ``biases`` f32 ``(n_list,)`` the additive term of each probed
    list (+inf = list not probed), list ``p`` using table ``p`` when ``n_tab > 1`` else table 0.
    Writes ``lut_q`` uint8 ``(n_tab, m_pad, 16)`` (rows ``j >= m`` zero) and ``bias_q`` f32
    ``(n_list,)`` (+inf for lists not probed) so that ``key / scale + offset`` estimates the
    score, with ``key = sum_j lut_q[t, j, code_j] + bias_q[p]`` (see the module docstring).
    """
    n_tab, m, ksub = luts.shape
    m_pad = lut_q.shape[1]
    mins = np.zeros((n_tab, m), np.float32)
    max_span = np.float32(0.0)
    max_total = np.float32(0.0)
    for t in range(n_tab):
        if not table_is_used(t, n_tab, biases):
            continue
        total = np.float32(0.0)
        for j in range(m):
            lo = luts[t, j, 0]
            hi = luts[t, j, 0]
            for c in range(1, ksub):
                lo = min(lo, luts[t, j, c])
                hi = max(hi, luts[t, j, c])
            mins[t, j] = lo
            max_span = max(max_span, hi - lo)
            total += hi - lo
        max_total = max(max_total, total)
    scale = np.float32(1.0)
    if max_span > 0:
        scale = np.float32(255.0) / max_span
    if max_total > 0:
        # an entry rounds to at most span * scale + 1/2: keep every sum <= SUM_LIMIT
        scale = min(scale, np.float32((SUM_LIMIT - 0.5 * m_pad) / max_total))
    n_list = biases.shape[0]
    bases = np.full(n_list, np.inf)  # float64: the score offset of each probed list
    offset = np.inf
    for p in range(n_list):
        if biases[p] < np.inf:
            t = p if n_tab > 1 else 0
            base = np.float64(biases[p])
            for j in range(m):
                base += mins[t, j]
            bases[p] = base
            offset = min(offset, base)
    if offset == np.inf:
        offset = 0.0
    for p in range(n_list):
        bias_q[p] = np.float32((bases[p] - offset) * scale) if bases[p] < np.inf else np.inf
    for t in range(n_tab):
        for j in range(m_pad):
            for c in range(ksub):
                lut_q[t, j, c] = 0
        if not table_is_used(t, n_tab, biases):
            continue
        for j in range(m):
            for c in range(ksub):
                v = np.floor((luts[t, j, c] - mins[t, j]) * scale + np.float32(0.5))
                lut_q[t, j, c] = np.uint8(min(max(v, np.float32(0.0)), np.float32(255.0)))
    return scale, offset


@jit(inline="always")
def query_table(metric, by_residual, q, codebooks_t, cb_sq_norms, lut):
    """The list-independent float table of one query into ``lut`` f32 ``(m, 16)``.

    ``METRIC_IP``: ``-<q_j, y>``. ``METRIC_L2``: ``||q_j - y||^2``, or with ``by_residual``
    ``<q_j, y>`` (the per-list tables are built from it by :func:`vecsearch.kernels.ivf.list_l2_lut`).
    ``codebooks_t`` f32 ``(m, dsub, 16)``, ``cb_sq_norms`` f32 ``(m, 16)``.
    """
    m, dsub, ksub = codebooks_t.shape
    if metric != METRIC_L2:
        scaled_table_row(q, codebooks_t, np.float32(-1.0), lut)
        return
    inner_table_row(q, codebooks_t, lut)
    if by_residual:
        return
    for j in range(m):
        q_sq = np.float32(0.0)
        for t in range(dsub):
            q_sq += q[j * dsub + t] * q[j * dsub + t]
        for c in range(ksub):
            lut[j, c] = max(q_sq - np.float32(2.0) * lut[j, c] + cb_sq_norms[j, c], np.float32(0.0))


@jit(inline="always")
def sum_threshold(top, bias):
    """Smallest uint16 bound ``thr`` with ``sum < thr`` for every integer ``sum`` with ``sum + bias <= top``.

    ``sum <= top - bias`` holds exactly when ``sum < floor(top - bias) + 1`` (a sum equal to the
    top may still enter the heap, by its smaller slot); capped at 65535, which every sum
    passes (see :data:`SUM_LIMIT`).
    """
    limit = top - bias
    if limit >= SUM_LIMIT:
        return SUM_LIMIT + 1
    if limit < 0:
        return 0
    return int(np.floor(limit)) + 1


# ---- scans ------------------------------------------------------------------------------------
@jit
def scan_blocks(lut_q, lut_offset, packed, first_block, n_codes, bias, slots, first_slot, heap, sums, tops, qi):
    """Push the codes of ``n_codes`` positions from block ``first_block`` on into the candidate max-heap
    ``heap`` int64 ``(n_cand,)`` (packed (key, slot), :mod:`vecsearch.kernels.candidates`; keys
    ``sum + bias``, slots ``slots[first_slot + i]`` for the ``i``-th position scanned).

    Only sums whose key can reach ``min(top key, tops[qi])`` (as a uint16 threshold, rechecked per
    block) leave the SIMD compare, as faiss' ``HeapHandler``; ``tops`` f32 is lowered to the top
    key after each block (the bound threads share, :mod:`vecsearch.kernels.fastscan_batch`; a
    single heap passes its own one-entry array).
    """
    n_cand = heap.shape[0]
    n_blocks = (n_codes + BLOCK - 1) // BLOCK
    for b in range(n_blocks):
        thr = sum_threshold(min(candidate_key(heap[0]), tops[qi]), bias)
        if thr == 0:
            return  # the list's bias alone is worse than every kept candidate
        block = first_block + b
        mask = np.uint64(block_sums(lut_q, lut_offset, packed, block, thr, sums))
        n_here = n_codes - b * BLOCK
        if n_here < BLOCK:
            mask &= np.uint64((1 << n_here) - 1)
        if mask == 0:
            continue
        while mask != 0:
            t = lowest_bit(mask)
            mask &= mask - np.uint64(1)
            cand = pack_candidate(np.float32(sums[t]) + bias, slots[first_slot + b * BLOCK + t])
            if cand < heap[0]:
                heap_replace_top(heap, n_cand, cand)
        top = candidate_key(heap[0])
        if top < tops[qi]:
            tops[qi] = top


@jit
def query_luts(metric, by_residual, q, probe_lists, probe_scores, codebooks_t, cb_sq_norms, centroids, l2_terms,
               lut_q, bias_q):
    """Quantized tables of one query for its probed lists; returns ``(scale, offset)`` (:func:`quantize_tables`).

    ``lut_q`` uint8 ``(n_tab, m_pad, 16)`` with ``n_tab = nprobe`` for L2 by residual (one table
    per probed list), else 1 (shared); ``bias_q`` f32 ``(nprobe,)``. Arguments as :func:`fastscan_search_serial`.
    """
    m, _, ksub = codebooks_t.shape
    nprobe = probe_lists.shape[0]
    n_tab = lut_q.shape[0]
    luts = np.zeros((n_tab, m, ksub), np.float32)
    query_table(metric, by_residual, q, codebooks_t, cb_sq_norms, luts[0])
    biases = np.zeros(nprobe, np.float32)
    for p in range(nprobe):
        if probe_lists[p] < 0:
            biases[p] = np.inf
        elif by_residual:
            biases[p] = probe_scores[p]
    if metric == METRIC_L2 and by_residual:  # a table per probed list (also when nprobe == 1)
        qlut = luts[0].copy()
        has_table = l2_terms.shape[0] > 0
        for p in range(nprobe):
            if probe_lists[p] >= 0:
                list_l2_lut(probe_lists[p], has_table, l2_terms, centroids, codebooks_t, cb_sq_norms, qlut, luts[p])
    return quantize_tables(luts, biases, lut_q, bias_q)


@jit
def fastscan_query(metric, by_residual, q, probe_lists, probe_scores, codebooks_t, cb_sq_norms, centroids,
                   l2_terms, packed, slots, block_offsets, slot_offsets, sizes, n_cand, vectors, out_scores, out_slots):
    """One query of :func:`fastscan_search_serial`: tables, list scans, then re-rank or dequantization."""
    ksub = codebooks_t.shape[2]
    m_pad = packed.shape[1]
    nprobe = probe_lists.shape[0]
    per_list = metric == METRIC_L2 and by_residual
    lut_q = np.empty((nprobe if per_list else 1, m_pad, ksub), np.uint8)
    bias_q = np.empty(nprobe, np.float32)
    scale, offset = query_luts(metric, by_residual, q, probe_lists, probe_scores, codebooks_t, cb_sq_norms,
                               centroids, l2_terms, lut_q, bias_q)
    heap = np.full(n_cand, EMPTY, np.int64)
    sums = np.empty(BLOCK, np.uint16)
    top = np.full(1, np.inf, np.float32)  # this heap alone: no bound shared with other threads
    for p in range(nprobe):
        lst = probe_lists[p]
        if lst < 0:
            continue
        tab = p if per_list else 0
        scan_blocks(lut_q, tab * m_pad * ksub, packed, block_offsets[lst], sizes[lst], bias_q[p], slots,
                    slot_offsets[lst], heap, sums, top, 0)
    finish_query(metric, q, heap, scale, offset, vectors, out_scores, out_slots)


@jit
def finish_query(metric, q, heap, scale, offset, vectors, out_scores, out_slots):
    """Results of one query from its candidate heap ``heap`` int64 ``(n_cand,)`` (packed, ``EMPTY``
    where unfilled; :mod:`vecsearch.kernels.candidates`).

    With ``vectors`` non-empty the candidates are re-scored exactly (best ``k`` kept, exact ties by
    slot, so their order does not matter), else the best ``k`` keys are dequantized
    (``key / scale + offset``). ``out_scores`` / ``out_slots`` ``(k,)`` pre-filled +inf / -1, best
    first. The heap is consumed.
    """
    n_cand = heap.shape[0]
    ids = np.empty(n_cand, np.int64)
    n_found = 0
    for c in range(n_cand):
        if heap[c] != EMPTY:
            ids[n_found] = candidate_slot(heap[c])
            n_found += 1
    if vectors.shape[0] > 0:
        for c in range(n_found):  # start every candidate's load before the first is scored: 53 -> 49 us
            prefetch_row(vectors, ids[c])  # per query (116k x 384, 100 candidates, 1 thread)
        rerank_exact(metric, q, vectors, ids, n_found, out_slots, out_scores)
        return
    heap.sort()  # ascending (key, slot); EMPTY entries last
    inv_scale = np.float32(1.0) / scale
    for c in range(min(out_scores.shape[0], n_found)):
        out_scores[c] = np.float32(candidate_key(heap[c]) * inv_scale + offset)
        out_slots[c] = candidate_slot(heap[c])


@jit
def fastscan_search_serial(metric, by_residual, queries, probe_lists, probe_scores, codebooks_t, cb_sq_norms,
                           centroids, l2_terms, packed, slots, block_offsets, slot_offsets, sizes, n_cand, vectors,
                           out_scores, out_slots):
    """Fast-scan search over inverted lists in the packed layout, query by query on the calling thread.

    ``metric`` METRIC_L2 / METRIC_IP; ``by_residual``: codes encode ``x - centroid`` of their list
    (the list's coarse score is added; for L2 each probed list gets its own table), else ``x``.
    ``queries`` f32 ``(nq, d)``; ``probe_lists`` int64 ``(nq, nprobe)`` (-1 = none) with their
    coarse scores ``probe_scores`` f32 ``(nq, nprobe)`` (``||q - c||^2`` / ``-<q, c>``; unused
    unless ``by_residual``). A flat code array is one list: ``probe_lists`` all 0.
    Codec: ``codebooks_t`` f32 ``(m, dsub, 16)``, ``cb_sq_norms`` f32 ``(m, 16)``; for L2 by
    residual ``l2_terms`` f32 ``(nlist, m, 16)`` from :func:`vecsearch.kernels.ivf.l2_list_tables`
    or shape ``(0, m, 16)`` to build each list's table from ``centroids`` f32 ``(nlist, d)``.
    Lists: ``packed`` uint8 ``(n_blocks, m_pad, 16)``, ``slots`` int32 ``(slot_offsets[-1],)``,
    ``block_offsets`` / ``slot_offsets`` int64 ``(nlist + 1,)``, ``sizes`` int64 ``(nlist,)``
    (module docstring).
    The best ``n_cand`` keys are kept per query; with ``vectors`` f32 ``(n_slots, d)`` non-empty
    they are re-scored exactly and the best ``k`` kept, else the best ``k`` keys are dequantized.
    Writes ``out_scores`` f32 / ``out_slots`` int64 ``(nq, k)``, pre-filled +inf / -1, best first.
    """
    for qi in range(queries.shape[0]):
        fastscan_query(metric, by_residual, queries[qi], probe_lists[qi], probe_scores[qi], codebooks_t, cb_sq_norms,
                       centroids, l2_terms, packed, slots, block_offsets, slot_offsets, sizes, n_cand, vectors,
                       out_scores[qi], out_slots[qi])


# ---- grouped batch scan (driven by :mod:`vecsearch.kernels.fastscan_batch`) ---------------------
@jit
def scan_group(lut_all, packed, first_block, n_codes, slots, first_slot, queries_g, biases_g, heaps, tops, offsets_g,
               thresholds_g, sums_g, masks_g):
    """:func:`scan_blocks` for ``QUERY_GROUP`` queries probing the same list: each code load serves
    all of them. ``queries_g`` int64 / ``biases_g`` f32 ``(QUERY_GROUP,)`` are the queries (rows of
    the candidate heaps ``heaps`` int64 ``(nq, n_cand)`` and of the shared bounds ``tops`` f32
    ``(nq,)``) and their list biases; ``offsets_g`` int64 receives their table offsets in ``lut_all``
    uint8 ``(nq, m_pad, 16)``; ``thresholds_g``, ``sums_g`` uint16 ``(QUERY_GROUP, 32)``, ``masks_g``
    uint64 are scratch.
    """
    n_cand = heaps.shape[1]
    table_bytes = lut_all.shape[1] * lut_all.shape[2]
    for g in range(QUERY_GROUP):
        offsets_g[g] = queries_g[g] * table_bytes
    n_blocks = (n_codes + BLOCK - 1) // BLOCK
    for b in range(n_blocks):
        block = first_block + b
        for g in range(QUERY_GROUP):
            qi = queries_g[g]
            thresholds_g[g] = sum_threshold(min(candidate_key(heaps[qi, 0]), tops[qi]), biases_g[g])
        group_block_sums(lut_all, offsets_g, packed, block, thresholds_g, sums_g, masks_g)
        n_here = n_codes - b * BLOCK
        for g in range(QUERY_GROUP):
            mask = masks_g[g]
            if n_here < BLOCK:
                mask &= np.uint64((1 << n_here) - 1)
            if mask == 0:
                continue
            qi = queries_g[g]
            heap = heaps[qi]
            while mask != 0:
                t = lowest_bit(mask)
                mask &= mask - np.uint64(1)
                cand = pack_candidate(np.float32(sums_g[g, t]) + biases_g[g], slots[first_slot + b * BLOCK + t])
                if cand < heap[0]:
                    heap_replace_top(heap, n_cand, cand)
            top = candidate_key(heap[0])
            if top < tops[qi]:
                tops[qi] = top


@jit_parallel
def packed_sums(lut_q, packed, n_blocks, out):
    """Raw sums of every position of the first ``n_blocks`` blocks: ``out`` uint16 ``(n_blocks * 32,)``.

    ``lut_q`` uint8 ``(m_pad, 16)``. The exhaustive form of the scan (tests, diagnostics).
    """
    for b in prange(n_blocks):
        sums = np.empty(BLOCK, np.uint16)
        block_sums(lut_q, 0, packed, b, 0, sums)
        for t in range(BLOCK):
            out[b * BLOCK + t] = sums[t]
