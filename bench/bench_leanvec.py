"""LeanVec/LVQ benchmark: recall@10 vs single-thread QPS next to hnswlib, faiss HNSW and vecsearch HNSW.

Data: wordnet-minilm (116,659 x 384, unit norm, cosine) with in-distribution (``test_id``) and
out-of-distribution (``test_ood``, single words) queries; ``train_queries_ood.npy`` is the query
sample for LeanVec-OOD (disjoint from ``test_ood``).

For every configuration: build time with all threads, then an ``ef`` sweep with ONE thread
(numba.set_num_threads(1), hnswlib set_num_threads(1), faiss omp_set_num_threads(1)), all queries
in one batch call. Reported: recall@10 and QPS per ef, QPS at recall@10 = 0.95 (linear
interpolation between the bracketing sweep points), bytes per vector read by the graph walk, and
ratios to the peers.

    python bench/bench_leanvec.py                                 # full run
    python bench/bench_leanvec.py --n 20000 --dims 128 --kinds id --peers hnswlib   # quick look

Writes ``bench/results/leanvec.json``. Ground truth (faiss IndexFlatIP) is cached in ``bench/results/``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "wordnet-minilm"
RESULTS = Path(__file__).resolve().parent / "results"
K = 10
TARGET = 0.95


def load(n: int | None):
    def unit(a):
        a = a.astype(np.float32)
        return np.ascontiguousarray(a / np.linalg.norm(a, axis=1, keepdims=True))

    train = np.load(DATA / "train.npy")
    train = unit(train[:n] if n else train)
    queries = {name: unit(np.load(DATA / f"{name}.npy")) for name in ("test_id", "test_ood")}
    return train, queries, unit(np.load(DATA / "train_queries_ood.npy"))


def ground_truth(train, queries):
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


def recall(found, truth):
    hits = sum(len(set(f[f >= 0].tolist()) & set(t[:K].tolist())) for f, t in zip(found, truth))
    return hits / (truth.shape[0] * K)


def qps_at(points, target=TARGET, key="qps"):
    """QPS at ``target`` recall by linear interpolation over the sweep (None if never reached)."""
    pts = sorted(points, key=lambda p: p["ef"])
    for a, b in itertools.pairwise(pts):
        if a["recall"] < target <= b["recall"]:
            w = (target - a["recall"]) / (b["recall"] - a["recall"])
            return a[key] + w * (b[key] - a[key])
    if pts and pts[0]["recall"] >= target:
        return pts[0][key]
    return None


def sweep(search, queries, truth, efs, repeats):
    """Recall and QPS per ef: wall-clock QPS (best of ``repeats``) and CPU-time QPS (process time of the
    best repeat's call; every library runs on one thread here, so CPU time is its own work and is far
    less sensitive to other processes sharing the machine)."""
    rows = []
    for ef in efs:
        best, best_cpu = float("inf"), float("inf")
        ids = None
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            ids = search(queries, ef)
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        rows.append(
            {
                "ef": ef,
                "recall": recall(ids, truth),
                "qps": queries.shape[0] / best,
                "qps_cpu": queries.shape[0] / best_cpu,
            }
        )
    return rows


_BLAS_LIMIT = []


def set_threads(n):
    """Threads for numba, faiss (OpenMP) and BLAS (threadpoolctl): LeanVec projects queries with a
    BLAS matrix product, which must also run on one thread in the single-thread sweeps."""
    import faiss
    import numba
    from threadpoolctl import threadpool_limits

    numba.set_num_threads(n)
    faiss.omp_set_num_threads(n)
    _BLAS_LIMIT[:] = [threadpool_limits(limits=n, user_api="blas")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=None, help="database rows (default: all 116,659)")
    ap.add_argument("--dims", default="128,192", help="reduced dims; 'none' = LVQ on full vectors")
    ap.add_argument("--primaries", default="lvq8,lvq4")
    ap.add_argument("--kinds", default="id,ood")
    ap.add_argument(
        "--ood-primaries",
        default="lvq8",
        help="primaries for LeanVec-OOD (default: lvq8 only, to bound run time)",
    )
    ap.add_argument("--secondary", default="float32")
    # 56/150: the measured operating point (116k, single thread): HNSW16/200's recall per ef on
    # both query sets at about half its build time; 32/100 needed ~2.5x HNSW's ef on test_ood.
    ap.add_argument("--M", type=int, default=56, help="LeanVec graph max degree")
    ap.add_argument("--efc", type=int, default=150, help="LeanVec ef_construction")
    ap.add_argument("--peer-M", type=int, default=16)
    ap.add_argument("--peer-efc", type=int, default=200)
    ap.add_argument("--efs", default="10,16,20,24,28,32,40,48,56,64,96,128,192,256")
    ap.add_argument("--peers", default="hnswlib,faiss,vecsearch-hnsw")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "leanvec.json"))
    args = ap.parse_args()

    import numba

    import vecsearch as vs

    all_threads = numba.config.NUMBA_NUM_THREADS
    train, queries, ood_sample = load(args.n)
    truth = ground_truth(train, queries)
    efs = [int(e) for e in args.efs.split(",")]
    results = {
        "n": int(train.shape[0]),
        "dim": int(train.shape[1]),
        "threads_build": all_threads,
        "load_before": os.getloadavg(),
        "machine": platform.processor() or platform.machine(),
        "args": vars(args),
        "runs": [],
    }
    vs.warmup()

    def record(name, build_s, search_fn, bytes_walk, extra=None):
        set_threads(1)
        run = {
            "name": name,
            "build_s": build_s,
            "walk_bytes_per_vector": bytes_walk,
            **(extra or {}),
        }
        for qname, q in queries.items():
            run[qname] = sweep(search_fn, q, truth[qname], efs, args.repeats)
            run[f"{qname}_qps_at_{TARGET}"] = qps_at(run[qname])
            run[f"{qname}_cpu_qps_at_{TARGET}"] = qps_at(run[qname], key="qps_cpu")
        set_threads(all_threads)
        results["runs"].append(run)

        def fmt(v):
            return f"{v:.0f}" if v else "n/a"

        print(f"{name:34s} build {build_s:7.1f}s  walk {bytes_walk:5d} B/vec  QPS@{TARGET} wall/cpu: "
              + "  ".join(f"{qn}={fmt(run[f'{qn}_qps_at_{TARGET}'])}/{fmt(run[f'{qn}_cpu_qps_at_{TARGET}'])}" for qn in queries),
              flush=True)  # fmt: skip
        for qn in queries:
            print("    " + qn + " ef:recall/qps/cpu-qps: "
                  + " ".join(f"{p['ef']}:{p['recall']:.3f}/{p['qps']:.0f}/{p['qps_cpu']:.0f}" for p in run[qn]), flush=True)  # fmt: skip

    peers = [p for p in args.peers.split(",") if p]
    if "hnswlib" in peers:
        import hnswlib

        set_threads(all_threads)
        t0 = time.perf_counter()
        h = hnswlib.Index(space="ip", dim=train.shape[1])
        h.init_index(
            max_elements=train.shape[0], M=args.peer_M, ef_construction=args.peer_efc, random_seed=0
        )
        h.set_num_threads(all_threads)
        h.add_items(train)
        build = time.perf_counter() - t0
        h.set_num_threads(1)

        def hnswlib_search(q, ef):
            h.set_ef(max(ef, K))
            return h.knn_query(q, k=K, num_threads=1)[0].astype(np.int64)

        record(f"hnswlib HNSW{args.peer_M}", build, hnswlib_search, 4 * train.shape[1])
    if "faiss" in peers:
        import faiss

        set_threads(all_threads)
        t0 = time.perf_counter()
        f = faiss.IndexHNSWFlat(train.shape[1], args.peer_M, faiss.METRIC_INNER_PRODUCT)
        f.hnsw.efConstruction = args.peer_efc
        f.add(train)
        build = time.perf_counter() - t0

        def faiss_search(q, ef):
            f.hnsw.efSearch = max(ef, K)
            return f.search(q, K)[1]

        record(f"faiss HNSW{args.peer_M}", build, faiss_search, 4 * train.shape[1])
    if "vecsearch-hnsw" in peers:
        try:
            from vecsearch.indexes.hnsw import HNSWIndex
        except ImportError as exc:  # reported, not hidden
            print(f"vecsearch HNSWIndex unavailable: {exc}")
        else:
            set_threads(all_threads)
            t0 = time.perf_counter()
            vh = HNSWIndex(
                train.shape[1], "cosine", M=args.peer_M, ef_construction=args.peer_efc, seed=0
            )
            vh.add(train, progress=False)
            build = time.perf_counter() - t0
            record(
                f"vecsearch HNSW{args.peer_M} float32", build,
                lambda q, ef: vh.search(q, K, ef=max(ef, K)).ids, 4 * train.shape[1],
            )  # fmt: skip

    for kind in args.kinds.split(","):
        for d in [None if x == "none" else int(x) for x in args.dims.split(",")]:
            if d is None and kind == "ood":
                continue  # OOD needs a reduction
            for primary in (args.ood_primaries if kind == "ood" else args.primaries).split(","):
                set_threads(all_threads)
                t0 = time.perf_counter()
                index = vs.LeanVecIndex(
                    train.shape[1], "cosine", reduced_dim=d, primary=primary, secondary=args.secondary,
                    M=args.M, ef_construction=args.efc, seed=0,
                )  # fmt: skip
                index.train(train, queries=ood_sample if kind == "ood" else None)
                t_train = time.perf_counter() - t0
                index.add(train)
                build = time.perf_counter() - t0
                name = (
                    f"LeanVec-{kind.upper()}{d},{primary.upper()},M{args.M}"
                    if d is not None
                    else f"LeanVec-none (full-dim),{primary.upper()},M{args.M}"
                )
                record(
                    name, build, lambda q, ef, ix=index: ix.search(q, K, ef=max(ef, K)).ids,
                    index.primary_bytes_per_vector, {"train_s": t_train, "reduced_dim": d, "primary": primary, "kind": kind},
                )  # fmt: skip
                del index

    # Ratios to the peers at the target recall.
    ref = {r["name"]: r for r in results["runs"]}
    peer_names = [n for n in ref if not n.startswith("LeanVec")]
    print(f"\nRatios at recall@10 = {TARGET} (single thread) and build time:")
    for run in results["runs"]:
        if not run["name"].startswith("LeanVec"):
            continue
        parts = []
        for qn in queries:
            for clock in ("", "cpu_"):
                mine = run[f"{qn}_{clock}qps_at_{TARGET}"]
                for pn in peer_names:
                    theirs = ref[pn][f"{qn}_{clock}qps_at_{TARGET}"]
                    if mine and theirs:
                        run.setdefault("ratios", {})[f"{qn}/{clock or 'wall_'}{pn}"] = mine / theirs
                        parts.append(
                            f"{qn} {clock or 'wall_'}vs {pn.split()[0]}: {mine / theirs:.2f}x"
                        )
        for pn in peer_names:
            run.setdefault("build_ratio", {})[pn] = run["build_s"] / ref[pn]["build_s"]
        print(
            f"  {run['name']}: "
            + (", ".join(parts) or "target recall not reached")
            + "; build/"
            + ", ".join(f"{pn.split()[0]}={run['build_ratio'][pn]:.2f}" for pn in peer_names)
        )
    results["load_after"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(
        f"\nload average before {results['load_before']}, after {results['load_after']}; wrote {args.out}"
    )


if __name__ == "__main__":
    sys.exit(main())
