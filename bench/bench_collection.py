"""Collection (RAG store) speed: ingest with the write-ahead log, query overhead, filters, reopen, threads.

On the real data (wordnet-minilm train slice, 384-d MiniLM vectors, cosine), k=10:
1. ingest: documents/s for the raw HNSWIndex, an in-memory Collection, a persistent Collection
   (WAL fsync per call) in batches of 100, and per-call cost with batches of 1; hnswlib and
   (if ``--chroma-python`` points at an interpreter with chromadb) a persistent Chroma collection;
2. queries one at a time (the RAG pattern): QPS and recall@10 against exact search for the raw
   index, Collection.query, hnswlib and Chroma, at the same M / ef_construction / ef;
3. filtered queries (``pos == "v"``, ~12% of the records): Collection vs Chroma;
4. reopening: from the log alone (replay) vs from a snapshot;
5. 1 vs 2 query threads on one Collection (reader-writer lock; kernels release the GIL).

    python bench/bench_collection.py [--n 20000] [--queries 500] [--chroma-python /path/to/python]

Prints a table and writes bench/results/bench_collection.json (with the load average).
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import hnswlib
import numpy as np

import vecsearch as vs
from vecsearch.benchmark import wordnet
from vecsearch.benchmark.algorithms import limit_threads
from vecsearch.benchmark.datasets import exact_neighbors, filtered_exact_neighbors
from vecsearch.benchmark.evaluation import pad_ids, recall_at_k
from vecsearch.benchmark.report import format_table
from vecsearch.benchmark.results import ResultsFile

K = 10
TABLES = {  # printed at the end, one table per section
    "ingest": ("method", "batch", "docs_per_s", "ms_per_call"),
    "query": ("method", "qps", "recall"),
    "threads": ("query_threads", "qps"),
    "reopen": ("from", "seconds"),
}
CHROMA_PEER = r"""
import json, sys, time, numpy as np, chromadb
args = json.loads(sys.argv[1])
train = np.load(args["train"]); queries = np.load(args["queries"]); pos = np.load(args["pos"])
client = chromadb.PersistentClient(path=args["path"])
col = client.create_collection("bench", metadata={"hnsw:space": "cosine", "hnsw:M": args["M"],
    "hnsw:construction_ef": args["efc"], "hnsw:search_ef": args["ef"], "hnsw:num_threads": 1})
ids = [f"doc-{i}" for i in range(train.shape[0])]
t = time.perf_counter()
for s in range(0, train.shape[0], 100):
    col.add(ids=ids[s:s+100], embeddings=train[s:s+100].tolist(), documents=[f"text {i}" for i in range(s, min(s+100, train.shape[0]))],
            metadatas=[{"pos": str(p)} for p in pos[s:s+100]])
ingest = time.perf_counter() - t
col.query(query_embeddings=[queries[0].tolist()], n_results=10)
found = []
t = time.perf_counter()
for q in queries:
    found.append([int(x.split("-")[1]) for x in col.query(query_embeddings=[q.tolist()], n_results=10)["ids"][0]])
qtime = time.perf_counter() - t
ffound = []
t = time.perf_counter()
for q in queries:
    ffound.append([int(x.split("-")[1]) for x in col.query(query_embeddings=[q.tolist()], n_results=10, where={"pos": "v"})["ids"][0]])
ftime = time.perf_counter() - t
print(json.dumps({"ingest_s": ingest, "query_s": qtime, "filtered_s": ftime, "found": found, "ffound": ffound,
                  "version": chromadb.__version__}))
