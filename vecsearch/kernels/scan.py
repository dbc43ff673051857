"""Scans over stored rows: the exact top-k (Flat, the filtered exact scan) and the code scan re-ranked.

One per-query function, :func:`scan_query`, serves every scan: rows of a
:class:`~vecsearch.kernels.storage.Storage` (float32 for an exact scan, compressed codes for a
code scan) are scored, the best ``n_cand`` kept, and, when a second storage ``sec`` is given, re-scored
with it (the full float32 vectors) so the scores returned are exact. Rows scanned: a list of
``rows`` when given, else the ``r`` with ``mask[r]``, else ``0 .. n_rows - 1``.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit
from .candidates import EMPTY, candidate_key, candidate_slot, heap_replace_top, pack_candidate
from .distances import score
from .graph_walk import rerank_into
from .heaps import maxheap_replace_top, maxheap_sort
from .storage import (
    STORE_NONE,
    f32_score,
    lvq8_score,
    query_terms,
    score_row,
    storage_score,
    walk_flags,
)


@jit
def scan_query(st, sec, q, q_full, n_rows, rows, mask, n_cand, out_slots, out_scores):
    """Top-``k`` (``k = out_slots.shape[0]``) of one query over the selected rows of ``st``.

    ``q`` (d,) f32 in ``st``'s space, ``q_full`` the query for ``sec``; ``rows`` int64 (m,), ``mask``
    bool (n,) (empty when unused). Without ``sec`` (``STORE_NONE``) the best ``k`` scores of ``st``
    are returned; with it the best ``max(n_cand, k)`` are re-scored by ``sec``. ``out_slots`` int64 /
    ``out_scores`` f32 (k,) pre-filled -1 / +inf; ascending on return.
    """
    k = out_slots.shape[0]
    rerank = sec[0] != STORE_NONE
    if rerank:
        n_res = max(n_cand, k)
        res_s = np.full(n_res, np.inf, np.float32)
        res_i = np.full(n_res, -1, np.int64)
    else:
        n_res = k
        res_s = out_scores
        res_i = out_slots
    qm = np.empty(q.shape[0], np.float32)
    q_sum, q_mu = query_terms(st, q, qm)
    kind, mode, f32, u16, codes, _mu, norms, f16 = st
    fast, l2, lvq8, via_ip, qv = walk_flags(kind, mode, q, qm)
    use_rows, use_mask = rows.shape[0] > 0, mask.shape[0] > 0
    n_iter = rows.shape[0] if use_rows else (mask.shape[0] if use_mask else n_rows)
    for j in range(n_iter):
        r = rows[j] if use_rows else j
        if use_mask and not mask[r]:
            continue
        if fast:
            s = f32_score(l2, q, f32[r])
        elif lvq8:
            s = lvq8_score(l2, qv, q_sum, q_mu, codes[r], f16)
            if via_ip:
                s = norms[r] + np.float32(2.0) * s
        else:
            s = score_row(kind, mode, f32, u16, codes, norms, f16, q, qm, q_sum, q_mu, np.int64(r))
        if s < res_s[0]:
            maxheap_replace_top(res_s, res_i, n_res, s, r)
    maxheap_sort(res_s, res_i, n_res)
    if rerank:
        n_found = 0
        while n_found < n_res and res_i[n_found] >= 0:
            n_found += 1
        rerank_into(sec, q_full, res_i, n_found, out_slots, out_scores)


@jit
def scan_rows(st, sec, queries, queries_full, start, stop, n_rows, rows, mask, n_cand, out_slots, out_scores):
    """:func:`scan_query` for rows ``start .. stop - 1`` of ``queries`` (nq, d) / ``queries_full`` (nq, D);
    outputs (nq, k) pre-filled -1 / +inf. Threads call it on disjoint row ranges."""
    for qi in range(start, stop):
        scan_query(st, sec, queries[qi], queries_full[qi], n_rows, rows, mask, n_cand, out_slots[qi], out_scores[qi])


@jit
def rescore_sorted(st, queries, rows, scores):
    """Recompute ``scores`` (nq, k) f32 of ``rows`` (nq, k) int64 (-1 = padding) with ``st`` and re-sort.

    Used after a BLAS pre-selection, whose ``||x||^2 - 2<q,x> + ||q||^2`` form loses precision for
    near neighbours; rows stay ascending by the exact score, padding last.
    """
    k = rows.shape[1]
    for qi in range(queries.shape[0]):
        q = queries[qi]
        qm = np.empty(q.shape[0], np.float32)
        q_sum, q_mu = query_terms(st, q, qm)
        for j in range(k):
            r = rows[qi, j]
            if r >= 0:
                scores[qi, j] = storage_score(st, q, qm, q_sum, q_mu, np.int64(r))
        for j in range(1, k):  # insertion sort: k is small and the order is already nearly right
            s = scores[qi, j]
            r = rows[qi, j]
            i = j - 1
            while i >= 0 and scores[qi, i] > s:
                scores[qi, i + 1] = scores[qi, i]
                rows[qi, i + 1] = rows[qi, i]
                i -= 1
            scores[qi, i + 1] = s
            rows[qi, i + 1] = r


@jit(inline="always")
def rerank_exact(metric, query, vectors, cand_i, n_cand, out_slots, out_scores):
    """Re-score ``cand_i[:n_cand]`` exactly with the float32 ``vectors`` (n, d) under ``metric``; best ``k``
    into ``out_slots``/``out_scores`` (k,) pre-filled -1 / +inf, sorted best first (equal scores by
    slot, so the order of the candidates does not matter)."""
    k = out_slots.shape[0]
    heap = np.full(k, EMPTY, np.int64)  # (score, slot) packed: equal scores by slot
    for j in range(n_cand):
        node = cand_i[j]
        cand = pack_candidate(score(metric, query, vectors[node]), node)
        if cand < heap[0]:
            heap_replace_top(heap, k, cand)
    heap.sort()
    for j in range(k):
        if heap[j] == EMPTY:
            break
        out_scores[j] = candidate_key(heap[j])
        out_slots[j] = candidate_slot(heap[j])
