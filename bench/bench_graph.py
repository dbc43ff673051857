"""The graph engine against its peers: default HNSW, float32 HNSW and default LeanVec vs hnswlib and faiss.

Issue #12's measurements, class defaults throughout (``HNSWIndex(dim, "cosine")``,
``HNSWIndex(dim, "cosine", storage="float32")``, ``LeanVecIndex(dim, "cosine")`` trained with the
out-of-distribution query sample; hnswlib and faiss ``IndexHNSWFlat`` with M=16, ef_construction=200):

* build seconds with every thread, compile excluded (kernels warmed first), and the index's bytes;
* recall@10 and single-thread QPS over an ``ef`` sweep, every system and ``ef`` interleaved in each of
  ``--rounds`` rounds (a slow spell of the machine lands on all alike); QPS at ``--target`` recall
  (log-linear interpolation) per round, so each ratio to a peer comes with its range over rounds; from
  wall-clock time and from the calling thread's CPU time (``*_thread_cpu_*``: another process on the
  machine, or a library's idle spinning threads, do not inflate it);
* one query per call at each system's ``ef`` for the target: p50 latency with one thread on a quiet
  machine and with every numba thread available while a second process keeps one core busy.

    python bench/bench_graph.py --part tuning          # choose on the first 80% of train.npy
    python bench/bench_graph.py --part held-out        # report on the last 20%, never tuned on
    python bench/bench_graph.py --n 20000 --rounds 2   # quick look

Query sets: ``--part tuning`` the last 1,000 ``train_queries_ood`` (the first 4,000 train LeanVec);
``--part held-out`` / ``all``: ``test_ood`` (and ``test_id`` with ``--id``). Writes
``bench/results/graph[_PART].json`` with the date, the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np

import vecsearch as vs
from vecsearch.benchmark import wordnet
from vecsearch.benchmark.algorithms import FaissAlgorithm, HnswlibAlgorithm, limit_threads
from vecsearch.benchmark.datasets import exact_neighbors
from vecsearch.benchmark.evaluation import (
    interpolated_qps,
    latency_percentiles,
    recall_at_k,
    time_interleaved,
)
from vecsearch.benchmark.report import format_table
from vecsearch.benchmark.results import ResultsFile

RESULTS = Path(__file__).resolve().parent / "results"
K = 10
TUNE_SAMPLE = 4000  # train_queries_ood rows that train LeanVec-OOD; the rest evaluate (--part tuning)
SYSTEMS = ("hnsw", "hnsw-float32", "leanvec", "hnswlib", "faiss")
PEER_PARAMS = {"M": 16, "ef_construction": 200, "seed": 0}


def unit_rows(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.float32(1e-30)))


def load_part(args) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """``(database f32 (n, 384) unit rows, {query set: f32 (nq, 384)}, LeanVec-OOD sample)``."""
    train_ood = wordnet.load_queries("train_ood", unit=True, data_dir=args.data)
    sample = train_ood[:TUNE_SAMPLE]
    tests = ("ood", "id") if args.id else ("ood",)
    if args.part == "tuning":
        tuning, _ = wordnet.held_out_split("ood", n=args.n, data_dir=args.data)
        return unit_rows(tuning.train), {"tune_ood": train_ood[TUNE_SAMPLE:][: args.queries]}, sample
    queries = {f"test_{kind}": wordnet.load_queries(kind, args.queries, unit=True, data_dir=args.data)
               for kind in tests}
    if args.part == "held-out":
        _, held_out = wordnet.held_out_split("ood", n=args.n, data_dir=args.data)
        return unit_rows(held_out.train), queries, sample
    return wordnet.load_train(args.n, unit=True, data_dir=args.data), queries, train_ood


class System:
    """One index under test: ``build(x)``, ``search(q, ef) -> ids``, ``nbytes``."""

    def __init__(self, name: str, sample: np.ndarray):
        self.name = name
        self.sample = sample
        self.index = None
        self.peer = None

    def build(self, x: np.ndarray) -> float:
        dim = x.shape[1]
        if self.name in ("hnswlib", "faiss"):
            self.peer = (HnswlibAlgorithm(PEER_PARAMS, {}, os.cpu_count()) if self.name == "hnswlib"
                         else FaissAlgorithm("hnsw", PEER_PARAMS, {}))
            t0 = time.perf_counter()
            self.peer.build(x, "cosine")
            seconds = time.perf_counter() - t0
            self.peer.set_search_threads(1)
            return seconds
        cls = vs.LeanVecIndex if self.name == "leanvec" else vs.HNSWIndex
        cls.warmup_kernels(x[:300])  # compile outside the timed build
        if self.name == "leanvec":
            warm = vs.LeanVecIndex(dim, "cosine")
            warm.train(x[:2000], queries=self.sample[:500])
            warm.add(x[:2000], progress=False)
            warm.search(x[:2], K)
        t0 = time.perf_counter()
        if self.name == "leanvec":
            self.index = vs.LeanVecIndex(dim, "cosine")
            self.index.train(x, queries=self.sample)
        else:
            storage = "float32" if self.name == "hnsw-float32" else "lvq8"
            self.index = vs.HNSWIndex(dim, "cosine", storage=storage)
        self.index.add(x, progress=False)
        return time.perf_counter() - t0

    @property
    def nbytes(self) -> int:
        return self.peer.index_bytes() if self.peer is not None else self.index.memory_bytes()

    def search(self, q: np.ndarray, ef: int) -> np.ndarray:
        if self.peer is not None:
            self.peer.set_search({"ef": ef})
            return self.peer.search(q, K)
        return self.index.search(q, K, ef=max(ef, K)).ids


def sweep(systems, queries, truth, efs, rounds, results) -> dict:
    """Single-thread recall/QPS per (system, set, ef), all interleaved; returns per-round QPS@target inputs."""
    per_round: dict = {}
    with limit_threads(1):
        for qname, q in queries.items():
            calls = {(s.name, ef): (lambda s=s, ef=ef, q=q: s.search(q, ef)) for s in systems for ef in efs}
            for (name, ef), timing in time_interleaved(calls, rounds).items():
                if timing.error:
                    raise RuntimeError(f"{name} ef={ef}: {timing.error}")
                recall = recall_at_k(timing.output, truth[qname])
                qps_rounds = [q.shape[0] / s for s in timing.wall_s]
                thread_rounds = [q.shape[0] / s for s in timing.thread_s]
                results.add({"section": "sweep", "system": name, "queries": qname, "ef": ef, "recall": recall,
                             "qps": max(qps_rounds), "qps_median": float(np.median(qps_rounds)),
                             "qps_thread_cpu_median": float(np.median(thread_rounds))},
                            show=("system", "queries", "ef", "recall", "qps"))
                per_round.setdefault((name, qname), []).append((ef, recall, qps_rounds, thread_rounds))
    return per_round


def at_target(per_round: dict, target: float) -> dict:
    """``{(system, set): {"ef": first ef reaching target, "qps_rounds": [QPS@target of each round],
    "thread_qps_rounds": [the same from the calling thread's CPU time]}}``."""
    out = {}
    for key, points in per_round.items():
        points.sort()
        recalls = [p[1] for p in points]
        n_rounds = len(points[0][2])
        out[key] = {
            "ef": next((p[0] for p in points if p[1] >= target), None),
            "qps_rounds": [interpolated_qps(recalls, [p[2][r] for p in points], target) for r in range(n_rounds)],
            "thread_qps_rounds": [interpolated_qps(recalls, [p[3][r] for p in points], target)
                                  for r in range(n_rounds)],
        }
    return out


def one_query_latency(system: System, q: np.ndarray, ef: int, busy: bool) -> dict:
    """p50/p99 of one query per call: 1 numba thread quiet, or every thread with a busy second process."""
    hog = None
    if busy:
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)
    try:
        threads = int(numba.config.NUMBA_NUM_THREADS) if busy else 1
        with limit_threads(threads):
            if system.peer is not None:
                system.peer.set_search_threads(threads)
            for row in q[:20]:
                system.search(row[None], ef)
            seconds = []
            for row in q:
                t0 = time.perf_counter()
                system.search(row[None], ef)
                seconds.append(time.perf_counter() - t0)
            if system.peer is not None:
                system.peer.set_search_threads(1)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    return latency_percentiles(np.array(seconds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    wordnet.add_data_argument(ap)
    ap.add_argument("--part", choices=("all", "tuning", "held-out"), default="all")
    ap.add_argument("--n", type=int, default=None, help="rows of the part (default: all)")
    ap.add_argument("--queries", type=int, default=None, help="first N queries of each set (default: all)")
    ap.add_argument("--id", action="store_true", help="also the in-distribution test_id queries")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--efs", default="10,16,24,32,40,48,64,80,96,128,160,192,256")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--latency-queries", type=int, default=300)
    ap.add_argument("--build-rounds", type=int, default=1, help="builds of every system, interleaved")
    ap.add_argument("--skip-sweep", action="store_true", help="builds only (with --build-rounds)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.out is None:
        part = "" if args.part == "all" else "_" + args.part.replace("-", "_")
        args.out = str(RESULTS / ("graph" + ("_build" if args.skip_sweep else "") + part + ".json"))
    results = ResultsFile(args.out, args, script="bench_graph")
    x, queries, sample = load_part(args)
    truth = {name: exact_neighbors(x, q, K, "cosine")[0] for name, q in queries.items()}
    print(f"data: {x.shape[0]} x {x.shape[1]}, query sets {list(queries)}, load {os.getloadavg()}", flush=True)
    systems = [System(name, sample) for name in args.systems.split(",")]
    build_times: dict[str, list[float]] = {s.name: [] for s in systems}
    for round_ in range(args.build_rounds):  # every system built once per round, the order rotated
        order = systems[round_ % len(systems):] + systems[:round_ % len(systems)]
        for system in order:
            with limit_threads(int(numba.config.NUMBA_NUM_THREADS)):
                build_times[system.name].append(system.build(x))
    for system in systems:
        results.add({"section": "build", "system": system.name, "build_s": float(np.median(build_times[system.name])),
                     "build_s_rounds": build_times[system.name], "bytes": system.nbytes,
                     "bytes_per_vector": system.nbytes / x.shape[0],
                     "reduced_dim": getattr(system.index, "reduced_dim", None)},
                    show=("system", "build_s", "bytes_per_vector", "reduced_dim"))
    if args.skip_sweep:
        builds = {r["system"]: r for r in results.select(section="build")}
        for peer in ("hnswlib", "faiss"):
            if peer in builds:
                for name, row in builds.items():
                    rounds = np.array(row["build_s_rounds"]) / np.array(builds[peer]["build_s_rounds"])
                    results.add({"section": "build_ratio", "system": name, "peer": peer,
                                 "median": float(np.median(rounds)), "min": float(rounds.min()),
                                 "max": float(rounds.max())}, show=("system", "peer", "median", "min", "max"))
        print(f"\nload average at start {results.loadavg_start}, now {os.getloadavg()}; wrote {results.write()}")
        return
    efs = [int(e) for e in args.efs.split(",")]
    targets = at_target(sweep(systems, queries, truth, efs, args.rounds, results), args.target)
    builds = {r["system"]: r for r in results.select(section="build")}
    summary = []
    for (name, qname), entry in targets.items():
        row = {"system": name, "queries": qname, "ef_at_target": entry["ef"],
               "qps_at_target_median": float(np.nanmedian(entry["qps_rounds"]))}
        for peer in ("hnswlib", "faiss"):
            if peer != name and (peer, qname) in targets:
                ratios = np.array(entry["qps_rounds"]) / np.array(targets[(peer, qname)]["qps_rounds"])
                row[f"vs_{peer}_median"] = float(np.nanmedian(ratios))
                row[f"vs_{peer}_min"] = float(np.nanmin(ratios))
                row[f"vs_{peer}_max"] = float(np.nanmax(ratios))
                thread = (np.array(entry["thread_qps_rounds"])
                          / np.array(targets[(peer, qname)]["thread_qps_rounds"]))
                row[f"vs_{peer}_thread_cpu_median"] = float(np.nanmedian(thread))
                row[f"vs_{peer}_thread_cpu_min"] = float(np.nanmin(thread))
                row[f"vs_{peer}_thread_cpu_max"] = float(np.nanmax(thread))
                row[f"memory_vs_{peer}"] = builds[name]["bytes"] / builds[peer]["bytes"]
                row[f"build_vs_{peer}"] = builds[name]["build_s"] / builds[peer]["build_s"]
        summary.append(row)
    first_set = next(iter(queries))
    for system in systems:
        ef = targets[(system.name, first_set)]["ef"] or efs[-1]
        q = queries[first_set][: args.latency_queries]
        quiet = one_query_latency(system, q, ef, busy=False)
        busy = one_query_latency(system, q, ef, busy=True)
        results.add({"section": "latency", "system": system.name, "ef": ef, "quiet_1_thread_p50_ms": quiet["p50_ms"],
                     "busy_core_all_threads_p50_ms": busy["p50_ms"], "p50_ratio": busy["p50_ms"] / quiet["p50_ms"],
                     "quiet_p99_ms": quiet["p99_ms"], "busy_p99_ms": busy["p99_ms"]},
                    show=("system", "ef", "quiet_1_thread_p50_ms", "busy_core_all_threads_p50_ms", "p50_ratio"))
    results.summary = {"target_recall": args.target, "at_target": summary}
    columns = ["system", "queries", "ef_at_target", "qps_at_target_median", "vs_hnswlib_median", "vs_hnswlib_min",
               "vs_hnswlib_max", "vs_hnswlib_thread_cpu_median", "memory_vs_hnswlib", "build_vs_hnswlib",
               "vs_faiss_median"]
    print("\n" + format_table(summary, columns))
    print(f"\nload average at start {results.loadavg_start}, now {os.getloadavg()}; wrote {results.write()}")


if __name__ == "__main__":
    sys.exit(main())
