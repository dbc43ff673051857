"""Graph construction over any storage: the neighbour-selection heuristic, batched parallel insertion, repair.

Layout of the graph as in :mod:`vecsearch.kernels.graph_walk`. Distances come from a *build storage*
(:class:`~vecsearch.kernels.storage.Storage`): HNSW builds on its float32 vectors, LeanVec on its
reduced primary codes (a stored row is decoded once when it plays the query).

Parallel insertion (race-free, reproducible). Nodes are inserted in batches. Phase 1
(:func:`insert_nodes`, threads on disjoint ranges of the batch) searches the graph as it was before the batch
(read-only) plus, by brute force, the batch-mates inserted before it, selects each new node's
neighbours with the heuristic and writes the new node's own lists and its reverse-link proposals
(its own slice of a preallocated buffer). Phase 2 (:func:`apply_reverse_links`, one thread per
owner) applies the proposals: owner ``t`` handles only target nodes with ``target % n_owners == t``,
in proposal order, pruning full lists with the heuristic. No two threads ever write the same list,
and the result does not depend on the number of threads (pynndescent's proposal/apply scheme).
"""

from __future__ import annotations

import numpy as np

from ._jit import jit
from .graph_walk import best_first, greedy_descend, list_len, list_row
from .heaps import maxheap_push, maxheap_replace_top, maxheap_sort
from .storage import row_as_query, score_row, storage_score
from .visited import next_epoch


@jit
def write_list(g, node, level, src, n):
    """Set ``node``'s list at ``level`` to ``src[:n]`` (int32). Every write to the graph goes through
    this (or :func:`add_link`) as a called, not inlined, function: numba drops stores to the arrays of
    a tuple argument made inline in a ``prange`` body (numba 0.6x), stores in a callee persist."""
    links0, counts0, upper_links, upper_counts, upper_start = g
    if level == 0:
        row = links0[node]
        counts0[node] = n
    else:
        r = upper_start[node] + level - 1
        row = upper_links[r]
        upper_counts[r] = n
    for t in range(n):
        row[t] = src[t]


# ---- neighbour selection -----------------------------------------------------------------------
@jit
def select_heuristic(st, alpha, cand_i, cand_s, n_cand, max_keep, out, bufs):
    """Diversity heuristic over candidates sorted ascending by score to the base node.

    Keeps candidate ``c`` iff ``alpha * score(c, kept) >= score(base, c)`` for every already kept
    neighbour (alpha = 1: hnswlib's ``getNeighborsByHeuristic2``; alpha > 1 with squared L2 scores:
    Vamana's robust prune). With ``n_cand <= max_keep`` all are kept. Writes kept ids into ``out``
    (int32, >= max_keep), returns their number. ``bufs`` f32 (2, d): decode scratch.
    """
    if n_cand <= max_keep:
        for j in range(n_cand):
            out[j] = cand_i[j]
        return n_cand
    kind, mode, f32, u16, codes, _mu, norms, f16 = st
    n_out = 0
    for j in range(n_cand):
        if n_out >= max_keep:
            break
        c = cand_i[j]
        d_base = cand_s[j]
        qc, c_sum, c_mu = row_as_query(st, c, bufs[0], bufs[1])
        good = True
        for s in range(n_out):
            if alpha * score_row(kind, mode, f32, u16, codes, norms, f16, qc, bufs[1], c_sum, c_mu, np.int64(out[s])) < d_base:
                good = False
                break
        if good:
            out[n_out] = c
            n_out += 1
    return n_out


@jit(inline="always")
def sort_small(scores, ids, n):
    """Insertion sort of the first ``n`` (score, id) pairs, ascending (for lists of ~2M items)."""
    for a in range(1, n):
        s = scores[a]
        v = ids[a]
        b = a - 1
        while b >= 0 and scores[b] > s:
            scores[b + 1] = scores[b]
            ids[b + 1] = ids[b]
            b -= 1
        scores[b + 1] = s
        ids[b + 1] = v


