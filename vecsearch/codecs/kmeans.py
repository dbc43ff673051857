"""k-means clustering (seeded, sampled or k-means++ init, Lloyd iterations, empty-cluster repair).

The coarse quantizer of IVF-PQ and the sub-quantizers of :class:`vecsearch.ProductQuantizer` are
trained here. Assignment uses the BLAS trick (``||x||^2 - 2 x.c + ||c||^2`` from a matrix product)
when ``d * k`` is large and the direct numba kernel otherwise (see ``BLAS_MIN_WORK``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..validation import metric_code
from ..kernels.clustering import (
    assign_direct,
    assign_from_dots,
    centroid_sq_norms,
    kmeanspp_init,
    split_empty_clusters,
    update_centroids,
)

# The BLAS assignment is used when d * k (multiply-adds per row) reaches this. Measured on the
# idle 2-core box, n = 116,659 (direct numba kernel vs numpy matmul + numba argmin, seconds):
#   d=64  k=1024: 0.18 vs 0.24    d=128 k=1024: 0.35 vs 0.32    d=384 k=256:  0.13 vs 0.16
#   d=96  k=1024: 0.28 vs 0.28    d=192 k=1024: 0.52 vs 0.38    d=384 k=1024: 1.02 vs 0.56
# so PQ sub-spaces and small codebooks stay in numba and the coarse IVF quantizer uses BLAS.
BLAS_MIN_WORK = 128 * 1024
# Elements of one (rows x centroids) dot-product block of the BLAS assignment (128 MB of float32).
# Fewer, larger blocks mean fewer hand-overs between OpenBLAS' and numba's threads: 116k x 1024
# assignment 0.58 s with 64 MB blocks, 0.54 s with 128 MB (idle 2-core box; the product alone 0.43 s).
BLAS_BLOCK_ELEMENTS = 1 << 25
INITS = ("random", "kmeans++")


def sample_training_rows(
    n: int, k: int, max_points_per_centroid: int, rng: np.random.Generator
) -> np.ndarray:
    """Sorted int64 rows of a random sample of at most ``k * max_points_per_centroid`` of ``n`` points."""
    cap = k * max_points_per_centroid
    if n <= cap:
        return np.arange(n, dtype=np.int64)
    return np.sort(rng.choice(n, cap, replace=False)).astype(np.int64)


def assign(
    x: np.ndarray, centroids: np.ndarray, metric: str = "l2"
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of every row: ``(labels int64 (n,), scores float32 (n,))``.

    ``x`` (n, d) f32, ``centroids`` (k, d) f32; scores are squared L2 or negative inner product.
    """
    x = np.ascontiguousarray(x, np.float32)
    centroids = np.ascontiguousarray(centroids, np.float32)
    n, d = x.shape
    k = centroids.shape[0]
    code = metric_code(metric)
    labels = np.empty(n, np.int64)
    scores = np.empty(n, np.float32)
    c_sq = np.empty(k, np.float32)
    centroid_sq_norms(centroids, c_sq)
    if d * k < BLAS_MIN_WORK:
        assign_direct(x, np.ascontiguousarray(centroids.T), c_sq, code, labels, scores)
        return labels, scores
    block = max(256, BLAS_BLOCK_ELEMENTS // max(k, 1))
    for start in range(0, n, block):
        stop = min(n, start + block)
        xb = x[start:stop]
        dots = xb @ centroids.T
        x_sq = np.einsum("ij,ij->i", xb, xb)
        assign_from_dots(dots, x_sq, c_sq, code, labels[start:stop], scores[start:stop])
    return labels, scores


def init_centroids(x: np.ndarray, k: int, init: str, rng: np.random.Generator) -> np.ndarray:
    """Initial centroids (k, d) f32: ``k`` distinct random rows, or k-means++ seeding."""
    if init == "random":
        return x[np.sort(rng.choice(x.shape[0], k, replace=False))].copy()
    out = np.empty((k, x.shape[1]), np.float32)
    kmeanspp_init(x, k, rng.random(k), out)
    return out


def kmeans(
    x: Any,
    k: int,
    *,
    metric: str = "l2",
    niter: int = 20,
    seed: int = 0,
    max_points_per_centroid: int = 256,
    init: str = "random",
    spherical: bool = False,
) -> tuple[np.ndarray, float]:
    """Train ``k`` centroids on ``x`` (n, d); returns ``(centroids float32 (k, d), objective)``.

    At most ``k * max_points_per_centroid`` randomly chosen rows are used. ``metric="ip"``
    assigns by largest inner product (centroids stay plain means, as faiss' IVF training does).
    The objective is the sum of the last assignment's scores. Seeded: same input and seed give
    the same centroids. ``spherical`` normalizes the centroids after every update (faiss does
    this for inner-product IVF quantizers).
    """
    x = np.ascontiguousarray(x, np.float32)
    if x.ndim != 2:
        raise ValueError(f"x: expected a 2-D array (n, d), got shape {x.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: expected a positive integer, got {k!r}")
    if x.shape[0] < k:
        raise ValueError(
            f"x: k-means with k={k} needs at least {k} training points, got {x.shape[0]}"
        )
    if init not in INITS:
        raise ValueError(f"init: expected one of {INITS}, got {init!r}")
    if isinstance(niter, bool) or not isinstance(niter, (int, np.integer)) or niter < 1:
        raise ValueError(f"niter: expected a positive integer, got {niter!r}")
    rng = np.random.default_rng(seed)
    rows = sample_training_rows(x.shape[0], k, max_points_per_centroid, rng)
    sample = x[rows] if rows.shape[0] < x.shape[0] else x
    centroids = init_centroids(sample, int(k), init, rng)
    counts = np.zeros(k, np.int64)
    objective = 0.0
    for _ in range(niter):
        labels, scores = assign(sample, centroids, metric)
        objective = float(scores.sum(dtype=np.float64))
        update_centroids(sample, labels, centroids, counts)
        split_empty_clusters(centroids, counts)
        if spherical:
            norms = np.linalg.norm(centroids, axis=1, keepdims=True)
            centroids /= np.where(norms > 0, norms, np.float32(1.0))
    return centroids, objective
