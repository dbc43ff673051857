"""HNSW benchmark: vecsearch vs hnswlib vs faiss IndexHNSWFlat on wordnet-minilm (cosine).

For each library (each in its own subprocess, so peak memory is clean): build time with all
threads and peak RSS growth during the build, then recall@10 vs QPS over an ``ef`` sweep with one
thread and with all threads, on the in-distribution (``test_id``) and out-of-distribution
(``test_ood``) queries. Then vecsearch's first-search time after a fresh import, with a warm
compile cache and with a cold one (fresh ``NUMBA_CACHE_DIR``). Summary: QPS at
``--target-recall`` (log-linear interpolation on the sweep) per library and the ratios.

    python bench/bench_hnsw.py                     # full run (116,659 vectors)
    python bench/bench_hnsw.py --n 20000 --efs 16,32,64 --libs vecsearch,hnswlib   # quick look
    python bench/bench_hnsw.py --interleaved --libs vecsearch,hnswlib --efs 16,24,32,48 --repeats 5 \
        --out bench/results/hnsw_interleaved.json      # single-thread QPS, runs alternated

Writes ``bench/results/hnsw.json`` (``vecsearch.benchmark.results``); ground truth is exact
(FlatIndex) and cached under ``$VECSEARCH_CACHE_DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import vecsearch as vs
from vecsearch.benchmark import wordnet
from vecsearch.benchmark.algorithms import FaissAlgorithm, HnswlibAlgorithm, limit_threads
from vecsearch.benchmark.datasets import exact_neighbors
from vecsearch.benchmark.evaluation import recall_at_k, time_interleaved
from vecsearch.benchmark.report import format_table, format_value, qps_at_target
from vecsearch.benchmark.results import ResultsFile, peak_rss_mb, rss_mb

RESULTS = Path(__file__).resolve().parent / "results"
K = 10
LIBS = ("vecsearch", "hnswlib", "faiss")
SHOWN = ("lib", "queries", "threads", "ef", "recall", "qps")
BUILD_SHOWN = ("lib", "build_s", "build_threads", "peak_rss_growth_mb")
FIRST_SHOWN = ("cache", "import_s", "load_s", "first_search_s", "first_batch_search_s")


def load(
    args: argparse.Namespace,
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Unit-norm train rows, the two query sets and their exact top-K (cached)."""
    train = wordnet.load_train(args.n, unit=True, data_dir=args.data)
    queries = {
        f"test_{kind}": wordnet.load_queries(kind, args.queries, unit=True, data_dir=args.data)
        for kind in ("id", "ood")
    }
    truth = {name: exact_neighbors(train, q, K, "cosine")[0] for name, q in queries.items()}
    return train, queries, truth


class Lib:
    """One library's HNSW: ours built by one ``add`` call, the peers by the ``vecsearch bench`` adapters."""

    def __init__(self, name: str, args: argparse.Namespace, threads: int):
        if name not in LIBS:
            raise ValueError(
                f"--libs: unknown library {name!r} (expected some of {', '.join(LIBS)})"
            )
        self.name = name
        params = {"M": args.M, "ef_construction": args.ef_construction, "seed": 0}
        if name == "vecsearch":
            self.index = None
            self.params = params
        elif name == "hnswlib":
            self.peer = HnswlibAlgorithm(params, {}, threads)
        else:
            self.peer = FaissAlgorithm("hnsw", params, {})

    def build(self, x: np.ndarray) -> None:
        if self.name == "vecsearch":
            vs.HNSWIndex.warmup_kernels(x[:300])  # compiled kernels come from the cache, untimed
            t0 = time.perf_counter()
            self.index = vs.HNSWIndex(x.shape[1], "cosine", **self.params)
            self.index.add(x, progress=False)
        else:
            t0 = time.perf_counter()
            self.peer.build(x, "cosine")
        self.build_s = time.perf_counter() - t0

    def set_threads(self, threads: int) -> None:
        if self.name != "vecsearch":
            self.peer.set_search_threads(threads)

    def search(self, q: np.ndarray, ef: int) -> np.ndarray:
        if self.name == "vecsearch":
            return self.index.search(q, K, ef=ef).ids
        self.peer.set_search({"ef": ef})
        return self.peer.search(q, K)


def sweep(libs: list[Lib], queries, truth, efs, repeats: int, threads: int, results) -> None:
    """Recall and best-of-``repeats`` QPS per (library, queries, ef); libraries and efs interleaved."""
    for lib in libs:
        lib.set_threads(threads)
    with limit_threads(threads):
        for qname, q in queries.items():
            calls = {
                (lib, ef): (lambda lib=lib, ef=ef, q=q: lib.search(q, ef))
                for lib in libs
                for ef in efs
            }
            for (lib, ef), timing in time_interleaved(calls, repeats).items():
                if timing.error:
                    raise RuntimeError(f"{lib.name} search at ef={ef} failed: {timing.error}")
                recall = recall_at_k(timing.output, truth[qname])
                row = {
                    "section": "search",
                    "lib": lib.name,
                    "threads": threads,
                    "queries": qname,
                    "ef": ef,
                }
                results.add(row | {"recall": recall, "qps": timing.rate(q.shape[0])}, show=SHOWN)