@jit
def add_link(g, st, alpha, target, source, level, max_links, tmp_s, tmp_i, tmp_out, bufs):
    """Link ``target -> source`` at ``level``; a full list is re-selected with the heuristic (a called
    function, see :func:`write_list`).

    ``tmp_s``/``tmp_i``/``tmp_out`` are scratch of length >= max_links + 1, ``bufs`` f32 (2, d).
    """
    links0, counts0, upper_links, upper_counts, upper_start = g
    row = list_row(links0, upper_links, upper_start, target, level)
    cnt = list_len(counts0, upper_counts, upper_start, target, level)
    for t in range(cnt):
        if row[t] == source:
            return
    if cnt < max_links:
        row[cnt] = source
        if level == 0:
            counts0[target] = cnt + 1
        else:
            upper_counts[upper_start[target] + level - 1] = cnt + 1
        return
    kind, mode, f32, u16, codes, _mu, norms, f16 = st
    qt, t_sum, t_mu = row_as_query(st, target, bufs[0], bufs[1])
    for t in range(cnt):
        tmp_i[t] = row[t]
        tmp_s[t] = score_row(kind, mode, f32, u16, codes, norms, f16, qt, bufs[1], t_sum, t_mu, np.int64(row[t]))
    tmp_i[cnt] = source
    tmp_s[cnt] = score_row(kind, mode, f32, u16, codes, norms, f16, qt, bufs[1], t_sum, t_mu, np.int64(source))
    sort_small(tmp_s, tmp_i, cnt + 1)
    n_keep = select_heuristic(st, alpha, tmp_i, tmp_s, cnt + 1, max_links, tmp_out, bufs)
    write_list(g, np.int64(target), np.int64(level), tmp_out, n_keep)  # one compiled signature


# ---- insertion ----------------------------------------------------------------------------------
@jit
def insert_node(g, levels, st, alpha, batch, b, entry, max_level, M, ef_construction, visited, epochs, tid,
                cand_s, cand_i, ts, ti, sel, bufs, prop_offsets, prop_target, prop_source, prop_level):
    """Phase 1 for one node ``batch[b]`` on thread ``tid`` (see :func:`insert_batch_search`; a called
    function, so the parallel kernel stays small to compile and its graph stores persist)."""
    kind, mode, f32, u16, codes, _mu, norms, f16 = st
    node = batch[b]
    q, q_sum, q_mu = row_as_query(st, node, bufs[2], bufs[1])
    qm = bufs[1].copy()
    node_level = levels[node]
    p = prop_offsets[b]
    for j in range(p, prop_offsets[b + 1]):
        prop_target[j] = -1
    # The walks below take exactly the argument types of the search's walks (one compiled version
    # each): a writable, never-read "deleted" array and a run-time False, not a module constant
    # (read-only) and a literal.
    no_deleted = np.zeros(1, np.bool_)
    skip_deleted = node_level < 0
    cur = np.int64(entry)
    d_cur = np.float32(np.inf)
    if entry >= 0:
        d_cur = storage_score(st, q, qm, q_sum, q_mu, np.int64(entry))
        cur, d_cur = greedy_descend(g, st, q, qm, q_sum, q_mu, cur, d_cur, np.int64(max_level), np.int64(node_level),
                                    no_deleted, visited, epochs, tid, cand_s, cand_i, ts, ti)
    for level in range(node_level, -1, -1):
        n_top = 0
        if entry >= 0 and level <= max_level:
            epoch = next_epoch(visited, epochs, tid)
            n_top = best_first(g, np.int64(level), st, q, qm, q_sum, q_mu, cur, d_cur, ef_construction, no_deleted,
                               skip_deleted, visited[tid], epoch, cand_s, cand_i, ts, ti)
            # Entry of the next level: the closest node of the old graph (batch-mates are
            # not linked in yet, their lists are being written by other threads).
            for t in range(n_top):
                if ts[t] < d_cur:
                    d_cur = ts[t]
                    cur = np.int64(ti[t])
        for bb in range(b):
            mate = batch[bb]
            if levels[mate] < level:
                continue
            d = score_row(kind, mode, f32, u16, codes, norms, f16, q, qm, q_sum, q_mu, np.int64(mate))
            if n_top < ef_construction:
                n_top = maxheap_push(ts, ti, n_top, d, mate)
            elif d < ts[0]:
                maxheap_replace_top(ts, ti, ef_construction, d, mate)
        maxheap_sort(ts, ti, n_top)
        n_sel = select_heuristic(st, alpha, ti, ts, n_top, M, sel, bufs)
        write_list(g, node, level, sel, n_sel)
        for t in range(n_sel):
            prop_target[p] = sel[t]
            prop_source[p] = node
            prop_level[p] = level
            p += 1


