"""ShardedIndex on a multi-node Ray topology on one machine: scaling over shards and replicas, and
the time to heal a replica per GB of shard.

The topology is ``ray.cluster_utils.Cluster``: a head node with no CPU (the driver) and
``--nodes`` worker nodes of 1 CPU each, every shard actor asking for 1 CPU, so each actor sits on
its own node (checked: the actors report their node). Each node is a separate raylet and object
store; calls and state copies cross nodes as on a real cluster, over loopback. All nodes share this
machine's cores (``os.cpu_count()``), which caps what any configuration can gain.

* ``scaling``: per index type (``--types``), each shard count (``--shards``) is built once and
  saved; then, round by round (``--rounds``), every configuration (shards x ``--replicas``) is
  loaded in turn and measured: batch QPS (one ``search`` call of all queries; with 2 replicas the
  batch is split over them), one-query latency p50/p99 (``--latency-calls`` sequential calls), and
  QPS of ``--clients`` threads sending one-query calls (balanced reads). The load average is
  recorded with every row. Also the in-process index (1 thread) as the reference.
* ``heal``: a Flat shard of each size (``--heal-gb``, synthetic 384-d rows) with 2 replicas; in
  rounds, one replica of each size in turn is killed and ``heal()`` timed (new actor, snapshot,
  cross-node copy, ``Index.from_state``, replay), while a writer thread keeps adding rows (the log
  replay means writes are not paused for the copy: their latency during the heal is recorded).
* ``slow``: one Flat shard with 2 replicas, one of them made slow (``Shard.inject_delay`` on
  ``search``, ``--slow-ms``); one-query p50/p99 with the default adaptive hedging against hedging
  pushed out of reach (``hedge_after_s`` = 60 s: plain least-outstanding/round-robin reads).

    python bench/bench_distributed.py [--sections scaling,heal,slow] [--n 50000] [--types flat,hnsw]

Writes bench/results/bench_distributed.json (small: per-configuration summaries);
``--report PATH`` prints the markdown tables of docs/distributed.md from such a file (no cluster).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import ray
from ray.cluster_utils import Cluster

import vecsearch
from vecsearch.benchmark import wordnet
from vecsearch.benchmark.algorithms import limit_threads
from vecsearch.benchmark.datasets import exact_neighbors
from vecsearch.benchmark.evaluation import latency_percentiles, recall_at_k, time_interleaved
from vecsearch.benchmark.results import ResultsFile, loadavg
from vecsearch.distributed import ShardedIndex
from vecsearch.distributed.remote import kill_and_wait

GB = 2**30
ONE_CPU = {"num_cpus": 1}


def spec_of(kind: str, args: argparse.Namespace) -> tuple[str, dict, dict]:
    """(factory spec, build params, search params) of an index type."""
    if kind == "flat":
        return "Flat", {}, {}
    if kind == "hnsw":
        return (
            f"HNSW{args.M}",
            {"ef_construction": args.ef_construction, "seed": 0},
            {"ef": args.ef},
        )
    raise ValueError(f"--types: unknown index type {kind!r} (flat, hnsw)")


def start_cluster(nodes: int, store_mb: int) -> Cluster:
    """A head without CPUs (the driver's node) and ``nodes`` worker nodes of 1 CPU each."""
    store = store_mb * 2**20
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": store}
    )
    for _ in range(nodes):
        cluster.add_node(num_cpus=1, object_store_memory=store)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    return cluster


def actor_nodes(index: ShardedIndex) -> list[str]:
    return [
        ray.get(a.info.remote(), timeout=120)["node"] for row in index.shard_actors for a in row
    ]


