"""Hybrid search through the Collection: hit@1/hit@10 and one-query-per-call latency of dense, keyword and fused.

On the WordNet set (``texts.json.gz`` documents ``"lemmas: gloss"``, 384-d MiniLM vectors, cosine)
with the 1,000 out-of-distribution queries (a single lemma; the relevant document is the synset it
came from, ``ood_target``), every query goes through ``Collection.query`` one at a time:

* ``dense``: ``query_embeddings`` only; ``keyword``: ``search_text`` only (BM25);
* ``rrf``: both, reciprocal rank fusion with the library defaults (rank constant 60, equal
  weights, ``fetch_k = max(n_results, 50)``) — nothing tuned;
* ``rrf_tuned`` / ``relative_score``: the RRF leg weight and Weaviate-style ``alpha`` (and
  ``fetch_k``) chosen on the *tuning* queries (the first ``--tune`` OOD queries) by hit@1 + hit@10
  of an offline grid over the two legs' top-100 lists, then reported on the *held-out* queries (the
  others) separately. Held-out figures are the ones to quote.

The modes run in turn for each query (a slow spell of the shared machine lands on all of them).
HNSW is measured at its default search width (``ef=64``) and a wider one (``--ef``): the dense
leg of these one-word (out-of-distribution) queries loses hit@10 to the graph search at ef=64, and
fusion can only be as good as its legs; ``--index flat`` gives the exact dense leg.

Then the keyword index's update cost at the full collection size: one-record ``Collection.add``
calls alternating with and without a document (the difference is the text side; the vector index
does the same work), one-record ``delete`` calls, and the text side alone (``RecordTable``:
records + BM25) inserting and removing one document per call.

    python bench/bench_hybrid.py [--index hnsw] [--n 116659] [--tune 500] [--updates 2000]

Writes bench/results/bench_hybrid.json (date, load average, settings, rows, summary).
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

import numba
import numpy as np

from vecsearch.benchmark import wordnet
from vecsearch.benchmark.evaluation import latency_percentiles
from vecsearch.benchmark.report import format_table
from vecsearch.benchmark.results import ResultsFile, loadavg
from vecsearch.store.collection import Collection
from vecsearch.store.fusion import reciprocal_rank_fusion, relative_score_fusion
from vecsearch.store.records import RecordTable

K = 10
DEPTH = 100  # leg depth of the offline tuning grid
ALPHAS = [round(float(a), 1) for a in np.linspace(0, 1, 11)]
FETCH_KS = [10, 20, 50, 100]
RANK_CONSTANTS = [60, 10]
SHOWN = ("index", "ef", "split", "mode", "hit@1", "hit@10", "p50_ms", "p99_ms", "n")


def hits(found: list[list[int]], targets: np.ndarray) -> dict[str, float]:
    """hit@1 and hit@10: the share of queries whose relevant row is first / in the first 10."""
    h1 = np.mean([bool(f) and f[0] == t for f, t in zip(found, targets)])
    h10 = np.mean([t in f[:K] for f, t in zip(found, targets)])
    return {"hit@1": float(h1), "hit@10": float(h10)}


def build(args: argparse.Namespace, index: str, train: np.ndarray, texts: list[str]) -> tuple[Collection, dict]:
    params = {"M": 16, "ef_construction": 100, "seed": 0} if index == "hnsw" else {}
    col = Collection(index=index, dim=train.shape[1], **params)
    t0 = time.perf_counter()
    for s in range(0, train.shape[0], 4096):
        rows = range(s, min(s + 4096, train.shape[0]))
        col.add([str(r) for r in rows], train[s : rows.stop], documents=[texts[r] for r in rows])
    return col, {"build_s": time.perf_counter() - t0, "loadavg": loadavg()}


def leg_lists(col: Collection, queries: np.ndarray, words: list[str], search: dict) -> tuple[list, list]:
    """Each query's dense and keyword top-DEPTH lists (rows, scores: larger is better), batched."""
    dense, keyword = [], []
    for s in range(0, len(words), 100):
        d = col.query(queries[s : s + 100], n_results=DEPTH, include=["distances"], **search)
        w = col.query(search_text=words[s : s + 100], n_results=DEPTH, include=["scores"])
        dense += [(np.array(ids, np.int64), -np.array(dist)) for ids, dist in zip(d["ids"], d["distances"])]
        keyword += [(np.array(ids, np.int64), np.array([h["keyword_score"] for h in sc]))
                    for ids, sc in zip(w["ids"], w["scores"])]
    return dense, keyword


def fused_rows(dense: list, keyword: list, fusion: str, alpha: float | None, fetch_k: int,
               rank_constant: float = 60) -> list[list[int]]:
    out = []
    for (di, ds), (ki, ks) in zip(dense, keyword):
        legs = [(di[:fetch_k], ds[:fetch_k]), (ki[:fetch_k], ks[:fetch_k])]
        if fusion == "rrf":
            weights = None if alpha is None else (alpha, 1 - alpha)
            res = reciprocal_rank_fusion(legs, weights=weights, rank_constant=rank_constant, k=K)
        else:
            res = relative_score_fusion(legs, weights=(alpha, 1 - alpha), k=K)
        out.append(res.ids.tolist())
    return out


