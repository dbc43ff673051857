"""Two-stage coarse probes of a query batch: candidate lists from PCA-reduced centroids, exact re-score.

Stage 1 ranks all ``nlist`` centroids by an approximate score computed in ``r`` dimensions: with a
basis ``P`` f32 ``(d, r)`` (orthonormal columns: the leading principal axes of the centroids around
their mean ``mu``) and the reduced centroids ``Cr = (C - mu) P``,

    ||q - c||^2 = ||q||^2 - 2 <q, mu> + ||c||^2 - 2 <q, c - mu>   and   <q, c - mu> ~ <P^T q, Cr[c]>,

so L2 ranks by ``||c||^2 - 2 <P^T q, Cr[c]>`` (the full squared norm; the query terms are the same
for every list) and inner product by ``-<P^T q, Cr[c]>``. Both products run in the tiled SIMD
kernel of :mod:`.fastscan_coarse` (``P^T`` is tiled like ``r`` centroids). Stage 2 re-scores (at
least) the ``n_cand`` best candidates exactly against the full centroids and keeps the best ``nprobe``, with the
exact scores the list scan needs (L2 residual codes add them to the code distances).

Work per query: ``d r + nlist r + n_cand d`` multiply-adds against ``nlist d`` for the exact probe.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit
from .distances import METRIC_L2
from .fastscan_coarse import GROUP_QUERIES, block_dots, fill_block
from .ivf import take_best_lists

# The candidates are found without a heap over all nlist reduced scores (a heap of 80 over 4,096
# scores took ~19 us per query, more than the reduced products): a threshold is taken from every
# SAMPLE_STRIDE-th score (its order statistic a little past n_cand / SAMPLE_STRIDE) and every list
# at or below it is re-scored -- about n_cand + 1.5 sqrt(n_cand * SAMPLE_STRIDE) + SAMPLE_STRIDE of
# them; when fewer than n_cand pass (a few % of queries), the heap finds exactly n_cand. Stride 8
# against 4 (4,096 token rows as centroids, rank 128, 1,000 token queries on one core, whole probe):
# 24.8 vs 26.2 ms at nprobe 16 (89 vs 78 lists re-scored), 30.8 vs 33.1 ms at nprobe 32.
SAMPLE_STRIDE = 8


@jit
def candidate_lists(row, n_cand, sample, cand):
    """Lists among the best of ``row`` f32 ``(nlist,)`` (smaller is better) into ``cand`` int64
    ``(nlist,)``: at least the ``n_cand`` best (ties at the threshold included); returns how many.
    ``sample`` f32 ``(ceil(nlist / SAMPLE_STRIDE),)`` scratch. ``row`` may be overwritten."""
    nlist = row.shape[0]
    ns = (nlist + SAMPLE_STRIDE - 1) // SAMPLE_STRIDE
    per = n_cand / SAMPLE_STRIDE
    k = min(ns, int(per) + 1 + int(np.ceil(1.5 * np.sqrt(per))))
    if k < ns:
        for i in range(ns):
            sample[i] = row[i * SAMPLE_STRIDE]
        kth = np.empty(k, np.int64)
        kth_scores = np.empty(k, np.float32)
        take_best_lists(sample[:ns], kth, kth_scores)
        threshold = kth_scores[k - 1]
        m = 0
        for c in range(nlist):  # branch-free compaction
            cand[m] = c
            m += row[c] <= threshold
        if m >= n_cand:
            return m
    best_scores = np.empty(n_cand, np.float32)
    return take_best_lists(row, cand[:n_cand], best_scores)


@jit
def best_of(scores, ids, m, out_ids, out_scores):
    """The ``n = out_ids.shape[0]`` smallest of ``scores[:m]`` f32 with their ``ids[:m]`` int64 into
    ``out_ids`` int64 / ``out_scores`` f32 ``(n,)``, best first (ties: the earlier one; -1 / +inf
    past ``m``). Insertion into the sorted output: for the ~100 candidates of a probe this beats
    :func:`vecsearch.kernels.ivf.take_best_lists`' sort (which allocates) and heap."""
    n = out_ids.shape[0]
    for i in range(n):
        out_ids[i] = -1
        out_scores[i] = np.inf
    for i in range(m):
        s = scores[i]
        if s < out_scores[n - 1]:
            pos = n - 1
            while pos > 0 and out_scores[pos - 1] > s:
                out_scores[pos] = out_scores[pos - 1]
                out_ids[pos] = out_ids[pos - 1]
                pos -= 1
            out_scores[pos] = s
            out_ids[pos] = ids[i]