@jit
def insert_nodes(g, levels, st, alpha, batch, start, stop, entry, max_level, M, ef_construction, visited, epochs,
                 tid, cand_s, cand_i, top_s, top_i, sel, bufs, prop_offsets, prop_target, prop_source, prop_level):
    """Phase 1 of inserting ``batch`` (B,) int64 slots (rows, levels and empty lists already set), for the
    nodes ``batch[start:stop]`` on scratch row ``tid``; threads take disjoint ranges of one batch.

    Each new node descends from ``entry`` (graph top level ``max_level``; -1 = empty graph), runs a
    beam search with ``ef_construction`` on each of its levels, adds its earlier batch-mates as
    candidates by brute force, and keeps at most ``M`` neighbours per level by the heuristic
    (hnswlib's rule: 2M is the cap reverse links may fill level 0 up to). Writes the node's own lists,
    and its proposals ``(target, source, level)`` int32 into its slice ``prop_offsets[b]:prop_offsets[b+1]``
    (int64 (B+1,)) of ``prop_*`` (unused entries target -1). Scratch per thread row: ``visited`` uint8
    (T, n) with ``epochs`` int32 (T,), ``cand_s``/``cand_i`` (T, n), ``top_s``/``top_i`` (T, ef_construction),
    ``sel`` int32 (T, 2M), ``bufs`` f32 (T, 3, d).
    """
    for b in range(start, stop):
        insert_node(g, levels, st, alpha, batch, b, entry, max_level, M, ef_construction, visited, epochs, tid,
                    cand_s[tid], cand_i[tid], top_s[tid], top_i[tid], sel[tid], bufs[tid], prop_offsets,
                    prop_target, prop_source, prop_level)


@jit
def apply_reverse_links(g, st, alpha, M, prop_target, prop_source, prop_level, owner, n_owners, tmp_s, tmp_i,
                        tmp_out, bufs):
    """Phase 2: apply proposals (P,) int32 ``target -> source`` at ``level`` whose target belongs to
    ``owner`` (``target % n_owners == owner``), in proposal order; threads take distinct owners, so no
    list is written by two threads. ``tmp_s`` f32, ``tmp_i``/``tmp_out`` int32 (2M + 1,), ``bufs`` f32 (3, d).
    """
    for p in range(prop_target.shape[0]):
        target = prop_target[p]
        if target < 0 or target % n_owners != owner:
            continue
        level = prop_level[p]
        max_links = 2 * M if level == 0 else M
        add_link(g, st, alpha, target, prop_source[p], level, max_links, tmp_s, tmp_i, tmp_out, bufs)