def tune(dense: list, keyword: list, targets: np.ndarray, rf: ResultsFile, tag: dict) -> dict[str, dict]:
    """Grid on the tuning queries; returns the chosen settings per fused mode (ties: the earlier,
    i.e. the library default rank constant 60, equal weights and the shallower fetch)."""
    best: dict[str, tuple[float, dict]] = {}
    grid = [("rrf", a, f, c) for c, a, f in itertools.product(RANK_CONSTANTS, [None, 0.3, 0.4, 0.6, 0.7], FETCH_KS)]
    grid += [("relative_score", a, f, 60) for a, f in itertools.product(ALPHAS, FETCH_KS)]
    for fusion, alpha, fetch_k, constant in grid:
        h = hits(fused_rows(dense, keyword, fusion, alpha, fetch_k, constant), targets)
        setting = {"fusion": fusion, "alpha": alpha, "fetch_k": fetch_k}
        if fusion == "rrf":
            setting["rank_constant"] = constant
        rf.add({"section": "tuning", **tag, **setting, **h})
        mode = "rrf_tuned" if fusion == "rrf" else "relative_score"
        score = h["hit@1"] + h["hit@10"]
        if mode not in best or score > best[mode][0] + 1e-12:
            best[mode] = (score, setting)
    return {mode: setting for mode, (_, setting) in best.items()}


def run_queries(col: Collection, queries: np.ndarray, words: list[str], modes: dict[str, dict],
                search: dict) -> dict[str, dict]:
    """One query per call, the modes in turn per query: found rows, latencies and found_by shares."""
    out = {m: {"found": [], "seconds": [], "found_by": []} for m in modes}
    for i, word in enumerate(words):
        for mode, kwargs in modes.items():
            call = dict(kwargs)
            if call.pop("dense", True):
                call["query_embeddings"] = queries[i]
            if call.pop("keyword", True):
                call["search_text"] = word
            t0 = time.perf_counter()
            res = col.query(n_results=K, include=["distances", "scores"], **call, **search)
            out[mode]["seconds"].append(time.perf_counter() - t0)
            out[mode]["found"].append([int(x) for x in res["ids"][0]])
            out[mode]["found_by"].append(tuple(res["scores"][0][0]["found_by"]) if res["ids"][0] else ())
    return out


def update_cost(col: Collection, train: np.ndarray, texts: list[str], m: int) -> list[dict]:
    """Per-call ``add`` with and without a document (alternating), then ``delete``, at full size."""
    rng = np.random.default_rng(0)
    rows = rng.choice(train.shape[0], size=m, replace=False)
    times: dict[str, list[float]] = {op: [] for op in ("add with document", "add without document",
                                                       "delete with document", "delete without document")}
    for j, r in enumerate(rows.tolist()):
        doc = [texts[r]] if j % 2 == 0 else None
        t0 = time.perf_counter()
        col.add([f"extra-{j}"], train[r : r + 1], documents=doc)
        times["add with document" if doc else "add without document"].append(time.perf_counter() - t0)
    for j in range(m):
        t0 = time.perf_counter()
        col.delete(ids=[f"extra-{j}"])
        times["delete with document" if j % 2 == 0 else "delete without document"].append(time.perf_counter() - t0)
    load = loadavg()
    return [{"section": "update", "op": op, **latency_percentiles(t), "mean_ms": 1e3 * float(np.mean(t)), "n": len(t),
             "loadavg": load} for op, t in times.items()]


def measure(rf: ResultsFile, col: Collection, index: str, ef: int | None, queries: np.ndarray, words: list[str],
            targets: np.ndarray, tune_part: np.ndarray, splits: dict[str, np.ndarray]) -> None:
    """Tune on the tuning queries, then time every mode one query per call and score each split."""
    search = {} if ef is None else {"ef": ef}
    tag = {"index": index, "ef": ef}
    dense, keyword = leg_lists(col, queries, words, search)
    sel = np.flatnonzero(tune_part)
    chosen = tune([dense[i] for i in sel], [keyword[i] for i in sel], targets[sel], rf, tag)
    key = f"{index}" + ("" if ef is None else f"_ef{ef}")
    rf.summary[f"{key}_chosen_on_tuning_queries"] = chosen
    print(f"{key}: chosen on the {sel.size} tuning queries: {chosen}", flush=True)
    modes = {"dense": {"keyword": False}, "keyword": {"dense": False}, "rrf": {},
             "rrf_tuned": dict(chosen["rrf_tuned"]), "relative_score": dict(chosen["relative_score"])}
    measured = run_queries(col, queries, words, modes, search)
    for split, mask in splits.items():
        rows_sel = np.flatnonzero(mask)
        for mode, got in measured.items():
            found = [got["found"][i] for i in rows_sel]
            shares = {}
            if mode not in ("dense", "keyword"):
                by = [got["found_by"][i] for i in rows_sel]
                shares = {f"top1_found_by_{'+'.join(k) or 'none'}": by.count(k) / len(by) for k in set(by)}
            rf.add({"section": "quality", **tag, "split": split, "mode": mode, "settings": modes[mode],
                    **hits(found, targets[rows_sel]), **latency_percentiles(np.asarray(got["seconds"])[rows_sel]),
                    "n": int(rows_sel.size), **shares, "loadavg": loadavg()})
    # the offline fusion of the tuning grid and the Collection agree where the legs are the same
    # (exact dense leg; an HNSW leg fetched at depth 50 instead of 100 may differ: ef grows with k)
    offline = fused_rows(dense, keyword, "rrf", None, 50)
    rf.summary[f"{key}_rrf_offline_equals_collection"] = float(np.mean([a == b for a, b in zip(offline, measured["rrf"]["found"])]))
    held = {r["mode"]: r for r in rf.select(section="quality", split="held-out", **tag)}
    rf.summary[f"{key}_held_out_hybrid_beats_both_legs"] = {
        mode: all(held[mode][m] > max(held[leg][m] for leg in ("dense", "keyword")) for m in ("hit@1", "hit@10"))
        for mode in ("rrf", "rrf_tuned", "relative_score")}
    rf.write()


