"""Measuring indexes: recall@k with ties and padding, QPS and latency timing, Pareto frontiers.

Recall follows ann-benchmarks and faiss ``contrib/evaluation``: a returned id counts when it is
one of the true top-k ids **or** when its exact distance is within the k-th true distance plus a
small tolerance (so an index is not penalized for picking the other member of a tie). Padding
(-1) never counts, an id returned twice counts once, and the denominator is the number of true
neighbors that exist (``min(k, n_train)``). Distances are recomputed exactly from the vectors,
never taken from the index under test (an approximate index reports approximate distances).

Timing: :func:`time_batch` (best of a few batch calls), :func:`time_single` (per-query latency),
:func:`time_interleaved` (several methods timed in turn over rounds, the one way the ``bench/``
scripts and the runner's re-timing compare methods on a shared machine).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..recall import TIE_EPS, recall_at_k, recall_per_query  # noqa: F401 - defined once, re-exported here


def exact_distances(
    train: np.ndarray, queries: np.ndarray, ids: np.ndarray, metric: str, *, block: int = 256
) -> np.ndarray:
    """Exact distances (vecsearch convention) from each query to the ids of its row.

    ``train`` (n, d), ``queries`` (nq, d), ``ids`` int (nq, m) with -1 padding; returns float32
    (nq, m) with +inf at padding: squared L2 for ``l2``, ``1 - cos`` for ``cosine``, ``-<q, x>`` for ``ip``.
    """
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[0] != queries.shape[0]:
        raise ValueError(f"ids: expected shape ({queries.shape[0]}, m), got {ids.shape}")
    if ids.size and ids.max() >= train.shape[0]:
        raise ValueError(
            f"ids: expected ids < {train.shape[0]} (rows of train), got {int(ids.max())}"
        )
    out = np.full(ids.shape, np.inf, np.float32)
    for start in range(0, ids.shape[0], block):
        stop = min(start + block, ids.shape[0])
        idb = ids[start:stop]
        valid = idb >= 0
        x = np.asarray(train[np.where(valid, idb, 0)], np.float32)  # (b, m, d)
        q = np.asarray(queries[start:stop], np.float32)[:, None, :]
        if metric == "l2":
            diff = x - q
            d = np.einsum("bmd,bmd->bm", diff, diff)
        elif metric == "ip":
            d = -np.einsum("bmd,bmd->bm", x, q)
        elif metric == "cosine":
            xn = np.linalg.norm(x, axis=2)
            qn = np.linalg.norm(q, axis=2)
            d = 1.0 - np.einsum("bmd,bmd->bm", x, q) / np.maximum(xn * qn, 1e-30)
        else:
            raise ValueError(f"metric: expected 'l2', 'ip' or 'cosine', got {metric!r}")
        out[start:stop] = np.where(valid, d, np.inf)
    return out


# ---- timing ---------------------------------------------------------------------------------------
def latency_percentiles(seconds: np.ndarray, percentiles=(50, 95, 99)) -> dict[str, float]:
    """Latency percentiles in milliseconds, e.g. ``{"p50_ms": .., "p99_ms": ..}``."""
    arr = np.asarray(seconds, np.float64) * 1e3
    if arr.size == 0:
        return {f"p{p}_ms": float("nan") for p in percentiles}
    return {f"p{p}_ms": float(np.percentile(arr, p)) for p in percentiles}


def time_batch(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, runs: int = 3):
    """Best-of-``runs`` wall time of one batch call; returns ``(qps, ids of the last run)``.

    One untimed call comes first (it pays compilation and cache warm-up).
    """
    ids = search(queries)
    best = np.inf
    for _ in range(max(1, runs)):
        t0 = time.perf_counter()
        ids = search(queries)
        best = min(best, time.perf_counter() - t0)
    return queries.shape[0] / max(best, 1e-12), ids


def time_single(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray) -> np.ndarray:
    """Per-query wall times (seconds, float64 (nq,)) of one-query calls, after one untimed call."""
    search(queries[:1])
    times = np.empty(queries.shape[0], np.float64)
    for i in range(queries.shape[0]):
        q = queries[i : i + 1]
        t0 = time.perf_counter()
        search(q)
        times[i] = time.perf_counter() - t0
    return times


@dataclass
class Timing:
    """The timed rounds of one method in :func:`time_interleaved`.

    ``wall_s``/``cpu_s``: wall-clock and process-CPU seconds of each timed call (CPU time counts
    every thread of the process: the steadier figure on a shared machine for single-threaded
    work, meaningless for multi-threaded work). ``thread_s``: CPU seconds of the calling thread
    alone (single-threaded work: a library's idle helper threads, e.g. BLAS spinning, and other
    processes do not count). ``output``: the last call's return value.
    ``error``: ``"Type: message"`` when a call raised (the method then left the rounds).
    """

    wall_s: list[float]
    cpu_s: list[float]
    thread_s: list[float] = field(default_factory=list)
    output: Any = None
    error: str | None = None

    @property
    def best_s(self) -> float:
        return min(self.wall_s) if self.wall_s else float("nan")

    @property
    def median_s(self) -> float:
        return float(np.median(self.wall_s)) if self.wall_s else float("nan")

    @property
    def best_cpu_s(self) -> float:
        return min(self.cpu_s) if self.cpu_s else float("nan")

    def rate(self, n: int, *, keep: str = "best", clock: str = "wall") -> float:
        """``n`` items (queries) per second of the ``keep`` (``best``/``median``) round, by ``clock``
        (``wall``/``cpu``); NaN when no round was timed."""
        if keep not in ("best", "median") or clock not in ("wall", "cpu"):
            raise ValueError(
                f"keep/clock: expected best|median and wall|cpu, got {keep!r}, {clock!r}"
            )
        times = self.wall_s if clock == "wall" else self.cpu_s
        if not times:
            return float("nan")
        seconds = min(times) if keep == "best" else float(np.median(times))
        return n / max(seconds, 1e-12)


def time_interleaved(
    calls: Mapping[Any, Callable[[], Any]], rounds: int, *, warmup: str = "once"
) -> dict[Any, Timing]:
    """Time every ``calls[key]()`` ``rounds`` times, the methods taken in turn in each round.

    A slow spell of a shared machine (seconds long) then lands on every method alike instead of
    on the one that happened to be running. ``warmup``: ``"once"`` - one untimed call of every
    method before the first round (compilation, caches); ``"each"`` - an untimed call before
    every timed one (the previous method's data has just left the caches); ``"none"``.
    A method whose call raises keeps the rounds it had, records the error and leaves the rounds;
    the others go on. Returns ``{key: Timing}`` in the order of ``calls``.
    """
    if warmup not in ("once", "each", "none"):
        raise ValueError(f"warmup: expected 'once', 'each' or 'none', got {warmup!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 0:
        raise ValueError(f"rounds: expected a non-negative integer, got {rounds!r}")
    out = {key: Timing([], []) for key in calls}

    def run(key: Any, timed: bool) -> None:
        timing = out[key]
        if timing.error is not None:
            return
        try:
            t0, c0, h0 = time.perf_counter(), time.process_time(), time.thread_time()
            timing.output = calls[key]()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            thread = time.thread_time() - h0
        except Exception as exc:  # noqa: BLE001 - one failing method must not stop the others
            timing.error = f"{type(exc).__name__}: {exc}"
            return
        if timed:
            timing.wall_s.append(wall)
            timing.cpu_s.append(cpu)
            timing.thread_s.append(thread)

    if warmup == "once":
        for key in calls:
            run(key, timed=False)
    for _ in range(rounds):
        for key in calls:
            if warmup == "each":
                run(key, timed=False)
            run(key, timed=True)
    return out


def pad_ids(rows: Sequence[Any], k: int) -> np.ndarray:
    """Per-query id lists of any lengths (one-query-per-call results) as int64 ``(nq, k)``, -1 padded."""
    out = np.full((len(rows), k), -1, np.int64)
    for i, row in enumerate(rows):
        row = np.asarray(row, np.int64).ravel()[:k]
        out[i, : row.shape[0]] = row
    return out


# ---- Pareto frontier ------------------------------------------------------------------------------
def pareto_frontier(recall: np.ndarray, qps: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both recall and QPS, by increasing recall.

    A point is dropped when another has recall >= and QPS >= with one of them strictly greater.
    """
    recall = np.asarray(recall, np.float64)
    qps = np.asarray(qps, np.float64)
    if recall.shape != qps.shape or recall.ndim != 1:
        raise ValueError(
            f"recall/qps: expected two 1-D arrays of one shape, got {recall.shape} and {qps.shape}"
        )
    order = np.lexsort((-qps, -recall))  # recall descending, then QPS descending
    keep = []
    top_qps = -np.inf
    for i in order:
        if qps[i] > top_qps:
            keep.append(i)
            top_qps = qps[i]
    return np.asarray(keep[::-1], np.int64)


def best_qps(recall: np.ndarray, qps: np.ndarray, target: float) -> float:
    """The highest QPS among points with recall >= ``target`` (NaN when none reaches it)."""
    recall = np.asarray(recall, np.float64)
    qps = np.asarray(qps, np.float64)
    ok = recall >= target
    return float(qps[ok].max()) if ok.any() else float("nan")


def interpolated_qps(recall: ArrayLike, qps: ArrayLike, target: float) -> float:
    """QPS of a sweep at exactly ``target`` recall (NaN when the sweep never reaches it).

    ``recall``/``qps`` are the sweep's points in parameter order (``ef``, ``nprobe`` increasing).
    Log-linear interpolation between the last point below the target and the first at or above
    it (QPS falls about exponentially as recall rises). A sweep whose first point already
    reaches the target gives that point's QPS: a lower bound, a smaller setting might be faster.
    """
    recall = np.asarray(recall, np.float64)
    qps = np.asarray(qps, np.float64)
    if recall.shape != qps.shape or recall.ndim != 1:
        raise ValueError(
            f"recall/qps: expected two 1-D arrays of one shape, got {recall.shape} and {qps.shape}"
        )
    reached = np.flatnonzero(recall >= target)
    if reached.size == 0:
        return float("nan")
    i = int(reached[0])
    if i == 0:
        return float(qps[0])
    r0, r1, q0, q1 = recall[i - 1], recall[i], qps[i - 1], qps[i]
    t = (target - r0) / (r1 - r0) if r1 > r0 else 1.0
    return float(np.exp(np.log(q0) + t * (np.log(q1) - np.log(q0))))


@dataclass
class PointResult:
    """One measured point of a sweep."""

    recall: float
    qps: float
    p50_ms: float
    p99_ms: float


def evaluate_point(
    search: Callable[[np.ndarray], np.ndarray],
    train: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    truth_distances: np.ndarray | None,
    k: int,
    metric: str,
    *,
    runs: int = 3,
    latency_queries: int = 200,
    tie_eps: float = TIE_EPS,
) -> PointResult:
    """Time ``search(queries) -> ids (nq, >=k)`` in batch (QPS) and one query at a time (latency),
    and score its ids against ``truth`` with the tie rule."""
    qps, ids = time_batch(search, queries, runs)
    ids = np.asarray(ids)[:, :k]
    found_d = exact_distances(train, queries, ids, metric) if truth_distances is not None else None
    recall = recall_at_k(
        ids, truth, k, found_distances=found_d, truth_distances=truth_distances, tie_eps=tie_eps
    )
    lat = latency_percentiles(time_single(search, queries[: max(1, latency_queries)]), (50, 99))
    return PointResult(recall, qps, lat["p50_ms"], lat["p99_ms"])


def sweep(
    search: Callable[..., np.ndarray],
    settings: list[dict],
    train: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    truth_distances: np.ndarray | None,
    k: int,
    metric: str,
    **kwargs,
) -> list[tuple[dict, PointResult]]:
    """Measure ``search(queries, **setting) -> ids`` at every setting (e.g. ``[{"ef": 16}, {"ef": 64}]``).

    Returns ``(setting, PointResult)`` pairs in order; ``kwargs`` go to :func:`evaluate_point`.
    Feed ``[p.recall for ...]`` and ``[p.qps for ...]`` to :func:`pareto_frontier` for the curve.
    """
    out = []
    for setting in settings:
        point = evaluate_point(
            lambda q, s=setting: search(q, **s),
            train,
            queries,
            truth,
            truth_distances,
            k,
            metric,
            **kwargs,
        )
        out.append((setting, point))
    return out
