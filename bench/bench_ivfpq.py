"""IVF-PQ benchmark: vecsearch IVFPQIndex vs faiss IndexIVFPQ (+ IndexRefineFlat) on wordnet-minilm.

Same nlist / m / nbits for both; recall@k vs QPS over an nprobe sweep, with and without exact
re-rank (k_factor), single thread and all threads; training time, add time, bytes per vector
(measured: ``memory_bytes()`` and faiss' serialized size). Cosine data -> inner product on the
(unit-norm) vectors. The two libraries are timed in turn (``--repeats`` interleaved rounds, best
kept); on one thread the process-CPU QPS is reported too (the load-robust figure on a shared
machine). Summary: QPS at ``--target`` recall, log-linear interpolation on the nprobe sweep.

    python bench/bench_ivfpq.py                       # full run (nlist=1024, m=48, nbits=8)
    python bench/bench_ivfpq.py --n 20000 --nlist 128 --nprobes 1,4,16   # quick dev run

Writes ``bench/results/ivfpq.json``; ground truth is exact (FlatIndex) and cached.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import faiss
import numpy as np

import vecsearch as vs
from vecsearch.benchmark import wordnet
from vecsearch.benchmark.algorithms import limit_threads
from vecsearch.benchmark.datasets import exact_neighbors
from vecsearch.benchmark.evaluation import recall_at_k, time_interleaved
from vecsearch.benchmark.report import format_table, qps_at_target
from vecsearch.benchmark.results import ResultsFile

RESULTS = Path(__file__).resolve().parent / "results"
SHOWN = ("threads", "nprobe", "rerank", "lib", "recall", "qps", "qps_cpu")
BUILD_SHOWN = (
    "lib",
    "train_s",
    "train_cpu_s",
    "add_s",
    "index_bytes_per_vector",
    "code_bytes_per_vector",
)


def timed(fn) -> tuple[float, float]:
    """Wall and process-CPU seconds of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def build(args, train: np.ndarray, results: ResultsFile):
    """Both indexes (all threads): training and add times, bytes per vector (measured)."""
    n, d = train.shape
    vs.IVFPQIndex.warmup_kernels(
        np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    )
    ours = vs.IVFPQIndex(
        d, "ip", nlist=args.nlist, m=args.m, nbits=args.nbits, keep_vectors=True, seed=0
    )
    train_s, train_cpu = timed(lambda: ours.train(train))
    add_s, _ = timed(lambda: ours.add(train))
    sizes = {
        "code_bytes_per_vector": ours.code_size,
        "index_bytes_per_vector": ours.memory_bytes() / n,
    }
    results.add(
        {
            "section": "build",
            "lib": "vecsearch",
            "train_s": train_s,
            "train_cpu_s": train_cpu,
            "add_s": add_s,
            **sizes,
        },
        show=BUILD_SHOWN,
    )
    peer = faiss.IndexIVFPQ(
        faiss.IndexFlatIP(d), d, args.nlist, args.m, args.nbits, faiss.METRIC_INNER_PRODUCT
    )
    train_s, train_cpu = timed(lambda: peer.train(train))
    refine = faiss.IndexRefineFlat(peer)  # keeps the float32 vectors, as ours with keep_vectors
    add_s, _ = timed(lambda: refine.add(train))
    sizes = {
        "code_bytes_per_vector": peer.code_size,
        "index_bytes_per_vector": faiss.serialize_index(refine).size / n,
        "ivfpq_bytes_per_vector": faiss.serialize_index(peer).size / n,
    }
    results.add(
        {
            "section": "build",
            "lib": "faiss",
            "train_s": train_s,
            "train_cpu_s": train_cpu,
            "add_s": add_s,
            **sizes,
        },
        show=BUILD_SHOWN,
    )
    return ours, peer, refine


def ours_search(ours, queries, k, nprobe, factor):
    params = {"nprobe": nprobe} | ({"rerank": factor} if factor else {})
    return lambda: ours.search(queries, k, **params).ids


def faiss_search(peer, refine, queries, k, nprobe, factor):
    """IndexIVFPQ alone, or wrapped in IndexRefineFlat re-ranking k * factor candidates."""

    def call():
        peer.nprobe = nprobe
        if not factor:
            return peer.search(queries, k)[1]
        refine.k_factor = factor
        return refine.search(queries, k)[1]

    return call


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    wordnet.add_data_argument(ap)
    ap.add_argument("--n", type=int, default=0, help="database rows (0 = all 116,659)")
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--m", type=int, default=48)
    ap.add_argument("--nbits", type=int, default=8)
    ap.add_argument("--nprobes", default="1,2,4,8,16,32,64,128")
    ap.add_argument("--rerank", default="4,8", help="k_factors for the re-rank runs")
    ap.add_argument("--threads", default=f"1,{os.cpu_count()}")
    ap.add_argument(
        "--repeats", type=int, default=2, help="timed rounds per point, the two libraries in turn"
    )
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--out", default=str(RESULTS / "ivfpq.json"))
    args = ap.parse_args()

    results = ResultsFile(args.out, args, script="bench_ivfpq")
    train = wordnet.load_train(args.n or None, data_dir=args.data)
    queries = wordnet.load_queries("id", args.nq, data_dir=args.data)
    truth = exact_neighbors(train, queries, args.k, "ip")[0]
    print(
        f"data: {train.shape[0]} x {train.shape[1]}, {queries.shape[0]} queries, k={args.k}; "
        f"load {results.loadavg_start}"
    )
    with limit_threads(os.cpu_count() or 1):
        ours, peer, refine = build(args, train, results)

    factors = [0] + [int(v) for v in args.rerank.split(",") if v]
    for threads in [int(v) for v in args.threads.split(",")]:
        with limit_threads(threads):
            for nprobe in [int(v) for v in args.nprobes.split(",")]:
                for factor in factors:
                    point = {"threads": threads, "nprobe": nprobe, "rerank": factor}
                    calls = {
                        "vecsearch": ours_search(ours, queries, args.k, nprobe, factor),
                        "faiss": faiss_search(peer, refine, queries, args.k, nprobe, factor),
                    }
                    for lib, timing in time_interleaved(calls, args.repeats).items():
                        if timing.error:
                            raise RuntimeError(f"{lib} {point}: {timing.error}")
                        cpu = timing.rate(len(queries), clock="cpu") if threads == 1 else None
                        measured = {
                            "recall": recall_at_k(timing.output, truth),
                            "qps": timing.rate(len(queries)),
                            "qps_cpu": cpu,
                        }
                        results.add(
                            {"section": "search", "lib": lib, **point, **measured}, show=SHOWN
                        )

    summary = []
    search = results.select(section="search")
    for measure in ("qps", "qps_cpu"):
        rows = [r for r in search if r[measure] is not None]
        at = qps_at_target(
            rows, args.target, group=("threads", "rerank", "lib"), order="nprobe", qps=measure
        )
        for (threads, factor, lib), qps in at.items():
            if lib == "vecsearch":
                theirs = at.get((threads, factor, "faiss"), float("nan"))
                summary.append(
                    {
                        "threads": threads,
                        "rerank": factor,
                        "measure": measure,
                        "vecsearch": qps,
                        "faiss": theirs,
                        "ratio": qps / theirs,
                    }
                )
    print(f"\nQPS at recall@{args.k} = {args.target} (- = not reached; qps_cpu: one thread only)")
    print(format_table(summary, ("threads", "rerank", "measure", "vecsearch", "faiss", "ratio")))
    results.summary = {"qps_at_target": summary}
    print(f"wrote {results.write()}; load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
