"""At a million vectors: vecsearch beside hnswlib and faiss on ~1M real token vectors, 2 threads.

Data: the 2,619,889 MiniLM token vectors (384 dims, unit norm, so ``ip``) of all 116,659 WordNet
glosses (``/work/cache/data/multivector-all.npz``, document order): the database is the first ``--n``
rows; the queries are ``--nq`` token rows drawn (seeded) from the documents that start at row
2,000,000 or later -- tokens of glosses not in the database, the same queries for every ``n`` up
to 2M. Ground truth is exact (FlatIndex) and cached, with the slices, under ``/work/cache/bench_scale``.

(a) HNSW: ``vs.HNSWIndex(dim, "ip")`` (defaults: M=16, ef_construction=200) vs hnswlib at the same M /
    ef_construction: build seconds, resident memory per vector (RSS delta of a fresh process per
    library, data loaded before the first reading) and each index's own bytes, QPS at recall@10 0.9 /
    0.95 on an ``ef`` sweep (batches of ``--nq`` queries).
(b) IVF fast-scan: ``IVFFastScanIndex`` (``suggested_params``: nlist ~ 4 sqrt(n), m = dim / 4) vs faiss
    ``IndexIVFPQFastScan`` + ``IndexRefineFlat`` at the same nlist / m / codes of ``x`` (no residual),
    each training its own coarse quantizer: training and add seconds, bytes per vector, QPS at 0.9
    over the nprobe x k_factor sweep (re-rank depth ``k * k_factor`` for both).
(c) mmap serving: ``vs.load(path, mmap=True)`` of each 1M index in a fresh process; RSS (anonymous and
    file-backed) before and after the load and after the first 100 single queries; also a full load.

Searches: both libraries of a section loaded in one process and timed in turn (``--rounds``
interleaved rounds, best kept), the 1-minute load average recorded per point. Both OpenMP runtimes
wait passively (as bench_fastscan.py; spinning threads distort a shared 2-core box).

    python bench/bench_scale.py                     # 1M -> bench/results/bench_scale.json, docs/scale.png
    python bench/bench_scale.py --n 100000 --out /tmp/scale.json --plot /tmp/scale.png     # smoke run
    python bench/bench_scale.py --sections ivf      # (re)run one section, keep the others' rows
    python bench/bench_scale.py --sections ivf --out bench/results/bench_scale_ivf.json \
        --plot bench/results/bench_scale_ivf.png    # one section into a new file (builds both peers afresh)

Resumable: a run keeps the rows of the sections it does not run from an existing ``--out`` of the
same n / nq / k / seed / threads, and reuses a build (its row and saved index) unless ``--rebuild``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before faiss / numba load their OpenMP runtimes
os.environ.setdefault("VECSEARCH_CACHE_DIR", "/work/cache/bench_scale")  # ground truth cache

import argparse
import gc
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TOKENS = Path("/work/cache/data/multivector-all.npz")
WORK = Path("/work/cache/bench_scale")
LIBS = {"hnsw": ("vecsearch-hnsw", "hnswlib"), "ivf": ("vecsearch-ivf_fastscan", "faiss-ivfpqfs")}
LABELS = {"vecsearch-hnsw": "vecsearch HNSW M=16 (LVQ8 walk + f32 re-rank)", "hnswlib": "hnswlib M=16",
          "vecsearch-ivf_fastscan": "vecsearch IVF,PQx4fs + re-rank", "faiss-ivfpqfs": "faiss IVFPQFastScan + RefineFlat"}
EF_GRID = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384)
NPROBE_GRID = (4, 8, 16, 32, 64, 128, 256)
K_FACTORS = (4, 10, 20)
QUERY_ROWS_FROM = 2_000_000  # queries: tokens of the documents starting at or after this row
FIRST_QUERIES = 100  # single queries after an mmap load
WARMUP_ROWS = 20_000  # rows of the warm-up build in each build process


# ---- data ---------------------------------------------------------------------------------------
def sample_paths(n: int, nq: int, seed: int) -> tuple[Path, Path]:
    return WORK / f"tokens_first{n}.npy", WORK / f"tokens_queries_from{QUERY_ROWS_FROM}_q{nq}_s{seed}.npy"


def prepare_data(n: int, nq: int, seed: int) -> tuple[Path, Path]:
    """Slice (once, cached as float16 .npy) the first ``n`` rows and ``nq`` query rows of later documents."""
    db_path, q_path = sample_paths(n, nq, seed)
    if db_path.is_file() and q_path.is_file():
        return db_path, q_path
    WORK.mkdir(parents=True, exist_ok=True)
    print(f"slicing {n} + {nq} rows of {TOKENS} ...", flush=True)
    with np.load(TOKENS) as f:
        offsets = f["doc_offsets"]
        tokens = f["doc_vecs"]  # (2,619,889, 384) float16, ~2 GB
    start = int(offsets[np.searchsorted(offsets, QUERY_ROWS_FROM)])  # the first document boundary >= 2M
    if n > QUERY_ROWS_FROM:
        raise ValueError(f"n: at most {QUERY_ROWS_FROM} database rows (the rest holds the queries), got {n}")
    pick = np.random.default_rng(seed).choice(tokens.shape[0] - start, size=nq, replace=False)
    np.save(q_path, tokens[start + pick])
    np.save(db_path, tokens[:n])
    return db_path, q_path


def load_f32(path: Path) -> np.ndarray:
    return np.ascontiguousarray(np.load(path, mmap_mode="r"), dtype=np.float32)


def memory() -> dict[str, float]:
    """Resident memory of this process (MB): total, anonymous, file-backed (mapped files)."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key = line.split(":")[0]
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                out[key] = int(line.split()[1]) / 1024
    return out


