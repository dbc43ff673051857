"""Two-stage coarse probe of the IVF fast-scan index: PCA-reduced candidate lists, exact re-score.

With thousands of lists the coarse probe (``nlist * d`` multiply-adds per query) is a large share of
a batch search. :class:`ReducedProbe` ranks the lists in an ``r``-dimensional PCA basis of the
centroids, re-scores the ``candidates(nprobe)`` best exactly and keeps the best ``nprobe``
(:func:`vecsearch.kernels.coarse_rescore.coarse_probes_two_stage` has the algebra).

Nothing here is tuned on one dataset: :func:`choose_rank` measures, on a sample of query-like rows,
which ``r`` of ``RANKS`` finds the exact top-``nprobe`` lists (``LIST_RECALL_TARGET`` of them) at
every ``nprobe`` of ``CHECK_NPROBES`` and takes the smallest; when none does, or ``nlist`` is below
``MIN_NLIST`` (the exact probe is cheap there), the index keeps the exact probe (rank 0).

The basis comes from the centroids alone (``numpy.linalg.eigh`` of their ``d x d`` covariance) at
train time and in :meth:`IVFFastScanIndex.set_coarse_rank`; saves keep the rank and the basis
(``d x r`` float32), so a load runs no LAPACK (a save from before this probe existed computes it
once). ``eigh`` is LAPACK / BLAS work, limited to one thread when threadpoolctl is installed: on the
shared 2-core box without it, the 384 x 384 ``eigh`` took 0.5 s of CPU but up to 12 s of wall time
under load (its two OpenBLAS threads waiting on each other), and the idle BLAS threads spin for a
while afterwards.
"""

from __future__ import annotations

import numpy as np

from ..codecs.kmeans import centroid_tiles, nearest_centroids
from ..codecs.pq import single_threaded_blas
from ..kernels.coarse_rescore import coarse_probes_two_stage, project_rows
from ..kernels.distances import METRIC_IP, METRIC_L2
from ..kernels.fastscan_coarse import GROUP_QUERIES, TILE
from ..parallel import run_shared, workers_for

# Reduced dimensions tried, smallest first (multiples of the 16-lane tile); only ranks up to half the
# dimension are worth it (the reduced pass costs r / d of the exact one, plus the projection).
RANKS = (64, 96, 128, 192)
# Below this many lists the exact probe stays (1,000 x 1,024 x 384 multiply-adds: ~7 ms per 1,000
# queries on one core, against ~50 ms for the list scan at nprobe 16).
MIN_NLIST = 1024
# The nprobes checked when a rank is chosen; larger nprobes use the exact probe.
CHECK_NPROBES = (1, 4, 16, 64)
# Share of the exact top-nprobe lists the two-stage probe must find at every checked nprobe.
LIST_RECALL_TARGET = 0.995
# Rows of the training sample used as queries when a rank is chosen.
CHOICE_QUERIES = 1000


def candidates(nprobe: int) -> int:
    """Lists re-scored exactly for ``nprobe`` (at least; see ``coarse_rescore.SAMPLE_STRIDE``):
    ``2 * nprobe + 16``. A fixed rule, so that the rank alone is measured (:func:`choose_rank`);
    twice nprobe keeps the re-score a small share of the work (at nprobe 64, 144 x 384 multiply-adds
    per query against 4,096 x 128 for the reduced pass), and the 16 gives small nprobes, where one
    missed list costs the most, room."""
    return 2 * nprobe + 16


