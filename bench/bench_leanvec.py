"""LeanVec/LVQ benchmark: recall@10 vs single-thread QPS next to hnswlib, faiss HNSW and vecsearch HNSW.

Data: wordnet-minilm (116,659 x 384, unit norm, cosine) with in-distribution (``test_id``) and
out-of-distribution (``test_ood``, single words) queries; ``train_queries_ood.npy`` is the query
sample for LeanVec-OOD (disjoint from ``test_ood``).

For every configuration: build time with all threads, then an ``ef`` sweep with ONE thread
(numba, faiss, hnswlib and, when threadpoolctl is installed, BLAS: recorded as ``blas_limited``),
all queries in one batch call, best of ``--repeats`` rounds with the efs taken in turn. Reported:
recall@10 and QPS (wall clock and process CPU) per ef, QPS at recall@10 = 0.95 (log-linear
interpolation between the bracketing sweep points), bytes per vector read by the graph walk, and
ratios to the peers.

    python bench/bench_leanvec.py                                 # class defaults, all 116k rows
    python bench/bench_leanvec.py --part tuning --dims auto,64,96,128,160,192 --kinds ood
    python bench/bench_leanvec.py --part held-out                 # report on rows never tuned on
    python bench/bench_leanvec.py --n 20000 --dims 128 --kinds id --peers hnswlib   # quick look

``--part tuning`` searches the first 80% of ``train.npy`` with the last 1,000 of the 5,000
``train_queries_ood`` (the first 4,000 train LeanVec-OOD); ``--part held-out`` the last 20% with
``test_id``/``test_ood`` (held_out_split in vecsearch.benchmark.wordnet): choose defaults on the
first, report the second.

Writes ``bench/results/leanvec.json``; ground truth is exact (FlatIndex) and cached.
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
from vecsearch.benchmark.algorithms import FaissAlgorithm, HnswlibAlgorithm, limit_threads
from vecsearch.benchmark.datasets import exact_neighbors
from vecsearch.benchmark.evaluation import recall_at_k, time_interleaved
from vecsearch.benchmark.report import format_table, qps_at_target
from vecsearch.benchmark.results import ResultsFile

RESULTS = Path(__file__).resolve().parent / "results"
TUNE_SAMPLE = 4000  # train_queries_ood rows that train LeanVec-OOD in the split runs; the rest evaluate
K = 10
TARGET = 0.95
SHOWN = ("name", "queries", "ef", "recall", "qps", "qps_cpu")


def record(results, name, build_s, search, walk_bytes, data, args, extra=None) -> None:
    """Sweep ``search(q, ef) -> ids`` on one thread over every query set; one build row with the
    QPS at TARGET (wall and CPU) per query set."""
    queries, truth = data
    efs = [int(e) for e in args.efs.split(",")]
    with limit_threads(1) as threads:
        for qname, q in queries.items():
            calls = {ef: (lambda ef=ef, q=q: search(q, ef)) for ef in efs}
            for ef, timing in time_interleaved(calls, args.repeats, warmup="none").items():
                if timing.error:
                    raise RuntimeError(f"{name} {qname} ef={ef}: {timing.error}")
                point = {"section": "sweep", "name": name, "queries": qname, "ef": ef}
                measured = {
                    "recall": recall_at_k(timing.output, truth[qname]),
                    "qps": timing.rate(len(q)),
                    "qps_cpu": timing.rate(len(q), clock="cpu"),
                }
                results.add(
                    point | measured | {"blas_limited": threads["blas_limited"]}, show=SHOWN
                )
    at = {}
    for clock in ("qps", "qps_cpu"):
        sweeps = qps_at_target(
            results.select(section="sweep", name=name),
            TARGET,
            group=("queries",),
            order="ef",
            qps=clock,
        )
        at |= {f"{qname}_{clock}_at_{TARGET}": qps for (qname,), qps in sweeps.items()}
    results.add(
        {
            "section": "build",
            "name": name,
            "build_s": build_s,
            "walk_bytes_per_vector": walk_bytes,
            **(extra or {}),
            **at,
        },
        show=("name", "build_s", "walk_bytes_per_vector", *at),
    )


def built(fn, threads: int) -> tuple[object, float]:
    """``fn()`` on ``threads`` threads, and its seconds."""
    with limit_threads(threads):
        t0 = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t0


def run_peers(args, results, train, data, all_threads) -> None:
    peers = [p for p in args.peers.split(",") if p]
    float_walk = 4 * train.shape[1]  # the peers walk float32 vectors
    params = {"M": args.peer_M, "ef_construction": args.peer_efc, "seed": 0}
    for peer_name, peer in (
        ("hnswlib", HnswlibAlgorithm(params, {}, all_threads)),
        ("faiss", FaissAlgorithm("hnsw", params, {})),
    ):
        if peer_name in peers:
            _, build_s = built(lambda peer=peer: peer.build(train, "cosine"), all_threads)
            peer.set_search_threads(1)

            def search(q, ef, peer=peer):
                peer.set_search({"ef": ef})
                return peer.search(q, K)

            record(
                results, f"{peer_name} HNSW{args.peer_M}", build_s, search, float_walk, data, args
            )
    if "vecsearch-hnsw" in peers:
        index, build_s = built(
            lambda: vs.HNSWIndex(train.shape[1], "cosine", **params), all_threads
        )
        _, add_s = built(lambda: index.add(train, progress=False), all_threads)
        record(
            results,
            f"vecsearch HNSW{args.peer_M} float32",
            build_s + add_s,
            lambda q, ef: index.search(q, K, ef=max(ef, K)).ids,
            float_walk,
            data,
            args,
        )


def parse_dim(text: str) -> int | str | None:
    return None if text == "none" else ("auto" if text == "auto" else int(text))


def run_leanvec(args, results, train, data, all_threads, ood_sample) -> None:
    for kind in args.kinds.split(","):
        for d in [parse_dim(x) for x in args.dims.split(",")]:
            if d is None and kind == "ood":
                continue  # OOD needs a reduction
            for primary in (args.ood_primaries if kind == "ood" else args.primaries).split(","):
                index = vs.LeanVecIndex(
                    train.shape[1],
                    "cosine",
                    reduced_dim=d,
                    primary=primary,
                    secondary=args.secondary,
                    M=args.M,
                    ef_construction=args.efc,
                    seed=0,
                )
                sample = ood_sample if kind == "ood" else None
                _, train_s = built(
                    lambda ix=index, s=sample: ix.train(train, queries=s), all_threads
                )
                _, add_s = built(lambda ix=index: ix.add(train), all_threads)
                reduction = f"{kind.upper()}{index.reduced_dim}" if d is not None else "none (full-dim)"
                if d == "auto":
                    reduction += " (auto)"
                name = f"LeanVec-{reduction},{primary.upper()},M{args.M}"
                record(
                    results,
                    name,
                    train_s + add_s,
                    lambda q, ef, ix=index: ix.search(q, K, ef=max(ef, K)).ids,
                    index.primary_bytes_per_vector,
                    data,
                    args,
                    {"train_s": train_s, "reduced_dim": index.reduced_dim, "auto": d == "auto",
                     "primary": primary, "kind": kind},
                )
                del index


def ratios(results: ResultsFile, queries) -> list[dict]:
    """Each LeanVec run against each peer at TARGET recall (wall and CPU), and build time ratios."""
    runs = {r["name"]: r for r in results.select(section="build")}
    peers = [n for n in runs if not n.startswith("LeanVec")]
    out = []
    for name, run in runs.items():
        for peer in peers if name not in peers else []:
            entry = {"leanvec": name, "peer": peer, "build": run["build_s"] / runs[peer]["build_s"]}
            for key in (
                f"{qn}_{clock}_at_{TARGET}" for qn in queries for clock in ("qps", "qps_cpu")
            ):
                entry[key.replace(f"_at_{TARGET}", "")] = run[key] / runs[peer][key]
            out.append(entry)
    return out


def unit_rows(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.float32(1e-30))


def load_part(args):
    """``(database f32 (n, 384), {query set: f32 (nq, 384)}, LeanVec-OOD training sample)`` of ``--part``."""
    train_ood = wordnet.load_queries("train_ood", unit=True, data_dir=args.data)
    if args.part == "all":
        train = wordnet.load_train(args.n, unit=True, data_dir=args.data)
        queries = {
            f"test_{kind}": wordnet.load_queries(kind, args.queries, unit=True, data_dir=args.data)
            for kind in ("id", "ood")
        }
        return train, queries, train_ood
    tuning, held_out = wordnet.held_out_split("ood", n=args.n, data_dir=args.data)
    sample, tune_queries = train_ood[:TUNE_SAMPLE], train_ood[TUNE_SAMPLE:][: args.queries]
    if args.part == "tuning":
        return np.ascontiguousarray(unit_rows(tuning.train)), {"tune_ood": tune_queries}, sample
    queries = {
        f"test_{kind}": wordnet.load_queries(kind, args.queries, unit=True, data_dir=args.data)
        for kind in ("id", "ood")
    }
    return np.ascontiguousarray(unit_rows(held_out.train)), queries, sample


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    wordnet.add_data_argument(ap)
    ap.add_argument("--n", type=int, default=None, help="database rows (default: all 116,659)")
    ap.add_argument(
        "--queries", type=int, default=None, help="first N queries of each set (default: all 1,000)"
    )
    ap.add_argument(
        "--part", choices=("all", "tuning", "held-out"), default="all",
        help="rows of train.npy and queries (see the module docstring)",
    )
    ap.add_argument(
        "--dims", default="auto", help="reduced dims: integers, 'auto' (the class default), 'none' (no reduction)"
    )
    ap.add_argument("--primaries", default="lvq8")
    ap.add_argument("--kinds", default="id,ood")
    ap.add_argument(
        "--ood-primaries",
        default="lvq8",
        help="primaries for LeanVec-OOD (default: lvq8 only, to bound run time)",
    )
    ap.add_argument("--secondary", default="float32")
    ap.add_argument("--M", type=int, default=16, help="LeanVec graph M (class default)")
    ap.add_argument("--efc", type=int, default=200, help="LeanVec ef_construction (class default)")
    ap.add_argument("--peer-M", type=int, default=16)
    ap.add_argument("--peer-efc", type=int, default=200)
    ap.add_argument("--efs", default="10,16,20,24,28,32,40,48,56,64,96,128,192,256")
    ap.add_argument("--peers", default="hnswlib,faiss,vecsearch-hnsw")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None, help="results file (default: bench/results/leanvec[_PART].json)")
    args = ap.parse_args()

    if args.out is None:
        suffix = "" if args.part == "all" else "_" + args.part.replace("-", "_")
        args.out = str(RESULTS / f"leanvec{suffix}.json")
    results = ResultsFile(args.out, args, script="bench_leanvec")
    all_threads = numba.config.NUMBA_NUM_THREADS
    train, queries, ood_sample = load_part(args)
    truth = {name: exact_neighbors(train, q, K, "cosine")[0] for name, q in queries.items()}
    print(
        f"data: {train.shape[0]} x {train.shape[1]}, build threads {all_threads}, load {results.loadavg_start}"
    )
    vs.warmup()
    run_peers(args, results, train, (queries, truth), all_threads)
    run_leanvec(args, results, train, (queries, truth), all_threads, ood_sample)
    results.summary = {"target_recall": TARGET, "ratios": ratios(results, queries)}
    print(f"\nRatios at recall@{K} = {TARGET} (single thread; - = not reached) and of build time:")
    table = results.summary["ratios"]
    print(format_table(table, list(table[0]) if table else ["leanvec", "peer"]))
    print(
        f"\nload average before {results.loadavg_start}, after {os.getloadavg()}; wrote {results.write()}"
    )


if __name__ == "__main__":
    sys.exit(main())
