"""Filtered search: recall@10 and QPS per selectivity and filter shape, ours vs hnswlib and faiss.

On the real data (wordnet-minilm train + attrs.npz, cosine; all rows, or with --part the tuning /
held-out part of ``vecsearch.benchmark.wordnet.held_out_split``; test_id or, --query-kind ood,
test_ood queries), our HNSW at its class defaults unless --M/--ef-construction/--ef/--storage say
otherwise (the peers are built with the same M and ef_construction), for selectivities 50% .. 0.05% and
filter shapes
  random      a range over a random permutation column (independent of the query),
  correlated  a range of ``proj`` (position along the first principal direction) around the query,
  anti        the same number of rows at the far end of ``proj`` from the query,
  real        natural predicates on the WordNet attributes (pos, lexfile, gloss_len, has_example),
it measures, one query per call (per-query filters; latency-style QPS, 1 thread for the peers):
  ours HNSW:  planner, and each fixed strategy (prefilter, beam_collect, filtered_walk, postfilter);
  ours IVF-PQ (optional, --ivf): planner, ivf_masked, prefilter;
  hnswlib:    knn_query(filter=callback), over an ef sweep (--hnswlib-ef);
  faiss:      IndexHNSWFlat + SearchParametersHNSW(sel=IDSelectorBitmap) over an ef sweep
              (--peer-ef), and with --ivf
              IndexIVFPQ + SearchParametersIVF(sel=..., nprobe) over an nprobe sweep (--ivf-peer-nprobe),
              both re-ranking k * 12 candidates with the float vectors (--ivf-rerank; faiss: IndexRefineFlat).
Recall@10 is against the exact top-10 over the allowed subset (computed from numpy masks, not by
our filter compiler), divided by min(10, matches).
QPS is wall-clock; cpuQPS divides by this process's CPU time (every method runs one query per
call on one thread), which is the steadier figure on a machine shared with other jobs. The methods
of a cell are timed in turn (--repeats rounds, best kept, after one untimed pass each).
The timing of ours includes compiling the predicate (a filter repeated across calls, as in the
random and real shapes, hits our compiled-filter cache; --no-filter-cache turns it off); faiss'
bitmap selector is packed from the precomputed mask (evaluating the predicate is not charged to
faiss) and kept in an LRU cache of the same capacity as ours, so both pay per call for the
per-query filters of the correlated and anti shapes (100+ distinct filters, 16 cached). The closing summary compares the
planner with the best fixed strategy (recall >= 0.95) and with each peer at the planner's recall,
interpolated on the peer's ef sweep ("r<0.xx": the peer never reaches it); with --ivf a second
summary does the same for our IVF-PQ planner against faiss IndexIVFPQ (nprobe sweep).

    python bench/bench_filtered.py [--part full|tuning|held-out] [--query-kind id|ood] [--queries 200] [--ivf]

Prints a table and writes bench/results/bench_filtered.json (with the load average).
"""

from __future__ import annotations

import argparse
import collections
import os
import time
from pathlib import Path

import faiss
import hnswlib
import numpy as np

import vecsearch as vs
import vecsearch.filtering.cache as filter_cache
from vecsearch import F
from vecsearch.benchmark import wordnet
from vecsearch.benchmark.datasets import filtered_exact_neighbors
from vecsearch.benchmark.evaluation import interpolated_qps, pad_ids, recall_at_k, time_interleaved
from vecsearch.benchmark.report import format_table
from vecsearch.benchmark.results import ResultsFile

SELECTIVITIES = [0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.001, 0.0005]
SHOWN = ("shape", "selectivity", "matches", "method", "recall_at_10", "qps", "cpu_qps")
COLUMNS = ("pos", "lexfile", "n_lemmas", "gloss_len", "has_example", "proj", "rand")
RECALL_FLOOR = 0.95
OURS_FIXED = ("prefilter", "beam_collect", "filtered_walk", "postfilter")
OURS_IVF_FIXED = ("ivf_masked", "prefilter")
# IVF-PQ's recall is set by nprobe and the codes (without re-ranking its unfiltered recall@10 is
# ~0.7 here), not by RECALL_FLOOR: a fixed strategy counts as "as accurate" within this much of the
# planner's recall.
IVF_RECALL_SLACK = 0.01


