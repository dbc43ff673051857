"""k-means clustering (seeded, sampled or k-means++ init, Lloyd iterations, empty-cluster repair).

The coarse quantizer of IVF-PQ and the sub-quantizers of :class:`vecsearch.ProductQuantizer` are
trained here. Assignment takes the inner products from the tiled kernel
(:mod:`vecsearch.kernels.fastscan_coarse`: 12 rows x 32 centroids per register block) when
``d * k`` is large and from the direct numba kernel otherwise (see ``TILED_MIN_WORK``);
:func:`nearest_centroids` also gives the IVF fast-scan index its probes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kernels.clustering import (
    ASSIGN_BLOCK,
    assign_direct_serial,
    centroid_sq_norms,
    kmeanspp_init,
    split_empty_clusters,
    update_centroids,
)
from ..kernels.fastscan_coarse import GROUP_QUERIES, TILE, coarse_probes_tiled, fill_tiles
from ..kernels.ivf import coarse_probes_serial
from ..parallel import run_shared, workers_for
from ..validation import metric_code

# The tiled assignment is used when d * k (multiply-adds per row) reaches this; PQ sub-spaces and
# small codebooks stay in the direct kernel. (Measured on the idle 2-core box, n = 116,659, direct
# kernel vs a BLAS product: d=384 k=1024 1.02 vs 0.56 s, d=96 k=1024 0.28 vs 0.28 s. The tiled
# kernel replaced the BLAS product: numpy's OpenBLAS threads spin after each call and slowed the
# numba kernels that followed on a busy 2-core box; 1M x 384, k=4096 training took 2.6x faiss' time.)
TILED_MIN_WORK = 128 * 1024
INITS = ("random", "kmeans++")


def centroid_tiles(centroids: np.ndarray) -> np.ndarray:
    """``centroids`` f32 (k, d) in the tiled layout of :func:`nearest_centroids`: f32 (ceil(k / 16), d, 16)."""
    tiles = np.zeros((-(-centroids.shape[0] // TILE), centroids.shape[1], TILE), np.float32)
    fill_tiles(np.ascontiguousarray(centroids, np.float32), tiles)
    return tiles


def nearest_centroids(x: np.ndarray, tiles: np.ndarray, c_sq_norms: np.ndarray, code: int,
                      n_nearest: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_nearest`` nearest centroids of every row of ``x`` (n, d) f32: ``(int64, f32)`` (n, n_nearest),
    best first (squared L2 or negative inner product; -1 / +inf past k centroids).

    ``tiles`` from :func:`centroid_tiles`, ``c_sq_norms`` f32 (k,), ``code`` a metric code. Groups
    of ``GROUP_QUERIES`` rows are taken by the threads one at a time (a thread that loses its core
    for a while does not hold up the others).
    """
    n = x.shape[0]
    lists = np.full((n, n_nearest), -1, np.int64)
    scores = np.full((n, n_nearest), np.inf, np.float32)
    n_groups = -(-n // GROUP_QUERIES)
    workers = min(workers_for(n), n_groups)
    blocks = np.empty((max(workers, 1), GROUP_QUERIES, tiles.shape[1]), np.float32)  # per-thread scratch
    dots = np.empty((max(workers, 1), GROUP_QUERIES, tiles.shape[0] * TILE), np.float32)

    def work(lo: int, hi: int, worker: int) -> None:
        coarse_probes_tiled(x, lo, hi, tiles, c_sq_norms, code, blocks[worker], dots[worker], lists, scores)

    if workers:
        run_shared(work, n, workers, grain=GROUP_QUERIES)
    return lists, scores


def probes_per_query(queries: np.ndarray, centroids_t: np.ndarray, c_sq_norms: np.ndarray, code: int,
                     nprobe: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nearest_centroids` for a few queries, one at a time (no tiles, no padding rows):
    ``centroids_t`` f32 (d, k); slices of queries taken by the threads in turn, a single query on
    the calling thread."""
    nq = queries.shape[0]
    lists = np.full((nq, nprobe), -1, np.int64)
    scores = np.full((nq, nprobe), np.inf, np.float32)

    def work(lo: int, hi: int, _worker: int) -> None:
        coarse_probes_serial(queries[lo:hi], centroids_t, c_sq_norms, code, lists[lo:hi], scores[lo:hi])

    run_shared(work, nq, workers_for(nq), grain=1)
    return lists, scores


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
    if d * k < TILED_MIN_WORK:
        centroids_t = np.ascontiguousarray(centroids.T)

        def work(lo: int, hi: int, _worker: int) -> None:
            assign_direct_serial(x[lo:hi], centroids_t, c_sq, code, labels[lo:hi], scores[lo:hi])

        run_shared(work, n, workers_for(n), grain=ASSIGN_BLOCK)
        return labels, scores
    nearest, best = nearest_centroids(x, centroid_tiles(centroids), c_sq, code, 1)
    return nearest[:, 0].copy(), best[:, 0].copy()


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
