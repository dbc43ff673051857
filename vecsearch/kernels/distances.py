"""Distance kernels: squared L2 and inner product, one-to-one, one-to-many and blocked many-to-many.

Convention used by every kernel and index: a *score* where smaller is better.
``l2`` -> squared Euclidean distance; ``ip``/``cosine`` -> negative inner product.
Indexes convert scores to user-facing distances once, in :func:`vecsearch.base.scores_to_distances`.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import jit, jit_parallel

METRIC_L2 = 0
METRIC_IP = 1  # ip and cosine (cosine vectors are normalized once at add/search)


@jit(inline="always")
def sq_l2(a, b):
    """Squared L2 distance of two float32 vectors ``(d,)``."""
    acc = np.float32(0.0)
    for i in range(a.shape[0]):
        diff = a[i] - b[i]
        acc += diff * diff
    return acc


@jit(inline="always")
def dot(a, b):
    """Inner product of two float32 vectors ``(d,)``."""
    acc = np.float32(0.0)
    for i in range(a.shape[0]):
        acc += a[i] * b[i]
    return acc


@jit(inline="always")
def score(metric, a, b):
    """Smaller-is-better score of ``a`` and ``b`` for a metric code (METRIC_L2 / METRIC_IP)."""
    if metric == METRIC_L2:
        return sq_l2(a, b)
    return -dot(a, b)


@jit
def score_one_to_many(metric, query, vectors, out):
    """Scores of ``query`` (d,) float32 against ``vectors`` (n, d) float32 into ``out`` (n,) float32."""
    for i in range(vectors.shape[0]):
        out[i] = score(metric, query, vectors[i])


@jit
def score_rows(metric, query, vectors, rows, out):
    """Scores of ``query`` (d,) against ``vectors[rows]``; ``rows`` (m,) int, ``out`` (m,) float32."""
    for j in range(rows.shape[0]):
        out[j] = score(metric, query, vectors[rows[j]])


@jit_parallel
def score_many_to_many(metric, queries, vectors, out):
    """Blocked scores: ``queries`` (nq, d) x ``vectors`` (n, d) -> ``out`` (nq, n) float32.

    Parallel over queries. For large batches the BLAS path in :mod:`vecsearch.indexes.flat`
    is faster; this kernel serves small batches and odd shapes without a temporary.
    """
    for qi in prange(queries.shape[0]):
        for i in range(vectors.shape[0]):
            out[qi, i] = score(metric, queries[qi], vectors[i])


@jit_parallel
def squared_norms(vectors, out):
    """Row squared norms of ``vectors`` (n, d) float32 into ``out`` (n,) float32."""
    for i in prange(vectors.shape[0]):
        acc = np.float32(0.0)
        for j in range(vectors.shape[1]):
            acc += vectors[i, j] * vectors[i, j]
        out[i] = acc
