"""Single-layer proximity graph for LeanVec/LVQ: batched parallel build and a beam search on LVQ codes.

The graph is a fixed-stride adjacency: ``neighbors`` int32 ``(capacity, R)`` with ``degrees`` int32
``(capacity,)`` (row ``i`` holds ``degrees[i]`` valid links). The build enters at the medoid of the
first build; the search at the best of a small "entry layer" (the medoid plus a random sample,
scored per query on its cache-resident codes). No hierarchy: on 10^5 points a well-pruned single layer with a medoid entry walks as
fast as HNSW's level 0 (Vamana/DiskANN practice) and is much simpler to build in parallel. The entry
point barely matters here: on wordnet-minilm (50k, LeanVec-ID192/LVQ8) starting every walk at the
query's TRUE nearest neighbor raised OOD recall@10 at ef=48 only from 0.926 to 0.934 (ID: equal),
so an HNSW-style hierarchy cannot close the OOD gap; graph quality (degree, ef_construction) did.
What a better start does save is the walk's first hops (reads), which the entry layer buys cheaply.

Build (``build_batch_search`` + ``apply_reverse_links``, driven by :mod:`vecsearch.indexes.leanvec`):
points are inserted in batches of growing size (prefix doubling, ParlayANN practice). Within a batch
every new point runs a beam search (``ef_construction``) over the graph of the points inserted
before it, in parallel and read-only, and prunes the result with the robust-prune heuristic
(keep candidate ``c`` if ``dist(c, p) < alpha * dist(c, kept)`` for every kept ``kept``; alpha = 1
is hnswlib's heuristic). Reverse links are then grouped by target and applied in parallel with one
owner per target row (pynndescent's race-free update pattern). Rows may hold up to
``neighbors.shape[1]`` (the caller's slack, 1.3 R) links and are re-pruned to R only when they
overflow that, and once more (``prune_rows``) at the end of the build: this cut build CPU ~40%.
The build's beam search scores the primary codes (as the walk does: a quarter of the bytes of the
decoded float32 rows for LVQ8, same L2 up to rounding); pruning distances between stored nodes use
the decoded primary vectors (float32, reduced dimension), which stay cache-resident per insertion.

Search (``search_codes``): a beam search (ef) from the best entry where every distance is computed
on the LVQ codes (or float32 primary rows), then ``rerank_*`` rescores the buffer with the
secondary (full-dimension) vectors.

Score modes of the walk: ``MODE_L2`` squared L2 on codes; ``MODE_IP`` negative inner product;
``MODE_L2_VIA_IP`` ``||x||^2 - 2 <q, x>`` with exact database norms (LeanVec-OOD under ``l2``,
where only inner products are approximated).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import jit, jit_parallel
from .distances import dot, sq_l2
from .heaps import maxheap_push, maxheap_replace_top, maxheap_sort, minheap_pop, minheap_push
from .lvq_codes import lvq_ip, lvq_l2, query_terms

MODE_L2 = 0
MODE_IP = 1
MODE_L2_VIA_IP = 2
KIND_FLOAT32 = 3  # primary stored as plain float32 rows (no LVQ)

SEC_FLOAT32 = 0
SEC_FLOAT16 = 1
SEC_LVQ8 = 2


@intrinsic
def prefetch_elem(typingctx, arr, i):
    """Hint the CPU to load the cache line holding ``arr[i]`` (1-D array); no effect on results."""
    sig = types.void(arr, i)

    def codegen(context, builder, signature, args):
        aryty, idxty = signature.args
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = context.cast(builder, args[1], idxty, types.intp)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [idx])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0"
        )
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@jit(inline="always")
def prefetch_vector(kind, rows, fvecs, i):
    """Prefetch every cache line of primary row ``i`` (LVQ bytes or float32)."""
    if kind == KIND_FLOAT32:
        nbytes = fvecs.shape[1] * 4
        for off in range(0, nbytes, 64):
            prefetch_elem(fvecs[i], off // 4)
    else:
        for off in range(0, rows.shape[1], 64):
            prefetch_elem(rows[i], off)


@jit(inline="always")
def prefetch_links(neighbors, i):
    """Prefetch every cache line of link row ``i`` of ``neighbors`` (n, R) int32."""
    for off in range(0, neighbors.shape[1], 16):
        prefetch_elem(neighbors[i], off)


# ---- build ---------------------------------------------------------------------------------------
@jit(inline="always")
def _build_score(metric, a, b):
    if metric == 0:
        return sq_l2(a, b)
    return -dot(a, b)


@jit(inline="always")
def beam_search_primary(
    kind,
    mode,
    rows,
    vectors,
    f16,
    neighbors,
    degrees,
    entry,
    q,
    qm,
    q_sum,
    q_mu,
    ef,
    marks,
    epoch,
    cand_s,
    cand_i,
    res_s,
    res_i,
    fresh,
):
    """Build-time beam search scored on the primary codes; returns the result count (<= ef).

    ``rows`` (n, row_bytes) uint8 LVQ rows (``kind`` 0/1/2) or, for ``kind`` 3, ``vectors``
    (n, d) float32; ``q`` (d,) float32 the (decoded) vector being inserted, ``qm = q - mu``,
    ``q_sum``/``q_mu`` as in :func:`primary_score`; ``mode`` ``MODE_L2``/``MODE_IP``. Scoring
    the codes instead of the decoded float32 rows gives the same L2 up to rounding while reading
    a quarter of the bytes (LVQ8): ~30% less build time at 116k x 192 (measured).
    ``marks`` (n,) uint32 visited epochs (entries == ``epoch`` are visited); ``cand_*``/``res_*``
    scratch heaps of capacity >= n + 1 / ef; ``fresh`` (R,) int64 scratch. Results are a max-heap
    in ``res_s``/``res_i``.
    """
    no_norms = vectors[0, :0]  # MODE_L2 / MODE_IP never read the database norms
    s0 = primary_score(kind, mode, q, qm, q_sum, q_mu, rows, vectors, no_norms, entry, f16)
    marks[entry] = epoch
    n_cand = minheap_push(cand_s, cand_i, 0, s0, entry)
    n_res = maxheap_push(res_s, res_i, 0, s0, entry)
    while n_cand > 0:
        cs = cand_s[0]
        c = cand_i[0]
        if n_res >= ef and cs > res_s[0]:
            break
        n_cand = minheap_pop(cand_s, cand_i, n_cand)
        if n_cand > 0:
            prefetch_links(neighbors, cand_i[0])
        n_new = 0
        for j in range(degrees[c]):
            nb = neighbors[c, j]
            if marks[nb] != epoch:
                marks[nb] = epoch
                fresh[n_new] = nb
                n_new += 1
                prefetch_vector(kind, rows, vectors, nb)
        for j in range(n_new):
            nb = fresh[j]
            s = primary_score(kind, mode, q, qm, q_sum, q_mu, rows, vectors, no_norms, nb, f16)
            if n_res < ef:
                n_res = maxheap_push(res_s, res_i, n_res, s, nb)
                n_cand = minheap_push(cand_s, cand_i, n_cand, s, nb)
            elif s < res_s[0]:
                maxheap_replace_top(res_s, res_i, ef, s, nb)
                n_cand = minheap_push(cand_s, cand_i, n_cand, s, nb)
    return n_res


@jit(inline="always")
def robust_prune(metric, vectors, node, cand_s, cand_i, n_cand, R, alpha, out, out_start):
    """Select at most ``R`` links for ``node`` from candidates sorted by ascending score.

    Keeps ``c`` if ``score(c, node) < alpha * score(c, kept)`` for every kept link (L2; ``alpha``
    applies to squared distances), or ``score(c, node) < score(c, kept)`` (IP). Writes ids into
    ``out[out_start:]``; returns how many were kept.
    """
    kept = 0
    for a in range(n_cand):
        c = cand_i[a]
        if c == node:
            continue
        sc = cand_s[a]
        good = True
        for b in range(kept):
            other = out[out_start + b]
            if other == c:
                good = False
                break
            sk = _build_score(metric, vectors[c], vectors[other])
            if metric == 0:
                if alpha * sk <= sc:
                    good = False
                    break
            elif sk <= sc:
                good = False
                break
        if good:
            out[out_start + kept] = c
            kept += 1
            if kept >= R:
                break
    return kept


@jit_parallel
def build_batch_search(
    metric,
    kind,
    rows,
    mu,
    f16,
    vectors,
    neighbors,
    degrees,
    entry,
    batch,
    ef,
    R,
    alpha,
    n_threads,
    out_links,
    out_deg,
):
    """Links of every new node in ``batch`` (nb,) int64, searched over the current graph (read-only).

    ``vectors`` (capacity, d) float32 decoded primary vectors (the inserted node's vector and the
    pruning distances); the beam search scores the primary ``rows`` (capacity, row_bytes) uint8 of
    LVQ ``kind`` with mean ``mu`` (d,) float32, or ``vectors`` when ``kind`` is ``KIND_FLOAT32``.
    ``out_links`` (nb, R) int32 and ``out_deg`` (nb,) int32 receive the pruned links. Parallel
    over ``n_threads`` chunks, each with its own visited marks and heaps.
    """
    nb_total = batch.shape[0]
    n, d = vectors.shape
    mode = MODE_L2 if metric == 0 else MODE_IP
    width = n + 1  # every node enters the candidate heap at most once (visited marks)
    for t in prange(n_threads):
        marks = np.zeros(n, np.uint32)
        epoch = np.uint32(0)
        cand_s = np.empty(width, np.float32)
        cand_i = np.empty(width, np.int64)
        res_s = np.empty(ef, np.float32)
        res_i = np.empty(ef, np.int64)
        tmp = np.empty(R, np.int64)
        fresh = np.empty(neighbors.shape[1], np.int64)
        qm = np.empty(d, np.float32)
        for b in range(t, nb_total, n_threads):
            node = batch[b]
            q = vectors[node]
            q_sum, q_mu = query_terms(q, mu, qm)
            epoch += np.uint32(1)
            n_res = beam_search_primary(
                kind, mode, rows, vectors, f16, neighbors, degrees, entry, q, qm, q_sum, q_mu,
                ef, marks, epoch, cand_s, cand_i, res_s, res_i, fresh,
            )  # fmt: skip
            maxheap_sort(res_s, res_i, n_res)
            kept = robust_prune(metric, vectors, node, res_s, res_i, n_res, R, alpha, tmp, 0)
            for j in range(kept):
                out_links[b, j] = tmp[j]
            out_deg[b] = kept


@jit_parallel
def apply_reverse_links(metric, vectors, neighbors, degrees, targets, offsets, sources, R, alpha):
    """Add reverse links ``target <- sources[offsets[i]:offsets[i+1]]`` for each ``targets[i]``.

    One owner per target row (parallel over targets, race-free). Rows may hold up to
    ``neighbors.shape[1]`` links (the build's slack above ``R``); a row that would exceed that is
    re-pruned to ``R`` links from the union of its links and the new sources, so the O(R^2)
    prune runs once per ~slack new links instead of once per link (SVS's slack factor).
    """
    cap = neighbors.shape[1]
    for i in prange(targets.shape[0]):
        tgt = targets[i]
        start = offsets[i]
        stop = offsets[i + 1]
        deg = degrees[tgt]
        total = deg + (stop - start)
        cand_i = np.empty(total, np.int64)
        n_c = 0
        for j in range(deg):
            cand_i[n_c] = neighbors[tgt, j]
            n_c += 1
        for j in range(start, stop):
            src = sources[j]
            dup = False
            for m in range(deg):
                if neighbors[tgt, m] == src:
                    dup = True
                    break
            if not dup:
                cand_i[n_c] = src
                n_c += 1
        if n_c <= cap:
            for j in range(deg, n_c):
                neighbors[tgt, j] = cand_i[j]
            degrees[tgt] = n_c
            continue
        cand_s = np.empty(n_c, np.float32)
        for j in range(n_c):
            cand_s[j] = _build_score(metric, vectors[tgt], vectors[cand_i[j]])
        order = np.argsort(cand_s)
        sorted_s = cand_s[order]
        sorted_i = cand_i[:n_c][order]
        out = np.empty(R, np.int64)
        kept = robust_prune(metric, vectors, tgt, sorted_s, sorted_i, n_c, R, alpha, out, 0)
        for j in range(kept):
            neighbors[tgt, j] = out[j]
        degrees[tgt] = kept


@jit_parallel
def prune_rows(metric, vectors, neighbors, degrees, rows, R, alpha):
    """Re-prune every row in ``rows`` (m,) int64 holding more than ``R`` links down to at most ``R``."""
    for a in prange(rows.shape[0]):
        tgt = rows[a]
        n_c = degrees[tgt]
        if n_c <= R:
            continue
        cand_i = np.empty(n_c, np.int64)
        cand_s = np.empty(n_c, np.float32)
        for j in range(n_c):
            cand_i[j] = neighbors[tgt, j]
            cand_s[j] = _build_score(metric, vectors[tgt], vectors[cand_i[j]])
        order = np.argsort(cand_s)
        sorted_s = cand_s[order]
        sorted_i = cand_i[order]
        out = np.empty(R, np.int64)
        kept = robust_prune(metric, vectors, tgt, sorted_s, sorted_i, n_c, R, alpha, out, 0)
        for j in range(kept):
            neighbors[tgt, j] = out[j]
        for j in range(kept, neighbors.shape[1]):
            neighbors[tgt, j] = -1
        degrees[tgt] = kept


# ---- search on codes ------------------------------------------------------------------------------
@jit(inline="always")
def primary_score(kind, mode, q, qm, q_sum, q_mu, rows, fvecs, sqnorms, i, f16):
    """Walk score (smaller is better) of query ``q`` against primary row ``i``."""
    if kind == KIND_FLOAT32:
        if mode == MODE_L2:
            return sq_l2(q, fvecs[i])
        ip = dot(q, fvecs[i])
    else:
        if mode == MODE_L2:
            return lvq_l2(kind, qm, rows[i], f16)
        ip = lvq_ip(kind, q, q_sum, q_mu, rows[i], f16)
    if mode == MODE_IP:
        return -ip
    return sqnorms[i] - np.float32(2.0) * ip


@jit_parallel
def search_codes(
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
    entries,
    n_nodes,
    ef,
    n_threads,
    out_ids,
    out_scores,
    out_count,
    out_visited,
    pool_ids,
    pool_scores,
    pool_count,
):
    """Beam search of ``queries`` (nq, d) f32 over the primary vectors; the buffer goes to ``out_*``.

    ``rows`` (n, row_bytes) uint8 LVQ rows (``kind`` 0/1/2) or ``fvecs`` (n, d) float32
    (``kind`` 3); ``mu`` (d,) f32 the LVQ mean; ``sqnorms`` (n,) f32 exact database norms (mode 2).
    ``entries`` (m,) int64, m >= 1: candidate entry points; every query scores all of them and
    starts the walk from the best (an "entry layer": a few hundred cache-resident rows scanned per
    query replace the walk's first hops from a fixed medoid). Writes the ``ef`` best candidates, ascending by walk score, into ``out_ids`` (nq, ef) int64 and
    ``out_scores`` (nq, ef) f32, their count into ``out_count`` (nq,) int64 and the number of
    primary vectors scored (the walk's reads) into ``out_visited`` (nq,) int64.

    Re-rank pool: when ``pool_ids`` (nq, P) int64 has ``P > ef`` columns, the ``P`` best-scoring
    vectors among ALL those scored during the walk (not only the final beam) are kept there, sorted,
    with ``pool_scores`` (nq, P) f32 and counts ``pool_count`` (nq,) int64. It widens the re-rank
    at the cost of one comparison per read, without widening the walk. ``P == 0`` disables it.
    """
    nq, d = queries.shape
    width = n_nodes + 1  # every node enters the candidate heap at most once (visited marks)
    for t in prange(n_threads):
        marks = np.zeros(n_nodes, np.uint32)
        epoch = np.uint32(0)
        cand_s = np.empty(width, np.float32)
        cand_i = np.empty(width, np.int64)
        qm = np.empty(d, np.float32)
        fresh = np.empty(neighbors.shape[1], np.int64)
        n_pool_max = pool_ids.shape[1]
        use_pool = n_pool_max > ef
        for qi in range(t, nq, n_threads):
            q = queries[qi]
            q_sum, q_mu = query_terms(q, mu, qm)
            epoch += np.uint32(1)
            res_s = out_scores[qi]
            res_i = out_ids[qi]
            entry = entries[0]
            s0 = primary_score(kind, mode, q, qm, q_sum, q_mu, rows, fvecs, sqnorms, entry, f16)
            for a in range(1, entries.shape[0]):
                e = entries[a]
                s = primary_score(kind, mode, q, qm, q_sum, q_mu, rows, fvecs, sqnorms, e, f16)
                if s < s0:
                    s0 = s
                    entry = e
            marks[entry] = epoch
            n_cand = minheap_push(cand_s, cand_i, 0, s0, entry)
            n_res = maxheap_push(res_s, res_i, 0, s0, entry)
            visited = entries.shape[0]
            ps = pool_scores[qi] if use_pool else pool_scores[0]
            pi = pool_ids[qi] if use_pool else pool_ids[0]
            n_pool = 0
            if use_pool:
                n_pool = maxheap_push(ps, pi, 0, s0, entry)
            while n_cand > 0:
                cs = cand_s[0]
                c = cand_i[0]
                if n_res >= ef and cs > res_s[0]:
                    break
                n_cand = minheap_pop(cand_s, cand_i, n_cand)
                # The new heap top is usually the next node expanded: start loading its link row
                # now so that miss overlaps this node's scoring (7-10% less time per read measured at
                # ef 24-48, 50k x 192 LVQ8).
                if n_cand > 0:
                    prefetch_links(neighbors, cand_i[0])
                # Gather the unvisited neighbors and prefetch their rows before scoring any of them,
                # so the memory loads overlap (hnswlib prefetches the same way).
                n_new = 0
                for j in range(degrees[c]):
                    nb = neighbors[c, j]
                    if marks[nb] != epoch:
                        marks[nb] = epoch
                        fresh[n_new] = nb
                        n_new += 1
                        prefetch_vector(kind, rows, fvecs, nb)
                for j in range(n_new):
                    nb = fresh[j]
                    visited += 1
                    s = primary_score(kind, mode, q, qm, q_sum, q_mu, rows, fvecs, sqnorms, nb, f16)
                    if use_pool:
                        if n_pool < n_pool_max:
                            n_pool = maxheap_push(ps, pi, n_pool, s, nb)
                        elif s < ps[0]:
                            maxheap_replace_top(ps, pi, n_pool_max, s, nb)
                    if n_res < ef:
                        n_res = maxheap_push(res_s, res_i, n_res, s, nb)
                        n_cand = minheap_push(cand_s, cand_i, n_cand, s, nb)
                    elif s < res_s[0]:
                        maxheap_replace_top(res_s, res_i, ef, s, nb)
                        n_cand = minheap_push(cand_s, cand_i, n_cand, s, nb)
            maxheap_sort(res_s, res_i, n_res)
            out_count[qi] = n_res
            out_visited[qi] = visited
            if use_pool:
                maxheap_sort(ps, pi, n_pool)
                pool_count[qi] = n_pool


# ---- re-rank with the secondary vectors --------------------------------------------------------
@jit(inline="always")
def _secondary_score(sec_kind, metric, q, qm, q_sum, q_mu, sec_f32, sec_f16bits, sec_rows, f16, i):
    if sec_kind == SEC_FLOAT32:
        if metric == 0:
            return sq_l2(q, sec_f32[i])
        return -dot(q, sec_f32[i])
    if sec_kind == SEC_FLOAT16:
        acc = np.float32(0.0)
        x = sec_f16bits[i]
        if metric == 0:
            for j in range(q.shape[0]):
                t = q[j] - f16[x[j]]
                acc += t * t
            return acc
        for j in range(q.shape[0]):
            acc += q[j] * f16[x[j]]
        return -acc
    if metric == 0:
        return lvq_l2(0, qm, sec_rows[i], f16)
    return -lvq_ip(0, q, q_sum, q_mu, sec_rows[i], f16)


RERANK_PREFETCH = 4


@jit(inline="always")
def _prefetch_secondary(sec_kind, sec_f32, sec_f16bits, sec_rows, i):
    """Prefetch every cache line of secondary row ``i`` (float32, float16 bits or LVQ8 bytes)."""
    if sec_kind == SEC_FLOAT32:
        for off in range(0, sec_f32.shape[1], 16):
            prefetch_elem(sec_f32[i], off)
    elif sec_kind == SEC_FLOAT16:
        for off in range(0, sec_f16bits.shape[1], 32):
            prefetch_elem(sec_f16bits[i], off)
    else:
        for off in range(0, sec_rows.shape[1], 64):
            prefetch_elem(sec_rows[i], off)


@jit_parallel
def rerank(
    metric,
    queries,
    cand_ids,
    cand_count,
    n_rerank,
    sec_kind,
    sec_f32,
    sec_f16bits,
    sec_rows,
    sec_mu,
    f16,
    deleted,
    k,
    out_ids,
    out_scores,
):
    """Rescore the first ``min(n_rerank, cand_count[qi])`` candidates with the secondary vectors.

    ``queries`` (nq, D) f32 full-dimension; ``cand_ids`` (nq, ef) int64 ascending by walk score;
    secondary storage: ``sec_f32`` (n, D) f32, ``sec_f16bits`` (n, D) uint16 float16 bits or
    ``sec_rows`` (n, D + 4) uint8 LVQ8 rows with mean ``sec_mu``. Deleted slots are skipped.
    ``out_ids`` (nq, k) int64 / ``out_scores`` (nq, k) f32 must be pre-filled with -1 / +inf.
    """
    nq, D = queries.shape
    for qi in prange(nq):
        q = queries[qi]
        qm = np.empty(D, np.float32)
        q_sum = np.float32(0.0)
        q_mu = np.float32(0.0)
        if sec_kind == SEC_LVQ8:
            for j in range(D):
                qm[j] = q[j] - sec_mu[j]
                q_sum += q[j]
                q_mu += q[j] * sec_mu[j]
        hs = out_scores[qi]
        hi = out_ids[qi]
        m = min(n_rerank, cand_count[qi])
        # Secondary rows are full-dimension and mostly out of cache: keep RERANK_PREFETCH rows in
        # flight ahead of the one being scored (116k x 384 float32, cold cache: 3.1 -> 1.8 us per
        # query at ef 20, 5.1 -> 3.2 at ef 40, vs no prefetch).
        for a in range(min(m, RERANK_PREFETCH)):
            _prefetch_secondary(sec_kind, sec_f32, sec_f16bits, sec_rows, cand_ids[qi, a])
        for a in range(m):
            if a + RERANK_PREFETCH < m:
                _prefetch_secondary(
                    sec_kind, sec_f32, sec_f16bits, sec_rows, cand_ids[qi, a + RERANK_PREFETCH]
                )
            i = cand_ids[qi, a]
            if deleted[i]:
                continue
            s = _secondary_score(
                sec_kind, metric, q, qm, q_sum, q_mu, sec_f32, sec_f16bits, sec_rows, f16, i
            )
            if s < hs[0]:
                maxheap_replace_top(hs, hi, k, s, i)
        maxheap_sort(hs, hi, k)


@jit_parallel
def walk_only_topk(cand_ids, cand_scores, cand_count, deleted, k, out_ids, out_scores):
    """Best ``k`` live candidates by walk score (no re-rank), for ``rerank=0``-like uses and tests."""
    for qi in prange(cand_ids.shape[0]):
        got = 0
        for a in range(cand_count[qi]):
            i = cand_ids[qi, a]
            if deleted[i]:
                continue
            out_ids[qi, got] = i
            out_scores[qi, got] = cand_scores[qi, a]
            got += 1
            if got >= k:
                break
