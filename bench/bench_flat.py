"""Flat search speed: vecsearch FlatIndex vs faiss IndexFlat, and the BLAS vs numba-scan crossover.

On the real data (wordnet-minilm train, 116,659 x 384, inner product on unit vectors = cosine):
1. a 1000-query batch, single thread and all threads, QPS of both and the ratio;
2. per batch size nq, the time of FlatIndex's numba scan path and of its BLAS path, to set
   ``BLAS_MIN_QUERIES`` in vecsearch/indexes/flat.py (the smallest nq where BLAS wins).

    python bench/bench_flat.py [--data ../shared/data/wordnet-minilm] [--n 116659] [--repeats 3]

Prints tables and writes bench/results/bench_flat.json (with the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

# As in `vecsearch bench`: idle OpenMP threads sleep instead of spinning against the other
# library's threads in this process (set before faiss and numba start their pools).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss
import numba
import numpy as np

import vecsearch.indexes.flat as flat_mod
from vecsearch import FlatIndex


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up (compilation, caches)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def set_threads(n: int) -> None:
    numba.set_num_threads(n)
    faiss.omp_set_num_threads(n)


def main() -> None:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", default=str(here.parent.parent / "shared" / "data" / "wordnet-minilm")
    )
    parser.add_argument("--n", type=int, default=None, help="database rows (default: all)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--crossover", default="1,2,4,8,12,16,24,32,48,64,128")
    parser.add_argument("--out", default=str(here / "results" / "bench_flat.json"))
    args = parser.parse_args()

    data = Path(args.data)
    train = np.ascontiguousarray(np.load(data / "train.npy")[: args.n].astype(np.float32))
    queries = np.ascontiguousarray(np.load(data / "test_id.npy")[: args.queries].astype(np.float32))
    all_threads = numba.config.NUMBA_NUM_THREADS
    load_before = os.getloadavg()
    print(
        f"database {train.shape}, queries {queries.shape}, k={args.k}, cores={all_threads}, load {load_before}"
    )

    ours = FlatIndex(train.shape[1], "ip")
    ours.add(train)
    theirs = faiss.IndexFlatIP(train.shape[1])
    theirs.add(train)
    # Same answers (ties aside) before timing anything.
    a = ours.search(queries[:100], args.k).ids
    b = theirs.search(queries[:100], args.k)[1]
    agree = float((a == b).mean())

    batch_rows = []
    print(f"\n{queries.shape[0]}-query batch (ids agree with faiss on {agree:.4f} of positions)")
    print(f"{'threads':>7} {'vecsearch QPS':>14} {'faiss QPS':>10} {'ratio':>6}")
    for threads in sorted({1, all_threads}):
        set_threads(threads)
        t_ours = best_time(lambda: ours.search(queries, args.k), args.repeats)
        t_faiss = best_time(lambda: theirs.search(queries, args.k), args.repeats)
        row = {
            "threads": threads,
            "vecsearch_qps": queries.shape[0] / t_ours,
            "faiss_qps": queries.shape[0] / t_faiss,
        }
        row["ratio"] = row["vecsearch_qps"] / row["faiss_qps"]
        batch_rows.append(row)
        print(
            f"{threads:>7} {row['vecsearch_qps']:>14,.0f} {row['faiss_qps']:>10,.0f} {row['ratio']:>5.2f}x"
        )

    print("\nBLAS vs numba scan inside FlatIndex (ms per batch; all threads unless noted)")
    print(f"{'threads':>7} {'nq':>5} {'scan ms':>9} {'blas ms':>9} {'faster':>7}")
    cross_rows = []
    saved = flat_mod.BLAS_MIN_QUERIES
    crossover: dict[int, int | None] = {}
    try:
        for threads in sorted({1, all_threads}):
            set_threads(threads)
            crossover[threads] = None
            for nq in [int(x) for x in args.crossover.split(",")]:
                q = queries[:nq]
                flat_mod.BLAS_MIN_QUERIES = 1 << 30
                t_scan = best_time(lambda q=q: ours.search(q, args.k), args.repeats)
                flat_mod.BLAS_MIN_QUERIES = 0
                t_blas = best_time(lambda q=q: ours.search(q, args.k), args.repeats)
                faster = "blas" if t_blas < t_scan else "scan"
                if faster == "blas" and crossover[threads] is None:
                    crossover[threads] = nq
                if faster == "scan":
                    crossover[threads] = None  # crossover = start of the final all-BLAS run
                cross_rows.append(
                    {"threads": threads, "nq": nq, "scan_ms": t_scan * 1e3, "blas_ms": t_blas * 1e3}
                )
                print(f"{threads:>7} {nq:>5} {t_scan * 1e3:>9.2f} {t_blas * 1e3:>9.2f} {faster:>7}")
    finally:
        flat_mod.BLAS_MIN_QUERIES = saved
    print(
        f"\ncrossover (smallest nq from which BLAS always wins): {crossover}; current BLAS_MIN_QUERIES={saved}"
    )
    load_after = os.getloadavg()
    print(f"load average before {load_before}, after {load_after}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "database": list(train.shape),
                "queries": list(queries.shape),
                "k": args.k,
                "ids_agree_with_faiss": agree,
                "batch": batch_rows,
                "crossover_rows": cross_rows,
                "crossover": {str(k): v for k, v in crossover.items()},
                "blas_min_queries": saved,
                "load_before": load_before,
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                "load_after": load_after,
            },
            indent=1,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
