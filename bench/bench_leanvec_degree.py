"""LeanVec's graph degree: QPS at recall@10 0.95 over hnswlib for several ``M``, thread CPU time.

Each configuration is ``LeanVecIndex(384, "cosine", M=...)`` with every other argument at its class
default, trained with 4,000 one-word queries (LeanVec-OOD); the peer is hnswlib with M=16,
ef_construction=200. Searches are one batch of 1,000 queries on one thread; every system and
``ef`` is timed in each of ``--rounds`` rounds in turn, with the CPU time of the calling thread
(``time.thread_time``: a second process on the other core, or a spinning BLAS thread, does not
count), and the ratio of QPS at 0.95 (log-linear interpolation) is taken per round.

    python bench/bench_leanvec_degree.py --part held-out --Ms 16,20,24,32
    python bench/bench_leanvec_degree.py --part tuning --Ms 16,24

Writes ``bench/results/leanvec_degree_PART.json`` with the date, the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numba
import numpy as np

import vecsearch as vs
from vecsearch.benchmark import wordnet
from vecsearch.benchmark.algorithms import HnswlibAlgorithm, limit_threads
from vecsearch.benchmark.datasets import exact_neighbors
from vecsearch.benchmark.evaluation import interpolated_qps, recall_at_k
from vecsearch.benchmark.results import ResultsFile

RESULTS = Path(__file__).resolve().parent / "results"
K = 10
TUNE_SAMPLE = 4000


def load(part: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(database (n, 384) unit rows, queries (1000, 384), LeanVec-OOD training queries)``."""
    train_ood = wordnet.load_queries("train_ood", unit=True)
    tuning, held_out = wordnet.held_out_split("ood")
    rows = held_out.train if part == "held-out" else tuning.train
    x = np.ascontiguousarray(rows / np.linalg.norm(rows, axis=1, keepdims=True), np.float32)
    q = wordnet.load_queries("ood", unit=True) if part == "held-out" else train_ood[TUNE_SAMPLE:]
    return x, np.ascontiguousarray(q, np.float32), train_ood[:TUNE_SAMPLE]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("held-out", "tuning"), default="held-out")
    ap.add_argument("--Ms", default="16,20,24,32")
    ap.add_argument("--efs", default="24,32,40,48,56,64,72,80")
    ap.add_argument("--peer-efs", default="40,48,56,64,72,80,96")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = args.out or str(RESULTS / f"leanvec_degree_{args.part.replace('-', '_')}.json")
    results = ResultsFile(out, args, script="bench_leanvec_degree")
    x, q, sample = load(args.part)
    truth = exact_neighbors(x, q, K, "cosine")[0]
    print(f"data {x.shape}, queries {q.shape}, load {os.getloadavg()}", flush=True)

    searchers = {}
    with limit_threads(int(numba.config.NUMBA_NUM_THREADS)):
        peer = HnswlibAlgorithm({"M": 16, "ef_construction": 200, "seed": 0}, {}, os.cpu_count())
        t0 = time.perf_counter()
        peer.build(x, "cosine")
        results.add({"section": "build", "system": "hnswlib", "build_s": time.perf_counter() - t0})
        peer.set_search_threads(1)
        for m in (int(v) for v in args.Ms.split(",")):
            index = vs.LeanVecIndex(x.shape[1], "cosine", M=m)
            t0 = time.perf_counter()
            index.train(x, queries=sample)
            index.add(x, progress=False)
            results.add({"section": "build", "system": f"leanvec-M{m}", "build_s": time.perf_counter() - t0,
                         "bytes_per_vector": index.memory_bytes() / x.shape[0], "reduced_dim": index.reduced_dim},
                        show=("system", "build_s", "bytes_per_vector", "reduced_dim"))
            searchers[f"leanvec-M{m}"] = (index, [int(e) for e in args.efs.split(",")])

    def peer_search(ef: int) -> np.ndarray:
        peer.set_search({"ef": ef})
        return peer.search(q, K)

    calls = {("hnswlib", ef): (lambda ef=ef: peer_search(ef)) for ef in (int(e) for e in args.peer_efs.split(","))}
    for name, (index, efs) in searchers.items():
        calls.update({(name, ef): (lambda index=index, ef=ef: index.search(q, K, ef=ef).ids) for ef in efs})
    seconds: dict = {key: [] for key in calls}
    recalls: dict = {}
    with limit_threads(1):
        for fn in calls.values():
            fn()
        for _ in range(args.rounds):
            for key, fn in calls.items():
                t0 = time.thread_time()
                ids = fn()
                seconds[key].append(time.thread_time() - t0)
                recalls[key] = recall_at_k(ids, truth)
    curves: dict = {}
    for (name, ef), secs in seconds.items():
        results.add({"section": "sweep", "system": name, "ef": ef, "recall": recalls[(name, ef)],
                     "qps_thread_cpu_median": float(np.median(q.shape[0] / np.array(secs)))},
                    show=("system", "ef", "recall", "qps_thread_cpu_median"))
        curves.setdefault(name, []).append((ef, recalls[(name, ef)], [q.shape[0] / s for s in secs]))

    def qps_at_target(name: str) -> list[float]:
        points = sorted(curves[name])
        return [interpolated_qps([p[1] for p in points], [p[2][r] for p in points], args.target)
                for r in range(args.rounds)]

    peer_qps = qps_at_target("hnswlib")
    summary = []
    for name in searchers:
        ratio = np.array(qps_at_target(name)) / np.array(peer_qps)
        summary.append(results.add({"section": "ratio", "system": name, "vs_hnswlib_median": float(np.median(ratio)),
                                    "vs_hnswlib_min": float(ratio.min()), "vs_hnswlib_max": float(ratio.max())},
                                   show=("system", "vs_hnswlib_median", "vs_hnswlib_min", "vs_hnswlib_max")))
    results.summary = {"target_recall": args.target, "ratios": summary}
    print(f"load average at start {results.loadavg_start}, now {os.getloadavg()}; wrote {results.write()}")


if __name__ == "__main__":
    main()
