"""Filtered graph-walk kernels: the ACORN-1 walk and the collecting beam over an HNSW graph.

The mask is a bool array over slots (``allowed[s]`` True when slot ``s`` passes the predicate
and is live). The walks read the HNSW graph arrays of :mod:`vecsearch.kernels.hnsw_graph` (read
only; separate specializations, so the unfiltered walk carries no per-node filter branch). The
exact scans are in :mod:`vecsearch.kernels.exact`, the IVF-PQ masked list scan in
:mod:`vecsearch.kernels.ivf_masked`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._jit import jit, jit_parallel
from .distances import METRIC_L2, score
from .heaps import maxheap_push, maxheap_replace_top, maxheap_sort, minheap_pop, minheap_push
from .hnsw_graph import greedy_descend, rerank_exact, walk_query_terms, walk_score
from .lvq_codes import KIND_LVQ8, lvq_ip, lvq_l2
from .prefetch import prefetch_at, prefetch_row
from .visited import next_epoch


# ---- ACORN-1 style filtered walk over an HNSW graph ----------------------------------------------
# Graph layout as in vecsearch.kernels.hnsw_graph (read, never written here): ``links0`` int32 (n, 2M) +
# ``counts0`` int32 (n,) for level 0; upper levels in ``upper_links`` int32 (rows, M) +
# ``upper_counts`` int32 (rows,), node ``u``'s level-l list at row ``upper_start[u] + l - 1``.
@jit(inline="always")
def _consider(d, node, ef, n_cand, n_top, cand_s, cand_i, top_s, top_i):
    """Offer a scored passing node to the frontier and the result heap; returns ``(n_cand, n_top)``."""
    if n_top < ef or d < top_s[0]:
        n_cand = minheap_push(cand_s, cand_i, n_cand, d, node)
        if n_top < ef:
            n_top = maxheap_push(top_s, top_i, n_top, d, node)
        else:
            maxheap_replace_top(top_s, top_i, ef, d, node)
    return n_cand, n_top


@jit
def filtered_walk_query(metric, q, k, ef, vectors, links0, counts0, upper_links, upper_counts, upper_start,
                        entry, max_level, allowed, seeds, visited, epoch, cand_s, cand_i, top_s, top_i,
                        out_slots, out_scores):
    """One query's ACORN-1 walk; best ``k`` passing nodes into ``out_slots``/``out_scores`` (k,).

    Level 0 is searched best-first where only nodes with ``allowed[node]`` are scored and kept;
    a failing neighbor is not scored but its own neighbors are checked (two-hop expansion), so the
    walk crosses regions where the predicate fails. Per expansion at most the list width (2M)
    passing nodes are scored (direct neighbors first), like ACORN-1's truncated neighbor lists. The frontier starts from the upper-level
    descent's node and from ``seeds`` (int64, passing slots spread over the allowed set).
    """
    d_cur = score(metric, q, vectors[entry])
    cur, d_cur = greedy_descend(metric, q, vectors, links0, counts0, upper_links, upper_counts, upper_start, entry, d_cur,
                                max_level, 0, q, np.float32(0.0), np.float32(0.0), np.empty((0, 1), np.uint8),
                                np.empty(0, np.float32))
    visited[cur] = epoch
    cand_s[0] = d_cur
    cand_i[0] = cur
    n_cand = 1
    n_top = 0
    if allowed[cur]:
        top_s[0] = d_cur
        top_i[0] = cur
        n_top = 1
    for j in range(seeds.shape[0]):
        s = seeds[j]
        if visited[s] != epoch:
            visited[s] = epoch
            n_cand, n_top = _consider(score(metric, q, vectors[s]), s, ef, n_cand, n_top, cand_s, cand_i, top_s, top_i)
    budget = links0.shape[1] // 2  # passing nodes per expansion (M); ACORN-1 also truncates expanded lists
    while n_cand > 0:
        if n_top == ef and cand_s[0] > top_s[0]:
            break
        c = cand_i[0]
        n_cand = minheap_pop(cand_s, cand_i, n_cand)
        row = links0[c]
        cnt = counts0[c]
        n_scored = 0
        for t in range(cnt):
            nb = row[t]
            if allowed[nb] and visited[nb] != epoch:
                visited[nb] = epoch
                n_scored += 1
                n_cand, n_top = _consider(score(metric, q, vectors[nb]), nb, ef, n_cand, n_top,
                                          cand_s, cand_i, top_s, top_i)
        for t in range(cnt):
            if n_scored >= budget:
                break
            nb = row[t]
            if allowed[nb] or visited[nb] == epoch:
                continue
            visited[nb] = epoch
            row2 = links0[nb]
            for t2 in range(counts0[nb]):
                nb2 = row2[t2]
                # failing 2-hop nodes stay unvisited: they may still be expanded as direct neighbors
                if visited[nb2] == epoch or not allowed[nb2]:
                    continue
                visited[nb2] = epoch
                n_scored += 1
                n_cand, n_top = _consider(score(metric, q, vectors[nb2]), nb2, ef, n_cand, n_top,
                                          cand_s, cand_i, top_s, top_i)
    maxheap_sort(top_s, top_i, n_top)
    for j in range(min(k, n_top)):
        out_slots[j] = top_i[j]
        out_scores[j] = top_s[j]


@jit_parallel
def filtered_walk_batch(metric, queries, k, ef, vectors, links0, counts0, upper_links, upper_counts, upper_start,
                        entry, max_level, allowed, seeds, visited, epochs, cand_s, cand_i, top_s, top_i,
                        out_slots, out_scores):
    """ACORN-1 filtered k-NN of ``queries`` (nq, d) f32 over an HNSW graph, parallel over queries.

    ``allowed`` bool (n,) (live and passing), ``seeds`` int64 (s,) passing entry slots. Scratch
    rows by thread id: ``visited`` uint8 (T, n) + ``epochs`` int32 (T,), ``cand_s``/``cand_i``
    f32/int32 (T, n), ``top_s``/``top_i`` f32/int32 (T, >= ef). Outputs (nq, k) int64 / f32,
    pre-filled -1 / +inf.
    """
    for qi in prange(queries.shape[0]):
        tid = numba.get_thread_id()
        epoch = next_epoch(visited, epochs, tid)
        filtered_walk_query(metric, queries[qi], k, ef, vectors, links0, counts0, upper_links, upper_counts,
                            upper_start, entry, max_level, allowed, seeds, visited[tid], epoch, cand_s[tid],
                            cand_i[tid], top_s[tid], top_i[tid], out_slots[qi], out_scores[qi])


@jit
def filtered_walk_serial(metric, queries, k, ef, vectors, links0, counts0, upper_links, upper_counts, upper_start,
                         entry, max_level, allowed, seeds, visited, epochs, cand_s, cand_i, top_s, top_i,
                         out_slots, out_scores):
    """Same as :func:`filtered_walk_batch` on the calling thread (scratch row 0): the low-latency path."""
    for qi in range(queries.shape[0]):
        epoch = next_epoch(visited, epochs, 0)
        filtered_walk_query(metric, queries[qi], k, ef, vectors, links0, counts0, upper_links, upper_counts,
                            upper_start, entry, max_level, allowed, seeds, visited[0], epoch, cand_s[0],
                            cand_i[0], top_s[0], top_i[0], out_slots[qi], out_scores[qi])


# ---- HNSW: unfiltered beam that collects the passing nodes it scores -----------------------------
# The beam's first look at the local selectivity counts at least this many two-hop ids (about 16
# passing ones expected at the 5% floor of beam_collect; a random filter trips the 0.5 ratio by
# chance at ~3 standard deviations).
PRE_PROBE_MIN_SEEN = 320
# It gives up only below this fraction of ``min_local``: the two-hop sample reaches farther than
# the nodes the beam scores first, and a filter centred on the query can pass sparsely there
# (116k, correlated 50%: giving up at ``min_local`` itself sent a few rows to a 58k-row scan).
PRE_PROBE_RATIO = 0.5


@jit(inline="always")
def _two_hop_passing(links0, counts0, allowed, node):
    """``(ids seen, ids passing)`` over ``node``'s level-0 neighbors and theirs (repeats counted)."""
    seen = 0
    passed = 0
    row = links0[node]
    for t in range(counts0[node]):
        nb = row[t]
        seen += 1
        passed += np.int64(allowed[nb])
        row2 = links0[nb]
        for t2 in range(counts0[nb]):
            seen += 1
            passed += np.int64(allowed[row2[t2]])
    return seen, passed


