"""HNSW benchmark: vecsearch vs hnswlib vs faiss IndexHNSWFlat on wordnet-minilm (cosine).

For each library (each in its own subprocess, so peak memory is clean): build time with all
threads and peak RSS growth during the build, then recall@10 vs QPS over an ``ef`` sweep with one
thread and with all threads, on the in-distribution (``test_id``) and out-of-distribution
(``test_ood``) queries. Then vecsearch's first-search time after a fresh import, with a warm
compile cache and with a cold one (fresh ``NUMBA_CACHE_DIR``).

    python bench/bench_hnsw.py                     # full run (116,659 vectors)
    python bench/bench_hnsw.py --n 20000 --efs 16,32,64 --libs vecsearch,hnswlib   # quick look
    python bench/bench_hnsw.py --interleaved --libs vecsearch,hnswlib --efs 16,24,32,48 --repeats 5 \
        --out bench/results/hnsw_interleaved.json      # single-thread QPS, runs alternated

Prints a table and writes ``bench/results/hnsw.json``. Ground truth (faiss IndexFlatIP) is cached
under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "wordnet-minilm"
RESULTS = Path(__file__).resolve().parent / "results"
K = 10


def load_data(n: int | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    train = np.load(DATA / "train.npy")
    if n:
        train = train[:n]
    train = train.astype(np.float32)
    train /= np.linalg.norm(train, axis=1, keepdims=True)
    queries = {}
    for name in ("test_id", "test_ood"):
        q = np.load(DATA / f"{name}.npy").astype(np.float32)
        queries[name] = q / np.linalg.norm(q, axis=1, keepdims=True)
    return np.ascontiguousarray(train), queries


def ground_truth(train: np.ndarray, queries: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import faiss

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, q in queries.items():
        path = RESULTS / f"gt_wordnet_{name}_n{train.shape[0]}_k100.npy"
        if path.exists():
            out[name] = np.load(path)
            continue
        index = faiss.IndexFlatIP(train.shape[1])
        index.add(train)
        out[name] = index.search(q, 100)[1].astype(np.int64)
        np.save(path, out[name])
    return out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f.tolist()) & set(t[:K].tolist())) for f, t in zip(found, truth))
    return hits / (truth.shape[0] * K)


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- one library per subprocess -------------------------------------------------------------------
class Lib:
    def __init__(self, name: str, dim: int, M: int, ef_c: int, threads: int):
        self.name, self.threads = name, threads
        if name == "vecsearch":
            import vecsearch as vs

            self.index = vs.HNSWIndex(dim, "cosine", M=M, ef_construction=ef_c, seed=0)
        elif name == "hnswlib":
            import hnswlib

            self.index = hnswlib.Index(space="cosine", dim=dim)
            self.M, self.ef_c = M, ef_c
        elif name == "faiss":
            import faiss

            self.index = faiss.IndexHNSWFlat(dim, M, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = ef_c
        else:
            raise ValueError(f"--libs: unknown library {name!r}")

    def set_threads(self, n: int) -> None:
        if self.name == "vecsearch":
            import numba

            numba.set_num_threads(n)
        elif self.name == "faiss":
            import faiss

            faiss.omp_set_num_threads(n)
        self.threads = n

    def build(self, x: np.ndarray) -> None:
        if self.name == "vecsearch":
            self.index.add(x, progress=False)
        elif self.name == "hnswlib":
            self.index.init_index(
                max_elements=x.shape[0], M=self.M, ef_construction=self.ef_c, random_seed=0
            )
            self.index.add_items(x, np.arange(x.shape[0]), num_threads=self.threads)
        else:
            self.index.add(x)

    def search(self, q: np.ndarray, ef: int) -> np.ndarray:
        if self.name == "vecsearch":
            return self.index.search(q, K, ef=ef).ids
        if self.name == "hnswlib":
            self.index.set_ef(ef)
            return self.index.knn_query(q, k=K, num_threads=self.threads)[0]
        self.index.hnsw.efSearch = ef
        return self.index.search(q, K)[1]


def worker(args: argparse.Namespace) -> dict:
    train, queries = load_data(args.n)
    truth = ground_truth(train, queries)
    nproc = os.cpu_count() or 1
    lib = Lib(args.worker, train.shape[1], args.M, args.ef_construction, nproc)
    lib.set_threads(nproc)
    if args.worker == "vecsearch":  # load compiled kernels from the cache before timing the build
        from vecsearch.indexes.hnsw import HNSWIndex

        HNSWIndex._warmup(train[:300])
    base_rss = rss_mb()
    t0 = time.perf_counter()
    lib.build(train)
    build_s = time.perf_counter() - t0
    result = {
        "lib": args.worker,
        "build_s": build_s,
        "build_threads": nproc,
        "peak_rss_growth_mb": peak_rss_mb() - base_rss,
        "rss_after_build_mb": rss_mb() - base_rss,
        "sweep": [],
    }
    if args.worker == "vecsearch" and args.save_to:
        lib.index.save(args.save_to)
    efs = [int(e) for e in args.efs.split(",")]
    for threads in sorted({1, nproc}):
        lib.set_threads(threads)
        for qname, q in queries.items():
            lib.search(q[:50], efs[0])  # warm caches / compile
            for ef in efs:
                best = float("inf")
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    found = lib.search(q, ef)
                    best = min(best, time.perf_counter() - t0)
                result["sweep"].append(
                    {
                        "threads": threads,
                        "queries": qname,
                        "ef": ef,
                        "recall": recall(found, truth[qname]),
                        "qps": q.shape[0] / best,
                    }
                )
    return result


def interleaved(args: argparse.Namespace) -> dict:
    """Single-thread QPS of several libraries in one process, alternating runs (best of repeats).

    Less sensitive to load changes on a shared machine than the per-library subprocesses.
    """
    train, queries = load_data(args.n)
    truth = ground_truth(train, queries)
    nproc = os.cpu_count() or 1
    libs = []
    for name in args.libs.split(","):
        lib = Lib(name, train.shape[1], args.M, args.ef_construction, nproc)
        lib.set_threads(nproc)
        if name == "vecsearch":
            from vecsearch.indexes.hnsw import HNSWIndex

            HNSWIndex._warmup(train[:300])
        lib.build(train)
        lib.set_threads(1)
        libs.append(lib)
    rows = []
    for qname, q in queries.items():
        for ef in (int(e) for e in args.efs.split(",")):
            best = {lib.name: float("inf") for lib in libs}
            found = {}
            for _ in range(args.repeats):
                for lib in libs:
                    t0 = time.perf_counter()
                    found[lib.name] = lib.search(q, ef)
                    best[lib.name] = min(best[lib.name], time.perf_counter() - t0)
            for lib in libs:
                rows.append(
                    {
                        "lib": lib.name,
                        "queries": qname,
                        "ef": ef,
                        "threads": 1,
                        "recall": recall(found[lib.name], truth[qname]),
                        "qps": q.shape[0] / best[lib.name],
                    }
                )
                print(
                    f"{lib.name:>10} {qname:>9} ef={ef:<4} recall {rows[-1]['recall']:.4f} "
                    f"QPS {rows[-1]['qps']:.0f}",
                    flush=True,
                )
    return {"interleaved_single_thread": rows, "load": os.getloadavg()}


FIRST_SEARCH = r"""
import sys, time, json
t0 = time.perf_counter()
import numpy as np
import vecsearch as vs
t1 = time.perf_counter()
index = vs.load(sys.argv[1], mmap=True)
q = np.load(sys.argv[2]).astype(np.float32)[:1]
t2 = time.perf_counter()
index.search(q, 10)
t3 = time.perf_counter()
index.search(np.load(sys.argv[2]).astype(np.float32)[:64], 10)
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_search_s": t3 - t2, "first_batch_search_s": t4 - t3}))
"""


def first_search(index_dir: str, cold: bool) -> dict:
    env = dict(os.environ)
    tmp = None
    if cold:
        tmp = tempfile.mkdtemp(prefix="numba-cold-")
        env["NUMBA_CACHE_DIR"] = tmp
    try:
        out = subprocess.run(
            [sys.executable, "-c", FIRST_SEARCH, index_dir, str(DATA / "test_id.npy")],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def qps_at_recall(sweep: list[dict], threads: int, qname: str, target: float) -> float | None:
    """QPS at ``target`` recall, interpolated linearly between the two sweep points around it."""
    pts = sorted(
        (p["recall"], p["qps"]) for p in sweep if p["threads"] == threads and p["queries"] == qname
    )
    for (r0, q0), (r1, q1) in itertools.pairwise(pts):
        if r0 <= target <= r1:
            return q0 if r1 == r0 else q0 + (q1 - q0) * (target - r0) / (r1 - r0)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--n", type=int, default=None, help="use the first n train vectors (default: all)"
    )
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--efs", default="10,16,24,32,40,48,64,96,128,192")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--libs", default="vecsearch,hnswlib,faiss")
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
    if args.interleaved:
        result = interleaved(args)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"load average {result['load']}; wrote {args.out}")
        return

    train, queries = load_data(args.n)
    ground_truth(train, queries)
    del train
    results = {
        "n": args.n,
        "M": args.M,
        "ef_construction": args.ef_construction,
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
        "libs": {},
    }
    index_dir = tempfile.mkdtemp(prefix="bench-hnsw-")
    for name in args.libs.split(","):
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            name,
            "--M",
            str(args.M),
            "--ef-construction",
            str(args.ef_construction),
            "--efs",
            args.efs,
            "--repeats",
            str(args.repeats),
        ]
        if args.n:
            cmd += ["--n", str(args.n)]
        if name == "vecsearch":
            cmd += ["--save-to", str(Path(index_dir) / "idx")]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode:
            sys.exit(f"{name} worker failed:\n{out.stderr}")
        results["libs"][name] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results["libs"][name]
        print(
            f"{name:>10}: build {r['build_s']:.1f}s ({r['build_threads']} threads), "
            f"peak RSS +{r['peak_rss_growth_mb']:.0f} MB",
            flush=True,
        )
    if "vecsearch" in results["libs"]:
        results["first_search_warm"] = first_search(str(Path(index_dir) / "idx"), cold=False)
        results["first_search_cold"] = first_search(str(Path(index_dir) / "idx"), cold=True)
    shutil.rmtree(index_dir, ignore_errors=True)
    results["load_after"] = os.getloadavg()

    print(f"\nrecall@{K} vs QPS (M={args.M}, ef_construction={args.ef_construction})")
    print(f"{'lib':>10} {'queries':>9} {'thr':>4} {'ef':>5} {'recall':>7} {'QPS':>9}")
    for name, r in results["libs"].items():
        for p in r["sweep"]:
            print(
                f"{name:>10} {p['queries']:>9} {p['threads']:>4} {p['ef']:>5} {p['recall']:7.4f} {p['qps']:9.0f}"
            )
    summary = {}
    libs = results["libs"]
    for qname in queries:
        for threads in sorted({1, os.cpu_count() or 1}):
            row = {
                name: qps_at_recall(r["sweep"], threads, qname, args.target_recall)
                for name, r in libs.items()
            }
            summary[f"{qname}_threads{threads}_qps_at_{args.target_recall}"] = row
    if "vecsearch" in libs and "hnswlib" in libs:
        summary["build_ratio_vs_hnswlib"] = (
            libs["vecsearch"]["build_s"] / libs["hnswlib"]["build_s"]
        )
    results["summary"] = summary
    print("\nQPS at recall", args.target_recall, "(None = not reached in the sweep)")
    for key, row in summary.items():
        if isinstance(row, dict):
            ratio = ""
            if row.get("vecsearch") and row.get("hnswlib"):
                ratio = f"  vecsearch/hnswlib = {row['vecsearch'] / row['hnswlib']:.2f}x"
            print(
                f"  {key}: "
                + ", ".join(f"{k}={v:.0f}" if v else f"{k}=None" for k, v in row.items())
                + ratio
            )
    for name, r in libs.items():
        print(
            f"  build {name}: {r['build_s']:.1f}s, peak RSS growth {r['peak_rss_growth_mb']:.0f} MB"
        )
    if "build_ratio_vs_hnswlib" in summary:
        print(f"  build ratio vecsearch/hnswlib: {summary['build_ratio_vs_hnswlib']:.2f}x")
    for key in ("first_search_warm", "first_search_cold"):
        if key in results:
            print(f"  {key}: {results[key]}")
    print(f"  load average before {results['load_before']}, after {results['load_after']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