# ---- scaling -----------------------------------------------------------------------------------
def build_saved(kind, n_shards, train, args, directory, results) -> Path:
    """Build a ``n_shards`` index of ``kind`` (1 replica) on the cluster and save it; returns the path."""
    spec, params, _ = spec_of(kind, args)
    t0 = time.perf_counter()
    index = ShardedIndex(
        spec,
        n_shards=n_shards,
        dim=train.shape[1],
        metric="cosine",
        actor_options=ONE_CPU,
        timeout_s=1800,
        **params,
    )
    add_kwargs = {"progress": False} if kind == "hnsw" else {}
    index.add(train, **add_kwargs)
    build_s = time.perf_counter() - t0
    path = directory / f"{kind}_{n_shards}"
    index.save(path)
    memory = index.memory()
    index.close()
    results.add(
        {
            "section": "build",
            "type": kind,
            "shards": n_shards,
            "build_s": build_s,
            "add_vectors_per_s": train.shape[0] / build_s,
            "index_bytes_per_shard": [m["index_bytes"] for m in memory],
            "loadavg": loadavg(),
        },
        show=("type", "shards", "build_s"),
    )
    return path


def measure_config(index, queries, k, search_params, args) -> dict:
    """Batch QPS, one-query latency percentiles and the QPS of concurrent one-query clients."""
    index.search(queries, k, **search_params)  # warm: kernels, connections, latency model
    for q in queries[:20]:
        index.search(q, k, **search_params)
    batch = time_interleaved(
        {"batch": lambda: index.search(queries, k, **search_params)},
        args.batch_repeats,
        warmup="none",
    )["batch"]
    times = np.empty(args.latency_calls)
    for i in range(args.latency_calls):
        t0 = time.perf_counter()
        index.search(queries[i % queries.shape[0]], k, **search_params)
        times[i] = time.perf_counter() - t0
    per_client = args.latency_calls // args.clients

    def client(offset: int) -> None:
        for i in range(per_client):
            index.search(queries[(offset + i) % queries.shape[0]], k, **search_params)

    threads = [threading.Thread(target=client, args=(c * 97,)) for c in range(args.clients)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    concurrent_s = time.perf_counter() - t0
    return {
        "batch_qps": batch.rate(queries.shape[0]),
        **latency_percentiles(times, (50, 99)),
        "concurrent_qps": args.clients * per_client / concurrent_s,
        "ids": batch.output.ids,
    }


def run_scaling(args, train, queries, truth, results) -> None:
    shards = [int(s) for s in args.shards.split(",")]
    replica_counts = [int(r) for r in args.replicas.split(",")]
    configs = list(itertools.product(shards, replica_counts))
    directory = Path(tempfile.mkdtemp(prefix="bench_distributed_"))
    try:
        for kind in args.types.split(","):
            spec, _, search_params = spec_of(kind, args)
            paths = {s: build_saved(kind, s, train, args, directory, results) for s in shards}
            # The in-process reference: shard 0 of the 1-shard build, one thread.
            with limit_threads(1):
                local = vecsearch.load(paths[min(shards)] / "shard_00000")
                rows = {c: [] for c in configs}
                local_rows = []
                for round_number in range(args.rounds):
                    local_rows.append(measure_config(local, queries, args.k, search_params, args))
                    for n_shards, replicas in configs:
                        index = ShardedIndex.load(
                            paths[n_shards], replicas=replicas, actor_options=ONE_CPU, timeout_s=600
                        )
                        nodes = actor_nodes(index)
                        measured = measure_config(index, queries, args.k, search_params, args)
                        measured.update(
                            round=round_number,
                            loadavg=loadavg(),
                            distinct_nodes=len(set(nodes)) == len(nodes),
                        )
                        rows[(n_shards, replicas)].append(measured)
                        index.close()
                        print(
                            f"  round {round_number} {kind} {n_shards} shards x {replicas}: "
                            f"batch {measured['batch_qps']:.0f} QPS, p50 {measured['p50_ms']:.2f} ms, "
                            f"p99 {measured['p99_ms']:.2f} ms, {args.clients} clients "
                            f"{measured['concurrent_qps']:.0f} QPS, load {measured['loadavg']}",
                            flush=True,
                        )
            summarize(results, kind, spec, "in-process (1 thread)", 1, 1, local_rows, truth, args)
            for (n_shards, replicas), measured in rows.items():
                summarize(
                    results, kind, spec, "ray cluster", n_shards, replicas, measured, truth, args
                )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def summarize(results, kind, spec, where, n_shards, replicas, measured, truth, args) -> None:
    """One row per configuration: the median over rounds (and each round's batch QPS and load)."""

    def median(key):
        return float(np.median([m[key] for m in measured]))

    results.add(
        {
            "section": "scaling",
            "type": kind,
            "spec": spec,
            "where": where,
            "shards": n_shards,
            "replicas": replicas,
            "batch_qps": median("batch_qps"),
            "p50_ms": median("p50_ms"),
            "p99_ms": median("p99_ms"),
            "concurrent_qps": median("concurrent_qps"),
            "batch_qps_per_round": [m["batch_qps"] for m in measured],
            "loadavg_per_round": [m.get("loadavg") for m in measured],
            "actors_on_distinct_nodes": all(m.get("distinct_nodes", True) for m in measured),
            f"recall@{args.k}": recall_at_k(measured[-1]["ids"], truth),
        },
        show=(
            "type",
            "where",
            "shards",
            "replicas",
            "batch_qps",
            "p50_ms",
            "p99_ms",
            "concurrent_qps",
        ),
    )


# ---- heal --------------------------------------------------------------------------------------
def synthetic_rows(train: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` rows: the data tiled with a little noise (the copy time depends on bytes, not content)."""
    rng = np.random.default_rng(seed)
    rows = train[rng.integers(0, train.shape[0], n)]
    return rows + rng.normal(0, 0.01, rows.shape).astype(np.float32)


def fill(index, train, n_rows, chunk=50_000) -> None:
    for start in range(0, n_rows, chunk):
        index.add(synthetic_rows(train, min(chunk, n_rows - start), start))


def flat_pair(dim: int, metric: str, **options) -> ShardedIndex:
    """One Flat shard held by two replicas (one CPU each), healing off: the failure sections' index."""
    return ShardedIndex("Flat", n_shards=1, replicas=2, dim=dim, metric=metric, actor_options=ONE_CPU,
                        auto_heal=False, **options)


def run_heal(args, train, results) -> None:
    sizes = [float(g) for g in args.heal_gb.split(",")]
    row_bytes = train.shape[1] * 4 + 9  # float32 vector + id map row
    indexes = {}
    for size in sizes:
        index = flat_pair(train.shape[1], "l2", timeout_s=1800)
        fill(index, train, int(size * GB / row_bytes))
        indexes[size] = index
        print(f"  heal: {size} GB shard ready ({index.ntotal} rows)", flush=True)
    for round_number in range(args.heal_repeats):
        for size, index in indexes.items():
            kill_and_wait(index.shard_actors[0][0])  # the older replica: later rounds copy a copy
            latencies, stop = [], threading.Event()

            def writer(index=index, latencies=latencies, stop=stop):
                # A steady trickle (about 2 MB/s), so the shard does not grow much during the heal.
                batch = synthetic_rows(train, 20, 99)
                while not stop.wait(0.01):
                    t0 = time.perf_counter()
                    index.add(batch)
                    latencies.append(time.perf_counter() - t0)

            thread = threading.Thread(target=writer)
            thread.start()
            t0 = time.perf_counter()
            events = index.heal(timeout_s=1800)
            wall = time.perf_counter() - t0
            stop.set()
            thread.join()
            counts = [ray.get(a.ntotal.remote(), timeout=600) for a in index.shard_actors[0]]
            assert len(set(counts)) == 1 and len(counts) == 2, counts
            event = events[-1]
            gb = event["state_bytes"] / GB
            results.add(
                {
                    "section": "heal",
                    "round": round_number,
                    "shard_gb": size,
                    **event,
                    "heal_wall_s": wall,
                    "total_s_per_gb": event["total_s"] / gb,
                    "copy_s_per_gb": event["copy_s"] / gb,
                    "writes_during_heal": len(latencies),
                    "write_ms_during_heal": latency_percentiles(np.array(latencies), (50, 100))
                    if latencies
                    else None,
                },
                show=(
                    "shard_gb",
                    "round",
                    "start_s",
                    "copy_s",
                    "catch_up_s",
                    "caught_up_writes",
                    "total_s",
                ),
            )
    for index in indexes.values():
        index.close()
    heal_rows = results.select(section="heal")
    gbs = np.array([r["state_bytes"] / GB for r in heal_rows])
    for key in ("total_s", "copy_s"):
        slope, intercept = np.polyfit(gbs, [r[key] for r in heal_rows], 1)
        results.summary[f"heal_{key}_fit"] = {"seconds_per_gb": slope, "fixed_seconds": intercept}


# ---- a slow replica ------------------------------------------------------------------------------
def run_slow(args, train, queries, results) -> None:
    """One-query latency with one of two replicas slowed down, hedged (adaptive) and not hedged."""
    for label, hedge_after_s in (("adaptive hedging", None), ("no hedging (60 s)", 60.0)):
        index = flat_pair(train.shape[1], "cosine", timeout_s=600, hedge_after_s=hedge_after_s)
        index.add(train)
        for q in queries[:20]:  # warm both replicas and the latency model
            index.search(q, args.k)
        slow = index.shard_actors[0][0]
        ray.get(slow.inject_delay.remote("search", args.slow_ms / 1e3), timeout=60)
        times = np.empty(args.latency_calls)
        for i in range(args.latency_calls):
            t0 = time.perf_counter()
            index.search(queries[i % queries.shape[0]], args.k)
            times[i] = time.perf_counter() - t0
        served = [r["reads_sent"] for r in index.replica_status()[0]["replicas"]]
        results.add(
            {
                "section": "slow",
                "reads": label,
                "slow_replica_delay_ms": args.slow_ms,
                **latency_percentiles(times, (50, 90, 99)),
                **index.read_stats,
                "reads_sent_slow_fast": served,
                "loadavg": loadavg(),
            },
            show=("reads", "p50_ms", "p90_ms", "p99_ms", "hedges_sent", "hedges_won"),
        )
        index.close()


# ---- the tables of docs/distributed.md --------------------------------------------------------------
def print_report(path: str) -> None:
    """Print the markdown tables of a results file (scaling, slow replica, heal) and its setting."""
    data = json.loads(Path(path).read_text())
    rows, machine = data["rows"], data["machine"]
    print(
        f"date {data['date']}, {machine['cpu_count']} cores, load average start "
        f"{machine['loadavg_start']} end {machine['loadavg_end']}; summary {data['summary']}"
    )
    print(
        "\n| index | where | shards × replicas | batch QPS (per round) | 1-query p50 / p99 ms "
        "| 4 clients QPS | recall@10 | load (1 min) per round |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | --- |")
    for r in (r for r in rows if r["section"] == "scaling"):
        per_round = ", ".join(f"{q:,.0f}" for q in r["batch_qps_per_round"])
        load = ", ".join("–" if x is None else f"{x[0]:.1f}" for x in r["loadavg_per_round"])
        print(
            f"| {r['spec']} | {r['where']} | {r['shards']} × {r['replicas']} | "
            f"{r['batch_qps']:,.0f} ({per_round}) | {r['p50_ms']:.2f} / {r['p99_ms']:.2f} | "
            f"{r['concurrent_qps']:,.0f} | {r['recall@10']:.3f} | {load} |"
        )
    for r in (r for r in rows if r["section"] == "build"):
        print(
            f"build {r['type']} x{r['shards']}: {r['add_vectors_per_s']:,.0f} vectors/s, "
            f"index bytes per shard {r['index_bytes_per_shard']}, load {r['loadavg']}"
        )
    print(
        "\n| reads | p50 ms | p90 ms | p99 ms | hedges sent / won | reads sent (slow, fast) | load |"
    )
    print("| --- | ---: | ---: | ---: | ---: | --- | --- |")
    for r in (r for r in rows if r["section"] == "slow"):
        print(
            f"| {r['reads']} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['hedges_sent']} / {r['hedges_won']} | {r['reads_sent_slow_fast']} | "
            f"{r['loadavg'][0]:.1f} |"
        )
    print(
        "\n| state GB | start s | copy s | catch-up s (writes) | total s | total s/GB | "
        "writes during heal: n, p50 / max ms | load |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for r in (r for r in rows if r["section"] == "heal"):
        w = r["write_ms_during_heal"] or {}
        print(
            f"| {r['state_bytes'] / GB:.3f} | {r['start_s']:.2f} | {r['copy_s']:.2f} | "
            f"{r['catch_up_s']:.2f} ({r['caught_up_writes']}) | {r['total_s']:.2f} | "
            f"{r['total_s_per_gb']:.1f} | {r['writes_during_heal']}, "
            f"{w.get('p50_ms', float('nan')):.1f} / {w.get('p100_ms', float('nan')):.0f} | "
            f"{r['loadavg'][0]:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    wordnet.add_data_argument(parser)
    parser.add_argument("--sections", default="scaling,heal,slow")
    parser.add_argument("--n", type=int, default=30000, help="database rows (first n of train.npy)")
    parser.add_argument("--queries", type=int, default=1000, help="in-distribution queries")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--types", default="flat,hnsw")
    parser.add_argument("--shards", default="1,2,4")
    parser.add_argument("--replicas", default="1,2")
    parser.add_argument(
        "--nodes", type=int, default=8, help="worker nodes of 1 CPU (>= shards x replicas)"
    )
    parser.add_argument("--store-mb", type=int, default=1536, help="object store per node, MB")
    parser.add_argument("--M", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=100)
    parser.add_argument("--ef", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-repeats", type=int, default=2)
    parser.add_argument("--latency-calls", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--heal-gb", default="0.1,0.25,0.5,1.0")
    parser.add_argument("--heal-repeats", type=int, default=2)
    parser.add_argument("--slow-ms", type=float, default=100.0, help="delay of the slow replica")
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parent / "results" / "bench_distributed.json")
    )
    parser.add_argument("--report", metavar="PATH", help="print the tables of a results file")
    args = parser.parse_args()
    if args.report:
        print_report(args.report)
        return
    sections = set(args.sections.split(","))
    results = ResultsFile(args.out, args, script="bench_distributed")
    t0 = time.perf_counter()
    cluster = start_cluster(args.nodes, args.store_mb)
    results.summary.update(
        cluster_start_s=time.perf_counter() - t0,
        ray=ray.__version__,
        worker_nodes=args.nodes,
        cores=os.cpu_count(),
    )
    print(
        f"cluster: head + {args.nodes} nodes of 1 CPU on {os.cpu_count()} cores, load {loadavg()}"
    )
    train = wordnet.load_train(args.n, data_dir=args.data)
    queries = wordnet.load_queries("id", args.queries, data_dir=args.data)
    try:
        if "scaling" in sections:
            truth = exact_neighbors(train, queries, args.k, "cosine")[0]
            run_scaling(args, train, queries, truth, results)
            results.write()
        if "slow" in sections:
            run_slow(args, train, queries, results)
            results.write()
        if "heal" in sections:
            run_heal(args, train, results)
    finally:
        print(
            f"load average before {results.loadavg_start}, now {loadavg()}; wrote {results.write()}"
        )
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
