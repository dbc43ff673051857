"""Calibration to a target recall: does the setting chosen on one query sample hold on another, and is it fast?

Issue #20's check, class defaults throughout: ``HNSWIndex(dim, "cosine")``, ``LeanVecIndex(dim, "cosine")``
trained with an out-of-distribution query sample, and IVF-PQ with stored vectors
(``IVFPQIndex(dim, "cosine", nlist=suggested_nlist(n), m=suggested_m(dim), keep_vectors=True)``).
For each index:

* ``index.calibrate(target_recall, k=10, queries=<calibration queries>)`` — the chosen parameters, the
  recall it measured, and the seconds it took;
* recall@10 of the chosen setting on *other* queries of the same kind (the evaluation queries);
* a sweep of the index's knobs on the evaluation queries, every setting and the calibrated one timed
  interleaved on one thread, and the ratio of the calibrated setting's QPS to the sweep's best QPS
  at the recall the calibrated setting reached (log-linear interpolation on the sweep's Pareto
  frontier): 1.0 means calibration found the cheapest setting for its recall.

Query sets (one-word out-of-distribution queries, the hard kind): ``--part tuning`` database = the
first 80% of ``train.npy``, calibration = ``train_queries_ood[:4000]``, evaluation =
``train_queries_ood[4000:5000]``; ``--part held-out`` database = the last 20% (never tuned on),
calibration = ``train_queries_ood[:5000]``, evaluation = ``test_ood`` (1,000).

    python bench/bench_calibration.py --part tuning
    python bench/bench_calibration.py --part held-out

Writes ``bench/results/calibration_<part>.json`` with the date, the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numba
import numpy as np

import vecsearch as vs
from vecsearch.benchmark import wordnet
from vecsearch.benchmark.algorithms import limit_threads
from vecsearch.benchmark.datasets import exact_neighbors
from vecsearch.benchmark.evaluation import pareto_frontier, recall_at_k, time_interleaved
from vecsearch.benchmark.report import format_table
from vecsearch.benchmark.results import ResultsFile
from vecsearch.indexes.ivfpq import suggested_m, suggested_nlist

RESULTS = Path(__file__).resolve().parent / "results"
K = 10
INDEXES = ("hnsw", "leanvec", "ivfpq")
SWEEPS = {
    "hnsw": [{"ef": ef} for ef in (10, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 128, 160, 192, 256)],
    "leanvec": [{"ef": ef} for ef in (10, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 128, 160, 192, 256)],
    "ivfpq": [{"nprobe": p, "rerank": r} for p in (8, 16, 32, 48, 64, 96, 128, 160, 192, 256) for r in (4, 10, 20)],
}


def unit_rows(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.float32(1e-30)))


def load_part(args) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(database f32 (n, 384), calibration queries f32, evaluation queries f32)``, unit rows."""
    train_ood = wordnet.load_queries("train_ood", unit=True, data_dir=args.data)
    tuning, held_out = wordnet.held_out_split("ood", n=args.n, data_dir=args.data)
    if args.part == "tuning":
        return unit_rows(tuning.train), train_ood[:4000], train_ood[4000:5000]
    test = wordnet.load_queries("ood", None, unit=True, data_dir=args.data)
    return unit_rows(held_out.train), train_ood[:5000], test


def build(kind: str, x: np.ndarray, sample: np.ndarray):
    dim = x.shape[1]
    if kind == "hnsw":
        index = vs.HNSWIndex(dim, "cosine")
    elif kind == "leanvec":
        index = vs.LeanVecIndex(dim, "cosine")
        index.train(x, queries=sample)
    else:
        index = vs.IVFPQIndex(dim, "cosine", nlist=suggested_nlist(x.shape[0]), m=suggested_m(dim), keep_vectors=True)
        index.train(x)
        index.add(x)  # (IVF-PQ's add has no progress bar)
        return index
    index.add(x, progress=False)
    return index


