"""The graph walk: greedy descent through the upper levels, then a best-first search, over any storage.

Every search of a graph index (HNSW over float32 rows or LVQ codes, LeanVec over reduced codes),
filtered or not, and every insertion's neighbour search run here, the package's two best-first
loops (:func:`best_first`, the plain walk; :func:`policy_walk`, the filtered ones: kept apart
because the policies' branches slowed the plain walk ~30%), parameterised by

* a :class:`~vecsearch.kernels.storage.Storage` (how to score a node), and
* a :class:`Policy` (which nodes may be returned and how the walk treats the others):

  - ``POLICY_PLAIN``: every node is walked and returned, except nodes flagged in ``deleted``;
  - ``POLICY_ACORN``: ACORN-1 filtered walk: only ``allowed`` nodes are scored and kept, a failing
    neighbour is expanded one more hop (at most M passing nodes scored per expansion), the
    frontier also starts from ``seeds``;
  - ``POLICY_COLLECT``: the plain walk, plus a second heap of the best ``allowed`` nodes it scored
    (every node when ``allowed`` is empty): faiss' ``IDSelector`` semantics for a filter, or a wide
    re-rank pool without a wider beam. It gives up early when, after ``min_scored`` nodes, fewer than
    ``min_local`` of them passed (the caller answers such rows again).

:func:`search_query` adds the re-rank: the best ``n_rerank`` walk candidates re-scored with a second
storage (the full float32 vectors behind a code walk), so returned distances are exact.

Graph layout (:class:`Graph`; ``n`` = capacity in nodes, ``M`` = links per upper level):
``links0`` int32 (n, 2M) + ``counts0`` int32 (n,) for level 0; upper levels in one fixed-width block
``upper_links`` int32 (rows, M) + ``upper_counts`` int32 (rows,): node ``u`` owns ``levels[u]`` rows
from ``upper_start[u]`` (int64 (n,), -1 without upper levels), its level ``l >= 1`` list is row
``upper_start[u] + l - 1``.

Scratch per thread row (:class:`vecsearch.indexes.scratch.WalkScratch`): ``visited`` uint8 epochs,
frontier min-heap ``cand_s``/``cand_i`` as wide as the graph, result max-heap ``top_s``/``top_i``.

Bundles cross from Python as plain tuples (``tuple(bundle)``: numba types a namedtuple argument ~4x
slower per call, a cost a single query feels) and kernels unpack them once at entry (reading a
tuple's arrays inside a loop makes numba count references at every read).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._jit import jit
from .heaps import maxheap_push, maxheap_replace_top, maxheap_sort, minheap_pop, minheap_push
from .prefetch import prefetch_at
from .storage import (
    MODE_L2,
    MODE_L2_VIA_IP,
    STORE_F32,
    STORE_LVQ8,
    STORE_NONE,
    f32_score,
    lvq8_score,
    prefetch_codes,
    prefetch_f32_row,
    prefetch_row_of,
    query_terms,
    score_row,
    storage_score,
    walk_flags,
)
from .visited import next_epoch

POLICY_PLAIN = 0
POLICY_ACORN = 1
POLICY_COLLECT = 2

# Software-pipelined loads (an A/B harness outside bench/, WordNet held-out part, 23k x 384, default HNSW,
# ef 56, one thread, 5 rounds against hnswlib in the same process): a walk
# over codes scores a list's new nodes while the code rows PREFETCH_AHEAD nodes ahead load (1.80x hnswlib
# against 1.70x loading the whole list first; 8 and 12 ahead 1.71-1.77x); the re-rank loads every line
# of the float32 rows RERANK_PREFETCH_AHEAD ahead (LeanVec re-ranking 56 rows: 104 -> 94 us per query;
# 1 or 4 ahead the same). A float32 walk keeps loading the first line of each new row at once (whole
# rows 1, 2 or 4 ahead: 0.87-0.92x hnswlib against 0.93x).
PREFETCH_AHEAD = 4
RERANK_PREFETCH_AHEAD = 2
# Codes beyond FAR_CODE_BYTES mostly come from DRAM, not cache: then PREFETCH_AHEAD_FAR rows ahead
# (more loads in flight). Same kind of A/B, 1M MiniLM token vectors (384 MB of LVQ8 codes), 2
# threads, 1,000 queries: 4 ahead 29.6-32.6k QPS at ef 10, 8-64 ahead 32.9-35.1k (16: 33.0-34.4k);
# at 100k (38 MB) 4 and 16 ahead within noise of each other; at 23k (9 MB) 4 is best (above).
FAR_CODE_BYTES = 128 << 20
PREFETCH_AHEAD_FAR = 16

# POLICY_COLLECT's free first look (``pre_probe``) at the share of passing nodes two hops around its
# level-0 entry counts at least this many ids (about 16 passing ones at 5% selectivity; a random
# filter trips the test by chance at ~3 standard deviations), and gives up only below
# PRE_PROBE_RATIO of ``min_local``: the two-hop sample reaches farther than the first scored nodes,
# and a filter centred on the query can pass sparsely there (116k, correlated 50%: giving up at
# ``min_local`` itself sent a few rows to a 58k-row scan).
PRE_PROBE_MIN_SEEN = 320
PRE_PROBE_RATIO = 0.5


class Graph(NamedTuple):
    """The HNSW link arrays (see the module docstring for shapes)."""

    links0: np.ndarray
    counts0: np.ndarray
    upper_links: np.ndarray
    upper_counts: np.ndarray
    upper_start: np.ndarray


class Policy(NamedTuple):
    """Which nodes a walk returns (see the module docstring). ``deleted`` bool (n,) with ``has_deleted``
    (``POLICY_PLAIN``); ``allowed`` bool (n,) (live and passing; empty: every node), ``seeds`` int64
    (s,) passing entries (``POLICY_ACORN``); ``min_local``, ``min_scored``, ``pre_probe`` (``POLICY_COLLECT``)."""

    kind: int
    deleted: np.ndarray
    has_deleted: bool
    allowed: np.ndarray
    seeds: np.ndarray
    min_local: float
    min_scored: int
    pre_probe: bool


# ---- list accessors ---------------------------------------------------------------------------
# Kernels unpack the bundles once at entry and pass the arrays to these helpers: reading a tuple's
# arrays inside a loop makes numba count references at every read (3x slower per score).
@jit(inline="always")
def list_row(links0, upper_links, upper_start, node, level):
    """Neighbour list storage of ``node`` at ``level``: an int32 row (length 2M at level 0, else M)."""
    if level == 0:
        return links0[node]
    return upper_links[upper_start[node] + level - 1]


@jit(inline="always")
def list_len(counts0, upper_counts, upper_start, node, level):
    """Number of links of ``node`` at ``level``."""
    if level == 0:
        return counts0[node]
    return upper_counts[upper_start[node] + level - 1]


# ---- the walks -------------------------------------------------------------------------------
@jit
def greedy_descend(g, st, q, qm, q_sum, q_mu, cur, d_cur, top_level, stop_level, deleted, visited, epochs, tid,
                   cand_s, cand_i, top_s, top_i):
    """Greedy walk on levels ``top_level`` down to ``stop_level + 1`` from ``cur`` (score ``d_cur``), as
    :func:`best_first` with a beam of one per level (HNSW's search with ef = 1: the same loop, so no
    second copy of the scoring code to compile); returns ``(node int64, score f32)``.

    Arguments as :func:`best_first` (``deleted`` is only passed through: the descent may route
    through deleted nodes), scratch row ``tid`` of ``visited`` (T, n) / ``epochs`` (T,).
    """
    keep_deleted = top_level < stop_level  # False, but not a literal: best_first's types stay the walk's
    for level in range(top_level, stop_level, -1):
        epoch = next_epoch(visited, epochs, tid)
        n_top = best_first(g, level, st, q, qm, q_sum, q_mu, cur, d_cur, np.int64(1), deleted, keep_deleted,
                           visited[tid], epoch, cand_s, cand_i, top_s, top_i)
        if n_top > 0:
            cur = np.int64(top_i[0])
            d_cur = top_s[0]
    return cur, d_cur


@jit(inline="always")
def _offer(d, node, ef, keep, n_cand, n_top, cand_s, cand_i, top_s, top_i):
    """Offer a scored node to the frontier and (``keep``) the result heap; returns ``(n_cand, n_top)``.
    For one-off offers only: in a walk's inner loop this helper cost ~18% of the walk (the loops
    spell it out)."""
    if n_top < ef or d < top_s[0]:
        n_cand = minheap_push(cand_s, cand_i, n_cand, d, node)
        if keep:
            if n_top < ef:
                n_top = maxheap_push(top_s, top_i, n_top, d, node)
            else:
                maxheap_replace_top(top_s, top_i, ef, d, node)
    return n_cand, n_top


@jit
def best_first(g, level, st, q, qm, q_sum, q_mu, ep, d_ep, ef, deleted, skip_deleted, visited, epoch,
               cand_s, cand_i, top_s, top_i):
    """Best-first search of ``level`` from ``ep`` (score ``d_ep``): the plain walk of every unfiltered
    search and every insertion. Returns how many nodes ``top`` holds.

    ``visited`` uint8 (n,) with the current ``epoch``; ``cand_s``/``cand_i`` (>= n) f32/int32: the
    frontier min-heap; ``top_s``/``top_i`` (>= ef) f32/int32: the ``ef`` best as a max-heap (worst at
    0). With ``skip_deleted``, nodes flagged in ``deleted`` bool (n,) are walked but never kept.

    The filtered policies have their own loop (:func:`policy_walk`): folded into this one, their
    branches made the plain walk ~30% slower (116k WordNet, one query per call).
    """
    links0, counts0, upper_links, upper_counts, upper_start = g
    kind, mode, f32, u16, codes, _mu, norms, f16 = st
    fast, l2, lvq8, via_ip, qv = walk_flags(kind, mode, q, qm)
    on_codes = kind >= STORE_LVQ8
    ahead = PREFETCH_AHEAD_FAR if codes.nbytes > FAR_CODE_BYTES else PREFETCH_AHEAD
    # The level's list arrays, chosen once: an inlined accessor choosing per node kept numba's
    # reference counting of the arrays it did not use in the loop.
    at_base = level == 0
    fresh = np.empty(max(links0.shape[1], upper_links.shape[1]), np.int32)  # a list's unvisited nodes
    lists = links0 if at_base else upper_links
    lens = counts0 if at_base else upper_counts
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
        if n_top == ef and cand_s[0] > top_s[0]:
            break
        c = cand_i[0]
        n_cand = minheap_pop(cand_s, cand_i, n_cand)
        r = c if at_base else upper_start[c] + level - 1
        row = lists[r]
        cnt = lens[r]
        # Mark the list's new nodes, then score them with the rows `ahead` nodes ahead loading:
        # loading all of them first measured ~6% slower per query (the loads queue behind each other).
        n_new = 0
        for t in range(cnt):
            nb = row[t]
            if visited[nb] != epoch:
                visited[nb] = epoch
                fresh[n_new] = nb
                n_new += 1
        if on_codes:
            for t in range(min(ahead, n_new)):
                prefetch_codes(codes, fresh[t])
        else:  # float32 rows: the first line of each at once (pipelined whole rows measured slower)
            for t in range(n_new):
                prefetch_at(f32, fresh[t], 0)
        for t in range(n_new):
            if on_codes and t + ahead < n_new:
                prefetch_codes(codes, fresh[t + ahead])
            nb = fresh[t]
            if fast:
                d = f32_score(l2, q, f32[nb])
            elif lvq8:
                d = lvq8_score(l2, qv, q_sum, q_mu, codes[nb], f16)
                if via_ip:
                    d = norms[nb] + np.float32(2.0) * d
            else:
                d = score_row(kind, mode, f32, u16, codes, norms, f16, q, qm, q_sum, q_mu, np.int64(nb))
            # the heap updates spelled out: as an inlined helper returning (n_cand, n_top) the
            # walk ran ~18% slower (116k WordNet, float32, ef 64)
            if n_top < ef or d < top_s[0]:
                n_cand = minheap_push(cand_s, cand_i, n_cand, d, nb)
                if not (skip_deleted and deleted[nb]):
                    if n_top < ef:
                        n_top = maxheap_push(top_s, top_i, n_top, d, nb)
                    else:
                        maxheap_replace_top(top_s, top_i, ef, d, nb)
    return n_top


@jit
def policy_walk(g, st, q, qm, q_sum, q_mu, ep, d_ep, ef, pol, visited, epoch, cand_s, cand_i, top_s, top_i,
                res_s, res_i, counts):
    """Best-first search of level 0 under ``POLICY_ACORN`` or ``POLICY_COLLECT`` (see the module docstring);
    returns how many nodes ``top`` holds. Arguments as :func:`best_first`; ``POLICY_COLLECT`` also
    fills ``res_s``/``res_i`` (m,) f32/int32 (pre-filled +inf / -1) with the best ``m`` passing nodes
    scored and writes ``counts`` int64 (2,): nodes scored, of which passing.
    """
    links0, counts0, _upper_links, _upper_counts, _upper_start = g
    kind, mode, f32, u16, codes, _mu, norms, f16 = st
    fast, l2, lvq8, via_ip, qv = walk_flags(kind, mode, q, qm)
    on_codes = kind >= STORE_LVQ8
    policy, _deleted, _has_deleted, allowed, seeds, min_local, min_scored, _pre_probe = pol
    collect = policy == POLICY_COLLECT
    acorn = not collect
    all_pass = allowed.shape[0] == 0
    n_res = res_s.shape[0]
    visited[ep] = epoch
    cand_s[0] = d_ep
    cand_i[0] = ep
    n_cand = 1
    n_top = 0
    n_scored = 1
    n_passed = 0
    if collect or allowed[ep]:
        top_s[0] = d_ep
        top_i[0] = ep
        n_top = 1
    if collect and (all_pass or allowed[ep]):
        n_passed = 1
        maxheap_replace_top(res_s, res_i, n_res, d_ep, ep)
    if acorn:
        for j in range(seeds.shape[0]):
            s = seeds[j]
            if visited[s] != epoch:
                visited[s] = epoch
                d = score_row(kind, mode, f32, u16, codes, norms, f16, q, qm, q_sum, q_mu, np.int64(s))
                n_cand, n_top = _offer(d, s, ef, True, n_cand, n_top, cand_s, cand_i, top_s, top_i)
    budget = links0.shape[1] // 2  # ACORN-1: passing nodes scored per expansion (M)
    while n_cand > 0:
        if n_top == ef and cand_s[0] > top_s[0]:
            break
        if collect and n_scored >= min_scored and n_passed < min_local * n_scored:
            break
        c = cand_i[0]
        n_cand = minheap_pop(cand_s, cand_i, n_cand)
        row = links0[c]
        cnt = counts0[c]
        for t in range(cnt):  # start loading every new neighbour before scoring the first
            nb = row[t]
            if visited[nb] != epoch and (collect or allowed[nb]):
                if on_codes:
                    prefetch_codes(codes, nb)
                else:
                    prefetch_at(f32, nb, 0)
        n_new = 0
        for t in range(cnt):
            nb = row[t]
            if visited[nb] == epoch or (acorn and not allowed[nb]):
                continue
            visited[nb] = epoch
            if fast:
                d = f32_score(l2, q, f32[nb])
            elif lvq8:
                d = lvq8_score(l2, qv, q_sum, q_mu, codes[nb], f16)
                if via_ip:
                    d = norms[nb] + np.float32(2.0) * d
            else:
                d = score_row(kind, mode, f32, u16, codes, norms, f16, q, qm, q_sum, q_mu, np.int64(nb))
            n_new += 1
            if collect:
                n_scored += 1
                if all_pass or allowed[nb]:
                    n_passed += 1
                    if d < res_s[0]:
                        maxheap_replace_top(res_s, res_i, n_res, d, nb)
            if n_top < ef or d < top_s[0]:  # spelled out, as in best_first
                n_cand = minheap_push(cand_s, cand_i, n_cand, d, nb)
                if n_top < ef:
                    n_top = maxheap_push(top_s, top_i, n_top, d, nb)
                else:
                    maxheap_replace_top(top_s, top_i, ef, d, nb)
        if acorn:  # two hops through failing neighbours, until M passing nodes were scored
            for t in range(cnt):
                if n_new >= budget:
                    break
                nb = row[t]
                if allowed[nb] or visited[nb] == epoch:
                    continue
                visited[nb] = epoch
                row2 = links0[nb]
                for t2 in range(counts0[nb]):
                    nb2 = row2[t2]
                    # failing two-hop nodes stay unvisited: they may still be expanded as direct neighbours
                    if visited[nb2] == epoch or not allowed[nb2]:
                        continue
                    visited[nb2] = epoch
                    n_new += 1
                    if fast:
                        d = f32_score(l2, q, f32[nb2])
                    elif lvq8:
                        d = lvq8_score(l2, qv, q_sum, q_mu, codes[nb2], f16)
                        if via_ip:
                            d = norms[nb2] + np.float32(2.0) * d
                    else:
                        d = score_row(kind, mode, f32, u16, codes, norms, f16, q, qm, q_sum, q_mu, np.int64(nb2))
                    if n_top < ef or d < top_s[0]:  # spelled out, as in best_first
                        n_cand = minheap_push(cand_s, cand_i, n_cand, d, nb2)
                        if n_top < ef:
                            n_top = maxheap_push(top_s, top_i, n_top, d, nb2)
                        else:
                            maxheap_replace_top(top_s, top_i, ef, d, nb2)
    counts[0] = n_scored
    counts[1] = n_passed
    return n_top


@jit
def _two_hop_passing(links0, counts0, allowed, node):
    """``(ids seen, ids passing)`` over ``node``'s level-0 neighbours and theirs (repeats counted)."""
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


