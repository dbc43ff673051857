"""MUVERA fixed-dimensional encoding (FDE) kernels: bucket aggregation, empty-bucket fill, count-sketch.

The dense linear algebra (token x hyperplane signs, token x inner projection psi) is done with
BLAS by the caller (:mod:`vecsearch.codecs.fde`); these kernels do the per-set work that BLAS cannot:
scatter each token's ``psi`` into its bucket (SUM for queries, MEAN for documents), fill empty
document buckets from the token whose sign pattern is nearest in Hamming distance, and the
optional count-sketch projection to ``final_dim``. All are parallel over sets (documents).

Bucket numbering is plain binary: bit ``j`` of a token's bucket id is set when its projection on
hyperplane ``j`` is positive (``id = sum_j bit_j << j``); the Hamming distance between a bucket and
a token is ``popcount(bucket ^ code)``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import jit, jit_parallel


@jit(inline="always")
def popcount(x):
    """Number of set bits of a non-negative int."""
    c = 0
    while x:
        x &= x - 1
        c += 1
    return c


@jit
def sign_codes(projections, n_reps, k_sim, out):
    """Bucket ids from hyperplane projections.

    ``projections`` (N, n_reps * k_sim) float32, column ``r * k_sim + j`` = token . hyperplane j of
    repetition r; writes ``out`` (N, n_reps) int32 with bit j set when that projection is > 0.
    """
    for t in range(projections.shape[0]):
        for r in range(n_reps):
            code = 0
            base = r * k_sim
            for j in range(k_sim):
                if projections[t, base + j] > 0:
                    code |= 1 << j
            out[t, r] = code


@jit(inline="always")
def _aggregate_set(
    codes, psi, start, stop, n_buckets, is_query, fill_empty, normalize_blocks, row, counts
):
    """One set's FDE into ``row`` (see :func:`fde_aggregate`); ``counts`` (n_buckets,) int64 scratch."""
    n_reps = codes.shape[1]
    dp = psi.shape[2]
    shared_psi = psi.shape[1] == 1
    for r in range(n_reps):
        rp = 0 if shared_psi else r
        counts[:] = 0
        rep_base = r * n_buckets * dp
        for t in range(start, stop):
            b = codes[t, r]
            counts[b] += 1
            o = rep_base + b * dp
            for j in range(dp):
                row[o + j] += psi[t, rp, j]
        if is_query:
            continue
        for b in range(n_buckets):
            o = rep_base + b * dp
            c = counts[b]
            if c > 1:
                inv = np.float32(1.0) / np.float32(c)
                for j in range(dp):
                    row[o + j] *= inv
            elif c == 0 and fill_empty:
                best = start
                best_dist = 1 << 30
                for t in range(start, stop):
                    d = popcount(b ^ codes[t, r])
                    if d < best_dist:
                        best_dist = d
                        best = t
                for j in range(dp):
                    row[o + j] = psi[best, rp, j]
            if normalize_blocks:
                sq = np.float32(0.0)
                for j in range(dp):
                    sq += row[o + j] * row[o + j]
                if sq > 0:
                    inv_norm = np.float32(1.0) / np.sqrt(sq)
                    for j in range(dp):
                        row[o + j] *= inv_norm


@jit
def fde_aggregate(codes, psi, offsets, n_buckets, is_query, fill_empty, normalize_blocks, out, start, stop):
    """Aggregate token sets into FDEs.

    ``codes`` (N, R) int32 bucket id of each token in each repetition; ``psi`` (N, Rp, dp) float32
    inner projection of each token (Rp = R, or 1 when one projection serves every repetition);
    ``offsets`` (n + 1,) int64 CSR bounds of the n sets (every set non-empty); ``out``
    (n, R * n_buckets * dp) float32, zero-filled by the caller. Block of (rep r, bucket b) starts
    at ``(r * n_buckets + b) * dp``. Queries (``is_query``) SUM ``psi`` per bucket and never fill;
    documents take the MEAN and, when ``fill_empty``, copy ``psi`` of the token with the smallest
    Hamming distance ``popcount(b ^ code)`` into empty buckets (first token on ties). With
    ``normalize_blocks`` every non-zero document block is then scaled to unit L2 norm.
    Sets ``start .. stop - 1`` on the calling thread: the caller hands set ranges to its threads
    (:func:`vecsearch.parallel.run_shared`; a ``prange`` twin of this kernel cost seconds of compilation).
    """
    counts = np.zeros(n_buckets, np.int64)
    for i in range(start, stop):
        _aggregate_set(codes, psi, offsets[i], offsets[i + 1], n_buckets, is_query, fill_empty, normalize_blocks,
                       out[i], counts)


@jit
def project_rows(x, matrix, out):
    """``out = x @ matrix`` on the calling thread: ``x`` (N, d), ``matrix`` (d, m), ``out`` (N, m) float32.

    For a few token rows, where a multi-threaded BLAS call waits for its threads longer than the
    product takes.
    """
    for t in range(x.shape[0]):
        for c in range(matrix.shape[1]):
            out[t, c] = 0.0
        for a in range(x.shape[1]):
            v = x[t, a]
            for c in range(matrix.shape[1]):
                out[t, c] += v * matrix[a, c]


@jit_parallel
def count_sketch(fde, buckets, signs, out):
    """Count-sketch projection: ``out[i, buckets[c]] += signs[c] * fde[i, c]``.

    ``fde`` (n, D) float32, ``buckets`` (D,) int64 in [0, final_dim), ``signs`` (D,) float32 (+-1),
    ``out`` (n, final_dim) float32 zero-filled. Parallel over rows.
    """
    for i in prange(fde.shape[0]):
        for c in range(fde.shape[1]):
            out[i, buckets[c]] += signs[c] * fde[i, c]
