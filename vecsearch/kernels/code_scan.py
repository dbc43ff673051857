"""Filtered scans over LVQ8 shadow codes, re-ranked with the float32 vectors.

A graph index keeps float32 vectors (``vectors`` (n, d)); scanning many allowed rows of them is
bound by memory bandwidth (1.5 KB per 384-d row). The LVQ8 codes of the same rows
(``codes`` (n, d + 4) uint8, :mod:`vecsearch.kernels.lvq_codes` layout, one global mean ``mu``) are a
quarter of the bytes: the scan keeps the ``n_cand`` best rows by their code score, and those are
scored again exactly, so the returned scores are the float32 ones and the top ``k`` differs from
the exact scan only when a true neighbor falls out of the ``n_cand`` code candidates.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import jit, jit_parallel
from .distances import METRIC_L2
from .heaps import maxheap_replace_top, maxheap_sort
from .hnsw_graph import rerank_exact
from .lvq_codes import KIND_LVQ8, lvq_ip, lvq_l2, query_terms
from .prefetch import prefetch_at

# Rows prefetched ahead of the one being scored (a 388-byte row is 7 cache lines).
PREFETCH_AHEAD = 8


@jit
def _codes_rows_query(metric, q, codes, mu, f16, rows, n_cand, vectors, out_scores, out_slots):
    d = q.shape[0]
    qm = np.empty(d, np.float32)
    q_sum, q_mu = query_terms(q, mu, qm)
    cand_s = np.full(n_cand, np.inf, np.float32)
    cand_i = np.full(n_cand, -1, np.int64)
    n_rows = rows.shape[0]
    row_bytes = codes.shape[1]
    for j in range(n_rows):
        if j + PREFETCH_AHEAD < n_rows:  # rows are sparse: the hardware prefetcher does not follow
            ahead = rows[j + PREFETCH_AHEAD]
            for b in range(0, row_bytes, 64):
                prefetch_at(codes, ahead, b)
        r = rows[j]
        if metric == METRIC_L2:
            s = lvq_l2(KIND_LVQ8, qm, codes[r], f16)
        else:
            s = -lvq_ip(KIND_LVQ8, q, q_sum, q_mu, codes[r], f16)
        if s < cand_s[0]:
            maxheap_replace_top(cand_s, cand_i, n_cand, s, r)
    maxheap_sort(cand_s, cand_i, n_cand)
    n_found = 0
    while n_found < n_cand and cand_i[n_found] >= 0:
        n_found += 1
    rerank_exact(metric, q, vectors, cand_i, n_found, out_slots, out_scores)


@jit
def topk_codes_rows_serial(metric, queries, codes, mu, f16, rows, n_cand, vectors, out_scores, out_slots):
    """Top-``k`` of ``queries`` (nq, d) f32 over ``rows`` (m,) int64: LVQ8 scan, exact re-rank.

    ``codes`` uint8 (>= max(rows) + 1, d + 4) LVQ8 rows with global mean ``mu`` (d,) f32 and the
    float16 table ``f16``; ``n_cand`` code candidates per query are re-scored with ``vectors``
    f32 (same rows). ``metric`` 0 = squared L2, 1 = negative inner product. Outputs
    ``out_scores`` f32 / ``out_slots`` int64 (nq, k), pre-filled +inf / -1, best first.
    """
    for qi in range(queries.shape[0]):
        _codes_rows_query(metric, queries[qi], codes, mu, f16, rows, n_cand, vectors, out_scores[qi],
                          out_slots[qi])


@jit_parallel
def topk_codes_rows(metric, queries, codes, mu, f16, rows, n_cand, vectors, out_scores, out_slots):
    """:func:`topk_codes_rows_serial`, parallel over queries."""
    for qi in prange(queries.shape[0]):
        _codes_rows_query(metric, queries[qi], codes, mu, f16, rows, n_cand, vectors, out_scores[qi],
                          out_slots[qi])
