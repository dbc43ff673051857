"""4-bit PQ fast-scan kernels vs faiss IndexPQFastScan / IndexIVFPQFastScan (+ IndexRefineFlat), wordnet-minilm.

Equal settings: same m (4-bit), same nlist and the same coarse centroids (ours, handed to faiss,
which then trains only its PQ), same nprobe, same re-rank depth (``n_cand = k * k_factor`` exact
re-scores from float32). Inner product on the unit-norm vectors, recall@10 against exact search.

Three timings per setting, the libraries' runs interleaved (order alternating) and repeated:

* ``e2e``: a batch of queries through each library's full path (its coarse step, scan, re-rank);
  ours computes the coarse scores with single-threaded BLAS per thread (as the IVF-PQ index does);
* ``scan``: the probed lists given (identical for both: faiss ``search_preassigned``), the best
  ``k * k_factor`` candidates without re-rank: the kernel work this bench is about;
* ``single``: one query per call (ann-benchmarks' default mode), ``--single`` queries.

Both OpenMP runtimes (faiss' and numba's) are set to passive waiting (``OMP_WAIT_POLICY``) before
they load: with active waiting the threads of the library that just ran keep spinning and take
the core from the other one's run (2x distortions on this 2-core box). Wall time min and median
are reported, the load average around every run, cold compile time of the kernels (empty
``NUMBA_CACHE_DIR``, fresh process), codec training / encode times and bytes per vector.

    python bench/bench_fastscan.py                          # full run -> bench/results/bench_fastscan.json
    python bench/bench_fastscan.py --n 30000 --nlist 256 --rounds 2 --nprobes 4,16 --out /tmp/x.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before faiss / numba load their OpenMP runtimes

import argparse
import ctypes
import datetime
import glob
import json
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faiss
import numba
import numpy as np

from vecsearch.benchmark.evaluation import recall_at_k
from vecsearch.codecs.kmeans import assign, kmeans, sample_training_rows
from vecsearch.codecs.pq4 import PQ4Codec, fastscan_search, pack_lists
from vecsearch.kernels.distances import METRIC_IP
from vecsearch.kernels.fastscan import fastscan_search_serial
from vecsearch.kernels.fastscan_simd import shuffle_plan
from vecsearch.kernels.ivf import select_probes

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wordnet-minilm"
RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def numpy_blas_single_thread() -> bool:
    """Limit numpy's OpenBLAS to one thread through its C API (what threadpoolctl would do)."""
    for lib in glob.glob(str(Path(np.__file__).parent.parent / "numpy.libs" / "libscipy_openblas*.so")):
        handle = ctypes.CDLL(lib)
        for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads"):
            if hasattr(handle, name):
                getattr(handle, name)(ctypes.c_int(1))
                return True
    return False