@jit(inline="always")
def rerank_into(sec, q, cand_i, n_cand, out_slots, out_scores):
    """Re-score ``cand_i[:n_cand]`` with the storage ``sec`` for query ``q``; best ``k`` into
    ``out_slots``/``out_scores`` (k,) pre-filled -1 / +inf, sorted best first. Float32 rows are
    scored inline, other encodings by the called :func:`score_row` (a re-rank scores a few dozen rows)."""
    qm = np.empty(q.shape[0], np.float32)
    q_sum, q_mu = query_terms(sec, q, qm)
    kind, mode, f32, u16, codes, _mu, norms, f16 = sec
    fast = kind == STORE_F32 and mode != MODE_L2_VIA_IP
    l2 = mode == MODE_L2
    if fast:  # every line of a float32 row, RERANK_PREFETCH_AHEAD rows ahead (first lines only: LeanVec ~10% slower)
        for j in range(min(RERANK_PREFETCH_AHEAD, n_cand)):
            prefetch_f32_row(f32, cand_i[j])
    else:
        for j in range(n_cand):
            prefetch_row_of(kind, f32, u16, codes, cand_i[j])
    k = out_slots.shape[0]
    for j in range(n_cand):
        node = cand_i[j]
        if fast and j + RERANK_PREFETCH_AHEAD < n_cand:
            prefetch_f32_row(f32, cand_i[j + RERANK_PREFETCH_AHEAD])
        if fast:
            s = f32_score(l2, q, f32[node])
        else:
            s = score_row(kind, mode, f32, u16, codes, norms, f16, q, qm, q_sum, q_mu, np.int64(node))
        if s < out_scores[0]:
            maxheap_replace_top(out_scores, out_slots, k, s, node)
    maxheap_sort(out_scores, out_slots, k)