def load(args):
    """``(x, q, attrs, direction)`` of ``--part`` (all rows, or a part of
    :func:`~vecsearch.benchmark.wordnet.held_out_split`: tune on one, report the other) with
    ``--query-kind`` queries; ``--n`` keeps the first rows of the part."""
    if args.part == "full":
        x = wordnet.load_train(args.n, data_dir=args.data)
        q = wordnet.load_queries(args.query_kind, args.queries, data_dir=args.data)
        attrs = wordnet.load_attributes(x.shape[0], data_dir=args.data)
    else:
        parts = wordnet.held_out_split(
            args.query_kind, n=args.n, n_queries=args.queries, data_dir=args.data
        )
        part = parts[0] if args.part == "tuning" else parts[1]
        x, q = part.train, part.test
        attrs = wordnet.part_attributes(part, data_dir=args.data)
    direction = np.linalg.svd(x[:20000] - x[:20000].mean(0), full_matrices=False)[2][0]
    attrs["proj"] = (x @ direction).astype(np.float64)
    attrs["rand"] = np.random.default_rng(0).permutation(x.shape[0]).astype(np.int64)
    return x, q, attrs, direction


def filters_for(shape, sel, x, q, attrs, direction):
    """Per-query list of (where, mask) for one shape and selectivity."""
    n = x.shape[0]
    count = max(1, round(sel * n))
    if shape == "random":
        return [(F.rand < count, attrs["rand"] < count)] * q.shape[0]
    proj = attrs["proj"]
    srt = np.sort(proj)
    out = []
    for qv in q:
        qp = float(qv @ direction)
        if shape == "correlated":
            a = min(max(int(np.searchsorted(srt, qp)) - count // 2, 0), n - count)
        else:
            a = 0 if qp > srt[n // 2] else n - count
        lo, hi = float(srt[a]), float(srt[a + count - 1])
        out.append((F.proj.between(lo, hi), (proj >= lo) & (proj <= hi)))
    return out


def real_filters(a):
    """Natural predicates with their mask (the same filter for every query)."""
    return [
        ((F.pos == "n") | (F.pos == "a"), (a["pos"] == "n") | (a["pos"] == "a")),
        (F.pos == "v", a["pos"] == "v"),
        (F.pos == "r", a["pos"] == "r"),
        ((F.pos == "v") & (F.lexfile == 31) & F.has_example, (a["pos"] == "v") & (a["lexfile"] == 31) & a["has_example"]),
        ((F.pos == "r") & (F.gloss_len < 20) & (F.n_lemmas >= 3), (a["pos"] == "r") & (a["gloss_len"] < 20) & (a["n_lemmas"] >= 3)),
    ]  # fmt: skip


def _cells(rows: list[dict], planner_method: str, measure: str):
    """Per (shape, selectivity) cell holding a ``planner_method`` row: ``(rows of the cell, rows by
    method, the planner's row, a summary entry started with the planner's recall and QPS)``."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row.get("section") == "search":
            groups.setdefault((row["shape"], row["selectivity"]), []).append(row)
    for (shape, sel), group in groups.items():
        by = {r["method"]: r for r in group}
        planner = by.get(planner_method)
        if planner is not None:
            yield (
                group,
                by,
                planner,
                {
                    "shape": shape,
                    "selectivity": sel,
                    "matches": planner["matches"],
                    "measure": measure,
                    "planner_recall": planner["recall_at_10"],
                    "planner_qps": planner[measure],
                },
            )


def _best_fixed(entry, fixed, planner, measure, floor) -> None:
    """The fastest fixed strategy whose recall reaches ``floor``, else the most accurate one."""
    if fixed:
        ok = [r for r in fixed if r["recall_at_10"] >= floor]
        best = (
            max(ok, key=lambda r: r[measure]) if ok else max(fixed, key=lambda r: r["recall_at_10"])
        )
        entry.update(
            best_fixed=best["method"].split(":")[1],
            best_fixed_recall=best["recall_at_10"],
            best_fixed_qps=best[measure],
            ratio_vs_best_fixed=planner[measure] / best[measure],
        )


def _peer_at(entry, group, planner, measure, peer, knob) -> None:
    """A peer's sweep (``peer:<knob><value>`` rows) interpolated at the planner's recall."""
    sweep = sorted(
        (r for r in group if r["method"].startswith(f"{peer}:{knob}")),
        key=lambda r: int(r["method"].split(f":{knob}")[1]),
    )
    if sweep:
        at = interpolated_qps(
            [r["recall_at_10"] for r in sweep], [r[measure] for r in sweep], planner["recall_at_10"]
        )
        entry[f"{peer}_max_recall"] = max(r["recall_at_10"] for r in sweep)
        entry[f"{peer}_qps_at_planner_recall"] = at
        entry[f"ratio_vs_{peer}"] = planner[measure] / at if np.isfinite(at) else None


# Planner method prefix -> (its fixed strategies, the recall a fixed strategy must reach given the
# planner's, the peers with the knob their sweep varies).
FAMILIES = {
    "ours_hnsw": (
        OURS_FIXED,
        lambda planner: RECALL_FLOOR,
        (("faiss_hnsw", "ef"), ("hnswlib", "ef")),
    ),
    "ours_ivfpq": (
        OURS_IVF_FIXED,
        lambda planner: planner - IVF_RECALL_SLACK,
        (("faiss_ivfpq", "nprobe"),),
    ),
}


def summarize(rows: list[dict], ours: str, measure: str = "qps") -> list[dict]:
    """Per (shape, selectivity): our planner vs the best fixed strategy (HNSW: recall >=
    RECALL_FLOOR; IVF-PQ: within IVF_RECALL_SLACK of the planner's) and vs each peer at the
    planner's recall. ``measure``: ``"qps"`` (wall clock: the figure on an idle machine) or
    ``"cpu_qps"`` (process CPU time: steadier on a shared machine, but it charges our calls for
    numba worker threads that spin after a parallel region)."""
    fixed_names, floor, peers = FAMILIES[ours]
    out = []
    for group, by, planner, entry in _cells(rows, f"{ours}:planner", measure):
        fixed = [by[f"{ours}:{s}"] for s in fixed_names if f"{ours}:{s}" in by]
        _best_fixed(entry, fixed, planner, measure, floor(planner["recall_at_10"]))
        for peer, knob in peers:
            _peer_at(entry, group, planner, measure, peer, knob)
        out.append(entry)
    return out


def print_summary(summary: list[dict], title: str, peers: tuple[str, ...]) -> None:
    """The planner's cells beside the best fixed strategy and the peers (a peer's ratio is ``-``
    when its sweep never reaches the planner's recall: its ``max_recall`` column says how far)."""
    if summary:
        print(f"\n{title} ({summary[0]['measure']})")
        columns = [
            "shape",
            "selectivity",
            "planner_recall",
            "planner_qps",
            "best_fixed",
            "ratio_vs_best_fixed",
        ]
        print(
            format_table(
                summary, columns + [c for p in peers for c in (f"ratio_vs_{p}", f"{p}_max_recall")]
            )
        )


def build_indexes(args, x, attrs, wanted) -> tuple[dict, dict]:
    """Ours (HNSW, optionally IVF-PQ) and the peers the --methods select; returns (indexes, build seconds)."""
    n, d = x.shape
    columns = {c: attrs[c] for c in COLUMNS}
    built, seconds = {}, {}
    t0 = time.perf_counter()
    # Unset knobs keep the class defaults (what a user gets).
    knobs = {
        "M": args.M,
        "ef_construction": args.ef_construction,
        "ef_search": args.ef,
        "storage": args.storage,
    }
    built["ours_hnsw"] = vs.HNSWIndex(
        d, "cosine", **{key: v for key, v in knobs.items() if v is not None}
    )
    # The peers are built with the same M and ef_construction.
    args.M, args.ef_construction = built["ours_hnsw"].M, built["ours_hnsw"].ef_construction
    built["ours_hnsw"].add(x, attributes=columns, progress=False)
    seconds["ours_hnsw"] = time.perf_counter() - t0
    if wanted("hnswlib"):
        t0 = time.perf_counter()
        hl = hnswlib.Index(space="ip", dim=d)
        hl.init_index(max_elements=n, M=args.M, ef_construction=args.ef_construction, random_seed=0)
        hl.add_items(x, np.arange(n), num_threads=os.cpu_count() or 1)
        hl.set_num_threads(1)
        built["hnswlib"], seconds["hnswlib"] = hl, time.perf_counter() - t0
    if wanted("faiss_hnsw"):
        t0 = time.perf_counter()
        fh = faiss.IndexHNSWFlat(d, args.M, faiss.METRIC_INNER_PRODUCT)
        fh.hnsw.efConstruction = args.ef_construction
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        fh.add(x)
        faiss.omp_set_num_threads(1)
        built["faiss_hnsw"], seconds["faiss_hnsw"] = fh, time.perf_counter() - t0
    if args.ivf and wanted("ours_ivfpq"):
        t0 = time.perf_counter()
        ivf = vs.IVFPQIndex(
            d,
            "cosine",
            nlist=args.nlist,
            m=args.pq_m,
            nprobe=args.nprobe,
            keep_vectors=args.ivf_rerank > 0,
        )
        ivf.train(x)
        ivf.add(x, attributes=columns)
        built["ours_ivfpq"], seconds["ours_ivfpq"] = ivf, time.perf_counter() - t0
    if args.ivf and wanted("faiss_ivfpq"):
        t0 = time.perf_counter()
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        fivf = faiss.IndexIVFPQ(
            faiss.IndexFlatIP(d), d, args.nlist, args.pq_m, 8, faiss.METRIC_INNER_PRODUCT
        )
        fivf.train(x)
        if (
            args.ivf_rerank > 0
        ):  # wrapped before add: the refine index stores the vectors as they are added
            built["faiss_ivfpq_base"], fivf = (
                fivf,
                faiss.IndexRefineFlat(fivf),
            )  # the wrapper points to the base
            fivf.k_factor = float(args.ivf_rerank)
        fivf.add(x)
        faiss.omp_set_num_threads(1)
        built["faiss_ivfpq"], seconds["faiss_ivfpq"] = fivf, time.perf_counter() - t0
    return built, seconds


class SelectorCache:
    """faiss IDSelectorBitmap per mask (a precomputed bool array: faiss is not charged for evaluating
    the predicate), in an LRU of the same capacity as our compiled-filter cache: a filter repeated
    across queries is packed once, as ours is compiled once; per-query filters are packed per call.
    ``get`` returns ``(mask, bits, selector)``: hold it during the search (the selector points into bits)."""

    def __init__(self, n: int):
        self.n, self.entries = n, collections.OrderedDict()
        self.capacity = min(filter_cache.MAX_ENTRIES, filter_cache.MAX_BYTES // max(n, 1))

    def get(self, mask):
        key = id(mask)
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        bits = np.packbits(mask, bitorder="little")
        entry = (mask, bits, faiss.IDSelectorBitmap(self.n, faiss.swig_ptr(bits)))
        if self.capacity > 0:
            self.entries[key] = entry
            while len(self.entries) > self.capacity:
                self.entries.popitem(last=False)
        return entry


def methods_for(args, built, q, filters, selectors, k) -> dict:
    """name -> fn(i) returning the ids of query i under its filter."""
    methods = {}
    for strat in ("prefilter", "beam_collect", "filtered_walk", "postfilter", None):
        methods[f"ours_hnsw:{strat or 'planner'}"] = lambda i, s=strat: (
            built["ours_hnsw"].search(q[i], k, where=filters[i][0], strategy=s).ids[0]
        )
    hl, fh, ivf, fivf = (
        built.get(name) for name in ("hnswlib", "faiss_hnsw", "ours_ivfpq", "faiss_ivfpq")
    )
    for ef in [int(e) for e in args.hnswlib_ef.split(",") if e] if hl is not None else []:

        def hl_fn(i, ef=ef):
            hl.set_ef(max(ef, k))
            mask = filters[i][1]
            try:
                labels, _ = hl.knn_query(q[i], k=k, filter=lambda j: bool(mask[j]))
            except RuntimeError:  # fewer than k reachable matches
                labels = np.full((1, 0), -1)
            return np.asarray(labels[0], np.int64)

        methods[f"hnswlib:ef{ef}"] = hl_fn
    for ef in [int(e) for e in args.peer_ef.split(",") if e] if fh is not None else []:

        def fh_fn(i, ef=ef):
            selector = selectors.get(filters[i][1])
            params = faiss.SearchParametersHNSW(sel=selector[2], efSearch=max(ef, k))
            return fh.search(q[i : i + 1], k, params=params)[1][0]

        methods[f"faiss_hnsw:ef{ef}"] = fh_fn
    if ivf is not None:
        ivf_params = {"rerank": args.ivf_rerank} if args.ivf_rerank > 0 else {}
        for strat in ("ivf_masked", "prefilter", None):
            methods[f"ours_ivfpq:{strat or 'planner'}"] = lambda i, s=strat: ivf.search(
                q[i], k, where=filters[i][0], strategy=s, **ivf_params
            ).ids[0]
    for nprobe in (
        [int(e) for e in args.ivf_peer_nprobe.split(",") if e] if fivf is not None else []
    ):

        def fivf_fn(i, nprobe=nprobe):
            selector = selectors.get(filters[i][1])
            params = faiss.SearchParametersIVF(sel=selector[2], nprobe=nprobe)
            if args.ivf_rerank > 0:
                params = faiss.IndexRefineSearchParameters(
                    k_factor=float(args.ivf_rerank), base_index_params=params
                )
            return fivf.search(q[i : i + 1], k, params=params)[1][0]

        methods[f"faiss_ivfpq:nprobe{nprobe}"] = fivf_fn
    prefixes = [p for p in args.methods.split(",") if p]
    return {
        name: fn
        for name, fn in methods.items()
        if not prefixes or any(name.startswith(p) for p in prefixes)
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    wordnet.add_data_argument(parser)
    parser.add_argument("--n", type=int, default=None, help="database rows (default: all)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--part",
        choices=("full", "tuning", "held-out"),
        default="full",
        help="database rows: all of train.npy, or its tuning (first 80%%) / held-out (last 20%%) part",
    )
    parser.add_argument(
        "--query-kind", choices=("id", "ood"), default="id", help="test_id or test_ood queries"
    )
    parser.add_argument(
        "--M", type=int, default=None, help="default: the class default (the peers too)"
    )
    parser.add_argument(
        "--storage",
        choices=("lvq8", "float32"),
        default=None,
        help="our HNSW's storage (default: the class default, lvq8 walk + float32 re-rank)",
    )
    parser.add_argument(
        "--ef-construction",
        type=int,
        default=None,
        help="default: the class default (the peers too)",
    )
    parser.add_argument(
        "--ef", type=int, default=None, help="our ef_search (default: the class default)"
    )
    parser.add_argument(
        "--peer-ef", default="16,32,64,128,256,512", help="efSearch sweep for faiss HNSW"
    )
    parser.add_argument(
        "--hnswlib-ef",
        default="64,256",
        help="efSearch sweep for hnswlib (its Python filter callback is slow)",
    )
    parser.add_argument(
        "--summary-measure",
        choices=("qps", "cpu_qps"),
        default="qps",
        help="QPS figure of the summary: wall clock (idle machine) or process CPU time (shared machine)",
    )
    parser.add_argument(
        "--no-filter-cache",
        action="store_true",
        help="disable our compiled-filter cache (every call compiles its predicate)",
    )
    parser.add_argument("--shapes", default="random,correlated,anti,real")
    parser.add_argument(
        "--selectivities",
        default=",".join(map(str, SELECTIVITIES)),
        help="selectivities of the random/correlated/anti shapes",
    )
    parser.add_argument("--ivf", action="store_true", help="also IVF-PQ (ours vs faiss IndexIVFPQ)")
    parser.add_argument("--nlist", type=int, default=512)
    parser.add_argument("--pq-m", type=int, default=48)
    # nprobe 96 / re-rank 12: the unfiltered recall@10 (about 0.97 on both sides) leaves room for the
    # 0.95 floor under filters; at nprobe 16 it is 0.905, so no filtered cell can reach 0.95.
    parser.add_argument("--nprobe", type=int, default=96)
    parser.add_argument(
        "--ivf-rerank",
        type=int,
        default=12,
        help="IVF-PQ re-rank factor: ours keeps the vectors and re-scores k * R ADC candidates, "
        "faiss wraps its index in IndexRefineFlat(k_factor=R); 0: ADC scores only",
    )
    parser.add_argument(
        "--ivf-peer-nprobe",
        default="48,64,96,128,192,256",
        help="nprobe sweep for faiss IndexIVFPQ (compared at our IVF planner's recall)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="timed passes per method, the methods of a cell interleaved; the best is reported",
    )
    parser.add_argument(
        "--methods",
        default="",
        help="only methods whose name starts with one of these (comma list)",
    )
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parent / "results" / "bench_filtered.json")
    )
    args = parser.parse_args()
    k = args.k
    results = ResultsFile(args.out, args, script="bench_filtered")
    x, q, attrs, direction = load(args)
    n = x.shape[0]
    faiss.omp_set_num_threads(1)
    print(
        f"data: {n} x {x.shape[1]}, {q.shape[0]} queries, k={k}; load average {results.loadavg_start}"
    )
    prefixes = [p for p in args.methods.split(",") if p]
    built, seconds = build_indexes(
        args,
        x,
        attrs,
        lambda name: (
            not prefixes or any(name.startswith(p) or p.startswith(name) for p in prefixes)
        ),
    )
    ours = built["ours_hnsw"]
    results.settings.update(
        M=ours.M,
        ef_construction=ours.ef_construction,
        ef=ours.ef_search,
        storage=ours.storage,
        n_rows=n,
        n_queries=int(q.shape[0]),
    )
    for name, build_s in seconds.items():
        results.add({"section": "build", "method": name, "build_s": build_s})
    print("build seconds:", {name: round(v, 1) for name, v in seconds.items()})
    if args.no_filter_cache:
        filter_cache.MAX_ENTRIES = 0
    selectors = SelectorCache(n)
    for shape in args.shapes.split(","):
        selectors.entries.clear()
        levels = (
            real_filters(attrs)
            if shape == "real"
            else [(float(s), None) for s in args.selectivities.split(",") if s]
        )
        for level in levels:
            filters = (
                [level] * q.shape[0]
                if shape == "real"
                else filters_for(shape, level[0], x, q, attrs, direction)
            )
            sel = float(level[1].mean()) if shape == "real" else level[0]
            truth = filtered_exact_neighbors(x, q, [mask for _, mask in filters], k, "cosine")[0]
            matches = int(np.mean([m.sum() for _, m in filters]))
            methods = methods_for(args, built, q, filters, selectors, k)
            calls = {
                name: (lambda fn=fn: [fn(i) for i in range(q.shape[0])])
                for name, fn in methods.items()
            }
            for name, timing in time_interleaved(calls, args.repeats).items():
                if timing.error:
                    raise RuntimeError(f"{name} ({shape}, {sel:.4%}): {timing.error}")
                cell = {"section": "search", "shape": shape, "selectivity": sel, "matches": matches}
                measured = {
                    "recall_at_10": recall_at_k(pad_ids(timing.output, k), truth),
                    "qps": timing.rate(len(q)),
                    "cpu_qps": timing.rate(len(q), clock="cpu"),
                }
                results.add(cell | {"method": name} | measured, show=SHOWN)
            print()
    titles = {
        "ours_hnsw": "planner vs best fixed strategy (recall >= 0.95) and vs peers at the planner's recall",
        "ours_ivfpq": "IVF-PQ planner vs its best fixed strategy and vs faiss IndexIVFPQ at the planner's recall",
    }
    for ours, title in titles.items():
        results.summary[ours] = summarize(results.rows, ours, args.summary_measure)
        print_summary(results.summary[ours], title, tuple(peer for peer, _ in FAMILIES[ours][2]))
    print(f"wrote {results.write()}")


if __name__ == "__main__":
    main()