def set_threads(threads: int) -> None:
    import numba

    numba.set_num_threads(threads)
    if "faiss" in sys.modules:
        sys.modules["faiss"].omp_set_num_threads(threads)


# ---- workers: one fresh process per build / load ------------------------------------------------
def build_worker(spec: dict) -> dict:
    """Build one library's index on the database rows, save it; times and memory deltas."""
    import faiss

    set_threads(spec["threads"])
    x = load_f32(Path(spec["db"]))
    n = x.shape[0]
    lib, path = spec["lib"], Path(spec["path"])
    out: dict = {"lib": lib, "n": n}
    # warm-up: the same build on a slice (compiles / loads every kernel, sizes the allocator's pools),
    # so the RSS delta below is the index, not the JIT or a first-touch artefact
    spec_warm = dict(spec, ivf_params=dict(spec["ivf_params"], nlist=min(spec["ivf_params"]["nlist"], 256)))
    build(lib, x[:WARMUP_ROWS], spec_warm)
    gc.collect()
    trim_heap()
    before = memory()
    out.update(build(lib, x, spec))
    index = out.pop("index")
    gc.collect()
    trim_heap()
    after = memory()
    out["rss_delta_bytes_per_vector"] = (after["VmRSS"] - before["VmRSS"]) * 2**20 / n
    out["peak_rss_mb"] = after["VmHWM"]
    # the build's own peak: the high-water mark above the resident memory before it (data already loaded;
    # the warm-up build on 20k rows peaks far lower, so the mark is the full build's)
    out["build_peak_delta_mb"] = after["VmHWM"] - before["VmRSS"]
    path.parent.mkdir(parents=True, exist_ok=True)
    if lib.startswith("vecsearch"):
        index.save(str(path))
        out["own_bytes_per_vector"] = index.memory_bytes() / n
    elif lib == "hnswlib":
        index.save_index(str(path))
        out["own_bytes_per_vector"] = path.stat().st_size / n
    else:
        faiss.write_index(index, str(path))
        out["own_bytes_per_vector"] = path.stat().st_size / n
    if lib == "vecsearch-ivf_fastscan":  # codes + slots + ids of the lists, as saved
        _, arrays = index.get_state()
        out["list_bytes_per_vector"] = sum(arrays[a].nbytes for a in ("list_codes", "list_slots", "slot_to_id")) / n
    elif lib == "faiss-ivfpqfs":  # blocks of 32 codes + 8-byte ids per list
        inv = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index.base_index).invlists)
        sizes = np.array([inv.list_size(i) for i in range(inv.nlist)])
        blocks = np.ceil(sizes / inv.n_per_block)
        out["list_bytes_per_vector"] = float((blocks * inv.block_size + sizes * 8).sum() / n)
    return out


def trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc ``malloc_trim``), so RSS counts live memory only."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def build(lib: str, x: np.ndarray, spec: dict) -> dict:
    """Build ``lib``'s index on ``x``; ``{"index", "build_s"[, "train_s"]}``."""
    import faiss
    import hnswlib

    import vecsearch as vs
    from vecsearch.indexes.ivf_fastscan import IVFFastScanIndex

    n, d = x.shape
    out: dict = {}
    t0 = time.perf_counter()
    if lib == "vecsearch-hnsw":
        index = vs.HNSWIndex(d, "ip")
        index.add(x, progress=False)
        out["build_s"] = time.perf_counter() - t0
    elif lib == "hnswlib":
        index = hnswlib.Index(space="ip", dim=d)
        index.init_index(max_elements=n, M=16, ef_construction=200, random_seed=100)
        index.set_num_threads(spec["threads"])
        index.add_items(x, np.arange(n))
        out["build_s"] = time.perf_counter() - t0
    elif lib == "vecsearch-ivf_fastscan":
        index = IVFFastScanIndex(d, "ip", **spec["ivf_params"])
        index.train(x)
        out["train_s"] = time.perf_counter() - t0
        index.add(x)
        out["build_s"] = time.perf_counter() - t0
    else:
        p = spec["ivf_params"]
        base = faiss.IndexIVFPQFastScan(faiss.IndexFlatIP(d), d, p["nlist"], p["m"], 4, faiss.METRIC_INNER_PRODUCT)
        base.by_residual = False  # as ours for ip
        index = faiss.IndexRefineFlat(base)
        index.train(x)
        out["train_s"] = time.perf_counter() - t0
        index.add(x)
        out["build_s"] = time.perf_counter() - t0
    if "train_s" in out:
        out["add_s"] = out["build_s"] - out["train_s"]
    out["index"] = index
    return out


def mmap_worker(spec: dict) -> dict:
    """Load a saved vecsearch index (mmap or not) in a fresh process; RSS around the first queries."""
    import vecsearch as vs
    from vecsearch import registry

    set_threads(spec["threads"])
    queries = load_f32(Path(spec["queries"]))[:FIRST_QUERIES]
    index_type = json.loads((Path(spec["path"]) / "manifest.json").read_text())["type"]
    registry.get(index_type).cls.warmup_kernels(np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32))
    gc.collect()
    rss = {"before_load": memory()}
    t0 = time.perf_counter()
    index = vs.load(spec["path"], mmap=spec["mmap"], verify=spec["verify"])
    load_s = time.perf_counter() - t0
    rss["after_load"] = memory()
    t0 = time.perf_counter()
    for q in queries:
        index.search(q, 10)
    first_s = time.perf_counter() - t0
    rss["after_queries"] = memory()
    return {"load_s": load_s, "first_queries_ms": 1e3 * first_s / len(queries),
            **{f"{k}_{when}_mb": v[k] for when, v in rss.items() for k in ("VmRSS", "RssAnon", "RssFile")}}