@jit
def enter_level0(g, entry, max_level, st, q, qm, deleted, visited, epochs, tid, cand_s, cand_i, top_s, top_i):
    """Per-query terms of ``q`` for ``st`` (``qm`` (d,) f32 filled) and the descent from ``entry`` to
    level 0: returns ``(node, score, q_sum, q_mu)``, where the level-0 walk starts."""
    q_sum, q_mu = query_terms(st, q, qm)
    d_cur = storage_score(st, q, qm, q_sum, q_mu, np.int64(entry))
    cur, d_cur = greedy_descend(g, st, q, qm, q_sum, q_mu, np.int64(entry), d_cur, np.int64(max_level), np.int64(0),
                                deleted, visited, epochs, tid, cand_s, cand_i, top_s, top_i)
    return cur, d_cur, q_sum, q_mu


@jit
def finish_query(sec, q_full, found_s, found_i, n_found, n_rerank, out_slots, out_scores):
    """The best ``k`` of the walk's ``found_*[:n_found]`` (sorted best first) into the outputs: re-scored
    by ``sec`` when it holds rows and ``n_rerank > 0`` (the first ``n_rerank`` of them), else as found."""
    if sec[0] != STORE_NONE and n_rerank > 0:
        rerank_into(sec, q_full, found_i, min(n_rerank, n_found), out_slots, out_scores)
    else:
        for j in range(min(out_slots.shape[0], n_found)):
            out_slots[j] = found_i[j]
            out_scores[j] = found_s[j]


