"""Flat search speed: vecsearch FlatIndex vs faiss IndexFlat, and the BLAS vs numba-scan crossover.

On the real data (wordnet-minilm train, 116,659 x 384, inner product on unit vectors = cosine):
1. a 1000-query batch, single thread and all threads, QPS of both and the ratio (the two
   libraries timed in turn, best of --repeats rounds);
2. per batch size nq, the time of the exact top-k's numba scan path and of its BLAS path, to set
   ``BLAS_MIN_QUERIES`` in vecsearch/exact.py (the smallest nq from which BLAS always wins).

    python bench/bench_flat.py [--data ../shared/data/wordnet-minilm] [--n 116659] [--repeats 3]

Prints tables and writes bench/results/bench_flat.json (with the load average).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# As in `vecsearch bench`: idle OpenMP threads sleep instead of spinning against the other
# library's threads in this process (set before faiss and numba start their pools).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss
import numba

from vecsearch import FlatIndex, exact
from vecsearch.benchmark import wordnet
from vecsearch.benchmark.algorithms import limit_threads
from vecsearch.benchmark.evaluation import time_interleaved
from vecsearch.benchmark.results import ResultsFile


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    wordnet.add_data_argument(parser)
    parser.add_argument("--n", type=int, default=None, help="database rows (default: all)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--crossover", default="1,2,4,8,12,16,24,32,48,64,128")
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parent / "results" / "bench_flat.json")
    )
    args = parser.parse_args()

    results = ResultsFile(args.out, args, script="bench_flat")
    train = wordnet.load_train(args.n, data_dir=args.data)
    queries = wordnet.load_queries("id", args.queries, data_dir=args.data)
    all_threads = numba.config.NUMBA_NUM_THREADS
    print(
        f"database {train.shape}, queries {queries.shape}, k={args.k}, cores={all_threads}, "
        f"load {results.loadavg_start}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}"
    )
    ours = FlatIndex(train.shape[1], "ip")
    ours.add(train)
    theirs = faiss.IndexFlatIP(train.shape[1])
    theirs.add(train)
    # Same answers (ties aside) before timing anything.
    agree = float(
        (ours.search(queries[:100], args.k).ids == theirs.search(queries[:100], args.k)[1]).mean()
    )
    results.summary["ids_agree_with_faiss"] = agree

    print(f"\n{queries.shape[0]}-query batch (ids agree with faiss on {agree:.4f} of positions)")
    print(f"{'threads':>7} {'vecsearch QPS':>14} {'faiss QPS':>10} {'ratio':>6}")
    for threads in sorted({1, all_threads}):
        with limit_threads(threads):
            timings = time_interleaved(
                {
                    "vecsearch": lambda: ours.search(queries, args.k),
                    "faiss": lambda: theirs.search(queries, args.k),
                },
                args.repeats,
            )
        row = {
            "section": "batch",
            "threads": threads,
            **{f"{lib}_qps": t.rate(queries.shape[0]) for lib, t in timings.items()},
        }
        row["ratio"] = row["vecsearch_qps"] / row["faiss_qps"]
        results.add(row)
        print(
            f"{threads:>7} {row['vecsearch_qps']:>14,.0f} {row['faiss_qps']:>10,.0f} {row['ratio']:>5.2f}x"
        )

    print("\nBLAS vs numba scan in the exact top-k (ms per batch)")
    print(f"{'threads':>7} {'nq':>5} {'scan ms':>9} {'blas ms':>9} {'faster':>7}")
    saved = exact.BLAS_MIN_QUERIES
    crossover: dict[str, int | None] = {}

    def path(threshold: int, q):
        def call():
            exact.BLAS_MIN_QUERIES = threshold
            return ours.search(q, args.k)

        return call

    try:
        for threads in sorted({1, all_threads}):
            crossover[str(threads)] = None
            with limit_threads(threads):
                for nq in [int(x) for x in args.crossover.split(",")]:
                    q = queries[:nq]
                    timings = time_interleaved(
                        {"scan": path(1 << 30, q), "blas": path(0, q)}, args.repeats
                    )
                    scan_ms, blas_ms = (timings[p].best_s * 1e3 for p in ("scan", "blas"))
                    faster = "blas" if blas_ms < scan_ms else "scan"
                    if faster == "blas" and crossover[str(threads)] is None:
                        crossover[str(threads)] = nq
                    if faster == "scan":
                        crossover[str(threads)] = (
                            None  # crossover = start of the final all-BLAS run
                        )
                    results.add(
                        {
                            "section": "crossover",
                            "threads": threads,
                            "nq": nq,
                            "scan_ms": scan_ms,
                            "blas_ms": blas_ms,
                        }
                    )
                    print(f"{threads:>7} {nq:>5} {scan_ms:>9.2f} {blas_ms:>9.2f} {faster:>7}")
    finally:
        exact.BLAS_MIN_QUERIES = saved
    results.summary.update(
        crossover=crossover,
        blas_min_queries=saved,
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
    )
    print(
        f"\ncrossover (smallest nq from which BLAS always wins): {crossover}; current BLAS_MIN_QUERIES={saved}"
    )
    print(
        f"load average before {results.loadavg_start}, after {os.getloadavg()}; wrote {results.write()}"
    )


if __name__ == "__main__":
    main()
