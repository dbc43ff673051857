"""HNSW graph kernels: layer walks, the diversity heuristic, batched parallel insertion, repair.

Graph layout (flat arrays, no numba lists; ``n`` = capacity in nodes, ``M`` = links per upper level)
-------------------------------------------------------------------------------------------------
* ``levels``       int32 ``(n,)``       top level of each node (0 = base layer only).
* ``links0``       int32 ``(n, 2M)``    level-0 neighbor lists; ``counts0`` int32 ``(n,)`` their lengths.
* ``upper_links``  int32 ``(rows, M)``  upper-level lists in one fixed-width block; node ``u`` owns
  ``levels[u]`` consecutive rows starting at ``upper_start[u]`` (int64 ``(n,)``, -1 when
  ``levels[u] == 0``): its level ``l >= 1`` list is row ``upper_start[u] + l - 1``.
  ``upper_counts`` int32 ``(rows,)`` holds the lengths.

Graph structure vs. distance
----------------------------
Everything that knows about levels, lists, linking and pruning goes through three small inlined
helpers: :func:`node_score` (query vs stored node), :func:`pair_score` (stored node vs stored
node) and the list accessors :func:`list_row` / :func:`list_len`. The distance is the only part
that depends on the storage: here ``vectors`` is float32 ``(n, dim)`` and the score is
``distances.score(metric, ...)`` (smaller is better: squared L2 or negative inner product). An
index walking the same graph over another storage (e.g. LeanVec/LVQ codes) adds a storage code
branch in ``node_score``/``pair_score`` (or a sibling pair of helpers over its code arrays) and
reuses the walk, heuristic and link logic unchanged: never pass a jitted distance as an argument
(it defeats the compile cache).

Parallel insertion (race-free, reproducible)
--------------------------------------------
Nodes are inserted in batches. Phase 1 (:func:`insert_batch_search`, parallel over the batch)
searches the graph as it was before the batch (read-only) plus, by brute force, the batch-mates
inserted before it, selects each new node's neighbors with the heuristic and writes the new
node's own lists and its reverse-link proposals (its own slice of a preallocated buffer).
Phase 2 (:func:`apply_reverse_links`, parallel over owners) applies the proposals: owner ``t``
handles only target nodes with ``target % n_owners == t``, in proposal order, pruning full lists
with the heuristic. No two threads ever write the same list, and the result does not depend on
the number of threads (pynndescent's proposal/apply scheme).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._jit import jit, jit_parallel
from .distances import METRIC_L2, score
from .heaps import maxheap_push, maxheap_replace_top, maxheap_sort, minheap_pop, minheap_push
from .lvq_codes import KIND_LVQ8, lvq_ip, lvq_l2, query_terms
from .prefetch import prefetch_at, prefetch_row
from .visited import next_epoch


# ---- distances (the only storage-dependent part) ---------------------------------------------
@jit(inline="always")
def node_score(metric, query, vectors, node):
    """Score of ``query`` (d,) f32 against stored node ``node``; smaller is better."""
    return score(metric, query, vectors[node])


@jit(inline="always")
def pair_score(metric, vectors, a, b):
    """Score between two stored nodes ``a`` and ``b``."""
    return score(metric, vectors[a], vectors[b])


@jit(inline="always")
def walk_score(metric, query, qm, q_sum, q_mu, vectors, codes, f16, node):
    """Query score of ``node`` on the walk's storage: LVQ8 ``codes`` (n, d + 4) uint8 when given
    (``codes.shape[0] > 0``; ``qm``, ``q_sum``, ``q_mu`` from :func:`vecsearch.kernels.lvq_codes.query_terms`),
    else the float32 ``vectors``. For one-off scores (a walk's entry): the walks' inner loops
    spell the same branch out, since this helper inlined there measured 1.5x slower (numba's IR
    inlining; 116k x 384, ef 64: 225 vs 148 us on the float path)."""
    if codes.shape[0] > 0:
        if metric == METRIC_L2:
            return lvq_l2(KIND_LVQ8, qm, codes[node], f16)
        return -lvq_ip(KIND_LVQ8, query, q_sum, q_mu, codes[node], f16)
    return node_score(metric, query, vectors, node)


@jit(inline="always")
def walk_query_terms(q, mu, use_codes):
    """``(qm, q_sum, q_mu)`` for :func:`walk_score` on codes (:func:`vecsearch.kernels.lvq_codes.query_terms`),
    or an unused buffer and zeros when the walk reads the float32 vectors."""
    qm = np.empty(q.shape[0], np.float32)
    q_sum = np.float32(0.0)
    q_mu = np.float32(0.0)
    if use_codes:
        q_sum, q_mu = query_terms(q, mu, qm)
    return qm, q_sum, q_mu


@jit(inline="always")
def rerank_exact(metric, query, vectors, cand_i, n_cand, out_slots, out_scores):
    """Re-score ``cand_i[:n_cand]`` with the float32 ``vectors``; best ``k`` into ``out_slots``/``out_scores``
    (k,) pre-filled -1 / +inf, sorted best first."""
    for j in range(n_cand):
        prefetch_row(vectors, cand_i[j])
    k = out_slots.shape[0]
    for j in range(n_cand):
        node = cand_i[j]
        s = score(metric, query, vectors[node])
        if s < out_scores[0]:
            maxheap_replace_top(out_scores, out_slots, k, s, node)
    maxheap_sort(out_scores, out_slots, k)


# ---- list accessors ---------------------------------------------------------------------------
@jit(inline="always")
def list_row(links0, upper_links, upper_start, node, level):
    """Neighbor list storage of ``node`` at ``level``: an int32 row (length 2M at level 0, else M)."""
    if level == 0:
        return links0[node]
    return upper_links[upper_start[node] + level - 1]


@jit(inline="always")
def list_len(counts0, upper_counts, upper_start, node, level):
    """Number of links of ``node`` at ``level``."""
    if level == 0:
        return counts0[node]
    return upper_counts[upper_start[node] + level - 1]


@jit(inline="always")
def set_list_len(counts0, upper_counts, upper_start, node, level, value):
    if level == 0:
        counts0[node] = value
    else:
        upper_counts[upper_start[node] + level - 1] = value


# ---- walks ------------------------------------------------------------------------------------
@jit(inline="always")
def greedy_descend(
    metric,
    query,
    vectors,
    links0,
    counts0,
    upper_links,
    upper_counts,
    upper_start,
    cur,
    d_cur,
    top_level,
    stop_level,
    qm,
    q_sum,
    q_mu,
    codes,
    f16,
):
    """Greedy walk (ef=1) on levels ``top_level`` down to ``stop_level + 1``; returns (node, score).

    Nodes are scored on the LVQ8 ``codes`` when given (``codes.shape[0] > 0``, terms as in
    :func:`walk_score`; ``d_cur`` must then be a code score too), else on the float32 ``vectors``.
    The upper-level nodes are scattered over the whole index, so each score is a cache miss: the
    codes (a quarter of the bytes) made the descent ~2x cheaper on 116k x 384.
    """
    use_codes = codes.shape[0] > 0
    for level in range(top_level, stop_level, -1):
        changed = True
        while changed:
            changed = False
            row = list_row(links0, upper_links, upper_start, cur, level)
            cnt = list_len(counts0, upper_counts, upper_start, cur, level)
            for t in range(cnt):
                nb = row[t]
                if use_codes:  # walk_score spelled out (see its docstring)
                    if metric == METRIC_L2:
                        d = lvq_l2(KIND_LVQ8, qm, codes[nb], f16)
                    else:
                        d = -lvq_ip(KIND_LVQ8, query, q_sum, q_mu, codes[nb], f16)
                else:
                    d = node_score(metric, query, vectors, nb)
                if d < d_cur:
                    d_cur = d
                    cur = nb
                    changed = True
    return cur, d_cur


@jit(inline="always")
def beam_search(
    metric,
    query,
    vectors,
    links0,
    counts0,
    upper_links,
    upper_counts,
    upper_start,
    level,
    ep,
    d_ep,
    ef,
    deleted,
    skip_deleted,
    visited,
    epoch,
    cand_s,
    cand_i,
    top_s,
    top_i,
    qm,
    q_sum,
    q_mu,
    codes,
    f16,
):
    """Best-first search of one level from ``ep``; returns how many results the max-heap holds.

    ``visited`` uint8 (n,) with the current ``epoch``; ``cand_s``/``cand_i`` (>= n) f32/int32 are
    the frontier min-heap; ``top_s``/``top_i`` (>= ef) f32/int32 receive the ``ef`` best as a
    max-heap (worst at 0). With ``skip_deleted``, nodes flagged in ``deleted`` (bool) are walked
    through but never enter the results, and the walk continues until ``ef`` live results exist
    or the reachable graph is exhausted. Nodes are scored by :func:`walk_score` (on LVQ8 ``codes``
    when given, ``d_ep`` included; the build passes none).
    """
    use_codes = codes.shape[0] > 0
    visited[ep] = epoch
    cand_s[0] = d_ep
    cand_i[0] = ep
    n_cand = 1
    n_top = 0
    if not (skip_deleted and deleted[ep]):
        top_s[0] = d_ep
        top_i[0] = ep
        n_top = 1
    while n_cand > 0:
        c_s = cand_s[0]
        if n_top == ef and c_s > top_s[0]:
            break
        c = cand_i[0]
        n_cand = minheap_pop(cand_s, cand_i, n_cand)
        row = list_row(links0, upper_links, upper_start, c, level)
        cnt = list_len(counts0, upper_counts, upper_start, c, level)
        # Start loading every unvisited neighbor's vector before scoring the first one.
        for t in range(cnt):
            if visited[row[t]] != epoch:
                if use_codes:  # every cache line of a code row
                    for b in range(0, codes.shape[1], 64):
                        prefetch_at(codes, row[t], b)
                else:
                    prefetch_row(vectors, row[t])
        for t in range(cnt):
            nb = row[t]
            if visited[nb] == epoch:
                continue
            visited[nb] = epoch
            if use_codes:  # walk_score spelled out (see its docstring)
                if metric == METRIC_L2:
                    d = lvq_l2(KIND_LVQ8, qm, codes[nb], f16)
                else:
                    d = -lvq_ip(KIND_LVQ8, query, q_sum, q_mu, codes[nb], f16)
            else:
                d = node_score(metric, query, vectors, nb)
            if n_top < ef or d < top_s[0]:
                n_cand = minheap_push(cand_s, cand_i, n_cand, d, nb)
                if not (skip_deleted and deleted[nb]):
                    if n_top < ef:
                        n_top = maxheap_push(top_s, top_i, n_top, d, nb)
                    else:
                        maxheap_replace_top(top_s, top_i, ef, d, nb)
    return n_top


# ---- search -----------------------------------------------------------------------------------
@jit
def search_query(
    metric,
    q,
    k,
    ef,
    vectors,
    links0,
    counts0,
    upper_links,
    upper_counts,
    upper_start,
    entry,
    max_level,
    deleted,
    has_deleted,
    visited,
    epochs,
    tid,
    cand_s,
    cand_i,
    top_s,
    top_i,
    codes,
    mu,
    f16,
    n_rerank,
    out_slots,
    out_scores,
):
    """Search one query: greedy descent to level 0, beam search with ``ef``, best ``k`` into out rows
    (filled here: padded -1 / +inf).

    With LVQ8 ``codes`` (n, d + 4) uint8, global mean ``mu`` (d,) f32 and the float16 table
    ``f16`` (``codes.shape[0] == 0``: none), level 0 is walked on the codes and its best
    ``n_rerank`` nodes are re-scored with the float32 ``vectors`` (scores returned are exact).
    """
    use_codes = codes.shape[0] > 0
    for j in range(k):  # padding for rows with fewer than k results
        out_slots[j] = -1
        out_scores[j] = np.inf
    qm, q_sum, q_mu = walk_query_terms(q, mu, use_codes)
    d_cur = walk_score(metric, q, qm, q_sum, q_mu, vectors, codes, f16, entry)
    cur, d_cur = greedy_descend(
        metric,
        q,
        vectors,
        links0,
        counts0,
        upper_links,
        upper_counts,
        upper_start,
        entry,
        d_cur,
        max_level,
        0,
        qm,
        q_sum,
        q_mu,
        codes,
        f16,
    )
    epoch = next_epoch(visited, epochs, tid)
    n_top = beam_search(
        metric,
        q,
        vectors,
        links0,
        counts0,
        upper_links,
        upper_counts,
        upper_start,
        0,
        cur,
        d_cur,
        ef,
        deleted,
        has_deleted,
        visited[tid],
        epoch,
        cand_s,
        cand_i,
        top_s,
        top_i,
        qm,
        q_sum,
        q_mu,
        codes,
        f16,
    )
    maxheap_sort(top_s, top_i, n_top)
    if use_codes:
        rerank_exact(metric, q, vectors, top_i, min(n_rerank, n_top), out_slots, out_scores)
    else:
        for j in range(min(k, n_top)):
            out_slots[j] = top_i[j]
            out_scores[j] = top_s[j]


@jit_parallel
def search_batch(
    metric,
    queries,
    k,
    ef,
    vectors,
    links0,
    counts0,
    upper_links,
    upper_counts,
    upper_start,
    entry,
    max_level,
    deleted,
    has_deleted,
    visited,
    epochs,
    cand_s,
    cand_i,
    top_s,
    top_i,
    codes,
    mu,
    f16,
    n_rerank,
    out_slots,
    out_scores,
):
    """k-NN of ``queries`` (nq, d) f32, parallel over queries; out (nq, k) int64 / f32, filled here (padded -1 / +inf).

    Per-thread scratch (rows by thread id): ``visited`` uint8 (T, n) + ``epochs`` (T,),
    ``cand_s``/``cand_i`` f32/int32 (T, n), ``top_s``/``top_i`` f32/int32 (T, >= ef). ``codes``,
    ``mu``, ``f16``, ``n_rerank``: the optional LVQ8 walk of :func:`search_query`.
    """
    for qi in prange(queries.shape[0]):
        tid = numba.get_thread_id()
        search_query(
            metric,
            queries[qi],
            k,
            ef,
            vectors,
            links0,
            counts0,
            upper_links,
            upper_counts,
            upper_start,
            entry,
            max_level,
            deleted,
            has_deleted,
            visited,
            epochs,
            tid,
            cand_s[tid],
            cand_i[tid],
            top_s[tid],
            top_i[tid],
            codes,
            mu,
            f16,
            n_rerank,
            out_slots[qi],
            out_scores[qi],
        )


@jit
def search_serial(
    metric,
    queries,
    k,
    ef,
    vectors,
    links0,
    counts0,
    upper_links,
    upper_counts,
    upper_start,
    entry,
    max_level,
    deleted,
    has_deleted,
    visited,
    epochs,
    cand_s,
    cand_i,
    top_s,
    top_i,
    codes,
    mu,
    f16,
    n_rerank,
    out_slots,
    out_scores,
):
    """Same as :func:`search_batch` on the calling thread only (scratch row 0): the low-latency path."""
    for qi in range(queries.shape[0]):
        search_query(
            metric,
            queries[qi],
            k,
            ef,
            vectors,
            links0,
            counts0,
            upper_links,
            upper_counts,
            upper_start,
            entry,
            max_level,
            deleted,
            has_deleted,
            visited,
            epochs,
            0,
            cand_s[0],
            cand_i[0],
            top_s[0],
            top_i[0],
            codes,
            mu,
            f16,
            n_rerank,
            out_slots[qi],
            out_scores[qi],
        )