@jit
def search_query(g, entry, max_level, st, sec, pol, q, q_full, k, ef, n_rerank, visited, epochs, tid, cand_s,
                 cand_i, top_s, top_i, out_slots, out_scores):
    """One unfiltered query (``POLICY_PLAIN``): descent to level 0, :func:`best_first` with ``ef``, re-rank,
    best ``k`` into the outputs.

    ``q`` (d,) f32 is the query in the walk storage's space (a projected query for LeanVec),
    ``q_full`` the query for the re-rank storage ``sec`` (``STORE_NONE``: the walk's scores are
    returned); the walk's best ``n_rerank`` candidates are re-scored. ``out_slots``/``out_scores``
    (k,) int64 / f32 are filled here (padded -1 / +inf).
    """
    for j in range(k):
        out_slots[j] = -1
        out_scores[j] = np.inf
    if entry < 0:
        return
    _policy, deleted, has_deleted, _allowed, _seeds, _min_local, _min_scored, _pre_probe = pol
    qm = np.empty(q.shape[0], np.float32)
    cur, d_cur, q_sum, q_mu = enter_level0(g, entry, max_level, st, q, qm, deleted, visited, epochs, tid, cand_s,
                                           cand_i, top_s, top_i)
    epoch = next_epoch(visited, epochs, tid)
    n_top = best_first(g, np.int64(0), st, q, qm, q_sum, q_mu, cur, d_cur, ef, deleted, has_deleted, visited[tid],
                       epoch, cand_s, cand_i, top_s, top_i)
    maxheap_sort(top_s, top_i, n_top)
    finish_query(sec, q_full, top_s, top_i, n_top, n_rerank, out_slots, out_scores)


