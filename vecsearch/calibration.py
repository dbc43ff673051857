"""Calibration: the cheapest search parameters that reach a target recall, measured on the index itself.

Users think in recall, not in ``ef``, ``nprobe``, ``rerank`` or ``candidates``. :func:`calibrate`
measures recall@k against exact search on a sample of queries and returns the fastest setting whose
measured recall reaches the target (:class:`CalibrationReport`); :meth:`vecsearch.base.Index.calibrate`
makes that setting the index's default search parameters and saves it with the index.

The knobs come from the index type's sweep grid (``search_grid()``): its first knob is the *primary*
one, which raises recall as it grows (``ef``, ``nprobe``, ``candidates``); every other knob is
*secondary* and takes the grid's values or is left out (``rerank``). For every combination of secondary values
the smallest primary value reaching the target is found by doubling from the grid's smallest
value, then bisection over the integers (recall grows with it); the feasible settings are then timed in interleaved rounds and the fastest wins.

Queries: the ``queries`` given (e.g. logged production queries, the best choice), or ``n_queries``
stored vectors of the index sampled at random (each query's own row is then excluded from both
its results and its truth). Stored vectors are easier queries than real ones when real queries
come from another distribution (one-word queries against definitions: a setting calibrated on
WordNet's own rows reaches 0.97 on its rows and about 0.78 on one-word queries): pass queries
of the kind the index will serve whenever there are some. Exact top-k over every live vector is the truth: the index's own
vectors (``reconstruct``), or ``vectors`` (with their ``vector_ids``) for an index that does not
keep them.

Other kinds of queries (a multi-vector index's token sets, whose truth is brute-force Chamfer):
the index builds a :class:`CalibrationSample` (queries plus their exact top-k ids, from its own
exact search) and calls :func:`calibrate_on`, which runs the same search over the knobs;
:meth:`vecsearch.indexes.multivector.MultiVectorIndex.calibrate` does.

A setting counts as reaching the target when its measured recall is at least the target plus a
margin of 1.645 standard errors of the mean recall over the sample (one-sided 95%): with 1,000
queries and a typical per-query spread that is ~0.005, so a setting calibrated on one sample
holds on another of the same kind.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .exact import exact_topk
from .recall import recall_per_query
from .validation import as_vectors, check_k, metric_code, normalize_rows

Z_ONE_SIDED_95 = 1.645
# Largest primary value tried: this many times the grid's largest (a target the grid cannot reach
# may still be reachable a little beyond it).
PRIMARY_HEADROOM = 4
TIMING_ROUNDS = 3


@dataclass(frozen=True)
class CalibrationPoint:
    """One measured setting: its parameters, recall@k over the sample and batch QPS."""

    params: dict[str, Any]
    recall: float
    qps: float
    margin: float


@dataclass
class CalibrationReport:
    """What :func:`calibrate` measured and chose.

    ``params``: the chosen search parameters (empty when the index has no knob); ``recall``/``qps``:
    measured at them; ``reached``: whether any setting reached ``target_recall`` (otherwise
    ``params`` is the most accurate one tried); ``curve``: every setting measured.
    """

    target_recall: float
    k: int
    params: dict[str, Any]
    recall: float
    qps: float
    reached: bool
    n_queries: int
    queries_from: str
    seconds: float
    curve: list[CalibrationPoint] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CalibrationSample:
    """The queries every setting is measured on, and their exact answers (the truth).

    ``queries``: what ``index.search`` takes (float32 ``(n, dim)``; a list of ``n`` token matrices
    for a multi-vector index); ``truth`` int64 ``(n, k)`` the exact top-k ids, best first, -1
    padded; ``self_ids`` int64 ``(n,)`` each query's own id when the queries were sampled from the
    index (that id is then dropped from its results before counting), else None; ``origin`` says
    where the queries came from (``"given"``, ``"stored vectors"``, ...).
    """

    queries: Any
    n: int
    truth: np.ndarray
    self_ids: np.ndarray | None
    origin: str

    @classmethod
    def from_exact(cls, queries: Any, n: int, exact_ids: np.ndarray, self_ids: np.ndarray | None, k: int,
                   origin: str) -> CalibrationSample:
        """A sample from the exact search's ids ``(n, >= k)`` (``k + 1`` wide when ``self_ids`` are given:
        each query's own id is dropped from them)."""
        return cls(queries, n, _drop_self(np.asarray(exact_ids, np.int64), self_ids, k), self_ids, origin)


