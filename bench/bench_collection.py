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
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import faiss
import hnswlib
import numba
import numpy as np

import vecsearch as vs
from vecsearch.store.collection import Collection

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


def recall(found, truth) -> float:
    k = truth.shape[1]
    return sum(len(set(f) & set(t.tolist())) for f, t in zip(found, truth)) / (len(truth) * k)


def rows_of(ids) -> list[int]:
    return [int(s.split("-")[1]) for s in ids]


def main() -> None:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(here.parent.parent / "shared" / "data" / "wordnet-minilm"))
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--M", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=100)
    parser.add_argument("--ef", type=int, default=64)
    parser.add_argument("--chroma-python", default=None, help="python with chromadb installed (peer, optional)")
    parser.add_argument("--out", default=str(here / "results" / "bench_collection.json"))
    args = parser.parse_args()

    data = Path(args.data)
    train = np.ascontiguousarray(np.load(data / "train.npy")[: args.n].astype(np.float32))
    queries = np.ascontiguousarray(np.load(data / "test_id.npy")[: args.queries].astype(np.float32))
    pos = np.load(data / "attrs.npz")["pos"][: args.n]
    n, k = train.shape[0], 10
    ids = [f"doc-{i}" for i in range(n)]
    metas = [{"pos": str(p)} for p in pos]
    docs = [f"text {i}" for i in range(n)]
    hp = {"M": args.M, "ef_construction": args.ef_construction, "seed": 0}
    load_before = os.getloadavg()
    numba.set_num_threads(1)  # single-thread comparison with hnswlib (num_threads=1) and Chroma

    flat = faiss.IndexFlatIP(train.shape[1])
    flat.add(train / np.linalg.norm(train, axis=1, keepdims=True))
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    truth = flat.search(qn, k)[1]
    verbs = np.flatnonzero(pos == "v")
    ftruth = verbs[faiss_knn(train[verbs], qn, k)]

    # warm-up compile outside the timings
    warm = Collection(index="hnsw", **hp)
    warm.add(ids[:200], train[:200], metadatas=metas[:200])
    warm.query(queries[:2], n_results=k, where={"pos": "v"})
    out: dict = {"n": n, "queries": len(queries), "k": k, **hp, "ef": args.ef}
    rows = []

    # 1. ingest
    t = time.perf_counter()
    raw = vs.HNSWIndex(train.shape[1], "cosine", **hp)
    for s in range(0, n, 100):
        raw.add(train[s : s + 100], ids=np.arange(s, min(s + 100, n)))
    out["ingest_raw_s"] = time.perf_counter() - t
    t = time.perf_counter()
    mem = Collection(index="hnsw", **hp)
    for s in range(0, n, 100):
        mem.add(ids[s : s + 100], train[s : s + 100], documents=docs[s : s + 100], metadatas=metas[s : s + 100])
    out["ingest_memory_s"] = time.perf_counter() - t
    tmp = Path(tempfile.mkdtemp(prefix="bench_collection_"))
    t = time.perf_counter()
    disk = Collection(str(tmp / "col"), index="hnsw", **hp)
    for s in range(0, n, 100):
        disk.add(ids[s : s + 100], train[s : s + 100], documents=docs[s : s + 100], metadatas=metas[s : s + 100])
    out["ingest_persistent_s"] = time.perf_counter() - t
    single = Collection(str(tmp / "single"), index="flat")
    t = time.perf_counter()
    for i in range(300):
        single.add([ids[i]], train[i : i + 1], documents=[docs[i]], metadatas=[metas[i]])
    out["persistent_call_ms_batch1"] = (time.perf_counter() - t) / 300 * 1e3
    single.close()
    t = time.perf_counter()
    hl = hnswlib.Index(space="cosine", dim=train.shape[1])
    hl.init_index(max_elements=n, M=args.M, ef_construction=args.ef_construction, random_seed=0)
    hl.set_num_threads(1)
    for s in range(0, n, 100):
        hl.add_items(train[s : s + 100], np.arange(s, min(s + 100, n)))
    out["ingest_hnswlib_s"] = time.perf_counter() - t
    hl.set_ef(args.ef)

    # 2. one query per call
    def timed(fn):
        fn(queries[0])
        found, t0 = [], time.perf_counter()
        for q in queries:
            found.append(fn(q))
        return time.perf_counter() - t0, found

    for name, fn in [
        ("raw HNSWIndex.search", lambda q: raw.search(q, k, ef=args.ef).ids[0].tolist()),
        ("Collection.query (memory)", lambda q: rows_of(mem.query(q, n_results=k, ef=args.ef)["ids"][0])),
        ("Collection.query (persistent)", lambda q: rows_of(disk.query(q, n_results=k, ef=args.ef)["ids"][0])),
        ("hnswlib knn_query", lambda q: hl.knn_query(q, k)[0][0].tolist()),
    ]:
        secs, found = timed(fn)
        rows.append((name, len(queries) / secs, recall(found, truth)))
    secs, found = timed(lambda q: rows_of(disk.query(q, n_results=k, where={"pos": "v"}, ef=args.ef)["ids"][0]))
    rows.append(("Collection.query where pos=v", len(queries) / secs, recall(found, ftruth)))

    # 5. threads: 2 query threads on one collection
    def worker(chunk):
        for q in chunk:
            disk.query(q, n_results=k, ef=args.ef)

    numba.set_num_threads(1)
    for n_threads in (1, 2):
        parts = np.array_split(queries, n_threads)
        threads = [threading.Thread(target=worker, args=(p,)) for p in parts]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        out[f"qps_threads_{n_threads}"] = len(queries) / (time.perf_counter() - t0)

    # 4. reopen: log only vs snapshot
    disk._wal.close()
    disk._dir.unlock()  # as after a crash: no snapshot yet, everything in the log
    t = time.perf_counter()
    reopened = Collection(str(tmp / "col"))
    out["reopen_from_log_s"] = time.perf_counter() - t
    reopened.close()  # writes a snapshot
    t = time.perf_counter()
    reopened = Collection(str(tmp / "col"))
    out["reopen_from_snapshot_s"] = time.perf_counter() - t
    assert reopened.count() == n
    reopened.close()

    # Chroma peer
    if args.chroma_python:
        np.save(tmp / "train.npy", train)
        np.save(tmp / "queries.npy", queries)
        np.save(tmp / "pos.npy", pos.astype(str))
        spec = {"train": str(tmp / "train.npy"), "queries": str(tmp / "queries.npy"), "pos": str(tmp / "pos.npy"),
                "path": str(tmp / "chroma"), "M": args.M, "efc": args.ef_construction, "ef": args.ef}
        proc = subprocess.run([args.chroma_python, "-c", CHROMA_PEER, json.dumps(spec)], capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            out["chroma_version"] = res["version"]
            out["ingest_chroma_s"] = res["ingest_s"]
            rows.append((f"chroma {res['version']} query", len(queries) / res["query_s"], recall(res["found"], truth)))
            rows.append(("chroma query where pos=v", len(queries) / res["filtered_s"], recall(res["ffound"], ftruth)))
        else:
            out["chroma_error"] = proc.stderr[-2000:]
            print("chroma peer failed:", proc.stderr[-2000:], file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)

    out["load_avg_before"] = load_before
    out["load_avg_after"] = os.getloadavg()
    out["query_rows"] = [{"name": r[0], "qps": r[1], "recall@10": r[2]} for r in rows]
    print(f"n={n} dim={train.shape[1]} queries={len(queries)} k={k} M={args.M} efC={args.ef_construction} ef={args.ef}, 1 thread")
    print(f"{'ingest (batches of 100)':38s} {'docs/s':>10s}")
    for key, label in [("ingest_raw_s", "raw HNSWIndex.add"), ("ingest_memory_s", "Collection.add (memory)"),
                       ("ingest_persistent_s", "Collection.add (persistent, WAL)"),
                       ("ingest_hnswlib_s", "hnswlib add_items"), ("ingest_chroma_s", "chroma add (persistent)")]:
        if key in out:
            print(f"{label:38s} {n / out[key]:10.0f}")
    print(f"persistent add, 1 doc per call: {out['persistent_call_ms_batch1']:.2f} ms/call")
    print(f"\n{'query (1 per call)':38s} {'QPS':>10s} {'recall@10':>10s}")
    for name, qps, rec in rows:
        print(f"{name:38s} {qps:10.0f} {rec:10.3f}")
    print(f"\n2 query threads / 1 thread QPS: {out['qps_threads_2'] / out['qps_threads_1']:.2f}x "
          f"({out['qps_threads_1']:.0f} -> {out['qps_threads_2']:.0f})")
    print(f"reopen: from log {out['reopen_from_log_s']:.2f} s, from snapshot {out['reopen_from_snapshot_s']:.2f} s")
    print(f"load average before {load_before}, after {out['load_avg_after']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))


def faiss_knn(db: np.ndarray, qn: np.ndarray, k: int) -> np.ndarray:
    index = faiss.IndexFlatIP(db.shape[1])
    index.add(db / np.linalg.norm(db, axis=1, keepdims=True))
    return index.search(qn, k)[1]


if __name__ == "__main__":
    main()