@jit
def beam_collect_query(metric, q, k, ef, vectors, links0, counts0, upper_links, upper_counts, upper_start,
                       entry, max_level, allowed, visited, epoch, cand_s, cand_i, top_s, top_i,
                       min_local, min_scored, pre_probe, codes, mu, f16, n_rerank, out_slots, out_scores,
                       out_counts):
    """One query's unfiltered HNSW beam (width ``ef``) that keeps the best ``k`` passing nodes it scores.

    The walk is exactly the unfiltered level-0 search (every node may enter the beam, so it
    navigates as well as without a filter and stops where it would); every scored node with
    ``allowed[node]`` is offered to a size-``k`` result heap. Cost: the unfiltered search plus
    one mask read per scored node. Recall falls with selectivity (fewer passing nodes near the
    query are scored), so the planner widens ``ef`` as selectivity drops and checks for short rows.
    ``out_slots``/``out_scores`` (k,) receive the results best first, padded -1 / +inf;
    ``out_counts`` int64 (2,) how many level-0 nodes were scored and how many of them passed (the
    local selectivity around the query, which exposes filters anti-correlated with it). Once
    ``min_scored`` nodes were scored, the walk gives up as soon as fewer than ``min_local`` of them
    passed (the row will be answered again: finishing the beam would be wasted); it gives up
    before scoring (``pre_probe``) when the two-hop neighborhood of its level-0 entry already
    passes at a rate below ``PRE_PROBE_RATIO * min_local``. With LVQ8
    ``codes`` (``codes.shape[0] > 0``, as in :func:`vecsearch.kernels.hnsw_graph.search_query`) level 0
    is walked on the codes, the best ``n_rerank`` passing nodes are kept and re-scored exactly.
    """
    use_codes = codes.shape[0] > 0
    qm, q_sum, q_mu = walk_query_terms(q, mu, use_codes)
    d_cur = walk_score(metric, q, qm, q_sum, q_mu, vectors, codes, f16, entry)
    cur, d_cur = greedy_descend(metric, q, vectors, links0, counts0, upper_links, upper_counts, upper_start, entry, d_cur,
                                max_level, 0, qm, q_sum, q_mu, codes, f16)
    for j in range(k):
        out_scores[j] = np.inf
        out_slots[j] = -1
    # Free first look: the share of passing nodes among the descent's level-0 node's two-hop
    # neighborhood (mask reads only). Far below ``min_local`` (PRE_PROBE_RATIO of it) the filter
    # fails around the query: give up before scoring anything.
    if pre_probe:
        seen, passed = _two_hop_passing(links0, counts0, allowed, cur)
        if seen >= PRE_PROBE_MIN_SEEN and passed < PRE_PROBE_RATIO * min_local * seen:
            out_counts[0] = seen
            out_counts[1] = passed
            return
    n_res = k
    res_s = out_scores  # the result max-heap lives in the output row (float walk)
    res_i = out_slots
    if use_codes:
        n_res = max(n_rerank, k)
        res_s = np.full(n_res, np.inf, np.float32)
        res_i = np.full(n_res, -1, np.int64)
    visited[cur] = epoch
    cand_s[0] = d_cur
    cand_i[0] = cur
    n_cand = 1
    top_s[0] = d_cur
    top_i[0] = cur
    n_top = 1
    n_scored = 1
    n_passed = 0
    if allowed[cur]:
        maxheap_replace_top(res_s, res_i, n_res, d_cur, cur)
        n_passed = 1
    while n_cand > 0:
        if n_top == ef and cand_s[0] > top_s[0]:
            break
        if n_scored >= min_scored and n_passed < min_local * n_scored:
            break
        c = cand_i[0]
        n_cand = minheap_pop(cand_s, cand_i, n_cand)
        row = links0[c]
        cnt = counts0[c]
        for t in range(cnt):
            if visited[row[t]] != epoch:
                if use_codes:
                    for b in range(0, codes.shape[1], 64):
                        prefetch_at(codes, row[t], b)
                else:
                    prefetch_row(vectors, row[t])
        for t in range(cnt):
            nb = row[t]
            if visited[nb] == epoch:
                continue
            visited[nb] = epoch
            # scored inline: walk_score inlined here measured 1.5x slower (numba IR inlining)
            if use_codes:
                if metric == METRIC_L2:
                    d = lvq_l2(KIND_LVQ8, qm, codes[nb], f16)
                else:
                    d = -lvq_ip(KIND_LVQ8, q, q_sum, q_mu, codes[nb], f16)
            else:
                d = score(metric, q, vectors[nb])
            n_scored += 1
            if allowed[nb]:
                n_passed += 1
                if d < res_s[0]:
                    maxheap_replace_top(res_s, res_i, n_res, d, nb)
            if n_top < ef or d < top_s[0]:
                n_cand = minheap_push(cand_s, cand_i, n_cand, d, nb)
                if n_top < ef:
                    n_top = maxheap_push(top_s, top_i, n_top, d, nb)
                else:
                    maxheap_replace_top(top_s, top_i, ef, d, nb)
    if use_codes:
        maxheap_sort(res_s, res_i, n_res)
        n_found = 0
        while n_found < n_res and res_i[n_found] >= 0:
            n_found += 1
        rerank_exact(metric, q, vectors, res_i, n_found, out_slots, out_scores)
    else:
        maxheap_sort(res_s, res_i, k)
    out_counts[0] = n_scored
    out_counts[1] = n_passed