def check_arguments(target_recall: Any, k: Any, n_queries: Any) -> tuple[float, int]:
    """Validated ``(target_recall, k)``; ``ValueError`` naming the argument otherwise."""
    if isinstance(target_recall, bool) or not isinstance(target_recall, (int, float)) \
            or not 0.0 < float(target_recall) <= 1.0:
        raise ValueError(f"target_recall: expected a number in (0, 1], got {target_recall!r}")
    k = check_k(k)
    if isinstance(n_queries, bool) or not isinstance(n_queries, (int, np.integer)) or n_queries < 1:
        raise ValueError(f"n_queries: expected a positive integer, got {n_queries!r}")
    return float(target_recall), k


def sample_rows(n: int, n_queries: int, seed: int) -> np.ndarray:
    """Sorted distinct rows ``(min(n_queries, n),)`` int64 of ``0 .. n - 1``, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(n_queries, n), replace=False)).astype(np.int64)


def calibrate(index: Any, target_recall: float = 0.95, k: int = 10, queries: Any = None, *,
              vectors: Any = None, vector_ids: Any = None, n_queries: int = 1000, seed: int = 0) -> CalibrationReport:
    """The fastest search parameters of ``index`` with recall@``k`` >= ``target_recall`` (see the module docstring).

    ``queries`` (nq, dim): the calibration queries (default: ``n_queries`` sampled stored vectors);
    ``vectors`` (n, dim) and ``vector_ids`` (n,) int64: the exact-search truth for an index that does
    not keep its vectors (ids default to ``0 .. n - 1``). Does not change the index.
    """
    t_start = time.perf_counter()
    target, k = check_arguments(target_recall, k, n_queries)
    if index.ntotal == 0:
        raise ValueError("index: calibration needs a non-empty index")
    base, base_ids = _truth_vectors(index, vectors, vector_ids)
    k = min(k, base.shape[0])
    q, self_ids, origin = _queries(index, queries, base, base_ids, n_queries, seed)
    want = k + (1 if self_ids is not None else 0)
    truth_slots, _ = exact_topk(metric_code(index.metric), q, base, min(want, base.shape[0]))
    truth_ids = np.where(truth_slots >= 0, base_ids[np.maximum(truth_slots, 0)], -1)
    sample = CalibrationSample.from_exact(q, q.shape[0], truth_ids, self_ids, k, origin)
    return calibrate_on(index, sample, target, k, t_start=t_start)


def calibrate_on(index: Any, sample: CalibrationSample, target_recall: float, k: int, *,
                 t_start: float | None = None) -> CalibrationReport:
    """The search over ``index``'s knobs (its ``search_grid()``) for ``sample``, whatever kind of
    queries and truth it holds (see :func:`calibrate` for single vectors). Does not change the index."""
    t_start = time.perf_counter() if t_start is None else t_start
    target = float(target_recall)
    q, self_ids, truth = sample.queries, sample.self_ids, sample.truth
    want = k + (1 if self_ids is not None else 0)

    def measure(params: dict[str, Any]) -> CalibrationPoint:
        t0 = time.perf_counter()
        found = index.search(q, want, **params).ids
        seconds = time.perf_counter() - t0
        per_query = recall_per_query(_drop_self(found, self_ids, k), truth, k)
        margin = Z_ONE_SIDED_95 * float(per_query.std()) / math.sqrt(per_query.shape[0])
        return CalibrationPoint(dict(params), float(per_query.mean()), sample.n / max(seconds, 1e-9), margin)

    def report(point: CalibrationPoint, reached: bool, curve: list[CalibrationPoint]) -> CalibrationReport:
        return CalibrationReport(target, k, point.params, point.recall, point.qps, reached, sample.n, sample.origin,
                                 time.perf_counter() - t_start, curve)

    grid = dict(type(index).search_grid())
    curve: list[CalibrationPoint] = []
    if not grid:
        point = measure({})
        return report(point, point.recall >= target, [point])
    primary, *secondary = list(grid)
    values = [int(v) for v in grid[primary] if v is not None]
    low, high = max(1, min(values)), max(values) * PRIMARY_HEADROOM
    feasible = []
    # every secondary knob may also be left out (the index's own default: e.g. no re-rank)
    choices = [list(dict.fromkeys([None, *grid[name]])) for name in secondary]
    for combo in itertools.product(*choices):
        fixed = {name: value for name, value in zip(secondary, combo) if value is not None}
        if not _accepted(index, q, want, {**fixed, primary: low}):
            continue
        best = _smallest_reaching(measure, primary, low, high, fixed, target, curve)
        if best is not None:
            feasible.append(best)
    if not feasible:
        return report(max(curve, key=lambda p: p.recall), False, curve)
    return report(_fastest(index, q, sample.n, want, feasible), True, curve)


def _smallest_reaching(measure, primary: str, low: int, high: int, fixed: dict[str, Any], target: float,
                       curve: list[CalibrationPoint]) -> CalibrationPoint | None:
    """Bisection over ``primary`` in ``[low, high]`` for the smallest value whose recall reaches
    ``target`` plus its margin (``fixed`` knobs held); every measured point goes into ``curve``."""
    cache: dict[int, CalibrationPoint] = {}

    def at(value: int) -> CalibrationPoint:
        if value not in cache:
            cache[value] = measure({**fixed, primary: value})
            curve.append(cache[value])
        return cache[value]

    def ok(point: CalibrationPoint) -> bool:
        return point.recall >= target + point.margin

    lo, hi = None, low  # doubling upwards (a high setting is slow to measure), then bisection
    while not ok(at(hi)):
        if hi >= high:
            return None
        lo, hi = hi, min(2 * hi, high)
    if lo is None:
        return at(hi)
    while hi - lo > max(1, lo // 32):  # ~3% resolution: finer steps cost more than they save
        mid = (lo + hi) // 2
        if ok(at(mid)):
            hi = mid
        else:
            lo = mid
    return at(hi)


def _accepted(index: Any, q: Any, want: int, params: dict[str, Any]) -> bool:
    """Whether this index takes ``params`` (a grid's ``rerank`` is refused by an IVF-PQ without vectors)."""
    try:
        index.search(q[:1], want, **params)
    except (TypeError, ValueError):
        return False
    return True


def _fastest(index: Any, q: Any, n: int, want: int, points: list[CalibrationPoint]) -> CalibrationPoint:
    """The fastest of ``points``, re-timed in interleaved rounds (best round each)."""
    if len(points) == 1:
        return points[0]
    best = [math.inf] * len(points)
    for _ in range(TIMING_ROUNDS):
        for i, point in enumerate(points):
            t0 = time.perf_counter()
            index.search(q, want, **point.params)
            best[i] = min(best[i], time.perf_counter() - t0)
    i = int(np.argmin(best))
    p = points[i]
    return CalibrationPoint(p.params, p.recall, n / max(best[i], 1e-9), p.margin)


def _truth_vectors(index: Any, vectors: Any, vector_ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors f32 (n, dim) as the index compares them, their ids int64 (n,))``."""
    if vectors is None:
        if vector_ids is not None:
            raise ValueError("vector_ids: only meaningful together with vectors=...")
        ids = index.ids()
        try:
            return np.ascontiguousarray(index.reconstruct(ids), np.float32), ids
        except ValueError:
            raise ValueError(f"vectors: {type(index).__name__} does not keep its vectors; pass the indexed "
                             "vectors (and vector_ids) as the exact-search truth") from None
    base = as_vectors(vectors, index.dim, "vectors")
    if index.metric == "cosine":
        base = normalize_rows(base, "vectors")
    if vector_ids is None:
        ids = np.arange(base.shape[0], dtype=np.int64)
    else:
        ids = np.asarray(vector_ids)
        if ids.shape != (base.shape[0],) or ids.dtype.kind not in "iu":
            raise ValueError(f"vector_ids: expected integers of shape ({base.shape[0]},), got {ids.dtype} {ids.shape}")
        ids = ids.astype(np.int64)
    return np.ascontiguousarray(base), ids


def _queries(index: Any, queries: Any, base: np.ndarray, base_ids: np.ndarray, n_queries: int,
             seed: int) -> tuple[np.ndarray, np.ndarray | None, str]:
    """``(queries f32 (nq, dim), their own ids when sampled from the index (else None), origin)``."""
    if queries is not None:
        q = as_vectors(queries, index.dim, "queries")
        if q.shape[0] == 0:
            raise ValueError("queries: expected at least one query, got 0 rows")
        if index.metric == "cosine":
            q = normalize_rows(q, "queries")
        return np.ascontiguousarray(q), None, "given"
    rows = sample_rows(base.shape[0], n_queries, seed)
    return np.ascontiguousarray(base[rows]), base_ids[rows], "stored vectors"


def _drop_self(found: np.ndarray, self_ids: np.ndarray | None, k: int) -> np.ndarray:
    """``found`` (nq, >= k) ids without each row's own id (sampled queries), first ``k`` kept."""
    if self_ids is None:
        return found[:, :k]
    out = np.full((found.shape[0], k), -1, np.int64)
    for i in range(found.shape[0]):
        row = found[i][found[i] != self_ids[i]][:k]
        out[i, : row.shape[0]] = row
    return out