# ---- repair around removed nodes ------------------------------------------------------------------
@jit
def repair_node(g, levels, st, alpha, u, removed, M, visited, epochs, tid, cs, ci, sel, bufs, repaired0):
    """:func:`repair_links` for one kept node ``u`` on thread ``tid`` (a called function, see :func:`write_list`)."""
    cap = cs.shape[0]
    vis = visited[tid]
    links0, counts0, upper_links, upper_counts, upper_start = g
    kind, mode, f32, u16, codes, _mu, norms, f16 = st

    for level in range(levels[u] + 1):
        row = list_row(links0, upper_links, upper_start, u, level)
        cnt = list_len(counts0, upper_counts, upper_start, u, level)
        hit = False
        for t in range(cnt):
            if removed[row[t]]:
                hit = True
                break
        if not hit:
            continue
        max_links = 2 * M if level == 0 else M
        epoch = next_epoch(visited, epochs, tid)
        vis[u] = epoch
        n_c = 0
        for t in range(cnt):
            nb = row[t]
            if vis[nb] == epoch:
                continue
            vis[nb] = epoch
            if not removed[nb]:
                if n_c < cap:
                    ci[n_c] = nb
                    n_c += 1
                continue
            nrow = list_row(links0, upper_links, upper_start, nb, level)
            ncnt = list_len(counts0, upper_counts, upper_start, nb, level)
            for t2 in range(ncnt):
                nb2 = nrow[t2]
                if vis[nb2] == epoch:
                    continue
                if removed[nb2]:
                    continue
                vis[nb2] = epoch
                if n_c < cap:
                    ci[n_c] = nb2
                    n_c += 1
        if n_c < max_links:
            # Few live candidates: go one more hop through removed nodes.
            for t in range(cnt):
                nb = row[t]
                if not removed[nb]:
                    continue
                nrow = list_row(links0, upper_links, upper_start, nb, level)
                ncnt = list_len(counts0, upper_counts, upper_start, nb, level)
                for t2 in range(ncnt):
                    nb2 = nrow[t2]
                    if not removed[nb2]:
                        continue
                    rrow = list_row(links0, upper_links, upper_start, nb2, level)
                    rcnt = list_len(counts0, upper_counts, upper_start, nb2, level)
                    for t3 in range(rcnt):
                        nb3 = rrow[t3]
                        if vis[nb3] == epoch or removed[nb3]:
                            continue
                        vis[nb3] = epoch
                        if n_c < cap:
                            ci[n_c] = nb3
                            n_c += 1
        qu, u_sum, u_mu = row_as_query(st, u, bufs[0], bufs[1])
        for t in range(n_c):
            cs[t] = score_row(kind, mode, f32, u16, codes, norms, f16, qu, bufs[1], u_sum, u_mu, np.int64(ci[t]))
        order = np.argsort(cs[:n_c])
        sorted_s = cs[:n_c][order]
        sorted_i = ci[:n_c][order]
        n_keep = select_heuristic(st, alpha, sorted_i, sorted_s, n_c, max_links, sel, bufs)
        # Removal took in-links away from the graph; refill the list up to its former length
        # with the closest pruned candidates (the paper's keepPrunedConnections) so degrees
        # do not collapse (pure heuristic re-selection loses ~7 points of recall at half removed).
        for t in range(n_c):
            if n_keep >= cnt:
                break
            c = sorted_i[t]
            taken = False
            for s in range(n_keep):
                if sel[s] == c:
                    taken = True
                    break
            if not taken:
                sel[n_keep] = c
                n_keep += 1
        write_list(g, u, level, sel, n_keep)
        if level == 0:
            repaired0[u] = True


@jit
def repair_links(g, levels, st, alpha, start, stop, removed, M, visited, epochs, tid, cand_s, cand_i, sel, bufs,
                 repaired0):
    """Drop links to ``removed`` (bool (n,)) nodes and reconnect every affected list of the kept nodes
    ``start .. stop - 1``, on scratch row ``tid`` (threads take disjoint node ranges).

    For each kept node ``u`` and level whose list points to a removed node, the candidates are
    its kept neighbors plus the kept neighbors of its removed neighbors (one hop through them,
    two when that still gives fewer than the list width); the list is re-selected from them by
    the heuristic. Only kept nodes' lists are written and only removed nodes' lists are read
    besides one's own, so ranges are race-free. Scores come from the build storage ``st``.
    Scratch per thread row: ``visited`` uint8 (T, n) + ``epochs`` (T,), ``cand_s``/``cand_i`` f32/int32
    (T, C) (candidates beyond C are ignored), ``sel`` int32 (T, 2M), ``bufs`` f32 (T, 3, d). Sets
    ``repaired0[u]`` (bool (n,)) for re-selected level-0 lists.
    """
    for u in range(start, stop):
        if not removed[u]:
            repair_node(g, levels, st, alpha, u, removed, M, visited, epochs, tid, cand_s[tid], cand_i[tid],
                        sel[tid], bufs[tid], repaired0)