@jit
def policy_query(g, entry, max_level, st, sec, pol, q, q_full, k, ef, n_rerank, need, visited, epochs, tid,
                 cand_s, cand_i, top_s, top_i, out_slots, out_scores):
    """One query under ``POLICY_ACORN`` or ``POLICY_COLLECT`` (:func:`policy_walk`); arguments as
    :func:`search_query`. With ``POLICY_COLLECT`` the re-rank reads its passing pool of
    ``max(n_rerank, k)``. Returns the row's local selectivity under ``POLICY_COLLECT`` (passing /
    scored nodes; -1 when it found fewer than ``need``), else 1.
    """
    for j in range(k):
        out_slots[j] = -1
        out_scores[j] = np.inf
    if entry < 0:
        return np.float32(1.0)
    policy, deleted, _has_deleted, allowed, _seeds, min_local, _min_scored, pre_probe = pol
    collect = policy == POLICY_COLLECT
    qm = np.empty(q.shape[0], np.float32)
    cur, d_cur, q_sum, q_mu = enter_level0(g, entry, max_level, st, q, qm, deleted, visited, epochs, tid, cand_s,
                                           cand_i, top_s, top_i)
    if collect and pre_probe:
        seen, passed = _two_hop_passing(g[0], g[1], allowed, cur)
        if seen >= PRE_PROBE_MIN_SEEN and passed < PRE_PROBE_RATIO * min_local * seen:
            return np.float32(passed / seen)
    n_pool = max(n_rerank, k) if collect else 0
    res_s = np.full(n_pool, np.inf, np.float32)
    res_i = np.full(n_pool, -1, np.int32)
    counts = np.zeros(2, np.int64)
    epoch = next_epoch(visited, epochs, tid)
    n_top = policy_walk(g, st, q, qm, q_sum, q_mu, cur, d_cur, ef, pol, visited[tid], epoch, cand_s, cand_i,
                        top_s, top_i, res_s, res_i, counts)
    if collect:
        maxheap_sort(res_s, res_i, n_pool)
        n_found = 0
        while n_found < n_pool and res_i[n_found] >= 0:
            n_found += 1
        finish_query(sec, q_full, res_s, res_i, n_found, n_pool if n_rerank > 0 else 0, out_slots, out_scores)
    else:
        maxheap_sort(top_s, top_i, n_top)
        n_found = n_top
        finish_query(sec, q_full, top_s, top_i, n_top, n_rerank, out_slots, out_scores)
    if not collect:
        return np.float32(1.0)
    if min(k, n_found) < need:
        return np.float32(-1.0)
    return np.float32(counts[1] / max(counts[0], 1))