def worker(args: argparse.Namespace) -> list[dict]:
    """One library in this process: build (all threads, RSS growth), sweep at 1 and all threads."""
    train, queries, truth = load(args)
    nproc = os.cpu_count() or 1
    lib = Lib(args.worker, args, nproc)
    base_rss = rss_mb()
    with limit_threads(nproc):
        lib.build(train)
    rows = ResultsFile(os.devnull, args)  # collects this worker's rows; the parent writes them
    rows.add(
        {
            "section": "build",
            "lib": lib.name,
            "build_s": lib.build_s,
            "build_threads": nproc,
            "peak_rss_growth_mb": peak_rss_mb() - base_rss,
            "rss_after_build_mb": rss_mb() - base_rss,
        }
    )
    if lib.name == "vecsearch" and args.save_to:
        lib.index.save(args.save_to)
    for threads in sorted({1, nproc}):
        sweep(
            [lib],
            queries,
            truth,
            [int(e) for e in args.efs.split(",")],
            args.repeats,
            threads,
            rows,
        )
    return rows.rows


FIRST_SEARCH = r"""
import sys, time, json
t0 = time.perf_counter()
import numpy as np
import vecsearch as vs
t1 = time.perf_counter()
index = vs.load(sys.argv[1], mmap=True)
q = np.load(sys.argv[2])
t2 = time.perf_counter()
index.search(q[:1], 10)
t3 = time.perf_counter()
index.search(q, 10)
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_search_s": t3 - t2, "first_batch_search_s": t4 - t3}))
"""


def first_search(index_dir: Path, queries_file: Path, cold: bool) -> dict:
    """Import, load and first searches of a saved index in a fresh interpreter (cold: empty compile cache)."""
    env = dict(os.environ)
    tmp = tempfile.mkdtemp(prefix="numba-cold-") if cold else None
    if tmp:
        env["NUMBA_CACHE_DIR"] = tmp
    try:
        out = subprocess.run(
            [sys.executable, "-c", FIRST_SEARCH, str(index_dir), str(queries_file)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return {
        "section": "first_search",
        "lib": "vecsearch",
        "cache": "cold" if cold else "warm",
        **json.loads(out.stdout.strip().splitlines()[-1]),
    }


def summarize(results: ResultsFile, target: float) -> dict:
    """QPS at ``target`` recall per (queries, threads) and library, with vecsearch/hnswlib; build ratio."""
    at = qps_at_target(
        results.select(section="search"), target, group=("queries", "threads", "lib"), order="ef"
    )
    summary: dict = {}
    for (qname, threads, lib), qps in at.items():
        entry = summary.setdefault(f"{qname}_threads{threads}_qps_at_{target}", {})
        entry[lib] = qps
        if "vecsearch" in entry and "hnswlib" in entry:
            entry["vecsearch/hnswlib"] = entry["vecsearch"] / entry["hnswlib"]
    build = {r["lib"]: r["build_s"] for r in results.select(section="build")}
    if "vecsearch" in build and "hnswlib" in build:
        summary["build_ratio_vs_hnswlib"] = build["vecsearch"] / build["hnswlib"]
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    wordnet.add_data_argument(ap)
    ap.add_argument(
        "--n", type=int, default=None, help="use the first n train vectors (default: all)"
    )
    ap.add_argument(
        "--queries", type=int, default=None, help="first N queries of each set (default: all 1,000)"
    )
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--efs", default="10,16,24,32,40,48,64,96,128,192")
    ap.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="timed rounds per point, libraries/efs interleaved; best kept",
    )
    ap.add_argument("--libs", default=",".join(LIBS))
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--out", default=str(RESULTS / "hnsw.json"))
    ap.add_argument(
        "--interleaved",
        action="store_true",
        help="only single-thread QPS of --libs built in one process, runs alternated (best of --repeats)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--save-to", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    results = ResultsFile(args.out, args, script="bench_hnsw")
    names = [name for name in args.libs.split(",") if name]
    if args.interleaved:
        train, queries, truth = load(args)
        nproc = os.cpu_count() or 1
        libs = [Lib(name, args, nproc) for name in names]
        for lib in libs:
            with limit_threads(nproc):
                lib.build(train)
            results.add(
                {
                    "section": "build",
                    "lib": lib.name,
                    "build_s": lib.build_s,
                    "build_threads": nproc,
                }
            )
        sweep(libs, queries, truth, [int(e) for e in args.efs.split(",")], args.repeats, 1, results)
    else:
        load(args)  # fills the ground-truth cache once for the workers
        work = Path(tempfile.mkdtemp(prefix="bench-hnsw-"))
        for name in names:
            cmd = [sys.executable, __file__, "--worker", name, *sys.argv[1:]]
            if name == "vecsearch":
                cmd += ["--save-to", str(work / "idx")]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if out.returncode:
                sys.exit(f"{name} worker failed:\n{out.stderr}")
            for row in json.loads(out.stdout.strip().splitlines()[-1]):
                results.add(row, show=BUILD_SHOWN if row["section"] == "build" else ())
        if (work / "idx").exists():
            np.save(
                work / "queries.npy", wordnet.load_queries("id", 64, unit=True, data_dir=args.data)
            )
            for cold in (False, True):
                results.add(
                    first_search(work / "idx", work / "queries.npy", cold), show=FIRST_SHOWN
                )
        shutil.rmtree(work, ignore_errors=True)
    print("\n" + format_table(results.select(section="search"), SHOWN))
    results.summary = summarize(results, args.target_recall)
    print(f"\nQPS at recall@{K} = {args.target_recall} (- = not reached in the sweep)")
    for key, value in results.summary.items():
        shown = value.items() if isinstance(value, dict) else [("ratio", value)]
        print(f"  {key}: " + ", ".join(f"{k}={format_value(v)}" for k, v in shown))
    print(f"wrote {results.write()}")


if __name__ == "__main__":
    main()