def keyword_update_cost(texts: list[str], m: int) -> list[dict]:
    """The text side alone (:class:`RecordTable`: records + BM25 index) at full size: one-document
    inserts and removals, as a Collection write applies them."""
    n = len(texts)
    table = RecordTable()
    table.insert(np.arange(n, dtype=np.int64), [str(i) for i in range(n)], texts, [None] * n)
    rows = np.random.default_rng(1).choice(n, size=m, replace=False).tolist()
    adds, removes = [], []
    for j, r in enumerate(rows):
        iid = np.array([n + j], np.int64)
        t0 = time.perf_counter()
        table.insert(iid, [f"extra-{j}"], [texts[r]], [None])
        adds.append(time.perf_counter() - t0)
    for j in range(m):
        iid = np.array([n + j], np.int64)
        t0 = time.perf_counter()
        table.remove(iid)
        removes.append(time.perf_counter() - t0)
    load = loadavg()
    return [{"section": "update", "index": "text side (RecordTable)", "op": op, "n_docs": n, **latency_percentiles(t),
             "mean_ms": 1e3 * float(np.mean(t)), "n": m, "loadavg": load}
            for op, t in (("add with document", adds), ("delete with document", removes))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", default="hnsw", help="comma-separated Collection index types (hnsw, flat)")
    parser.add_argument("--n", type=int, default=wordnet.N_TRAIN, help="documents (first n of train)")
    parser.add_argument("--tune", type=int, default=500, help="the first TUNE OOD queries choose the fusion settings")
    parser.add_argument("--updates", type=int, default=2000, help="one-record adds timed (half with a document)")
    parser.add_argument("--threads", type=int, default=1, help="numba threads while querying (build uses all)")
    parser.add_argument("--ef", default="64,256", help="HNSW search widths to measure (64: the default)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_hybrid.json"))
    wordnet.add_data_argument(parser)
    args = parser.parse_args()
    rf = ResultsFile(args.out, args, script="bench_hybrid.py")

    texts = wordnet.load_texts(data_dir=args.data)
    train = wordnet.load_train(args.n, data_dir=args.data)
    all_queries = wordnet.load_queries("ood", data_dir=args.data)
    all_targets = np.asarray(texts["ood_target"], np.int64)
    keep = np.flatnonzero(all_targets < train.shape[0])  # all 1,000 at full size
    queries, targets = all_queries[keep], all_targets[keep]
    words = [texts["test_ood"][i] for i in keep.tolist()]
    tune_part = keep < args.tune
    splits = {"tuning": tune_part, "held-out": ~tune_part, "all": np.ones(keep.size, bool)}

    for index in args.index.split(","):
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        col, info = build(args, index, train, texts["train"])
        rf.add({"section": "build", "index": index, "n": train.shape[0], **info}, show=("section", "index", "build_s"))
        numba.set_num_threads(args.threads)
        for ef in [int(e) for e in args.ef.split(",")] if index == "hnsw" else [None]:
            measure(rf, col, index, ef, queries, words, targets, tune_part, splits)
        if index != "flat":  # flat add/remove copy the whole array: they would time the flat index
            for row in update_cost(col, train, texts["train"], args.updates):
                rf.add({**row, "index": index, "n_docs": col.count()}, show=("index", "op", "p50_ms", "p99_ms"))
        del col
    for row in keyword_update_cost(texts["train"][: train.shape[0]], args.updates):
        rf.add(row, show=("index", "op", "p50_ms", "p99_ms"))
    quality = [r for r in rf.rows if r["section"] == "quality"]
    print(format_table(quality, SHOWN))
    print({k: v for k, v in rf.summary.items()})
    print(f"wrote {rf.write()} (load {os.getloadavg()})")


if __name__ == "__main__":
    main()
