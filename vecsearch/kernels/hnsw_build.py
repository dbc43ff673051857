"""HNSW graph construction kernels: the diversity heuristic, batched parallel insertion, repair.

The graph layout and the walks are in :mod:`vecsearch.kernels.hnsw_graph`; see its docstring for
the race-free parallel insertion scheme these kernels implement.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._jit import jit, jit_parallel
from .heaps import maxheap_push, maxheap_replace_top, maxheap_sort
from .hnsw_graph import (
    beam_search,
    greedy_descend,
    list_len,
    list_row,
    node_score,
    pair_score,
    set_list_len,
)
from .visited import next_epoch


# ---- neighbor selection -----------------------------------------------------------------------
@jit(inline="always")
def select_heuristic(metric, vectors, cand_i, cand_s, n_cand, max_keep, out):
    """Diversity heuristic over candidates sorted ascending by score to the base node.

    Keeps candidate ``c`` iff it is closer to the base than to every already kept neighbor
    (hnswlib's ``getNeighborsByHeuristic2``); with ``n_cand <= max_keep`` all are kept.
    Writes kept ids into ``out`` (int32, >= max_keep) and returns their number.
    """
    if n_cand <= max_keep:
        for j in range(n_cand):
            out[j] = cand_i[j]
        return n_cand
    n_out = 0
    for j in range(n_cand):
        if n_out >= max_keep:
            break
        c = cand_i[j]
        d_base = cand_s[j]
        good = True
        for s in range(n_out):
            if pair_score(metric, vectors, c, out[s]) < d_base:
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


@jit(inline="always")
def add_link(
    metric,
    vectors,
    links0,
    counts0,
    upper_links,
    upper_counts,
    upper_start,
    target,
    source,
    level,
    max_links,
    tmp_s,
    tmp_i,
    tmp_out,
):
    """Link ``target -> source`` at ``level``; a full list is re-selected with the heuristic.

    ``tmp_s``/``tmp_i``/``tmp_out`` are scratch of length >= max_links + 1.
    """
    row = list_row(links0, upper_links, upper_start, target, level)
    cnt = list_len(counts0, upper_counts, upper_start, target, level)
    for t in range(cnt):
        if row[t] == source:
            return
    if cnt < max_links:
        row[cnt] = source
        set_list_len(counts0, upper_counts, upper_start, target, level, cnt + 1)
        return
    for t in range(cnt):
        tmp_i[t] = row[t]
        tmp_s[t] = pair_score(metric, vectors, target, row[t])
    tmp_i[cnt] = source
    tmp_s[cnt] = pair_score(metric, vectors, target, source)
    sort_small(tmp_s, tmp_i, cnt + 1)
    n_keep = select_heuristic(metric, vectors, tmp_i, tmp_s, cnt + 1, max_links, tmp_out)
    for t in range(n_keep):
        row[t] = tmp_out[t]
    set_list_len(counts0, upper_counts, upper_start, target, level, n_keep)


# ---- insertion --------------------------------------------------------------------------------
@jit_parallel
def insert_batch_search(
    metric,
    vectors,
    links0,
    counts0,
    upper_links,
    upper_counts,
    upper_start,
    levels,
    batch,
    entry,
    max_level,
    M,
    ef_construction,
    visited,
    epochs,
    cand_s,
    cand_i,
    top_s,
    top_i,
    sel,
    prop_offsets,
    prop_target,
    prop_source,
    prop_level,
):
    """Phase 1 of inserting ``batch`` (B,) int64 slots (vectors, levels and empty lists already set).

    Each new node descends from ``entry`` (graph top level ``max_level``; -1 = empty graph), runs a
    beam search with ``ef_construction`` on each of its levels, adds its earlier batch-mates as
    candidates by brute force, and keeps at most ``M`` neighbors per level by the heuristic.
    Writes the node's own lists, and its proposals ``(target, source, level)`` int32 into its slice
    ``prop_offsets[b]:prop_offsets[b+1]`` (int64 (B+1,)) of ``prop_*`` (unused entries target -1).
    Scratch per thread (rows by ``numba.get_thread_id()``): ``visited`` uint8 (T, n) with ``epochs``
    int32 (T,), ``cand_s``/``cand_i`` (T, n), ``top_s``/``top_i`` (T, ef_construction), ``sel`` int32 (T, M).
    """
    dummy_deleted = np.zeros(1, np.bool_)
    no_codes = np.empty((0, 1), np.uint8)  # the build walks the float32 vectors
    no_f16 = np.empty(0, np.float32)
    for b in prange(batch.shape[0]):
        tid = numba.get_thread_id()
        node = batch[b]
        q = vectors[node]
        node_level = levels[node]
        p = prop_offsets[b]
        p_end = prop_offsets[b + 1]
        for j in range(p, p_end):
            prop_target[j] = -1
        cur = entry
        d_cur = np.float32(np.inf)
        if entry >= 0:
            d_cur = node_score(metric, q, vectors, entry)
            cur, d_cur = greedy_descend(
                metric,
                q,
                vectors,
                links0,
                counts0,
                upper_links,
                upper_counts,
                upper_start,
                cur,
                d_cur,
                max_level,
                node_level,
                q,
                np.float32(0.0),
                np.float32(0.0),
                no_codes,
                no_f16,
            )
        ts = top_s[tid]
        ti = top_i[tid]
        for level in range(node_level, -1, -1):
            n_top = 0
            if entry >= 0 and level <= max_level:
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
                    level,
                    cur,
                    d_cur,
                    ef_construction,
                    dummy_deleted,
                    False,
                    visited[tid],
                    epoch,
                    cand_s[tid],
                    cand_i[tid],
                    ts,
                    ti,
                    q,
                    np.float32(0.0),
                    np.float32(0.0),
                    no_codes,
                    no_f16,
                )
                # Entry of the next level: the closest node of the old graph (batch-mates are
                # not linked in yet, their lists are being written by other threads).
                for t in range(n_top):
                    if ts[t] < d_cur:
                        d_cur = ts[t]
                        cur = ti[t]
            for bb in range(b):
                mate = batch[bb]
                if levels[mate] < level:
                    continue
                d = pair_score(metric, vectors, node, mate)
                if n_top < ef_construction:
                    n_top = maxheap_push(ts, ti, n_top, d, mate)
                elif d < ts[0]:
                    maxheap_replace_top(ts, ti, ef_construction, d, mate)
            maxheap_sort(ts, ti, n_top)
            n_sel = select_heuristic(metric, vectors, ti, ts, n_top, M, sel[tid])
            row = list_row(links0, upper_links, upper_start, node, level)
            for t in range(n_sel):
                row[t] = sel[tid, t]
                prop_target[p] = sel[tid, t]
                prop_source[p] = node
                prop_level[p] = level
                p += 1
            set_list_len(counts0, upper_counts, upper_start, node, level, n_sel)


@jit_parallel
def apply_reverse_links(
    metric,
    vectors,
    links0,
    counts0,
    upper_links,
    upper_counts,
    upper_start,
    M,
    prop_target,
    prop_source,
    prop_level,
    tmp_s,
    tmp_i,
    tmp_out,
):
    """Phase 2: apply proposals (P,) int32 ``target -> source`` at ``level``; owner-partitioned.

    ``tmp_s`` f32, ``tmp_i``/``tmp_out`` int32 of shape (n_owners, 2M + 1); owner ``o`` handles
    targets with ``target % n_owners == o`` in proposal order, so no list is written by two threads.
    """
    n_owners = tmp_s.shape[0]
    for o in prange(n_owners):
        for p in range(prop_target.shape[0]):
            target = prop_target[p]
            if target < 0 or target % n_owners != o:
                continue
            level = prop_level[p]
            max_links = 2 * M if level == 0 else M
            add_link(
                metric,
                vectors,
                links0,
                counts0,
                upper_links,
                upper_counts,
                upper_start,
                target,
                prop_source[p],
                level,
                max_links,
                tmp_s[o],
                tmp_i[o],
                tmp_out[o],
            )


# ---- repair around removed nodes ---------------------------------------------------------------
@jit_parallel
def repair_links(
    metric,
    vectors,
    links0,
    counts0,
    upper_links,
    upper_counts,
    upper_start,
    levels,
    n_nodes,
    removed,
    M,
    visited,
    epochs,
    cand_s,
    cand_i,
    sel,
    repaired0,
):
    """Drop links to ``removed`` (bool (n,)) nodes and reconnect every affected list.

    For each kept node ``u`` and level whose list points to a removed node, the candidates are
    its kept neighbors plus the kept neighbors of its removed neighbors (one hop through them,
    two when that still gives fewer than the list width); the list is re-selected from them by
    the heuristic. Only kept nodes' lists are written and only removed nodes' lists are read
    besides one's own, so the parallel loop is race-free. Scratch per thread: ``visited`` uint8
    (T, n) + ``epochs`` (T,), ``cand_s``/``cand_i`` f32/int32 (T, C) (candidates beyond C are
    ignored), ``sel`` int32 (T, 2M). Sets ``repaired0[u]`` (bool (n,)) for re-selected level-0 lists.
    """
    cap = cand_s.shape[1]
    for u in prange(n_nodes):
        if removed[u]:
            continue
        tid = numba.get_thread_id()
        vis = visited[tid]
        cs = cand_s[tid]
        ci = cand_i[tid]
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
            for t in range(n_c):
                cs[t] = pair_score(metric, vectors, u, ci[t])
            order = np.argsort(cs[:n_c])
            sorted_s = cs[:n_c][order]
            sorted_i = ci[:n_c][order]
            n_keep = select_heuristic(metric, vectors, sorted_i, sorted_s, n_c, max_links, sel[tid])
            # Removal took in-links away from the graph; refill the list up to its former length
            # with the closest pruned candidates (the paper's keepPrunedConnections) so degrees
            # do not collapse (pure heuristic re-selection loses ~7 points of recall at half removed).
            for t in range(n_c):
                if n_keep >= cnt:
                    break
                c = sorted_i[t]
                taken = False
                for s in range(n_keep):
                    if sel[tid, s] == c:
                        taken = True
                        break
                if not taken:
                    sel[tid, n_keep] = c
                    n_keep += 1
            for t in range(n_keep):
                row[t] = sel[tid, t]
            set_list_len(counts0, upper_counts, upper_start, u, level, n_keep)
            if level == 0:
                repaired0[u] = True
