"""Inverted-list kernels of IVF-PQ: probe selection, list layout (append, compact), the ADC search.

Inverted lists are CSR with spare capacity: list ``l`` owns rows ``offsets[l] .. offsets[l+1]``
of the flat arrays ``codes`` (N, m) uint8 and ``slots`` (N,) int32, of which the first
``sizes[l]`` are used. Appends write into the spare rows; when a list is full the whole layout is
rebuilt with grown capacities (amortized O(1) per vector).

Scores are smaller-is-better: ``METRIC_L2`` squared L2, ``METRIC_IP`` negative inner product.
For L2 the index encodes residuals ``r = x - c`` and a code's score is (faiss' decomposition)
``||q - c||^2 + sum_j (||w_j||^2 + 2 <c_j, w_j>) - 2 sum_j <q_j, w_j>`` with ``w_j`` the chosen
codeword of sub-space ``j``: the middle term depends only on (list, j, codeword) and is
precomputed once per index (``l2_table`` (nlist, m, ksub)); the last one once per query. For IP
the score is ``-<q, c> - sum_j <q_j, w_j>``: one table per query plus the list-centroid term.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import jit, jit_parallel
from .distances import METRIC_L2, score
from .heaps import maxheap_replace_top, maxheap_sort
from .pq_tables import inner_table_row, scaled_table_row
from .prefetch import prefetch_row


@jit_parallel
def select_probes(coarse_scores, out_lists, out_scores):
    """The ``nprobe`` best lists per query from ``coarse_scores`` (nq, nlist) f32 (smaller is better).

    Writes ``out_lists`` (nq, nprobe) int64 and ``out_scores`` (nq, nprobe) f32, best first;
    both must be pre-filled with -1 / +inf.
    """
    nprobe = out_lists.shape[1]
    for qi in prange(coarse_scores.shape[0]):
        hs = out_scores[qi]
        hi = out_lists[qi]
        row = coarse_scores[qi]
        for c in range(row.shape[0]):
            s = row[c]
            if s < hs[0]:
                maxheap_replace_top(hs, hi, nprobe, s, c)
        maxheap_sort(hs, hi, nprobe)


# Select the probed lists by sorting every centroid score once nprobe reaches 1/4 of nlist. Measured
# per query (116k x 384, nlist 512, centroid scores included): heap selection 12 us at nprobe 16,
# 19 at 64, 25 at 127, 52 at 512; the sort 26 at any nprobe. Filtered IVF raises nprobe up to
# nlist at low selectivity.
PROBE_SORT_MIN_FRACTION = 4


@jit(inline="always")
def centroid_scores(q, centroids_t, c_sq_norms, metric, buf):
    """Coarse scores of one query against every centroid into ``buf`` (nlist,) f32:
    ``||q - c||^2`` for L2, ``-<q, c>`` for IP (``centroids_t`` (d, nlist), ``c_sq_norms`` (nlist,))."""
    d, nlist = centroids_t.shape
    for c in range(nlist):
        buf[c] = np.float32(0.0)
    for t in range(d):
        qv = q[t]
        for c in range(nlist):
            buf[c] += qv * centroids_t[t, c]
    if metric == METRIC_L2:
        q_sq = np.float32(0.0)
        for t in range(d):
            q_sq += q[t] * q[t]
        for c in range(nlist):
            buf[c] = max(q_sq + c_sq_norms[c] - np.float32(2.0) * buf[c], np.float32(0.0))
    else:
        for c in range(nlist):
            buf[c] = -buf[c]


@jit(inline="always")
def take_best_lists(buf, hi, hs):
    """Move the ``hi.shape[0]`` best (smallest) finite scores of ``buf`` (nlist,) f32 into ``hi``
    int64 / ``hs`` f32, best first, and mark them taken (+inf in ``buf``); returns how many were
    found (fewer when ``buf`` runs out; the rest stay -1 / +inf)."""
    nlist = buf.shape[0]
    n = hi.shape[0]
    for j in range(n):
        hi[j] = -1
        hs[j] = np.inf
    if n * PROBE_SORT_MIN_FRACTION >= nlist:
        keys = np.empty(nlist, np.int64)  # (order-preserving score bits << 32) | list: one int sort
        for c in range(nlist):
            bits = np.int64(buf[c:c + 1].view(np.int32)[0])
            if bits < 0:
                bits = np.int64(-2147483648) - bits
            keys[c] = (bits << 32) | c
        keys.sort()
        for j in range(min(n, nlist)):  # nprobe > nlist: the rest stay -1 / +inf
            c = keys[j] & 0xFFFFFFFF
            if buf[c] < np.inf:
                hi[j] = c
                hs[j] = buf[c]
    else:
        for c in range(nlist):
            if buf[c] < hs[0]:
                maxheap_replace_top(hs, hi, n, buf[c], c)
        maxheap_sort(hs, hi, n)
    found = 0
    for j in range(n):
        if hi[j] >= 0:
            buf[hi[j]] = np.inf
            found += 1
    return found


@jit
def _coarse_probe_query(q, centroids_t, c_sq_norms, metric, hi, hs):
    """The ``hi.shape[0]`` nearest centroids of one query into ``hi`` int64 / ``hs`` f32, best first."""
    buf = np.empty(centroids_t.shape[1], np.float32)
    centroid_scores(q, centroids_t, c_sq_norms, metric, buf)
    take_best_lists(buf, hi, hs)


@jit
def coarse_probes_serial(queries, centroids_t, c_sq_norms, metric, out_lists, out_scores):
    """The ``nprobe`` nearest centroids of each query, computed directly (no BLAS), one query at a time.

    ``queries`` (nq, d) f32; ``centroids_t`` (d, nlist) f32 (transposed: the inner loop runs over
    centroids); ``c_sq_norms`` (nlist,) f32. Writes ``out_lists`` (nq, nprobe) int64 and
    ``out_scores`` (nq, nprobe) f32 (``||q - c||^2`` or ``-<q, c>``), best first; both pre-filled
    with -1 / +inf. Callers run slices of a batch on the thread runner
    (:func:`vecsearch.codecs.kmeans.probes_per_query`).
    """
    for qi in range(queries.shape[0]):
        _coarse_probe_query(queries[qi], centroids_t, c_sq_norms, metric, out_lists[qi], out_scores[qi])


@jit_parallel
def l2_list_tables(centroids, codebooks_t, cb_sq_norms, out):
    """Precomputed L2 terms ``out`` (nlist, m, ksub) f32: ``||w||^2 + 2 <c_l sub j, w>`` per codeword ``w``.

    ``centroids`` (nlist, m*dsub) f32, ``codebooks_t`` (m, dsub, ksub), ``cb_sq_norms`` (m, ksub).
    """
    m, _, ksub = codebooks_t.shape
    for lst in prange(centroids.shape[0]):
        inner_table_row(centroids[lst], codebooks_t, out[lst])
        for j in range(m):
            for c in range(ksub):
                out[lst, j, c] = cb_sq_norms[j, c] + np.float32(2.0) * out[lst, j, c]


@jit
def relayout_lists(codes, slots, offsets, sizes, capacities, out_codes, out_slots, out_offsets):
    """Copy the used rows of every list into a new layout with ``capacities`` (nlist,) int64 rows per list.

    ``out_offsets`` (nlist+1,) int64 receives the new starts; ``out_codes`` (sum(capacities), m)
    uint8 and ``out_slots`` (sum(capacities),) int32 the rows. ``sizes`` is unchanged.
    """
    nlist = sizes.shape[0]
    out_offsets[0] = 0
    for lst in range(nlist):
        out_offsets[lst + 1] = out_offsets[lst] + capacities[lst]
    for lst in range(nlist):
        src = offsets[lst]
        dst = out_offsets[lst]
        for i in range(sizes[lst]):
            out_codes[dst + i] = codes[src + i]
            out_slots[dst + i] = slots[src + i]


@jit
def append_to_lists(codes, slots, offsets, sizes, new_codes, new_slots, new_lists):
    """Write ``new_codes`` (n, m) u8 / ``new_slots`` (n,) into the spare rows of lists ``new_lists`` (n,) int64.

    The caller guarantees capacity (see :func:`relayout_lists`); ``sizes`` (nlist,) is updated.
    """
    for i in range(new_codes.shape[0]):
        lst = new_lists[i]
        pos = offsets[lst] + sizes[lst]
        codes[pos] = new_codes[i]
        slots[pos] = new_slots[i]
        sizes[lst] += 1


@jit
def compact_lists(codes, slots, offsets, sizes, slot_map):
    """Drop rows whose slot maps to -1 and renumber the others, in place.

    ``slot_map`` (n_slots,) int64: new slot number, or -1 for removed slots. Order within each
    list is preserved; ``sizes`` is updated.
    """
    for lst in range(sizes.shape[0]):
        start = offsets[lst]
        kept = 0
        for i in range(sizes[lst]):
            new_slot = slot_map[slots[start + i]]
            if new_slot >= 0:
                codes[start + kept] = codes[start + i]
                slots[start + kept] = new_slot
                kept += 1
        sizes[lst] = kept


@jit(inline="always")
def list_l2_lut(lst, has_table, l2_table, centroids, codebooks_t, cb_sq_norms, qlut, lut):
    """L2 lookup table of list ``lst`` for residual PQ into ``lut`` (m, ksub) f32.

    ``qlut`` (m, ksub) holds ``<q_sub, codeword>``; with the precomputed ``l2_table``
    (nlist, m, ksub) the entry is ``table - 2 qlut``, else it is rebuilt from the centroid:
    ``||codeword||^2 + 2 (<c_sub, codeword> - <q_sub, codeword>)``.
    """
    m, ksub = lut.shape
    if has_table:
        for j in range(m):
            for c in range(ksub):
                lut[j, c] = l2_table[lst, j, c] - np.float32(2.0) * qlut[j, c]
    else:
        inner_table_row(centroids[lst], codebooks_t, lut)
        for j in range(m):
            for c in range(ksub):
                lut[j, c] = cb_sq_norms[j, c] + np.float32(2.0) * (lut[j, c] - qlut[j, c])


@jit(inline="always")
def _scan_list(lut, codes, slots, start, stop, bias, hs, hi, n_cand):
    """ADC over rows ``start:stop`` of one list into the max-heap ``hs``/``hi`` of size ``n_cand``.

    Measured alternatives that were not faster here (CPU time, 30k x 384, m=48, nprobe=32):
    a separate scoring pass into a buffer before the heap pass (same), and blocks of 16 codes
    sharing each LUT row (1.5x slower inside this kernel, though 13% faster in isolation).
    """
    m = codes.shape[1]
    for i in range(stop - start):
        acc = bias
        for j in range(m):
            acc += lut[j, codes[start + i, j]]
        if acc < hs[0]:
            maxheap_replace_top(hs, hi, n_cand, acc, slots[start + i])


@jit(inline="always")
def query_tables(q, codebooks_t, metric):
    """Per-query ADC tables ``(qlut, lut)`` f32 (m, ksub): for L2 the query's inner-product table
    ``qlut`` (``lut`` is filled per probed list by :func:`list_l2_lut`); for IP ``lut`` is the
    negated query table, the same for every list."""
    m, _, ksub = codebooks_t.shape
    qlut = np.empty((m, ksub), np.float32)
    lut = np.empty((m, ksub), np.float32)
    if metric == METRIC_L2:
        inner_table_row(q, codebooks_t, qlut)
    else:
        scaled_table_row(q, codebooks_t, np.float32(-1.0), lut)
    return qlut, lut


@jit
def _ivfpq_query(q, lists, list_scores, centroids, codebooks_t, cb_sq_norms, l2_table, codes, slots, offsets,
                 sizes, metric, n_cand, vectors, os_, oi):
    """One query of :func:`ivfpq_search`: ADC over its probed ``lists`` (nprobe,), re-rank, into ``os_``/``oi`` (k,)."""
    nprobe = lists.shape[0]
    k = os_.shape[0]
    rerank = vectors.shape[0] > 0
    has_table = l2_table.shape[0] > 0
    qlut, lut = query_tables(q, codebooks_t, metric)
    hs = np.full(n_cand, np.inf, np.float32)
    hi = np.full(n_cand, -1, np.int64)
    for p in range(nprobe):
        lst = lists[p]
        if lst < 0:
            continue
        if metric == METRIC_L2:
            list_l2_lut(lst, has_table, l2_table, centroids, codebooks_t, cb_sq_norms, qlut, lut)
        start = offsets[lst]
        _scan_list(lut, codes, slots, start, start + sizes[lst], list_scores[p], hs, hi, n_cand)
    if rerank:
        for c in range(n_cand):  # start every candidate's load before scoring the first
            if hi[c] >= 0:
                prefetch_row(vectors, hi[c])
        for c in range(n_cand):
            slot = hi[c]
            if slot >= 0:
                s = score(metric, q, vectors[slot])
                if s < os_[0]:
                    maxheap_replace_top(os_, oi, k, s, slot)
        maxheap_sort(os_, oi, k)
    else:
        maxheap_sort(hs, hi, n_cand)
        for c in range(k):
            os_[c] = hs[c]
            oi[c] = hi[c]


@jit
def ivfpq_search(queries, probe_lists, probe_scores, centroids, codebooks_t, cb_sq_norms, l2_table, codes, slots,
                 offsets, sizes, metric, n_cand, vectors, out_scores, out_slots, start, stop):
    """IVF-PQ search of queries ``start .. stop - 1``: ADC over the probed lists, optionally exact re-rank
    of the best candidates. Serial: the index hands row ranges to its threads
    (:func:`vecsearch.parallel.run_shared`; a ``prange`` twin of this kernel cost ~2 s of compilation).

    ``queries`` (nq, d) f32; ``probe_lists`` (nq, nprobe) int64 (-1 = none) with their coarse
    scores ``probe_scores`` (nq, nprobe) f32 (``||q - c||^2`` for L2, ``-<q, c>`` for IP);
    ``centroids`` (nlist, d) f32; ``codebooks_t`` (m, dsub, ksub) f32; ``cb_sq_norms`` (m, ksub);
    ``l2_table`` (nlist, m, ksub) f32 precomputed L2 terms, or shape (0, m, ksub) to compute them
    per probed list; lists as in the module docstring. ``n_cand`` ADC candidates are kept per
    query; when ``vectors`` (n_slots, d) f32 is non-empty they are re-scored exactly and the best
    ``k`` kept. Writes ``out_scores`` (nq, k) f32 and ``out_slots`` (nq, k) int64, pre-filled with
    +inf / -1, best first.
    """
    for qi in range(start, stop):
        _ivfpq_query(queries[qi], probe_lists[qi], probe_scores[qi], centroids, codebooks_t, cb_sq_norms,
                     l2_table, codes, slots, offsets, sizes, metric, n_cand, vectors, out_scores[qi],
                     out_slots[qi])
