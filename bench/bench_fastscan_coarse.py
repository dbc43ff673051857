"""IVF fast-scan coarse probe: exact (tiled kernel over all centroids) vs two-stage (PCA-reduced
candidates, exact re-score; :mod:`vecsearch.indexes.ivf_coarse`), on MiniLM token vectors.

Setting of issue #21's 1M run, smaller build: the database is the first ``--n`` token rows of
``/work/cache/data/multivector-all.npz`` (bench_scale's slice), the index ``IVFFastScanIndex(384,
"ip", nlist=4096, m=96, keep_vectors=True)`` trained on a ``--train``-row random sample with
``--kmeans-iters`` Lloyd iterations (the rank of the two-stage probe is chosen by the index at train
time). Queries: bench_scale's 1,000 token rows of documents from row 2,000,000 on ("tokens") and
the 1,000 WordNet single-word queries ("wordnet_ood").

Timed on one thread (``numba.set_num_threads(1)``), the arms interleaved (order rotating) and
repeated ``--rounds`` times, thread CPU time and wall time per 1,000 queries:

* ``coarse``: the coarse step alone at each nprobe: ``exact`` (``nearest_centroids``), ``exact_head``
  (the tiled kernel as committed before this change, a check that it is unchanged), ``two_stage`` at
  the index's rank and at the other ranks tried; for ``ip`` (the index) and ``l2`` (the same
  centroids ranked by L2);
* ``search``: ``index.search(queries, 10, nprobe, rerank=40)`` with the exact vs two-stage probe
  (rank toggled on the same index, then ``BLAS_IDLE_S`` of pause), on 1 thread and then on 2
  (``threads``; only wall time is meaningful there: the CPU time is the calling thread's).

Also the share of the exact top-nprobe lists the two-stage probe finds, and recall@10 of both.

    flock /work/notes/bench.lock nice -n 5 python bench/bench_fastscan_coarse.py
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import faiss
import numba
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_coarse_kernel import kernel_module_at
from bench_scale import load_f32, prepare_data

from vecsearch.benchmark.evaluation import recall_at_k
from vecsearch.benchmark.wordnet import load_queries
from vecsearch.codecs.kmeans import centroid_tiles, nearest_centroids
from vecsearch.indexes import ivf_coarse
from vecsearch.indexes.ivf_fastscan import IVFFastScanIndex
from vecsearch.kernels.distances import METRIC_IP, METRIC_L2
from vecsearch.kernels.fastscan_coarse import GROUP_QUERIES, TILE

K = 10
# Seconds to wait after set_coarse_rank before a timed search: it runs numpy's eigh and products
# (OpenBLAS threads spin for a while after each call and took the core from the timed search:
# +30-80 ms wall per 1,000-query batch in a first run without the pause).
BLAS_IDLE_S = 0.5


def head_kernel():
    """``coarse_probes_tiled`` of the committed ``fastscan_coarse.py`` (git HEAD), loaded as a sibling module."""
    return kernel_module_at("HEAD").coarse_probes_tiled


def exact_head(kernel, queries, tiles, c_sq, code, nprobe):
    nq = queries.shape[0]
    lists = np.full((nq, nprobe), -1, np.int64)
    scores = np.full((nq, nprobe), np.inf, np.float32)
    block = np.empty((GROUP_QUERIES, tiles.shape[1]), np.float32)
    dots = np.empty((GROUP_QUERIES, tiles.shape[0] * TILE), np.float32)
    for lo in range(0, nq, GROUP_QUERIES):
        kernel(queries, lo, min(nq, lo + GROUP_QUERIES), tiles, c_sq, code, block, dots, lists, scores)
    return lists, scores


def timed(fn):
    c0, w0 = time.thread_time(), time.perf_counter()
    fn()
    return time.thread_time() - c0, time.perf_counter() - w0


def summary(samples, nq):
    cpu = np.array([s[0] for s in samples]) * 1000 * 1000 / nq
    wall = np.array([s[1] for s in samples]) * 1000 * 1000 / nq
    return {"cpu_ms_per_1000_min": round(float(cpu.min()), 2), "cpu_ms_per_1000_median": round(float(np.median(cpu)), 2),
            "wall_ms_per_1000_min": round(float(wall.min()), 2),
            "wall_ms_per_1000_median": round(float(np.median(wall)), 2), "rounds": len(samples)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--train", type=int, default=300_000)
    ap.add_argument("--nlist", type=int, default=4096)
    ap.add_argument("--m", type=int, default=96)
    ap.add_argument("--kmeans-iters", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--nprobes", default="8,16,32")
    ap.add_argument("--rerank", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "fastscan_coarse.json"))
    args = ap.parse_args()
    nprobes = [int(v) for v in args.nprobes.split(",")]
    load_start = os.getloadavg()
    started = time.time()

    db_path, q_path = prepare_data(1_000_000, 1000, 0)  # bench_scale's cached slice and queries
    x = load_f32(db_path)[: args.n]
    query_sets = {"tokens": load_f32(q_path), "wordnet_ood": np.ascontiguousarray(load_queries("ood"), np.float32)}
    print(f"db {x.shape}, load {load_start}", flush=True)

    numba.set_num_threads(2)
    index = IVFFastScanIndex(x.shape[1], "ip", nlist=args.nlist, m=args.m, keep_vectors=True,
                             kmeans_iters=args.kmeans_iters, seed=args.seed)
    rows = np.sort(np.random.default_rng(args.seed).choice(x.shape[0], min(args.train, x.shape[0]), replace=False))
    t0 = time.perf_counter()
    index.train(x[rows])
    train_s = time.perf_counter() - t0
    rank = index.coarse_rank
    t0 = time.perf_counter()
    index.add(x)
    add_s = time.perf_counter() - t0
    centroids = np.ascontiguousarray(index.centroids)
    c_sq = np.einsum("ij,ij->i", centroids, centroids).astype(np.float32)
    tiles = centroid_tiles(centroids)
    # the choice as the index made it: its training rows, seed + 3, as queries
    pick = np.sort(np.random.default_rng(args.seed + 3).choice(rows.shape[0], ivf_coarse.CHOICE_QUERIES, replace=False))
    t0 = time.perf_counter()
    chosen, measured = ivf_coarse.choose_rank(centroids, c_sq, METRIC_IP, x[rows[pick]], tiles)
    choose_s = time.perf_counter() - t0
    print(f"train {train_s:.1f} s, add {add_s:.1f} s, rank {rank} (again: {chosen}, {choose_s:.2f} s) {measured}",
          flush=True)

    faiss.omp_set_num_threads(2)
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    truth = {name: flat.search(q, K)[1] for name, q in query_sets.items()}
    del flat

    numba.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    head = head_kernel()
    reduced = {r: ivf_coarse.ReducedProbe(centroids, c_sq, r) for r in sorted({rank or 128, *ivf_coarse.RANKS[1:]})}
    rows_out = []
    # list recall of every reduced probe vs exact, both metrics, both query sets
    for name, q in query_sets.items():
        for code, metric in ((METRIC_IP, "ip"), (METRIC_L2, "l2")):
            exact, _ = nearest_centroids(q, tiles, c_sq, code, max(nprobes))
            for r, probe in reduced.items():
                for nprobe in nprobes:
                    found = probe.probe(q, code, nprobe)[0]
                    rows_out.append({"kind": "list_recall", "queries": name, "metric": metric, "rank": r,
                                     "nprobe": nprobe, "n_cand": ivf_coarse.candidates(nprobe),
                                     "share_found": round(ivf_coarse.share_found(found, exact[:, :nprobe]), 5)})
                    print(rows_out[-1], flush=True)
    r = rank or 128
    probe = reduced[r]
    q = query_sets["tokens"]
    nq = q.shape[0]
    # coarse step alone
    for code, metric in ((METRIC_IP, "ip"), (METRIC_L2, "l2")):
        for nprobe in nprobes:
            arms = {("exact", 0): lambda c=code, n=nprobe: nearest_centroids(q, tiles, c_sq, c, n),
                    ("exact_head", 0): lambda c=code, n=nprobe: exact_head(head, q, tiles, c_sq, c, n)}
            for rr, pr in reduced.items():
                arms["two_stage", rr] = lambda pr=pr, c=code, n=nprobe: pr.probe(q, c, n)
            for fn in arms.values():
                fn()  # compile / warm
            samples = {a: [] for a in arms}
            names = list(arms)
            for i in range(args.rounds):
                for a in names[i % len(names):] + names[: i % len(names)]:
                    samples[a].append(timed(arms[a]))
            load = os.getloadavg()[0]
            for a in names:
                rows_out.append({"kind": "coarse", "metric": metric, "arm": a[0], "rank": a[1],
                                 "nprobe": nprobe, "load1": load, **summary(samples[a], nq)})
                print(rows_out[-1], flush=True)
    # whole search, exact vs two-stage probe (rank toggled on the same index); 1 thread, then 2 (wall time)
    for threads, nprobe in [(1, n) for n in nprobes] + [(2, n) for n in nprobes]:
        numba.set_num_threads(threads)
        samples = {"exact": [], "two_stage": []}
        for i in range(args.rounds + 1):
            for a in (("exact", "two_stage") if i % 2 == 0 else ("two_stage", "exact")):
                index.set_coarse_rank(0 if a == "exact" else r)
                time.sleep(BLAS_IDLE_S)  # set_coarse_rank's eigh / products: let BLAS' spinning threads stop
                spent = timed(lambda n=nprobe: index.search(q, K, nprobe=n, rerank=args.rerank))
                if i:  # round 0 warms
                    samples[a].append(spent)
        load = os.getloadavg()[0]
        for a in samples:
            rec = {}
            for name, qs in query_sets.items():
                index.set_coarse_rank(0 if a == "exact" else r)
                rec[name] = round(float(recall_at_k(index.search(qs, K, nprobe=nprobe, rerank=args.rerank).ids,
                                                    truth[name])), 4)
            rows_out.append({"kind": "search", "threads": threads, "metric": "ip", "arm": a,
                             "rank": r if a == "two_stage" else 0, "nprobe": nprobe, "rerank": args.rerank, "recall_at_10": rec, "load1": load,
                             **summary(samples[a], nq)})
            print(rows_out[-1], flush=True)
    out = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "script": "bench/bench_fastscan_coarse.py",
           "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "loadavg_start": load_start,
                       "loadavg_end": os.getloadavg(), "elapsed_s": round(time.time() - started, 1)},
           "settings": {**vars(args), "metric": "ip", "threads_timed": 1, "queries": {n: v.shape[0] for n, v in query_sets.items()},
                        "candidates": "2 * nprobe + 16", "ranks_tried": list(ivf_coarse.RANKS),
                        "list_recall_target": ivf_coarse.LIST_RECALL_TARGET, "check_nprobes": list(ivf_coarse.CHECK_NPROBES)},
           "build": {"train_s": round(train_s, 1), "add_s": round(add_s, 1), "coarse_rank": rank,
                     "choice_measured_min_share": {str(k): v for k, v in measured.items()}, "choice_s": round(choose_s, 2)},
           "rows": rows_out}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
