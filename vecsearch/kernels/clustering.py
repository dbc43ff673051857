"""k-means kernels: nearest-centroid assignment, centroid update, empty-cluster repair, k-means++.

Two assignment paths, both smaller-is-better scores (``METRIC_L2``: squared L2, ``METRIC_IP``:
negative inner product):

* :func:`assign_from_dots` finishes the BLAS trick ``||x||^2 - 2 x.c + ||c||^2`` from a block of
  dot products computed by a matrix product outside numba (fast for large ``d``);
* :func:`assign_direct_serial` computes the scores itself with centroids stored transposed ``(d, k)`` so
  the inner loop runs over centroids (SIMD-friendly; fast for the small ``d`` of PQ sub-spaces).

:func:`train_subspaces` runs complete Lloyd loops of many independent small-``d`` problems (the
PQ sub-quantizers) in parallel, one sub-space per thread.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import jit, jit_parallel
from .distances import METRIC_L2

# Rows per work item of assign_direct_serial on the thread runner (amortizes the per-block scratch allocation).
ASSIGN_BLOCK = 256
# Relative perturbation when an empty cluster takes over half of the largest one (as faiss).
SPLIT_EPS = np.float32(1.0 / 1024.0)


# Rows scored together by :func:`tile_scores` (each centroid load feeds this many rows).
TILE_ROWS = 4
# Independent running minima in :func:`argmin_of_row` (one SIMD register of float32 lanes).
ARGMIN_LANES = 8


@jit(inline="always")
def tile_scores(x, row0, n_rows, col0, centroids_t, offsets, buf):
    """Scores of up to ``TILE_ROWS`` rows against all centroids, into ``buf`` (TILE_ROWS, k) f32.

    ``buf[a, c] = offsets[c] - x[row0 + a, col0:col0 + d] . centroids_t[:, c]`` for ``a < n_rows``;
    ``x`` (n, >= col0 + d) f32, ``centroids_t`` (d, k) f32, ``offsets`` (k,) f32 (half the squared
    centroid norms for L2, zeros for inner product). Four rows share each centroid load, and
    the loop over centroids is the SIMD one.
    """
    d, k = centroids_t.shape
    for a in range(n_rows):
        for c in range(k):
            buf[a, c] = offsets[c]
    if n_rows == TILE_ROWS:
        # Two dimensions per pass: one load/store of buf per two multiply-adds per row.
        for t in range(0, d - 1, 2):
            a0 = x[row0, col0 + t]
            a1 = x[row0, col0 + t + 1]
            b0 = x[row0 + 1, col0 + t]
            b1 = x[row0 + 1, col0 + t + 1]
            c0 = x[row0 + 2, col0 + t]
            c1 = x[row0 + 2, col0 + t + 1]
            e0 = x[row0 + 3, col0 + t]
            e1 = x[row0 + 3, col0 + t + 1]
            for c in range(k):
                w0 = centroids_t[t, c]
                w1 = centroids_t[t + 1, c]
                buf[0, c] -= a0 * w0 + a1 * w1
                buf[1, c] -= b0 * w0 + b1 * w1
                buf[2, c] -= c0 * w0 + c1 * w1
                buf[3, c] -= e0 * w0 + e1 * w1
        if d % 2 == 1:
            t = d - 1
            for a in range(TILE_ROWS):
                xv = x[row0 + a, col0 + t]
                for c in range(k):
                    buf[a, c] -= xv * centroids_t[t, c]
    else:
        for a in range(n_rows):
            for t in range(d):
                xv = x[row0 + a, col0 + t]
                for c in range(k):
                    buf[a, c] -= xv * centroids_t[t, c]


@jit(inline="always")
def argmin_of_row(scores, lanes):
    """``(index, value)`` of the smallest of ``scores`` (k,) f32, first index on ties.

    The minimum is found in ``ARGMIN_LANES`` interleaved running minima (``lanes`` (8,) f32
    scratch), a loop the compiler vectorizes, then the first position holding it is looked up;
    a compare-and-branch argmin over 256 centroids cost as much as computing the scores.
    """
    k = scores.shape[0]
    n_lanes = min(ARGMIN_LANES, k)
    for j in range(n_lanes):
        lanes[j] = scores[j]
    full = (k // ARGMIN_LANES) * ARGMIN_LANES
    for c0 in range(ARGMIN_LANES, full, ARGMIN_LANES):
        for j in range(ARGMIN_LANES):
            s = scores[c0 + j]
            lanes[j] = s if s < lanes[j] else lanes[j]
    low = lanes[0]
    for j in range(1, n_lanes):
        if lanes[j] < low:
            low = lanes[j]
    for c in range(max(full, n_lanes), k):
        if scores[c] < low:
            low = scores[c]
    for c in range(k):
        if scores[c] == low:
            return c, low
    return 0, low


@jit
def assign_direct_serial(x, centroids_t, c_sq_norms, metric, labels, scores):
    """Serial nearest-centroid assignment of ``x`` (n, d) f32; ``centroids_t`` (d, k) f32.

    Writes ``labels`` (n,) int64 and ``scores`` (n,) f32 (squared L2 clipped at 0, or negative IP).
    """
    n, d = x.shape
    k = centroids_t.shape[1]
    offsets = np.zeros(k, np.float32)
    if metric == METRIC_L2:
        for c in range(k):
            offsets[c] = np.float32(0.5) * c_sq_norms[c]
    buf = np.empty((TILE_ROWS, k), np.float32)
    lanes = np.empty(ARGMIN_LANES, np.float32)
    for row0 in range(0, n, TILE_ROWS):
        n_rows = min(TILE_ROWS, n - row0)
        tile_scores(x, row0, n_rows, 0, centroids_t, offsets, buf)
        for a in range(n_rows):
            best, low = argmin_of_row(buf[a], lanes)
            if metric == METRIC_L2:
                acc = np.float32(0.0)
                for t in range(d):
                    acc += x[row0 + a, t] * x[row0 + a, t]
                low = max(np.float32(2.0) * low + acc, np.float32(0.0))
            labels[row0 + a] = best
            scores[row0 + a] = low


@jit_parallel
def assign_from_dots(dots, x_sq_norms, c_sq_norms, metric, labels, scores):
    """Nearest centroid from precomputed dot products ``dots`` (n, k) f32 = ``x @ centroids.T``.

    ``x_sq_norms`` (n,) and ``c_sq_norms`` (k,) f32 are used for L2. Writes ``labels`` (n,) int64
    and ``scores`` (n,) f32 (squared L2 clipped at 0, or negative IP).
    """
    k = dots.shape[1]
    for i in prange(dots.shape[0]):
        best = 0
        best_s = np.float32(np.inf)
        if metric == METRIC_L2:
            for c in range(k):
                s = c_sq_norms[c] - np.float32(2.0) * dots[i, c]
                if s < best_s:
                    best_s = s
                    best = c
            best_s = max(best_s + x_sq_norms[i], np.float32(0.0))
        else:
            for c in range(k):
                s = -dots[i, c]
                if s < best_s:
                    best_s = s
                    best = c
        labels[i] = best
        scores[i] = best_s


@jit
def update_centroids(x, labels, centroids, counts):
    """Means of the points of each cluster: ``x`` (n, d) f32, ``labels`` (n,) int64.

    Writes ``centroids`` (k, d) f32 (clusters without points keep their old value) and
    ``counts`` (k,) int64. Sums accumulate in float64.
    """
    k, d = centroids.shape
    sums = np.zeros((k, d), np.float64)
    counts[:] = 0
    for i in range(x.shape[0]):
        c = labels[i]
        counts[c] += 1
        for t in range(d):
            sums[c, t] += x[i, t]
    for c in range(k):
        if counts[c] > 0:
            inv = 1.0 / counts[c]
            for t in range(d):
                centroids[c, t] = np.float32(sums[c, t] * inv)


@jit
def split_empty_clusters(centroids, counts):
    """Repair empty clusters: each takes half of the currently largest cluster.

    The empty centroid becomes a copy of the largest one, and both are pushed apart by a
    relative ``SPLIT_EPS`` in alternating directions per dimension; the count is split in two.
    ``centroids`` (k, d) f32 and ``counts`` (k,) int64 are updated in place. Returns the number
    of clusters repaired.
    """
    k, d = centroids.shape
    n_split = 0
    for ci in range(k):
        if counts[ci] != 0:
            continue
        cj = 0
        for c in range(1, k):
            if counts[c] > counts[cj]:
                cj = c
        if counts[cj] < 2:
            break
        for t in range(d):
            v = centroids[cj, t]
            if t % 2 == 0:
                centroids[ci, t] = v * (np.float32(1.0) + SPLIT_EPS)
                centroids[cj, t] = v * (np.float32(1.0) - SPLIT_EPS)
            else:
                centroids[ci, t] = v * (np.float32(1.0) - SPLIT_EPS)
                centroids[cj, t] = v * (np.float32(1.0) + SPLIT_EPS)
        counts[ci] = counts[cj] // 2
        counts[cj] -= counts[ci]
        n_split += 1
    return n_split


@jit
def centroid_sq_norms(centroids, out):
    """Squared norms of ``centroids`` (k, d) f32 into ``out`` (k,) f32."""
    for c in range(centroids.shape[0]):
        acc = np.float32(0.0)
        for t in range(centroids.shape[1]):
            acc += centroids[c, t] * centroids[c, t]
        out[c] = acc


@jit
def lloyd_direct(x, centroids, niter, metric):
    """Lloyd iterations on ``x`` (n, d) f32 from initial ``centroids`` (k, d) f32, in place.

    Uses :func:`assign_direct_serial` (small ``d``), repairs empty clusters after every update.
    Returns the final sum of assignment scores (float64).
    """
    n = x.shape[0]
    k, d = centroids.shape
    labels = np.empty(n, np.int64)
    scores = np.empty(n, np.float32)
    counts = np.zeros(k, np.int64)
    c_t = np.empty((d, k), np.float32)
    c_sq = np.empty(k, np.float32)
    total = 0.0
    for _ in range(niter):
        for c in range(k):
            for t in range(d):
                c_t[t, c] = centroids[c, t]
        centroid_sq_norms(centroids, c_sq)
        assign_direct_serial(x, c_t, c_sq, metric, labels, scores)
        total = 0.0
        for i in range(n):
            total += scores[i]
        update_centroids(x, labels, centroids, counts)
        split_empty_clusters(centroids, counts)
    return total


@jit
def train_subspaces(x, rows, centroids, niter, start, stop):
    """Train one squared-L2 k-means per sub-space for sub-spaces ``start .. stop - 1``.

    ``x`` (n, m*dsub) f32; ``rows`` (n_train,) int64 the training rows; ``centroids``
    (m, k, dsub) f32 holds the initial centroids and receives the trained ones. Serial: the caller
    hands sub-space ranges to its threads (a ``prange`` version cost ~2 s more compilation).
    """
    _, _, dsub = centroids.shape
    n_train = rows.shape[0]
    for j in range(start, stop):
        sub = np.empty((n_train, dsub), np.float32)
        for i in range(n_train):
            r = rows[i]
            for t in range(dsub):
                sub[i, t] = x[r, j * dsub + t]
        lloyd_direct(sub, centroids[j], niter, METRIC_L2)


@jit
def kmeanspp_init(x, k, uniforms, out):
    """k-means++ seeding (D^2 sampling, squared L2) of ``k`` centroids from ``x`` (n, d) f32.

    ``uniforms`` (k,) float64 in [0, 1) drive the draws (the caller seeds them); writes ``out``
    (k, d) f32. Cost O(n k d).
    """
    n, d = x.shape
    first = min(int(uniforms[0] * n), n - 1)
    out[0] = x[first]
    closest = np.empty(n, np.float64)
    for i in range(n):
        acc = 0.0
        for t in range(d):
            diff = x[i, t] - out[0, t]
            acc += diff * diff
        closest[i] = acc
    for c in range(1, k):
        total = 0.0
        for i in range(n):
            total += closest[i]
        pick = n - 1
        if total > 0.0:
            target = uniforms[c] * total
            run = 0.0
            for i in range(n):
                run += closest[i]
                if run > target:
                    pick = i
                    break
        else:
            pick = min(int(uniforms[c] * n), n - 1)
        out[c] = x[pick]
        for i in range(n):
            acc = 0.0
            for t in range(d):
                diff = x[i, t] - out[c, t]
                acc += diff * diff
            closest[i] = min(closest[i], acc)