class ReducedProbe:
    """The centroids in an ``r``-dimensional PCA basis, tiled for the two-stage probe.

    ``centroids`` f32 ``(nlist, d)`` with full squared norms ``c_sq_norms`` f32 ``(nlist,)``;
    ``rank`` a multiple of 16, at most ``d``; ``basis`` f32/f64 ``(d, >= rank)`` orthonormal columns
    (a saved one), or None: the centroids' principal axes. Holds ``basis`` f32 ``(d, r)`` (``P``),
    ``basis_tiles`` f32 ``(r / 16, d, 16)`` (``P^T``) and ``reduced_tiles`` f32
    ``(ceil(nlist / 16), r, 16)`` (``(C - mu) P``, computed by the tiled kernel: no BLAS).
    """

    def __init__(self, centroids: np.ndarray, c_sq_norms: np.ndarray, rank: int, basis: np.ndarray | None = None):
        d = centroids.shape[1]
        if rank < TILE or rank % TILE or rank > d:
            raise ValueError(f"rank: expected a multiple of {TILE} in [{TILE}, {d}], got {rank}")
        self.rank = int(rank)
        self.centroids = np.ascontiguousarray(centroids, np.float32)
        self.c_sq_norms = c_sq_norms
        mean = self.centroids.mean(axis=0, dtype=np.float64).astype(np.float32)
        basis = principal_axes(self.centroids, mean.astype(np.float64)) if basis is None else basis
        self.basis = np.ascontiguousarray(basis[:, :rank], np.float32)  # (d, r)
        self.basis_tiles = centroid_tiles(np.ascontiguousarray(self.basis.T))
        reduced = np.empty((self.centroids.shape[0], self.rank), np.float32)
        project_rows(np.ascontiguousarray(self.centroids - mean), self.basis_tiles,
                     np.empty((GROUP_QUERIES, d), np.float32), np.empty((GROUP_QUERIES, self.rank), np.float32),
                     reduced)
        self.reduced_tiles = centroid_tiles(reduced)

    def probe(self, queries: np.ndarray, metric_code: int, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``nprobe`` nearest lists of ``queries`` f32 ``(nq, d)``, exact scores:
        ``(lists int64, scores f32)`` ``(nq, nprobe)``, as :func:`nearest_centroids` gives them when
        the candidates hold them. Groups of ``GROUP_QUERIES`` queries are taken by the threads in turn."""
        nq, nlist = queries.shape[0], self.centroids.shape[0]
        n_cand = min(candidates(nprobe), nlist)
        lists = np.full((nq, nprobe), -1, np.int64)
        scores = np.full((nq, nprobe), np.inf, np.float32)
        workers = min(workers_for(nq), -(-nq // GROUP_QUERIES))
        n = max(workers, 1)
        blocks = np.empty((n, GROUP_QUERIES, self.centroids.shape[1]), np.float32)  # per-thread scratch
        proj = np.empty((n, GROUP_QUERIES, self.rank), np.float32)
        dots = np.empty((n, GROUP_QUERIES, self.reduced_tiles.shape[0] * TILE), np.float32)

        def work(lo: int, hi: int, worker: int) -> None:
            coarse_probes_two_stage(queries, lo, hi, self.basis_tiles, self.reduced_tiles, self.centroids,
                                    self.c_sq_norms, metric_code, n_cand, blocks[worker], proj[worker],
                                    dots[worker], lists, scores)

        if workers:
            run_shared(work, nq, workers, grain=GROUP_QUERIES)
        return lists, scores


def principal_axes(centroids: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Orthonormal principal axes of ``centroids`` f32 ``(nlist, d)`` around ``mean`` f64 ``(d,)``,
    largest variance first: f64 ``(d, d)``, one axis per column."""
    centred = centroids.astype(np.float64) - mean
    with single_threaded_blas():  # a no-op without threadpoolctl (see vecsearch.codecs.pq)
        _, vectors = np.linalg.eigh(centred.T @ centred)
    return vectors[:, ::-1]


def share_found(found: np.ndarray, exact: np.ndarray) -> float:
    """Share of the lists of ``exact`` int64 ``(nq, nprobe)`` that ``found`` (same shape) holds."""
    hits = sum(np.intersect1d(f[f >= 0], e[e >= 0]).shape[0] for f, e in zip(found, exact))
    return hits / max(int((exact >= 0).sum()), 1)


def choose_rank(centroids: np.ndarray, c_sq_norms: np.ndarray, metric_code: int, sample: np.ndarray,
                tiles: np.ndarray) -> tuple[int, dict[int, float]]:
    """The smallest rank of ``RANKS`` (at most half the dimension) whose two-stage probe finds at
    least ``LIST_RECALL_TARGET`` of the exact top-nprobe lists of the ``sample`` rows f32
    ``(n, d)`` at every nprobe of ``CHECK_NPROBES`` (up to nlist / 4), or 0 (exact probe) when none
    does or ``nlist < MIN_NLIST``. Also returns the worst list recall measured per rank tried."""
    rank, measured, _ = _measure_ranks(centroids, c_sq_norms, metric_code, sample, tiles)
    return rank, measured


def measured_probe(centroids: np.ndarray, c_sq_norms: np.ndarray, metric_code: int, sample: np.ndarray,
                   tiles: np.ndarray) -> ReducedProbe | None:
    """The two-stage probe at the rank :func:`choose_rank` picks (the one it measured: the principal
    axes and the reduced centroids are computed once), or None for the exact probe."""
    return _measure_ranks(centroids, c_sq_norms, metric_code, sample, tiles)[2]


def _measure_ranks(centroids: np.ndarray, c_sq_norms: np.ndarray, metric_code: int, sample: np.ndarray,
                   tiles: np.ndarray) -> tuple[int, dict[int, float], ReducedProbe | None]:
    nlist, d = centroids.shape
    ranks = [r for r in RANKS if 2 * r <= d]
    nprobes = [n for n in CHECK_NPROBES if 4 * n <= nlist]
    if nlist < MIN_NLIST or not ranks or not nprobes or sample is None or sample.shape[0] == 0:
        return 0, {}, None
    sample = np.ascontiguousarray(sample, np.float32)
    exact, _ = nearest_centroids(sample, tiles, c_sq_norms, metric_code, max(nprobes))
    basis = principal_axes(centroids, centroids.mean(axis=0, dtype=np.float64))
    measured: dict[int, float] = {}
    for rank in ranks:
        probe = ReducedProbe(centroids, c_sq_norms, rank, basis)
        measured[rank] = min(share_found(probe.probe(sample, metric_code, n)[0], exact[:, :n]) for n in nprobes)
        if measured[rank] >= LIST_RECALL_TARGET:
            return rank, measured, probe
    return 0, measured, None


def warmup(data: np.ndarray) -> None:
    """Compile the two-stage probe for both metric codes on ``data`` f32 ``(n >= 64, d)`` (widened to
    16 dimensions when narrower: the reduced rank is at least one 16-lane tile)."""
    data = np.ascontiguousarray(np.tile(data, (1, -(-TILE // data.shape[1]))), np.float32)
    centroids = np.ascontiguousarray(data[:64])
    c_sq = np.einsum("ij,ij->i", centroids, centroids).astype(np.float32)
    probe = ReducedProbe(centroids, c_sq, TILE)
    for code in (METRIC_L2, METRIC_IP):
        probe.probe(data[:32], code, 2)


STATE_ARRAYS = ("coarse_rank", "coarse_basis")


def state_arrays(probe: ReducedProbe | None) -> dict[str, np.ndarray]:
    """What a save keeps of ``probe``: ``coarse_rank`` int64 (1,) (0: the exact probe) and, for a rank
    r > 0, ``coarse_basis`` f32 (d, r)."""
    if probe is None:
        return {"coarse_rank": np.zeros(1, np.int64)}
    return {"coarse_rank": np.array([probe.rank], np.int64), "coarse_basis": probe.basis}


def saved_probe(arrays: dict[str, np.ndarray], dim: int) -> tuple[int | None, np.ndarray | None]:
    """``(rank, basis)`` of a save (:func:`state_arrays`); ``(None, None)`` for a save from before the
    two-stage probe. Raises ``ValueError`` naming the array that is malformed."""
    saved, basis = arrays.get("coarse_rank"), arrays.get("coarse_basis")
    if saved is None:
        if basis is not None:
            raise ValueError("coarse_basis: saved without coarse_rank")
        return None, None
    rank = int(saved[0]) if saved.shape == (1,) and saved.dtype == np.int64 else -1
    if not (rank == 0 or (rank % TILE == 0 and TILE <= rank <= dim)):
        raise ValueError(f"coarse_rank: expected int64 (1,) holding 0 or a multiple of {TILE} up to {dim}, got "
                         f"{saved.dtype} {saved.shape} {saved.ravel()[:1].tolist()}")
    expected = (dim, rank) if rank else None
    got = None if basis is None else (basis.shape, basis.dtype)
    if (expected is None) != (basis is None) or (basis is not None and got != (expected, np.float32)):
        want = "no array" if expected is None else f"float32 {expected}"
        raise ValueError(f"coarse_basis: expected {want} for coarse_rank {rank}, got "
                         f"{'nothing' if got is None else f'{got[1]} {got[0]}'}")
    if basis is not None and not np.isfinite(basis).all():
        raise ValueError("coarse_basis: holds NaN or infinite values")
    return rank, None if basis is None else np.asarray(basis)