def qps_at_recall(points: list[tuple[float, float]], recall: float) -> float:
    """QPS the sweep's Pareto frontier reaches at ``recall`` (log-linear interpolation between its points)."""
    r = np.array([p[0] for p in points])
    q = np.array([p[1] for p in points])
    front = pareto_frontier(r, q)
    fr, fq = r[front], q[front]
    if recall <= fr[0]:
        return float(fq[0])
    if recall > fr[-1]:
        return float("nan")
    hi = int(np.searchsorted(fr, recall))
    lo = hi - 1
    if fr[hi] == fr[lo]:
        return float(fq[hi])
    t = (recall - fr[lo]) / (fr[hi] - fr[lo])
    return float(np.exp(np.log(fq[lo]) + t * (np.log(fq[hi]) - np.log(fq[lo]))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    wordnet.add_data_argument(ap)
    ap.add_argument("--part", choices=("tuning", "held-out"), default="tuning")
    ap.add_argument("--n", type=int, default=None, help="rows of the part (default: all)")
    ap.add_argument("--indexes", default=",".join(INDEXES))
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.out is None:
        args.out = str(RESULTS / f"calibration_{args.part.replace('-', '_')}.json")
    results = ResultsFile(args.out, args, script="bench_calibration")
    x, calib_q, eval_q = load_part(args)
    truth = exact_neighbors(x, eval_q, K, "cosine")[0]
    print(f"data: {x.shape[0]} x {x.shape[1]}, calibration {calib_q.shape[0]}, evaluation {eval_q.shape[0]}, "
          f"load {os.getloadavg()}", flush=True)
    summary = []
    for kind in args.indexes.split(","):
        with limit_threads(int(numba.config.NUMBA_NUM_THREADS)):
            index = build(kind, x, calib_q)
            t0 = time.perf_counter()
            report = index.calibrate(args.target, K, calib_q)
            calib_s = time.perf_counter() - t0
        chosen = dict(report.params)
        settings = {"calibrated": chosen, **{f"sweep{i}": p for i, p in enumerate(SWEEPS[kind])}}
        with limit_threads(1):
            calls = {name: (lambda p=p: index.search(eval_q, K, **p).ids) for name, p in settings.items()}
            timings = time_interleaved(calls, args.rounds)
        measured = {}
        for name, timing in timings.items():
            if timing.error:
                continue  # an invalid combination (e.g. rerank below k) is skipped, as calibrate skips it
            measured[name] = (recall_at_k(timing.output, truth), eval_q.shape[0] / min(timing.wall_s))
            if name != "calibrated":
                results.add({"section": "sweep", "index": kind, "params": settings[name], "recall": measured[name][0],
                             "qps": measured[name][1]})
        recall, qps = measured["calibrated"]
        best = qps_at_recall([v for n, v in measured.items() if n != "calibrated"], recall)
        row = results.add({"section": "calibrated", "index": kind, "params": chosen,
                           "calibration_recall": report.recall, "calibration_seconds": calib_s,
                           "calibration_queries": report.n_queries, "eval_recall": recall, "eval_qps": qps,
                           "sweep_best_qps_at_eval_recall": best, "qps_vs_sweep_best": qps / best,
                           "in_band": bool(args.target - 0.005 <= recall <= args.target + 0.025)},
                          show=("index", "params", "calibration_recall", "eval_recall", "qps_vs_sweep_best",
                                "calibration_seconds"))
        summary.append(row)
        del index
    results.summary = {"target_recall": args.target, "calibrated": summary}
    print("\n" + format_table(summary, ["index", "params", "calibration_recall", "calibration_seconds", "eval_recall",
                                        "eval_qps", "qps_vs_sweep_best", "in_band"]))
    print(f"\nload average at start {results.loadavg_start}, now {os.getloadavg()}; wrote {results.write()}")


if __name__ == "__main__":
    sys.exit(main())
