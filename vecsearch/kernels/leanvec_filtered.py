"""ACORN-1 style filtered walk over the LeanVec/LVQ graph, scoring the primary (reduced, coded) vectors.

The graph and code layouts are those of :mod:`vecsearch.kernels.leanvec_graph` (read only). Like the
HNSW walk of :mod:`vecsearch.kernels.graph_filtered`: only nodes with ``allowed[node]`` are scored and
kept; a failing neighbor is not scored, but its own passing neighbors are (two-hop expansion),
so the walk crosses regions where the predicate fails. At most ``R // 2`` passing nodes are scored
per expansion (ACORN-1 truncates expanded lists the same way). The frontier starts from the graph's
entry point (scored for routing even when it fails) and from ``seeds`` (passing slots spread over
the allowed set).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import jit, jit_parallel
from .heaps import maxheap_push, maxheap_replace_top, maxheap_sort, minheap_pop, minheap_push
from .leanvec_graph import prefetch_vector, primary_score
from .lvq_codes import query_terms


@jit(inline="always")
def _offer(s, node, ef, n_cand, n_res, cand_s, cand_i, res_s, res_i):
    """Offer a scored passing node to the frontier and the result heap; returns ``(n_cand, n_res)``."""
    if n_res < ef:
        n_res = maxheap_push(res_s, res_i, n_res, s, node)
        n_cand = minheap_push(cand_s, cand_i, n_cand, s, node)
    elif s < res_s[0]:
        maxheap_replace_top(res_s, res_i, ef, s, node)
        n_cand = minheap_push(cand_s, cand_i, n_cand, s, node)
    return n_cand, n_res


@jit_parallel
def filtered_walk_codes(
    kind,
    mode,
    queries,
    mu,
    rows,
    fvecs,
    sqnorms,
    f16,
    neighbors,
    degrees,
    entry,
    n_nodes,
    ef,
    n_threads,
    allowed,
    seeds,
    out_ids,
    out_scores,
    out_count,
):
    """Filtered beam search of ``queries`` (nq, d) f32 (already projected) over the primary vectors.

    Storage and score arguments as :func:`vecsearch.kernels.leanvec_graph.search_codes`; ``allowed``
    bool (n,) (live and passing), ``seeds`` int64 (s,) passing entry slots. Writes the ``ef`` best
    passing candidates, ascending by walk score, into ``out_ids`` (nq, ef) int64 / ``out_scores``
    (nq, ef) f32 (pre-filled -1 / +inf) and their count into ``out_count`` (nq,) int64.
    """
    nq, d = queries.shape
    budget = max(1, neighbors.shape[1] // 2)
    for t in prange(n_threads):
        marks = np.zeros(n_nodes, np.uint32)
        epoch = np.uint32(0)
        cand_s = np.empty(n_nodes + 1, np.float32)
        cand_i = np.empty(n_nodes + 1, np.int64)
        qm = np.empty(d, np.float32)
        for qi in range(t, nq, n_threads):
            q = queries[qi]
            q_sum, q_mu = query_terms(q, mu, qm)
            epoch += np.uint32(1)
            res_s = out_scores[qi]
            res_i = out_ids[qi]
            n_res = 0
            s0 = primary_score(kind, mode, q, qm, q_sum, q_mu, rows, fvecs, sqnorms, entry, f16)
            marks[entry] = epoch
            n_cand = minheap_push(cand_s, cand_i, 0, s0, entry)
            if allowed[entry]:
                n_res = maxheap_push(res_s, res_i, 0, s0, entry)
            for a in range(seeds.shape[0]):
                node = seeds[a]
                if marks[node] != epoch:
                    marks[node] = epoch
                    s = primary_score(kind, mode, q, qm, q_sum, q_mu, rows, fvecs, sqnorms, node, f16)
                    n_cand, n_res = _offer(s, node, ef, n_cand, n_res, cand_s, cand_i, res_s, res_i)
            while n_cand > 0:
                if n_res >= ef and cand_s[0] > res_s[0]:
                    break
                c = cand_i[0]
                n_cand = minheap_pop(cand_s, cand_i, n_cand)
                n_scored = 0
                for j in range(degrees[c]):
                    nb = neighbors[c, j]
                    if allowed[nb] and marks[nb] != epoch:
                        prefetch_vector(kind, rows, fvecs, nb)
                for j in range(degrees[c]):
                    nb = neighbors[c, j]
                    if not allowed[nb] or marks[nb] == epoch:
                        continue
                    marks[nb] = epoch
                    n_scored += 1
                    s = primary_score(kind, mode, q, qm, q_sum, q_mu, rows, fvecs, sqnorms, nb, f16)
                    n_cand, n_res = _offer(s, nb, ef, n_cand, n_res, cand_s, cand_i, res_s, res_i)
                for j in range(degrees[c]):
                    if n_scored >= budget:
                        break
                    nb = neighbors[c, j]
                    if allowed[nb] or marks[nb] == epoch:
                        continue
                    marks[nb] = epoch
                    for j2 in range(degrees[nb]):
                        nb2 = neighbors[nb, j2]
                        # failing two-hop nodes stay unmarked: they may still be expanded as direct neighbors
                        if marks[nb2] == epoch or not allowed[nb2]:
                            continue
                        marks[nb2] = epoch
                        n_scored += 1
                        s = primary_score(kind, mode, q, qm, q_sum, q_mu, rows, fvecs, sqnorms, nb2, f16)
                        n_cand, n_res = _offer(s, nb2, ef, n_cand, n_res, cand_s, cand_i, res_s, res_i)
            maxheap_sort(res_s, res_i, n_res)
            out_count[qi] = n_res
