"""ShardedIndex on Ray vs one in-process index: add and batch-query throughput, fan-out overhead.

On a subset of the real data (wordnet-minilm train, cosine), for each index type (Flat, HNSW,
optionally IVF-PQ):

* ``in-process``: a plain vecsearch index in this process (all cores);
* ``1 shard``: ShardedIndex with one Ray actor (all cores in the actor): the pure cost of Ray;
* ``2 shards``: two actors on the same machine (cores split between them).

Per configuration: add throughput (vectors/s, one ``add`` call of the whole subset), batch-query
throughput (QPS of one ``search`` call over all queries, best of ``--repeats``), single-query
latency (median of ``--latency-calls`` one-query calls: the fixed fan-out overhead), recall@k
against exact search, and the bytes of the index arrays per shard (for the capacity plan).
Search timings take the configurations in turn, round by round, so the load of a shared
machine drifting over the run does not favour whichever ran first.
On one machine 2 shards cannot beat one process (same cores); the figures give Ray's overhead
and the per-shard throughput that a cluster multiplies.

    python bench/bench_distributed.py [--n 50000] [--queries 1000] [--types flat,hnsw] [--shards 1,2]

Prints a table and writes bench/results/bench_distributed.json (with the load average).
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

import ray

import vecsearch
from vecsearch.benchmark import wordnet
from vecsearch.benchmark.algorithms import limit_threads
from vecsearch.benchmark.datasets import exact_neighbors
from vecsearch.benchmark.evaluation import recall_at_k, time_interleaved
from vecsearch.benchmark.results import ResultsFile
from vecsearch.distributed import ShardedIndex


def build_params(kind: str, args: argparse.Namespace) -> tuple[str, dict, dict]:
    """(factory spec, index params, search params) of an index type."""
    if kind == "flat":
        return "Flat", {}, {}
    if kind == "hnsw":
        return (
            f"HNSW{args.M}",
            {"ef_construction": args.ef_construction, "seed": 0},
            {"ef": args.ef},
        )
    if kind == "ivfpq":
        return f"IVF{args.nlist},PQ{args.pq_m}", {"seed": 0}, {"nprobe": args.nprobe}
    raise ValueError(f"--types: unknown index type {kind!r} (flat, hnsw, ivfpq)")


def build(config: str, spec: str, params: dict, kind: str, train, row: dict, threads: int):
    """Create the index of ``config`` ("in-process" or "<n> shard(s)"), train it if needed, add
    ``train``; records start, train and add timings in ``row``."""
    t0 = time.perf_counter()
    if config == "in-process":
        index = vecsearch.index_factory(train.shape[1], spec, "cosine", **params)
    else:
        n_shards = int(config.split()[0])
        index = ShardedIndex(
            spec,
            n_shards=n_shards,
            dim=train.shape[1],
            metric="cosine",
            timeout_s=600,
            threads_per_shard=max(1, threads // n_shards),
            **params,
        )
    row["start_s"] = time.perf_counter() - t0
    if kind == "ivfpq":
        t0 = time.perf_counter()
        index.train(train)
        row["train_s"] = time.perf_counter() - t0
    add_kwargs = {"progress": False} if kind == "hnsw" else {}
    # The first add compiles kernels where the cache is cold: warm with a small slice, time the rest.
    warm = min(1000, train.shape[0] // 10)
    index.add(train[:warm], **add_kwargs)
    t0 = time.perf_counter()
    index.add(train[warm:], **add_kwargs)
    row["add_vectors_per_s"] = (train.shape[0] - warm) / (time.perf_counter() - t0)
    return index


def measure(built: dict, queries, truth, k: int, search_params: dict, args) -> None:
    """Batch QPS, median one-query latency and recall of every configuration, configurations in turn."""
    batch = time_interleaved(
        {
            config: (lambda index=index: index.search(queries, k, **search_params))
            for config, (index, _) in built.items()
        },
        args.repeats,
    )
    calls = {}
    for config, (index, _) in built.items():
        order = itertools.count()
        calls[config] = lambda index=index, order=order: index.search(
            queries[next(order) % queries.shape[0]], k, **search_params
        )
    single = time_interleaved(calls, args.latency_calls)
    for config, (index, row) in built.items():
        for timing in (batch[config], single[config]):
            if timing.error:
                raise RuntimeError(f"{row['type']} {config}: {timing.error}")
        row["batch_qps"] = batch[config].rate(queries.shape[0])
        row["latency_ms"] = 1000 * single[config].median_s
        row[f"recall@{k}"] = recall_at_k(batch[config].output.ids, truth)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    wordnet.add_data_argument(parser)
    parser.add_argument("--n", type=int, default=50000, help="database rows (first n of train.npy)")
    parser.add_argument(
        "--queries", type=int, default=1000, help="in-distribution queries (test_id.npy)"
    )
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--types", default="flat,hnsw")
    parser.add_argument("--shards", default="1,2")
    parser.add_argument("--M", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=100)
    parser.add_argument("--ef", type=int, default=64)
    parser.add_argument("--nlist", type=int, default=256)
    parser.add_argument("--pq-m", type=int, default=48)
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="numba+BLAS threads of the in-process index and of the 1-shard actor; n shards get "
        "threads/n each (default: all cores)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-calls", type=int, default=200)
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parent / "results" / "bench_distributed.json")
    )
    args = parser.parse_args()

    results = ResultsFile(args.out, args, script="bench_distributed")
    train = wordnet.load_train(args.n, data_dir=args.data)
    queries = wordnet.load_queries("id", args.queries, data_dir=args.data)
    cores = os.cpu_count() or 1
    threads = args.threads or cores
    truth = exact_neighbors(train, queries, args.k, "cosine")[0]
    t0 = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    results.summary.update(
        ray_init_s=time.perf_counter() - t0, ray=ray.__version__, threads=threads
    )
    print(
        f"database {train.shape}, queries {queries.shape}, k={args.k}, cores={cores}, threads={threads}, "
        f"load {results.loadavg_start}; ray.init {results.summary['ray_init_s']:.2f} s"
    )
    # The in-process index gets the same thread budget as the 1-shard actor (numba and BLAS).
    with limit_threads(threads) as limits:
        results.summary["blas_limited"] = limits["blas_limited"]
        for kind in args.types.split(","):
            spec, params, search_params = build_params(kind, args)
            configs = ["in-process"] + [
                f"{s} shard{'s' if int(s) > 1 else ''}" for s in args.shards.split(",")
            ]
            built = {}
            for config in configs:
                row = {
                    "type": kind,
                    "spec": spec,
                    "config": config,
                    "params": params,
                    "search": search_params,
                }
                built[config] = (build(config, spec, params, kind, train, row, threads), row)
            measure(built, queries, truth, args.k, search_params, args)
            for config, (index, row) in built.items():
                if isinstance(index, ShardedIndex):
                    mem = index.memory()
                    row["index_bytes_per_shard"] = [m["index_bytes"] for m in mem]
                    row["rss_bytes_per_shard"] = [m["rss_bytes"] for m in mem]
                    row["index_bytes"] = sum(row["index_bytes_per_shard"])
                    row["threads_per_shard"] = index.threads_per_shard
                    index.close()
                else:
                    row["index_bytes"] = index.memory_bytes()
                    row["threads_per_shard"] = threads
                row["index_bytes_per_vector"] = row["index_bytes"] / train.shape[0]
                results.add(row)
                print(
                    f"{kind:>6} {config:>10}: add {row['add_vectors_per_s']:>9.0f} vec/s"
                    f"  batch {row['batch_qps']:>8.0f} QPS  1-query {row['latency_ms']:>7.2f} ms"
                    f"  recall@{args.k} {row[f'recall@{args.k}']:.4f}"
                    f"  {row['index_bytes_per_vector']:.0f} B/vector  (start {row['start_s']:.2f} s)",
                    flush=True,
                )
            del built
    # Ratios against the in-process index of the same type (the fan-out overhead).
    print(f"\n{'type':>6} {'config':>10} {'add x':>7} {'batch QPS x':>11} {'1-query ms +':>12}")
    for row in results.rows:
        base = next(
            r for r in results.rows if r["type"] == row["type"] and r["config"] == "in-process"
        )
        row["add_ratio_vs_in_process"] = row["add_vectors_per_s"] / base["add_vectors_per_s"]
        row["batch_qps_ratio_vs_in_process"] = row["batch_qps"] / base["batch_qps"]
        row["latency_overhead_ms"] = row["latency_ms"] - base["latency_ms"]
        print(
            f"{row['type']:>6} {row['config']:>10} {row['add_ratio_vs_in_process']:>7.2f}"
            f" {row['batch_qps_ratio_vs_in_process']:>11.2f} {row['latency_overhead_ms']:>12.2f}"
        )
    ray.shutdown()
    print(
        f"\nload average before {results.loadavg_start}, after {os.getloadavg()}; wrote {results.write()}"
    )


if __name__ == "__main__":
    main()