def run_worker(task: str, spec: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", task, json.dumps(spec)], cwd=ROOT, text=True,
                          capture_output=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{task} {spec.get('lib', '')}: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- searches: both libraries of a section in this process, timed in turn -------------------------
def open_indexes(section: str, paths: dict, n: int):
    import faiss
    import hnswlib

    import vecsearch as vs

    out = {}
    for lib in LIBS[section]:
        if lib.startswith("vecsearch"):
            out[lib] = vs.load(str(paths[lib]))
        elif lib == "hnswlib":
            out[lib] = hnswlib.Index(space="ip", dim=384)
            out[lib].load_index(str(paths[lib]), max_elements=n)
        else:
            out[lib] = faiss.read_index(str(paths[lib]))
    return out


def search_call(lib: str, index, queries: np.ndarray, k: int, point: dict, threads: int):
    import faiss

    if lib == "vecsearch-hnsw":
        return lambda: index.search(queries, k, ef=point["ef"]).ids
    if lib == "hnswlib":
        def call():
            index.set_ef(max(point["ef"], k))
            index.set_num_threads(threads)
            return index.knn_query(queries, k=k)[0].astype(np.int64)
        return call
    if lib == "vecsearch-ivf_fastscan":
        return lambda: index.search(queries, k, nprobe=point["nprobe"], rerank=k * point["k_factor"]).ids
    params = faiss.IndexRefineSearchParameters(k_factor=float(point["k_factor"]),
                                               base_index_params=faiss.SearchParametersIVF(nprobe=point["nprobe"]))
    return lambda: index.search(queries, k, params=params)[1]


def recording_load(call, loads: list[float]):
    """``call`` that appends the 1-minute load average to ``loads`` after each run."""

    def run():
        out = call()
        loads.append(os.getloadavg()[0])
        return out

    return run


def sweep(section: str, indexes: dict, db: np.ndarray, queries: np.ndarray, truth, args, results) -> None:
    from vecsearch.benchmark.evaluation import exact_distances, recall_at_k, time_interleaved

    truth_ids, truth_d = truth
    points = ([{"ef": ef} for ef in EF_GRID] if section == "hnsw"
              else [{"nprobe": p, "k_factor": f} for f in K_FACTORS for p in NPROBE_GRID])
    for point in points:
        calls = {lib: search_call(lib, indexes[lib], queries, args.k, point, args.threads) for lib in LIBS[section]}
        loads: dict[str, list[float]] = {lib: [] for lib in calls}
        timed = time_interleaved({lib: recording_load(call, loads[lib]) for lib, call in calls.items()}, args.rounds)
        for lib, timing in timed.items():
            if timing.error:
                raise RuntimeError(f"{lib} {point}: {timing.error}")
            found = timing.output
            recall = recall_at_k(found, truth_ids, args.k, truth_distances=truth_d,
                                 found_distances=exact_distances(db, queries, found, "ip"))
            results.add({"section": section, "lib": lib, "label": LABELS[lib], "library": lib.split("-")[0], **point,
                         "k": args.k, "recall": recall, "qps": timing.rate(len(queries)),
                         "qps_median": timing.rate(len(queries), keep="median"),
                         "load1": float(np.median(loads[lib]))},
                        show=("section", "lib", *point, "recall", "qps", "load1"))
        results.write()  # a checkpoint per point: an interrupted sweep keeps what it measured


# ---- main ---------------------------------------------------------------------------------------------
def row_section(row: dict) -> str:
    """The section a row belongs to (a build row to its library's section)."""
    if row["section"] == "build":
        return next(s for s, libs in LIBS.items() if row["lib"] in libs)
    return row["section"]


def earlier_rows(path: Path, args) -> list[dict]:
    """The rows of an earlier run in ``path`` with the same data and search settings (else none)."""
    if not path.is_file():
        return []
    doc = json.loads(path.read_text())
    same = ("n", "nq", "k", "seed", "threads")
    if doc.get("script") != "bench_scale" or any(doc["settings"].get(a) != getattr(args, a) for a in same):
        print(f"{path}: an earlier run with other settings; not kept", flush=True)
        return []
    return doc["rows"]


def summarize(results, builds: dict) -> dict:
    from vecsearch.benchmark.report import qps_at_target

    summary: dict = {"build": builds}
    hnsw = results.select(section="hnsw")
    for target in (0.9, 0.95):
        at = qps_at_target(hnsw, target, group=("lib",), order="ef")
        summary[f"hnsw_qps_at_{target}"] = {lib: at.get((lib,)) for lib in LIBS["hnsw"]}
    ivf = results.select(section="ivf")
    at = qps_at_target(ivf, 0.9, group=("lib", "k_factor"), order="nprobe")
    summary["ivf_qps_at_0.9_by_k_factor"] = {f"{lib}/k_factor={f}": q for (lib, f), q in at.items()}
    summary["ivf_qps_at_0.9_best"] = {lib: max((q for (name, _), q in at.items() if name == lib and not math.isnan(q)),
                                               default=None) for lib in LIBS["ivf"]}
    summary["ratios"] = ratios(summary)
    return summary


def ratios(summary: dict) -> dict:
    """vecsearch / peer for each "Done when" figure of issue #21 (None where a side is missing)."""
    def div(a, b):
        return a / b if a is not None and b not in (None, 0) and not (math.isnan(a) or math.isnan(b)) else None

    def build(lib, key):
        return summary["build"].get(lib, {}).get(key)

    out = {}
    for key in ("rss_delta_bytes_per_vector", "own_bytes_per_vector", "build_s", "build_peak_delta_mb"):
        out[f"hnsw_{key}"] = div(build("vecsearch-hnsw", key), build("hnswlib", key))
    for target in (0.9, 0.95):
        at = summary[f"hnsw_qps_at_{target}"]
        out[f"hnsw_qps_at_{target}"] = div(at.get("vecsearch-hnsw"), at.get("hnswlib"))
    best = summary["ivf_qps_at_0.9_best"]
    out["ivf_qps_at_0.9_best"] = div(best.get("vecsearch-ivf_fastscan"), best.get("faiss-ivfpqfs"))
    for key in ("train_s", "build_s", "own_bytes_per_vector"):
        out[f"ivf_{key}"] = div(build("vecsearch-ivf_fastscan", key), build("faiss-ivfpqfs", key))
    a, b = build("vecsearch-ivf_fastscan", "list_bytes_per_vector"), build("faiss-ivfpqfs", "list_bytes_per_vector")
    out["ivf_list_bytes_minus_faiss"] = a - b if a is not None and b is not None else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="database rows")
    ap.add_argument("--nq", type=int, default=1000, help="held-out query rows")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds per search point")
    ap.add_argument("--sections", default="hnsw,ivf,mmap")
    ap.add_argument("--rebuild", action="store_true", help="build again even if a saved index and its row exist")
    ap.add_argument("--fresh", action="store_true", help="do not keep rows of an earlier run in --out")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "bench_scale.json"))
    ap.add_argument("--plot", default=str(ROOT / "docs" / "scale.png"))
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        task, spec = args.worker[0], json.loads(args.worker[1])
        print(json.dumps(build_worker(spec) if task == "build" else mmap_worker(spec)))
        return

    from vecsearch.benchmark.datasets import exact_neighbors
    from vecsearch.benchmark.report import plot_frontiers
    from vecsearch.benchmark.results import ResultsFile
    from vecsearch.indexes.ivf_fastscan import IVFFastScanIndex

    results = ResultsFile(args.out, args, script="bench_scale")
    sections = args.sections.split(",")
    if not set(sections) <= {"hnsw", "ivf", "mmap"}:
        raise ValueError(f"--sections: a comma list of hnsw, ivf, mmap, got {args.sections!r}")
    kept = [] if args.fresh else earlier_rows(Path(args.out), args)
    for row in kept:
        if row_section(row) not in sections or (row["section"] == "build" and not args.rebuild):
            results.rows.append(row)
    db_path, q_path = prepare_data(args.n, args.nq, args.seed)
    db, queries = load_f32(db_path), load_f32(q_path)
    t0 = time.perf_counter()
    truth = exact_neighbors(db, queries, args.k, "ip")
    print(f"data {db.shape}, {queries.shape[0]} queries, ground truth {time.perf_counter() - t0:.1f}s, "
          f"load {os.getloadavg()}", flush=True)
    ivf_params = IVFFastScanIndex.suggested_params(args.n, db.shape[1])
    results.settings["ivf_params"] = ivf_params
    paths = {lib: WORK / "indexes" / f"{lib}_n{args.n}_s{args.seed}" for group in LIBS.values() for lib in group}
    builds: dict = {}
    for section in ("hnsw", "ivf"):
        if section not in sections:
            continue
        for lib in LIBS[section]:
            done = results.select(section="build", lib=lib)
            if done and paths[lib].exists():
                builds[lib] = done[-1]
                print(f"reusing the build of {lib} ({paths[lib]})", flush=True)
                continue
            results.rows = [r for r in results.rows if not (r["section"] == "build" and r["lib"] == lib)]
            spec = {"lib": lib, "db": str(db_path), "path": str(paths[lib]), "threads": args.threads,
                    "ivf_params": ivf_params}
            builds[lib] = results.add({"section": "build", "load1_before": os.getloadavg()[0],
                                       **run_worker("build", spec), "load1_after": os.getloadavg()[0]},
                                      show=("lib", "train_s", "build_s", "rss_delta_bytes_per_vector",
                                            "own_bytes_per_vector", "load1_after"))
            results.write()
        set_threads(args.threads)
        indexes = open_indexes(section, paths, args.n)
        sweep(section, indexes, db, queries, truth, args, results)
        del indexes
        gc.collect()
        results.write()
    if "mmap" in sections:
        results.rows = [r for r in results.rows if r["section"] != "mmap"]
        for lib in ("vecsearch-ivf_fastscan", "vecsearch-hnsw"):
            if not paths[lib].is_dir():
                continue
            for mmap, verify in ((True, True), (True, False), (False, True)):
                spec = {"path": str(paths[lib]), "queries": str(q_path), "threads": args.threads, "mmap": mmap,
                        "verify": verify}
                results.add({"section": "mmap", "lib": lib, "mmap": mmap, "verify": verify,
                             **run_worker("mmap", spec), "load1": os.getloadavg()[0]},
                            show=("lib", "mmap", "verify", "load_s", "VmRSS_after_load_mb", "RssAnon_after_load_mb",
                                  "VmRSS_after_queries_mb", "first_queries_ms"))
                results.write()
    builds = {row["lib"]: row for row in results.select(section="build")}
    results.summary = summarize(results, builds)
    results.write()
    searched = [r for r in results.rows if r["section"] in ("hnsw", "ivf")]
    if searched and args.plot:
        load = float(np.median([r["load1"] for r in searched]))
        plot_frontiers(searched, args.plot, f"{args.n:,} MiniLM token vectors (384-d, ip), batch of {args.nq} "
                                            f"queries, {args.threads} threads, median load {load:.1f}")
    print(json.dumps(results.summary, indent=1, default=str))
    print(f"wrote {args.out}" + (f" and {args.plot}" if searched and args.plot else ""))


if __name__ == "__main__":
    main()