@jit
def coarse_probes_two_stage(queries, q0, q1, basis_tiles, reduced_tiles, centroids, c_sq_norms, metric, n_cand,
                            block, proj, dots, out_lists, out_scores):
    """The ``nprobe`` nearest centroids of queries ``q0 .. q1 - 1`` (``q1 - q0 <= GROUP_QUERIES``),
    found among (at least) the ``n_cand`` best by the reduced score (:func:`candidate_lists`) and
    scored exactly.

    ``queries`` f32 ``(nq, d)``; ``basis_tiles`` f32 ``(r / 16, d, 16)`` (``P^T`` in the layout of
    :func:`.fastscan_coarse.fill_tiles`, ``r`` a multiple of 16); ``reduced_tiles`` f32
    ``(ceil(nlist / 16), r, 16)`` (``(C - mu) P`` in that layout); ``centroids`` f32 ``(nlist, d)``;
    ``c_sq_norms`` f32 ``(nlist,)`` their full squared norms; ``metric`` a metric code;
    ``nprobe <= n_cand <= nlist``. Scratch: ``block`` f32 ``(GROUP_QUERIES, d)``, ``proj`` f32
    ``(GROUP_QUERIES, r)``, ``dots`` f32 ``(GROUP_QUERIES, 16 * ceil(nlist / 16))``. Writes
    ``out_lists`` int64 / ``out_scores`` f32 ``(nq, nprobe)`` rows ``q0 .. q1 - 1`` as
    :func:`.fastscan_coarse.coarse_probes_tiled` does (``||q - c||^2`` clamped at 0, or ``-<q, c>``,
    best first; -1 / +inf past the candidates found).
    """
    nlist, d = centroids.shape
    n_rows = fill_block(queries, q0, q1, block)
    block_dots(block, n_rows, basis_tiles, proj)  # P^T q (the padding rows stay 0)
    block_dots(proj, n_rows, reduced_tiles, dots)  # <P^T q, Cr[c]>
    cand = np.empty(nlist, np.int64)
    sample = np.empty((nlist + SAMPLE_STRIDE - 1) // SAMPLE_STRIDE, np.float32)
    exact = np.empty(nlist, np.float32)
    l2 = metric == METRIC_L2
    for j in range(q1 - q0):
        row = dots[j, :nlist]
        if l2:
            for c in range(nlist):
                row[c] = c_sq_norms[c] - np.float32(2.0) * row[c]
        else:
            for c in range(nlist):
                row[c] = -row[c]
        m = candidate_lists(row, n_cand, sample, cand)
        q_sq = np.float32(0.0)
        if l2:
            for t in range(d):
                q_sq += block[j, t] * block[j, t]
        for i in range(m):
            c = cand[i]
            dot = np.float32(0.0)
            for t in range(d):
                dot += block[j, t] * centroids[c, t]
            if l2:
                exact[i] = max(q_sq + c_sq_norms[c] - np.float32(2.0) * dot, np.float32(0.0))
            else:
                exact[i] = -dot
        best_of(exact, cand, m, out_lists[q0 + j], out_scores[q0 + j])


@jit
def project_rows(x, basis_tiles, block, proj, out):
    """``out[i] = P^T x[i]`` for the rows of ``x`` f32 ``(n, d)``, ``P^T`` tiled as ``basis_tiles`` f32
    ``(r / 16, d, 16)``; ``out`` f32 ``(n, r)``. Scratch: ``block`` f32 ``(GROUP_QUERIES, d)``, ``proj``
    f32 ``(GROUP_QUERIES, r)``. The same products as the queries' projection (no BLAS)."""
    n = x.shape[0]
    r = out.shape[1]
    for lo in range(0, n, GROUP_QUERIES):
        hi = min(n, lo + GROUP_QUERIES)
        block_dots(block, fill_block(x, lo, hi, block), basis_tiles, proj)
        for i in range(hi - lo):
            for t in range(r):
                out[lo + i, t] = proj[i, t]
