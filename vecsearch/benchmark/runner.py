"""Run a benchmark: build each algorithm, sweep its search parameter, write JSON lines, plot, print.

Index specs (``--index``): ``KIND`` or ``KIND:key=v1,v2:key=v``. Keys that are search parameters
of the kind (``ef`` for hnsw/leanvec, ``nprobe``/``rerank`` for ivfpq) form the sweep; every
other key is a build parameter, and several values build several indexes. ``none`` is None.
Examples: ``hnsw:M=16,32:ef=10,20,40``, ``ivfpq:nlist=256:m=48:nprobe=1,4,16:rerank=none,10``.

Calibration (``--calibrate 0.95``): after its sweep, each vecsearch index is calibrated to the
target (:meth:`vecsearch.Index.calibrate`) on *held-out* queries, never the measured ones: the
queries after the first ``--queries N``, or else the last half of the dataset's queries (at most
``calibration_queries``), which are then not measured. The calibrated setting is measured like
a sweep point on the measured queries (and re-timed with them); its row has ``"calibrated": true``
and a ``"calibration"`` record, and a table compares its QPS with the sweep's best QPS at the
recall it reached.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .. import registry
from .algorithms import (
    PEERS,
    Algorithm,
    Unavailable,
    VecsearchAlgorithm,
    benchmark_kinds,
    default_params,
    grid_points,
    peers_for,
    set_threads,
)
from .datasets import Dataset, ensure_ground_truth, load_dataset
from .evaluation import TIE_EPS, evaluate_point, time_interleaved
from .report import calibration_table, plot_frontiers, points_table, ratio_lines, summary_table

DEFAULT_INDEXES = ("flat", "hnsw", "ivfpq", "leanvec")
RESULTS_FILE = "results.jsonl"
PLOT_FILE = "recall_qps.png"
TABLE_FILE = "table.txt"


@dataclass
class BenchConfig:
    """Everything ``vecsearch bench`` needs (the CLI flags, one to one)."""

    dataset: str | None = None
    metric: str | None = None
    query_file: str | None = None
    indexes: list[str] = field(default_factory=lambda: list(DEFAULT_INDEXES))
    peers: list[str] = field(default_factory=lambda: list(PEERS))
    k: int = 10
    threads: int | None = None
    queries: int | None = None
    out: str = "bench-results"
    runs: int = 3
    rounds: int = 3
    latency_queries: int = 200
    tie_eps: float = TIE_EPS
    plot: bool = True
    calibrate: float | None = None
    calibration_queries: int = 1000


def _parse_value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


def parse_index_spec(spec: str, n: int, dim: int) -> list[VecsearchAlgorithm]:
    """Algorithms for one ``--index`` spec (see the module docstring), defaults filled in for ``n``, ``dim``."""
    parts = [p for p in spec.strip().split(":") if p]
    if not parts:
        raise ValueError(
            f"index: expected a spec such as 'hnsw' or 'hnsw:M=16:ef=10,20', got {spec!r}"
        )
    kind = parts[0].lower()
    if kind not in benchmark_kinds():
        raise ValueError(
            f"index: expected one of {sorted(benchmark_kinds())} in {spec!r}, got {kind!r}"
        )
    build, grid = default_params(kind, n, dim)
    build_grid: dict[str, list[Any]] = {key: [value] for key, value in build.items()}
    search_keys = registry.get(kind).search_knobs
    for part in parts[1:]:
        if "=" not in part:
            raise ValueError(f"index: expected key=value after ':' in {spec!r}, got {part!r}")
        key, _, values = part.partition("=")
        key = key.strip()
        parsed = [_parse_value(v) for v in values.split(",") if v.strip()]
        if not parsed:
            raise ValueError(f"index: no value given for {key!r} in {spec!r}")
        if key in search_keys:
            grid[key] = parsed
        elif kind == "flat":
            raise ValueError(f"index: flat takes no parameters, got {key!r} in {spec!r}")
        else:
            build_grid[key] = parsed
    return [VecsearchAlgorithm(kind, bp, grid) for bp in grid_points(build_grid)]


def plan_algorithms(config: BenchConfig, dataset: Dataset) -> list[Algorithm]:
    """vecsearch algorithms from the specs, each followed by its peers (deduplicated)."""
    unknown = [p for p in config.peers if p not in PEERS]
    if unknown:
        raise ValueError(f"peers: expected any of {list(PEERS)} or 'none', got {unknown}")
    ours: list[Algorithm] = []
    for spec in config.indexes:
        ours.extend(parse_index_spec(spec, dataset.train.shape[0], dataset.dim))
    planned: list[Algorithm] = []
    seen: set[str] = set()
    for algo in ours:
        planned.append(algo)
        for peer in peers_for(
            algo.kind, algo.build_params, algo.search_grid, config.peers, config.threads
        ):
            if peer.label() not in seen:
                seen.add(peer.label())
                planned.append(peer)
    return planned


class Progress:
    """A one-line progress bar on a stream (redrawn in place on a terminal, printed once otherwise)."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None, width: int = 30):
        self.total, self.label, self.width = max(total, 1), label, width
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.perf_counter()
        if not self.tty:
            self.stream.write(f"  building {label} ...\n")
            self.stream.flush()

    def __call__(self, done: int) -> None:
        if not self.tty:
            return
        frac = min(done / self.total, 1.0)
        bar = "#" * int(frac * self.width)
        elapsed = time.perf_counter() - self.t0
        self.stream.write(
            f"\r  building {self.label[:50]:<50} [{bar:<{self.width}}] {frac:4.0%} {elapsed:6.1f}s"
        )
        self.stream.flush()

    def close(self, note: str = "") -> None:
        elapsed = time.perf_counter() - self.t0
        end = "\r" if self.tty else ""
        self.stream.write(
            f"{end}  built    {self.label[:50]:<50} [{'#' * self.width}] 100% {elapsed:6.1f}s {note}\n"
        )
        self.stream.flush()


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def run_benchmark(
    config: BenchConfig, log: TextIO | None = None, out: TextIO | None = None
) -> list[dict[str, Any]]:
    """Run the benchmark described by ``config``; returns the result rows (also written to disk).

    Writes ``OUT/results.jsonl`` (one JSON object per measured point), ``OUT/recall_qps.png`` and
    ``OUT/table.txt``; progress goes to ``log`` (stderr), the tables to ``out`` (stdout).
    """
    log = log or sys.stderr
    out = out or sys.stdout
    if isinstance(config.k, bool) or not isinstance(config.k, int) or config.k < 1:
        raise ValueError(f"k: expected a positive integer, got {config.k!r}")
    threads = set_threads(config.threads)
    t_start = time.perf_counter()
    dataset = load_dataset(config.dataset, metric=config.metric, queries_file=config.query_file)
    held_out = None
    if config.calibrate is not None:
        dataset, held_out = split_calibration_queries(dataset, config.queries, config.calibration_queries)
    dataset = dataset.with_queries(config.queries)
    had_gt = dataset.neighbors is not None
    dataset = ensure_ground_truth(dataset, config.k)
    print(
        f"dataset {dataset.name}: {dataset.train.shape[0]:,} x {dataset.dim} train, "
        f"{dataset.test.shape[0]:,} queries, metric {dataset.metric}, k={config.k}, threads={threads}"
        + ("" if had_gt else " (ground truth computed with FlatIndex, cached)"),
        file=log,
    )
    if held_out is not None:
        print(f"calibration to recall@{config.k} >= {config.calibrate} on {held_out.shape[0]:,} held-out "
              "queries (not measured)", file=log)
    algorithms = plan_algorithms(config, dataset)
    out_dir = Path(config.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / RESULTS_FILE
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    measured: list[tuple[Algorithm, list[dict[str, Any]]]] = []
    k = config.k
    with open(results_path, "w") as jsonl:
        for algo in algorithms:
            try:
                algo.check_available()
            except Unavailable as exc:
                msg = f"skipping {algo.label()}: {exc}"
                print(msg, file=log)
                skipped.append(msg)
                continue
            algo_rows: list[dict[str, Any]] = []
            try:
                for row in _run_algorithm(algo, dataset, config, threads, log, held_out):
                    algo_rows.append(row)
                    jsonl.write(json.dumps(row) + "\n")
                    jsonl.flush()
            except Exception as exc:  # noqa: BLE001 - one failing algorithm must not lose the others' results
                msg = f"FAILED {algo.label()}: {type(exc).__name__}: {exc}"
                print(msg, file=log)
                skipped.append(msg)
                algo.index = None
            rows.extend(algo_rows)
            if config.rounds > 0 and algo.index is not None:
                measured.append((algo, algo_rows))
            else:
                algo.index = None  # free memory before the next build
    if measured:
        _retime_interleaved(measured, dataset, config, log)
        with open(results_path, "w") as jsonl:
            jsonl.writelines(json.dumps(row) + "\n" for row in rows)
    for algo, _ in measured:
        algo.index = None
    elapsed = time.perf_counter() - t_start
    calibrated = [row for row in rows if row.get("calibrated")]
    rows = [row for row in rows if not row.get("calibrated")]
    title = (
        f"{dataset.name} ({dataset.train.shape[0]:,} x {dataset.dim}, {dataset.metric}), "
        f"{dataset.test.shape[0]} queries, k={k}, {threads} thread(s)"
    )
    text = "\n".join(
        [
            title,
            "",
            points_table(rows),
            "",
            summary_table(rows),
            "",
            *ratio_lines(rows, 0.9),
            *ratio_lines(rows, 0.95),
            *([calibration_table(calibrated, rows), ""] if calibrated else []),
            *skipped,
            f"total time {elapsed:.1f}s; results: {results_path}",
        ]
    )
    if config.plot and rows:
        png = out_dir / PLOT_FILE
        plot_frontiers(rows, str(png), title)
        text += f"\nplot: {png}"
    (out_dir / TABLE_FILE).write_text(text + "\n")
    print(text, file=out)
    return rows + calibrated


def split_calibration_queries(dataset: Dataset, n_measured: int | None, n_held: int) -> tuple[Dataset, np.ndarray]:
    """``(dataset without the held-out queries, held-out queries (m, dim) f32)`` for calibration:
    the queries after the first ``n_measured`` (at most ``n_held``) when there are some, else the
    last ``min(n_held, nq // 2)`` (see the module docstring)."""
    if isinstance(n_held, bool) or not isinstance(n_held, int) or n_held < 1:
        raise ValueError(f"calibration_queries: expected a positive integer, got {n_held!r}")
    nq = dataset.test.shape[0]
    if n_measured is not None and n_measured < nq:
        return dataset, dataset.test[n_measured : n_measured + n_held]
    n = min(n_held, nq // 2)
    if n < 1:
        raise ValueError(f"calibrate: needs at least 2 queries (some held out for calibration), the dataset has {nq}")
    return dataset.with_queries(nq - n), dataset.test[nq - n :]


def _run_algorithm(
    algo: Algorithm, dataset: Dataset, config: BenchConfig, threads: int, log: TextIO,
    held_out: np.ndarray | None = None,
):
    """Warm up, build and sweep one algorithm; yields one result row per search setting (and, with
    ``held_out`` queries and a vecsearch index, one for the setting calibrated on them)."""
    k = config.k
    truth = dataset.neighbors[:, :k]
    truth_d = dataset.distances[:, :k] if dataset.distances is not None else None
    load = _loadavg()
    t0 = time.perf_counter()
    algo.warmup(dataset.train, dataset.metric)
    algo.warmup_s = time.perf_counter() - t0
    bar = Progress(dataset.train.shape[0], algo.label(), log)
    t0 = time.perf_counter()
    algo.build(dataset.train, dataset.metric, bar)
    build_s = time.perf_counter() - t0
    nbytes = algo.index_bytes()
    bar.close(f"({nbytes / 1e6:.1f} MB)")
    settings: list[tuple[dict[str, Any], dict[str, Any] | None]] = [(p, None) for p in grid_points(algo.search_grid)]
    if held_out is not None and isinstance(algo, VecsearchAlgorithm):
        settings.append(({}, {}))  # after the sweep: calibrate, then measure the chosen setting
    for params, calibration in settings:
        if calibration is not None:
            params, calibration = _calibrate(algo, dataset, config, held_out, log)
        algo.set_search(params)
        point = evaluate_point(
            lambda q: algo.search(q, k),
            dataset.train,
            dataset.test,
            truth,
            truth_d,
            k,
            dataset.metric,
            runs=config.runs,
            latency_queries=config.latency_queries,
            tie_eps=config.tie_eps,
        )
        print(
            f"    {_short(params):<22} recall {point.recall:.4f}  {point.qps:>10,.0f} QPS  "
            f"p50 {point.p50_ms:.3f} ms  p99 {point.p99_ms:.3f} ms" + (" (calibrated)" if calibration else ""),
            file=log,
        )
        row = {
            "algorithm": algo.name,
            "library": algo.library,
            "index": algo.kind,
            "label": algo.label(),
            "build_params": algo.build_params,
            "search_params": params,
            "recall": round(point.recall, 6),
            "qps": round(point.qps, 2),
            "p50_ms": round(point.p50_ms, 4),
            "p99_ms": round(point.p99_ms, 4),
            "build_s": round(build_s, 4),
            "warmup_s": round(algo.warmup_s, 4),
            "index_bytes": int(nbytes),
            "bytes_per_vector": round(nbytes / dataset.train.shape[0], 2),
            "dataset": dataset.name,
            "metric": dataset.metric,
            "n_train": int(dataset.train.shape[0]),
            "n_queries": int(dataset.test.shape[0]),
            "dim": dataset.dim,
            "k": k,
            "threads": threads,
            "loadavg_1m": load,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        }
        if calibration is not None:
            row.update(calibrated=True, calibration=calibration)
        yield row


def _calibrate(algo: Any, dataset: Dataset, config: BenchConfig, held_out: Any,
               log: TextIO) -> tuple[dict[str, Any], dict[str, Any]]:
    """Calibrate ``algo``'s index on the ``held_out`` queries (truth: exact search over the train
    vectors); ``(the chosen search parameters, the row's "calibration" record)``. The index's
    defaults are reset: every row passes its parameters explicitly (the re-timing rounds too)."""
    index = algo.index
    report = index.calibrate(config.calibrate, config.k, held_out, vectors=dataset.train)
    index.set_search_defaults({})
    print(f"    calibrated to {config.calibrate} in {report.seconds:.1f}s: {_short(report.params)} "
          f"(recall {report.recall:.4f} on the {report.n_queries} held-out queries)", file=log)
    record = {"target_recall": report.target_recall, "params": dict(report.params),
              "recall_held_out": round(report.recall, 6), "reached": report.reached,
              "n_queries": report.n_queries, "seconds": round(report.seconds, 3), "points": len(report.curve)}
    return dict(report.params), record


def _retime_interleaved(
    measured: list[tuple[Algorithm, list[dict[str, Any]]]],
    dataset: Dataset,
    config: BenchConfig,
    log: TextIO,
) -> None:
    """``config.rounds`` more timed batch calls of every point, the algorithms taken in turn
    (:func:`~vecsearch.benchmark.evaluation.time_interleaved`), each row keeping its best QPS
    (``qps_rounds`` records how many timings that best is over).

    The sweep times one algorithm after the other, so a slow spell of a shared machine (seconds
    long) lands on one algorithm: two runs of the same code gave our HNSW 1.20x and 0.83x faiss.
    Spreading every algorithm's timings over the whole run gives each the same chances.
    Each timing follows one untimed call: the previous algorithm's data has just left the caches.
    A point that fails here keeps the QPS it had and leaves the rounds.
    """
    print(f"re-timing every point, {config.rounds} interleaved round(s)", file=log)
    k, queries = config.k, dataset.test

    def point(algo: Algorithm, params: dict[str, Any]):
        def call():
            algo.set_search(params)
            return algo.search(queries, k)

        return call

    calls = {
        (a, r): point(algo, row["search_params"])
        for a, (algo, algo_rows) in enumerate(measured)
        for r, row in enumerate(algo_rows)
    }
    timings = time_interleaved(calls, config.rounds, warmup="each")
    for a, (algo, algo_rows) in enumerate(measured):
        errors = []
        for r, row in enumerate(algo_rows):
            timing = timings[(a, r)]
            if timing.wall_s:
                row["qps"] = round(max(row["qps"], timing.rate(queries.shape[0])), 2)
                row["qps_rounds"] = config.runs + len(timing.wall_s)
            if timing.error is not None:
                errors.append(timing.error)
        if errors:
            print(f"re-timing {algo.label()} stopped: {errors[0]}", file=log)


def _short(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items()) or "-"


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a ``results.jsonl`` file."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


__all__ = ["BenchConfig", "Progress", "parse_index_spec", "read_results", "run_benchmark"]