"""


def rows_of(ids) -> list[int]:
    return [int(s.split("-")[1]) for s in ids]


def timed_each(fn, queries) -> tuple[float, list]:
    """Seconds for one call per query (after one untimed call), and the results."""
    fn(queries[0])
    t0 = time.perf_counter()
    found = [fn(q) for q in queries]
    return time.perf_counter() - t0, found


def ingest(args, train, docs, ids, metas, tmp: Path, results: ResultsFile):
    """Batches of 100 into each store; returns the stores to query."""
    n = train.shape[0]
    hp = {"M": args.M, "ef_construction": args.ef_construction, "seed": 0}
    stores = {}

    def batches(add):
        t0 = time.perf_counter()
        for s in range(0, n, 100):
            add(slice(s, min(s + 100, n)))
        return time.perf_counter() - t0

    raw = vs.HNSWIndex(train.shape[1], "cosine", **hp)
    stores["raw"] = raw
    seconds = {
        "raw HNSWIndex.add": batches(lambda b: raw.add(train[b], ids=np.arange(b.start, b.stop)))
    }
    for label, path in (("memory", None), ("persistent, WAL", str(tmp / "col"))):
        col = vs.Collection(path, index="hnsw", **hp)
        stores[label] = col
        seconds[f"Collection.add ({label})"] = batches(
            lambda b, col=col: col.add(ids[b], train[b], documents=docs[b], metadatas=metas[b])
        )
    hl = hnswlib.Index(space="cosine", dim=train.shape[1])
    hl.init_index(max_elements=n, M=args.M, ef_construction=args.ef_construction, random_seed=0)
    hl.set_num_threads(1)
    seconds["hnswlib add_items"] = batches(
        lambda b: hl.add_items(train[b], np.arange(b.start, b.stop))
    )
    hl.set_ef(args.ef)
    stores["hnswlib"] = hl
    for label, secs in seconds.items():
        results.add(
            {
                "section": "ingest",
                "method": label,
                "batch": 100,
                "seconds": secs,
                "docs_per_s": n / secs,
            }
        )
    single = vs.Collection(str(tmp / "single"), index="flat")
    calls = min(300, n)
    t0 = time.perf_counter()
    for i in range(calls):
        single.add([ids[i]], train[i : i + 1], documents=[docs[i]], metadatas=[metas[i]])
    results.add(
        {
            "section": "ingest",
            "method": "Collection.add (persistent, flat)",
            "batch": 1,
            "ms_per_call": (time.perf_counter() - t0) / calls * 1e3,
        }
    )
    single.close()
    return stores


def query(args, stores, queries, truth, ftruth, results: ResultsFile) -> None:
    """One query per call against each store (QPS, recall@10), then 1 vs 2 query threads."""
    raw, mem, disk, hl = (stores[key] for key in ("raw", "memory", "persistent, WAL", "hnswlib"))
    nq = queries.shape[0]
    for name, fn, want in [
        ("raw HNSWIndex.search", lambda q: raw.search(q, K, ef=args.ef).ids[0], truth),
        (
            "Collection.query (memory)",
            lambda q: rows_of(mem.query(q, n_results=K, ef=args.ef)["ids"][0]),
            truth,
        ),
        (
            "Collection.query (persistent)",
            lambda q: rows_of(disk.query(q, n_results=K, ef=args.ef)["ids"][0]),
            truth,
        ),
        ("hnswlib knn_query", lambda q: hl.knn_query(q, K)[0][0], truth),
        (
            "Collection.query where pos=v",
            lambda q: rows_of(disk.query(q, n_results=K, where={"pos": "v"}, ef=args.ef)["ids"][0]),
            ftruth,
        ),
    ]:
        secs, found = timed_each(fn, queries)
        results.add(
            {
                "section": "query",
                "method": name,
                "qps": nq / secs,
                "recall": recall_at_k(pad_ids(found, K), want),
            }
        )
    for n_threads in (1, 2):  # query threads on one collection, numba on one thread each
        workers = [
            threading.Thread(target=lambda p=p: [disk.query(q, n_results=K, ef=args.ef) for q in p])
            for p in np.array_split(queries, n_threads)
        ]
        t0 = time.perf_counter()
        for th in workers:
            th.start()
        for th in workers:
            th.join()
        results.add(
            {
                "section": "threads",
                "query_threads": n_threads,
                "qps": nq / (time.perf_counter() - t0),
            }
        )


def chroma(args, train, queries, pos, tmp: Path, truth, ftruth, results: ResultsFile) -> None:
    np.save(tmp / "train.npy", train)
    np.save(tmp / "queries.npy", queries)
    np.save(tmp / "pos.npy", pos.astype(str))
    spec = {
        "train": str(tmp / "train.npy"),
        "queries": str(tmp / "queries.npy"),
        "pos": str(tmp / "pos.npy"),
        "path": str(tmp / "chroma"),
        "M": args.M,
        "efc": args.ef_construction,
        "ef": args.ef,
    }
    proc = subprocess.run(
        [args.chroma_python, "-c", CHROMA_PEER, json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        results.summary["chroma_error"] = proc.stderr[-2000:]
        print("chroma peer failed:", proc.stderr[-2000:], file=sys.stderr)
        return
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    nq = queries.shape[0]
    results.add(
        {
            "section": "ingest",
            "method": f"chroma {res['version']} add (persistent)",
            "batch": 100,
            "seconds": res["ingest_s"],
            "docs_per_s": train.shape[0] / res["ingest_s"],
        }
    )
    results.add(
        {
            "section": "query",
            "method": f"chroma {res['version']} query",
            "qps": nq / res["query_s"],
            "recall": recall_at_k(pad_ids(res["found"], K), truth),
        }
    )
    results.add(
        {
            "section": "query",
            "method": "chroma query where pos=v",
            "qps": nq / res["filtered_s"],
            "recall": recall_at_k(pad_ids(res["ffound"], K), ftruth),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    wordnet.add_data_argument(parser)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--M", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=100)
    parser.add_argument("--ef", type=int, default=64)
    parser.add_argument(
        "--chroma-python", default=None, help="python with chromadb installed (peer, optional)"
    )
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parent / "results" / "bench_collection.json")
    )
    args = parser.parse_args()

    results = ResultsFile(args.out, args, script="bench_collection")
    train = wordnet.load_train(args.n, data_dir=args.data)
    queries = wordnet.load_queries("id", args.queries, data_dir=args.data)
    pos = wordnet.load_attributes(args.n, data_dir=args.data)["pos"]
    n, nq = train.shape[0], queries.shape[0]
    ids = [f"doc-{i}" for i in range(n)]
    metas = [{"pos": str(p)} for p in pos]
    docs = [f"text {i}" for i in range(n)]
    truth = exact_neighbors(train, queries, K, "cosine")[0]
    verbs = pos == "v"
    ftruth = filtered_exact_neighbors(train, queries, [verbs] * nq, K, "cosine")[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench_collection_"))
    with limit_threads(1):  # single-thread comparison with hnswlib (num_threads=1) and Chroma
        warm = vs.Collection(index="hnsw", M=args.M, ef_construction=args.ef_construction, seed=0)
        warm.add(ids[:200], train[:200], metadatas=metas[:200])  # compile outside the timings
        warm.query(queries[:2], n_results=K, where={"pos": "v"})
        stores = ingest(args, train, docs, ids, metas, tmp, results)
        query(args, stores, queries, truth, ftruth, results)
    # Reopen as after a crash: the collection is dropped without close() (its finalizer releases the
    # log and the lock but writes no snapshot), so the first reopen replays the log.
    stores.clear()
    gc.collect()
    for label in ("log", "snapshot"):
        t0 = time.perf_counter()
        reopened = vs.Collection(str(tmp / "col"))
        results.add({"section": "reopen", "from": label, "seconds": time.perf_counter() - t0})
        if reopened.count() != n:
            raise RuntimeError(f"reopened: {reopened.count()} records, expected {n}")
        reopened.close()  # writes a snapshot
    if args.chroma_python:
        chroma(args, train, queries, pos, tmp, truth, ftruth, results)
    shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"n={n} dim={train.shape[1]} queries={nq} k={K} M={args.M} efC={args.ef_construction} ef={args.ef}"
    )
    for section, columns in TABLES.items():
        print("\n" + format_table(results.select(section=section), columns))
    one, two = (r["qps"] for r in results.select(section="threads"))
    results.summary["two_threads_over_one"] = two / one
    print(f"\n2 query threads / 1 thread QPS: {two / one:.2f}x; wrote {results.write()}")


if __name__ == "__main__":
    main()