def load(n: int | None, nq: int, replicas: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Database rows (float32) and the id / ood queries. ``replicas > 1`` appends noisy unit-norm
    copies of the rows (``x + 0.05 * N(0, 1)``, seeded): a synthetic stand-in for a larger corpus."""
    train = np.load(DATA / "train.npy")
    train = np.ascontiguousarray((train[:n] if n else train).astype(np.float32))
    if replicas > 1:
        rng = np.random.default_rng(0)
        copies = [train]
        for _ in range(replicas - 1):
            noisy = train + np.float32(0.05) * rng.standard_normal(train.shape, dtype=np.float32)
            copies.append(noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
        train = np.ascontiguousarray(np.concatenate(copies))
    queries = {name: np.ascontiguousarray(np.load(DATA / f"test_{name}.npy")[:nq].astype(np.float32))
               for name in ("id", "ood")}
    return train, queries


def cold_compile_seconds() -> dict:
    """First-call seconds of the kernels in a fresh process with an empty cache, then from that cache."""
    script = textwrap.dedent(
        """
        import json, time, numpy as np
        out = {}
        def step(label, fn):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            out[label] = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
        mods = {}
        step("import", lambda: mods.update(pq4=__import__("vecsearch.codecs.pq4", fromlist=["x"])))
        pq4 = mods["pq4"]
        x = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
        codec = pq4.PQ4Codec(16, 8, niter=2)
        step("pq_train_encode (existing PQ kernels)", lambda: mods.update(codes=codec.fit(x).encode(x)))
        step("pack", lambda: mods.update(lists=pq4.pack_lists(codec, mods["codes"], np.arange(300) % 4, 4)))
        probes = np.tile(np.arange(2), (5, 1)).astype(np.int64)
        scores = np.zeros((5, 2), np.float32)
        def search(n, grouped):
            for metric in ("ip", "l2"):
                for by_residual in (False, True):
                    pq4.fastscan_search(codec, mods["lists"], x[:n], probes[:n], scores[:n], k=5, metric=metric,
                                        by_residual=by_residual, n_cand=10, vectors=x, grouped=grouped,
                                        centroids=np.zeros((4, 16), np.float32))
        step("search_serial", lambda: search(1, False))
        step("search_parallel", lambda: search(5, True))
        print(json.dumps(out))
        """
    )
    result = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, VECSEARCH_NUMBA_CACHE="1")
        for label in ("cold", "cached"):
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", script], check=False, env=env, cwd=ROOT, capture_output=True,
                                  text=True)
            if done.returncode:
                raise RuntimeError(done.stderr[-2000:])
            parts = json.loads(done.stdout.strip().splitlines()[-1])
            parts["process_wall_s"] = time.perf_counter() - t0
            result[label] = parts
    return result


class Timer:
    """Timed runs grouped by key: ``rows[key] -> [(wall s, process CPU s, load1 after)]``."""

    def __init__(self) -> None:
        self.rows: dict[tuple, list[tuple[float, float, float]]] = {}

    def run(self, key: tuple, fn):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        self.rows.setdefault(key, []).append((wall, cpu, os.getloadavg()[0]))
        return out

    def summary(self, key: tuple, n_queries: int) -> dict:
        """QPS from the best and the median wall time; for one thread also from the best CPU time
        (with passive OpenMP waits and one BLAS thread it is the work done, robust to other load)."""
        runs = np.array(self.rows[key])
        return {"qps_best": n_queries / runs[:, 0].min(), "qps_median": n_queries / float(np.median(runs[:, 0])),
                "qps_cpu_best": n_queries / runs[:, 1].min(), "load1_median": float(np.median(runs[:, 2])),
                "n_runs": len(runs)}


def qps_at_recall(points: list[tuple[float, float]], target: float) -> float | None:
    """Log-linear interpolation of QPS where a sweep (ordered by cost) first reaches ``target`` recall."""
    for i, (r, q) in enumerate(points):
        if r >= target:
            if i == 0:
                return q
            r0, q0 = points[i - 1]
            frac = (target - r0) / (r - r0) if r > r0 else 1.0
            return float(np.exp(np.log(q0) + frac * (np.log(q) - np.log(q0))))
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=0, help="database rows (0 = all 116,659)")
    ap.add_argument("--replicas", type=int, default=1, help="synthetic scale-up: rows x replicas (noisy copies)")
    ap.add_argument("--layouts", default="flat,ivf,ivf_residual")
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--single", type=int, default=200, help="queries timed one per call")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--m", type=int, default=96)
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobes", default="4,8,16,32,64")
    ap.add_argument("--k-factor", type=int, default=10, help="re-rank depth n_cand = k * k_factor")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-compile", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "bench_fastscan.json"))
    args = ap.parse_args()

    report: dict = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": {"machine": platform.machine(), "cores": os.cpu_count(), "shuffle": list(shuffle_plan()),
                 "faiss": faiss.__version__, "numba": numba.__version__,
                 "numba_threading_layer_env": os.environ.get("NUMBA_THREADING_LAYER", "default"),
                 "omp_wait_policy": os.environ["OMP_WAIT_POLICY"]},
        "load_start": os.getloadavg(),
    }
    if not args.skip_compile:
        report["compile"] = cold_compile_seconds()
        print("compile:", json.dumps(report["compile"]))
    report["host"]["numpy_blas_single_thread"] = numpy_blas_single_thread()

    train, queries = load(args.n or None, args.nq, args.replicas)
    n, d = train.shape
    k = args.k
    n_cand = k * args.k_factor
    gt = faiss.IndexFlatIP(d)
    gt.add(train)
    truth = {name: gt.search(q, k)[1] for name, q in queries.items()}
    report["settings"] = {"n": n, "d": d, "nq": args.nq, "single_queries": args.single, "k": k, "m": args.m,
                          "nbits": 4, "nlist": args.nlist, "k_factor": args.k_factor, "metric": "ip",
                          "rounds": args.rounds, "queries": "test_id + test_ood (first nq each)",
                          "replicas": args.replicas, "layouts": args.layouts}
    print(f"data {n} x {d}, queries {args.nq} id + {args.nq} ood, load {os.getloadavg()}")

    # ---- build (2 threads for both) ------------------------------------------------------------
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    faiss.omp_set_num_threads(2)
    build: dict = {}
    t0 = time.perf_counter()
    base_rows = train[: train.shape[0] // args.replicas]  # the real rows (k-means samples them anyway)
    centroids, _ = kmeans(base_rows, args.nlist, metric="ip", niter=10, seed=0, spherical=True)
    build["coarse_kmeans_s (not this work)"] = {"ours": time.perf_counter() - t0}
    t0 = time.perf_counter()
    faiss.Kmeans(d, args.nlist, niter=10, spherical=True, seed=1234).train(base_rows)
    build["coarse_kmeans_s (not this work)"]["faiss"] = time.perf_counter() - t0
    centroids_t = np.ascontiguousarray(centroids.T)
    labels, _ = assign(train, centroids, "ip")

    ours: dict = {}
    peers: dict = {}
    layouts = args.layouts.split(",")
    ivf_layouts = [layout for layout in layouts if layout != "flat"]
    for layout in layouts:
        by_residual = layout == "ivf_residual"
        codec = PQ4Codec(d, args.m, seed=0)
        t0 = time.perf_counter()
        if layout == "flat":
            codec.fit(train)
        else:  # residuals of the training sample only (4096 rows, as faiss samples them)
            rows = sample_training_rows(n, 16, 256, np.random.default_rng(1))
            codec.fit(train[rows] - centroids[labels[rows]] if by_residual else train[rows])
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        codes = codec.encode(train - centroids[labels] if by_residual else train)
        if layout == "flat":
            lists = pack_lists(codec, codes, np.zeros(n, np.int64), 1)
        else:
            lists = pack_lists(codec, codes, labels, args.nlist)
        add_s = time.perf_counter() - t0
        ours[layout] = (codec, lists, by_residual)
        if layout == "flat":
            base = faiss.IndexPQFastScan(d, args.m, 4, faiss.METRIC_INNER_PRODUCT)
        else:
            quantizer = faiss.IndexFlatIP(d)
            quantizer.add(centroids)  # the same lists for both: faiss trains only its PQ
            base = faiss.IndexIVFPQFastScan(quantizer, d, args.nlist, args.m, 4, faiss.METRIC_INNER_PRODUCT)
            base.by_residual = by_residual
        refine = faiss.IndexRefineFlat(base)
        t0 = time.perf_counter()
        refine.train(train)
        f_train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        refine.add(train)
        f_add_s = time.perf_counter() - t0
        peers[layout] = (base, refine, quantizer if layout != "flat" else None)
        build[layout] = {
            "pq_train_s": {"ours": train_s, "faiss": f_train_s},
            "encode_add_s": {"ours": add_s, "faiss": f_add_s},
            "code_bytes_per_vector": {"ours": codec.code_size, "faiss": int(base.code_size)},
            "id_bytes_per_vector": {"ours": 4, "faiss": 8},
        }
        print(f"{layout}: PQ train ours {train_s:.2f}s faiss {f_train_s:.2f}s; encode+pack ours {add_s:.2f}s "
              f"faiss add {f_add_s:.2f}s; code bytes ours {codec.code_size} faiss {base.code_size}")
    report["build"] = build

    # ---- searches ---------------------------------------------------------------------------------
    pool = ThreadPoolExecutor(2)

    def probes(q: np.ndarray, nprobe: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
        """Coarse step: one-thread BLAS products on ``threads`` slices of the batch, numba selection."""
        parts = np.array_split(q, threads) if q.shape[0] >= 64 * threads else [q]
        coarse = np.concatenate(list(pool.map(lambda part: part @ centroids_t, parts)))
        np.negative(coarse, out=coarse)
        lists = np.full((q.shape[0], nprobe), -1, np.int64)
        scores = np.full((q.shape[0], nprobe), np.inf, np.float32)
        select_probes(coarse, lists, scores)
        return lists, scores

    def no_probes(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((q.shape[0], 1), np.int64), np.zeros((q.shape[0], 1), np.float32)

    def our_e2e(layout, q, nprobe, rerank, threads):
        codec, lists, by_residual = ours[layout]
        pl, ps = no_probes(q) if layout == "flat" else probes(q, nprobe, threads)
        return fastscan_search(codec, lists, q, pl, ps, k=k, metric="ip", by_residual=by_residual,
                               n_cand=n_cand if rerank else k, vectors=train if rerank else None).rows

    def peer_e2e(layout, q, nprobe, rerank, threads):
        base, refine, _ = peers[layout]
        params = None if layout == "flat" else faiss.SearchParametersIVF(nprobe=nprobe)
        if rerank:
            rparams = faiss.IndexRefineSearchParameters(k_factor=args.k_factor, base_index_params=params)
            return refine.search(q, k, params=rparams)[1]
        return base.search(q, k, params=params)[1]

    def our_scan(layout, q, pl, ps):
        codec, lists, by_residual = ours[layout]
        return fastscan_search(codec, lists, q, pl, ps, k=n_cand, metric="ip", by_residual=by_residual).rows

    def peer_scan(layout, q, pl, ps):
        base = peers[layout][0]
        base.nprobe = pl.shape[1]
        return base.search_preassigned(q, n_cand, pl, -ps)[1]  # faiss' IP coarse scores: larger is better

    def our_single(layout, q, nprobe):
        codec, lists, by_residual = ours[layout]
        out = np.empty((q.shape[0], k), np.int64)
        os_, oi = np.empty((1, k), np.float32), np.empty((1, k), np.int64)
        for i in range(q.shape[0]):
            one = q[i:i + 1]
            scores = -(one @ centroids_t)
            pl = np.argpartition(scores[0], nprobe)[:nprobe].reshape(1, nprobe).astype(np.int64)
            ps = np.take_along_axis(scores, pl, 1)
            os_.fill(np.inf)
            oi.fill(-1)
            fastscan_search_serial(METRIC_IP, by_residual, one, pl, ps, codec.codebooks_t, codec.cb_sq_norms,
                                   centroids, np.zeros((0, args.m, 16), np.float32), lists.packed, lists.slots,
                                   lists.block_offsets, lists.slot_offsets, lists.sizes, n_cand, train, os_, oi)
            out[i] = oi[0]
        return out

    def peer_single(layout, q, nprobe):
        refine = peers[layout][1]
        rparams = faiss.IndexRefineSearchParameters(k_factor=args.k_factor,
                                                    base_index_params=faiss.SearchParametersIVF(nprobe=nprobe))
        return np.concatenate([refine.search(q[i:i + 1], k, params=rparams)[1] for i in range(q.shape[0])])

    nprobes = [int(v) for v in args.nprobes.split(",")]
    thread_counts = [int(v) for v in args.threads.split(",")]
    e2e_configs = [("flat", 0)] * ("flat" in layouts) + [(layout, p) for layout in ivf_layouts for p in nprobes]
    pre_probes = {(qname, p): probes(q, p, 1) for qname, q in queries.items() for p in nprobes}
    single_probe = 16 if 16 in nprobes else nprobes[len(nprobes) // 2]
    timer = Timer()
    recalls: dict = {}
    for threads in thread_counts:  # warm-up: compile / page in outside the timed rounds
        numba.set_num_threads(threads)
        for layout in ivf_layouts:
            our_e2e(layout, queries["id"][:64], 8, True, threads)
            our_single(layout, queries["id"][:2], 8)
    for rnd in range(args.rounds):
        order = ("ours", "faiss") if rnd % 2 == 0 else ("faiss", "ours")
        for threads in thread_counts:
            numba.set_num_threads(threads)
            faiss.omp_set_num_threads(threads)
            for layout, nprobe in e2e_configs:
                for rerank in (False, True):
                    for qname, q in queries.items():
                        for lib in order:
                            key = ("e2e", lib, threads, layout, nprobe, rerank, qname)
                            fn = our_e2e if lib == "ours" else peer_e2e
                            found = timer.run(key, lambda f=fn, a=(layout, q, nprobe, rerank, threads): f(*a))
                            recalls[key] = recall_at_k(found, truth[qname])
            for layout in ivf_layouts:
                for nprobe in nprobes:
                    for qname, q in queries.items():
                        pl, ps = pre_probes[(qname, nprobe)]
                        for lib in order:
                            key = ("scan", lib, threads, layout, nprobe, True, qname)
                            fn = our_scan if lib == "ours" else peer_scan
                            found = timer.run(key, lambda f=fn, a=(layout, q, pl, ps): f(*a))
                            recalls[key] = recall_at_k(found, truth[qname])  # recall@10 of the first 10
        if 1 in thread_counts:
            numba.set_num_threads(1)
            faiss.omp_set_num_threads(1)
            for layout in ivf_layouts:
                for qname, q in queries.items():
                    for lib in order:
                        key = ("single", lib, 1, layout, single_probe, True, qname)
                        fn = our_single if lib == "ours" else peer_single
                        found = timer.run(key, lambda f=fn, a=(layout, q[:args.single], single_probe): f(*a))
                        recalls[key] = recall_at_k(found, truth[qname][:args.single])
        print(f"round {rnd + 1}/{args.rounds} done, load {os.getloadavg()}")

    rows = []
    for key, rec in recalls.items():
        mode, lib, threads, layout, nprobe, rerank, qname = key
        n_queries = args.single if mode == "single" else args.nq
        rows.append({"mode": mode, "lib": lib, "threads": threads, "layout": layout, "nprobe": nprobe,
                     "rerank": rerank, "queries": qname, "recall": rec, **timer.summary(key, n_queries)})

    # ---- summary: one row per setting, ours beside faiss ------------------------------------------
    def find(lib, mode, threads, layout, nprobe, rerank, qname):
        return next(r for r in rows if (r["mode"], r["lib"], r["threads"], r["layout"], r["nprobe"], r["rerank"],
                                        r["queries"]) == (mode, lib, threads, layout, nprobe, rerank, qname))

    columns = ["mode", "threads", "layout", "nprobe", "rerank", "queries", "recall_ours", "recall_faiss",
               "qps_ours", "qps_faiss", "ratio_best", "ratio_median", "ratio_cpu", "load1"]
    table = []
    for r in rows:
        if r["lib"] != "ours":
            continue
        key = (r["mode"], r["threads"], r["layout"], r["nprobe"], r["rerank"], r["queries"])
        b = find("faiss", *key)
        cpu_ratio = round(r["qps_cpu_best"] / b["qps_cpu_best"], 3) if r["threads"] == 1 else None
        table.append([*key, round(r["recall"], 4), round(b["recall"], 4), round(r["qps_best"]), round(b["qps_best"]),
                      round(r["qps_best"] / b["qps_best"], 3), round(r["qps_median"] / b["qps_median"], 3),
                      cpu_ratio, round(r["load1_median"], 2)])
        print(json.dumps(dict(zip(columns, table[-1]))))
    report["summary"] = {"columns": columns, "rows": table,
                         "note": "qps from the best of the rounds (wall); ratio = ours / faiss; ratio_cpu from "
                                 "process CPU time (1 thread only); load1 = median 1-min load average"}
    at_target = {}
    for threads in thread_counts:
        for layout in ivf_layouts:
            for qname in queries:
                for lib in ("ours", "faiss"):
                    pts = sorted((r["nprobe"], r["recall"], r["qps_best"]) for r in rows
                                 if (r["mode"], r["lib"], r["threads"], r["layout"], r["rerank"], r["queries"])
                                 == ("e2e", lib, threads, layout, True, qname))
                    at_target[f"{lib}/{threads}t/{layout}/rerank/{qname}"] = qps_at_recall(
                        [(rec, qps) for _, rec, qps in pts], 0.9)
    report["e2e_qps_at_recall_0.9"] = at_target
    report["load_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=1)
    for row in table:  # one line per summary row keeps the file small and readable
        text = text.replace(json.dumps(row, indent=1).replace("\n", "\n   "), json.dumps(row))
    Path(args.out).write_text(text)
    print("qps@0.9:", json.dumps(at_target, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