@jit(inline="always")
def _beam_row_local_ratio(out_slots, counts, need):
    """Local selectivity of a finished beam row (passed / scored nodes), or -1.0 when the row
    holds fewer than ``need`` results (it must be answered again whatever the ratio)."""
    found = 0
    for j in range(out_slots.shape[0]):
        if out_slots[j] >= 0:
            found += 1
    if found < need:
        return np.float32(-1.0)
    return np.float32(counts[1] / max(counts[0], 1))


@jit_parallel
def beam_collect_batch(metric, queries, k, ef, vectors, links0, counts0, upper_links, upper_counts, upper_start,
                       entry, max_level, allowed, visited, epochs, cand_s, cand_i, top_s, top_i,
                       need, min_local, min_scored, pre_probe, codes, mu, f16, n_rerank, out_slots, out_scores,
                       out_local):
    """:func:`beam_collect_query` for ``queries`` (nq, d) f32, parallel over queries.

    Arguments as :func:`filtered_walk_batch` (without seeds); outputs (nq, k) int64 / f32 (filled
    here, padded -1 / +inf), and ``out_local`` f32 (nq,): each row's local selectivity (passed /
    scored nodes), -1 for rows with fewer than ``need`` results. A walk gives up once it has
    scored ``min_scored`` nodes with a local selectivity below ``min_local`` (with ``pre_probe``,
    already before scoring when its entry's two-hop neighborhood passes far less). ``codes``, ``mu``,
    ``f16``, ``n_rerank``: the optional LVQ8 walk (empty ``codes``: the float32 one). Returns how
    many rows are doubtful (``out_local < min_local``): to be answered again by a robust strategy.
    """
    for qi in prange(queries.shape[0]):
        tid = numba.get_thread_id()
        epoch = next_epoch(visited, epochs, tid)
        counts = np.zeros(2, np.int64)
        beam_collect_query(metric, queries[qi], k, ef, vectors, links0, counts0, upper_links, upper_counts,
                           upper_start, entry, max_level, allowed, visited[tid], epoch, cand_s[tid],
                           cand_i[tid], top_s[tid], top_i[tid], min_local, min_scored, pre_probe, codes, mu,
                           f16, n_rerank, out_slots[qi], out_scores[qi], counts)
        out_local[qi] = _beam_row_local_ratio(out_slots[qi], counts, need)
    n_doubtful = 0
    for qi in range(queries.shape[0]):
        if out_local[qi] < min_local:
            n_doubtful += 1
    return n_doubtful


@jit
def beam_collect_serial(metric, queries, k, ef, vectors, links0, counts0, upper_links, upper_counts, upper_start,
                        entry, max_level, allowed, visited, epochs, cand_s, cand_i, top_s, top_i,
                        need, min_local, min_scored, pre_probe, codes, mu, f16, n_rerank, out_slots, out_scores,
                       out_local):
    """Same as :func:`beam_collect_batch` on the calling thread (scratch row 0): the low-latency path."""
    counts = np.zeros(2, np.int64)
    n_doubtful = 0
    for qi in range(queries.shape[0]):
        epoch = next_epoch(visited, epochs, 0)
        beam_collect_query(metric, queries[qi], k, ef, vectors, links0, counts0, upper_links, upper_counts,
                           upper_start, entry, max_level, allowed, visited[0], epoch, cand_s[0],
                           cand_i[0], top_s[0], top_i[0], min_local, min_scored, pre_probe, codes, mu,
                           f16, n_rerank, out_slots[qi], out_scores[qi], counts)
        out_local[qi] = _beam_row_local_ratio(out_slots[qi], counts, need)
        if out_local[qi] < min_local:
            n_doubtful += 1
    return n_doubtful
