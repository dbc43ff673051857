"""How long calibration takes: ``HNSWIndex(384, "cosine")`` (class defaults) on the first 100,000 WordNet rows.

Issue #20 asks for bounded calibration time and to say how long it takes on 100k vectors. The
index is built once (all threads); then ``index.calibrate(target, k=10, ...)`` runs with:

* ``given-1000`` / ``given-5000``: the first 1,000 / all 5,000 one-word training queries
  (``train_queries_ood``), as a user would pass logged queries;
* ``stored-1000``: no queries, 1,000 sampled stored vectors (the default).

For each: wall seconds of the whole call, of its exact ground truth alone (the same exact top-k
computed separately), the settings it measured, the chosen ``ef`` and its recall, and the recall@10
of the chosen setting on ``test_ood`` (1,000 other one-word queries). Default threads (numba's).

    python bench/bench_calibration_time.py                 # 100,000 rows
    python bench/bench_calibration_time.py --n 20000       # quick look

Writes ``bench/results/calibration_time.json`` (:mod:`vecsearch.benchmark.results`).
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
from vecsearch.benchmark.datasets import exact_neighbors
from vecsearch.benchmark.evaluation import recall_at_k
from vecsearch.benchmark.report import format_table
from vecsearch.benchmark.results import ResultsFile
from vecsearch.exact import exact_topk
from vecsearch.validation import metric_code

RESULTS = Path(__file__).resolve().parent / "results"
K = 10
SHOWN = ("queries", "n_queries", "seconds", "truth_seconds", "points", "params", "calibration_recall",
         "test_ood_recall")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    wordnet.add_data_argument(ap)
    ap.add_argument("--n", type=int, default=100_000, help="first rows of train.npy (default 100,000)")
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--out", default=str(RESULTS / "calibration_time.json"))
    args = ap.parse_args()
    results = ResultsFile(args.out, args, script="bench_calibration_time")
    x = wordnet.load_train(args.n, unit=True, data_dir=args.data)
    train_ood = wordnet.load_queries("train_ood", unit=True, data_dir=args.data)
    test_ood = wordnet.load_queries("ood", unit=True, data_dir=args.data)
    truth_test = exact_neighbors(x, test_ood, K, "cosine")[0]
    print(f"data {x.shape[0]} x {x.shape[1]}; threads {numba.get_num_threads()}; load {os.getloadavg()}", flush=True)
    index = vs.HNSWIndex(x.shape[1], "cosine")
    t0 = time.perf_counter()
    index.add(x, progress=False)
    build_s = time.perf_counter() - t0
    results.add({"section": "build", "n": x.shape[0], "build_s": build_s, "M": index.M,
                 "threads": numba.get_num_threads()}, show=("section", "n", "build_s", "M"))
    index.search(x[:32], K)  # compiled before anything is timed
    runs = {"given-1000": train_ood[:1000], "given-5000": train_ood, "stored-1000": None}
    rows = []
    for name, queries in runs.items():
        index.set_search_defaults({})
        t0 = time.perf_counter()
        report = index.calibrate(args.target, K, queries)
        seconds = time.perf_counter() - t0
        q = queries if queries is not None else x[np.random.default_rng(0).choice(x.shape[0], 1000, replace=False)]
        t0 = time.perf_counter()
        exact_topk(metric_code("cosine"), np.ascontiguousarray(q), x, K + (queries is None))
        truth_s = time.perf_counter() - t0
        recall = recall_at_k(index.search(test_ood, K).ids, truth_test)
        rows.append(results.add({"section": "calibrate", "queries": name, "n_queries": report.n_queries,
                                 "seconds": seconds, "truth_seconds": truth_s, "points": len(report.curve),
                                 "params": report.params, "calibration_recall": report.recall,
                                 "reached": report.reached, "calibration_qps": report.qps,
                                 "test_ood_recall": recall, "load_1m": os.getloadavg()[0]}, show=SHOWN))
        results.write()
    results.summary = {"target_recall": args.target, "n": x.shape[0], "build_s": build_s,
                       "seconds": {r["queries"]: r["seconds"] for r in rows}}
    print("\n" + format_table(rows, list(SHOWN)))
    print(f"\nload average at start {results.loadavg_start}, now {os.getloadavg()}; wrote {results.write()}")


if __name__ == "__main__":
    sys.exit(main())