@jit
def search_rows(g, entry, max_level, st, sec, pol, queries, queries_full, start, stop, k, ef, n_rerank, need,
                visited, epochs, tid, cand_s, cand_i, top_s, top_i, out_slots, out_scores, out_local):
    """:func:`search_query` (``POLICY_PLAIN``) for rows ``start .. stop - 1`` of ``queries`` (nq, d) /
    ``queries_full`` (nq, D) f32 with scratch row ``tid`` (``visited`` uint8 (T, n), ``epochs`` int32 (T,),
    ``cand_*`` (T, n), ``top_*`` (T, >= ef)); outputs (nq, k) and ``out_local`` f32 (nq,) (1 here).
    Threads call it on disjoint row ranges (:func:`vecsearch.parallel.run_chunks`). ``need`` is unused
    (the signature of :func:`policy_rows`, so callers pick either)."""
    for qi in range(start, stop):
        search_query(g, entry, max_level, st, sec, pol, queries[qi], queries_full[qi], k, ef, n_rerank, visited,
                     epochs, tid, cand_s[tid], cand_i[tid], top_s[tid], top_i[tid], out_slots[qi], out_scores[qi])
        out_local[qi] = np.float32(1.0)


@jit
def policy_rows(g, entry, max_level, st, sec, pol, queries, queries_full, start, stop, k, ef, n_rerank, need,
                visited, epochs, tid, cand_s, cand_i, top_s, top_i, out_slots, out_scores, out_local):
    """:func:`policy_query` for rows ``start .. stop - 1`` (arguments as :func:`search_rows`). A separate
    entry point, so a process that never filters never compiles the filtered walk."""
    for qi in range(start, stop):
        out_local[qi] = policy_query(g, entry, max_level, st, sec, pol, queries[qi], queries_full[qi], k, ef,
                                     n_rerank, need, visited, epochs, tid, cand_s[tid], cand_i[tid], top_s[tid],
                                     top_i[tid], out_slots[qi], out_scores[qi])
