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
Then the keyword index's update cost: one-record ``add`` calls alternating with and without a
document (the difference is the BM25 indexing; the vector index and the records are the same
work), then one-record ``delete`` calls, at the full collection size.

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

K = 10
DEPTH = 100  # leg depth of the offline tuning grid
ALPHAS = [round(float(a), 1) for a in np.linspace(0, 1, 11)]
FETCH_KS = [10, 20, 50, 100]
SHOWN = ("index", "split", "mode", "hit@1", "hit@10", "p50_ms", "p99_ms", "n")


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


def leg_lists(col: Collection, queries: np.ndarray, words: list[str]) -> tuple[list, list]:
    """Each query's dense and keyword top-DEPTH lists (rows, scores: larger is better), batched."""
    dense, keyword = [], []
    for s in range(0, len(words), 100):
        d = col.query(queries[s : s + 100], n_results=DEPTH, include=["distances"])
        w = col.query(search_text=words[s : s + 100], n_results=DEPTH, include=["scores"])
        dense += [(np.array(ids, np.int64), -np.array(dist)) for ids, dist in zip(d["ids"], d["distances"])]
        keyword += [(np.array(ids, np.int64), np.array([h["keyword_score"] for h in sc]))
                    for ids, sc in zip(w["ids"], w["scores"])]
    return dense, keyword


def fused_rows(dense: list, keyword: list, fusion: str, alpha: float | None, fetch_k: int) -> list[list[int]]:
    out = []
    for (di, ds), (ki, ks) in zip(dense, keyword):
        legs = [(di[:fetch_k], ds[:fetch_k]), (ki[:fetch_k], ks[:fetch_k])]
        if fusion == "rrf":
            res = reciprocal_rank_fusion(legs, weights=None if alpha is None else (alpha, 1 - alpha), k=K)
        else:
            res = relative_score_fusion(legs, weights=(alpha, 1 - alpha), k=K)
        out.append(res.ids.tolist())
    return out


def tune(dense: list, keyword: list, targets: np.ndarray, rf: ResultsFile, index: str) -> dict[str, dict]:
    """Grid on the tuning queries; returns the chosen settings per fused mode."""
    best: dict[str, tuple[float, dict]] = {}
    grid = [("rrf", a, f) for a, f in itertools.product([None, 0.3, 0.4, 0.5, 0.6, 0.7], FETCH_KS)]
    grid += [("relative_score", a, f) for a, f in itertools.product(ALPHAS, FETCH_KS)]
    for fusion, alpha, fetch_k in grid:
        h = hits(fused_rows(dense, keyword, fusion, alpha, fetch_k), targets)
        rf.add({"section": "tuning", "index": index, "fusion": fusion, "alpha": alpha, "fetch_k": fetch_k, **h})
        mode = "rrf_tuned" if fusion == "rrf" else "relative_score"
        score = h["hit@1"] + h["hit@10"]
        if mode not in best or score > best[mode][0] + 1e-12:
            best[mode] = (score, {"fusion": fusion, "alpha": alpha, "fetch_k": fetch_k})
    return {mode: setting for mode, (_, setting) in best.items()}


def run_queries(col: Collection, queries: np.ndarray, words: list[str], modes: dict[str, dict]) -> dict[str, dict]:
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
            res = col.query(n_results=K, include=["distances", "scores"], **call)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", default="hnsw", help="comma-separated Collection index types (hnsw, flat)")
    parser.add_argument("--n", type=int, default=wordnet.N_TRAIN, help="documents (first n of train)")
    parser.add_argument("--tune", type=int, default=500, help="the first TUNE OOD queries choose the fusion settings")
    parser.add_argument("--updates", type=int, default=2000, help="one-record adds timed (half with a document)")
    parser.add_argument("--threads", type=int, default=1, help="numba threads while querying (build uses all)")
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
        dense, keyword = leg_lists(col, queries, words)
        sel = np.flatnonzero(tune_part)
        chosen = tune([dense[i] for i in sel], [keyword[i] for i in sel], targets[sel], rf, index)
        rf.summary[f"{index}_chosen_on_tuning_queries"] = chosen
        print(f"{index}: chosen on the {sel.size} tuning queries: {chosen}", flush=True)
        modes = {"dense": {"keyword": False}, "keyword": {"dense": False}, "rrf": {},
                 "rrf_tuned": {k: v for k, v in chosen["rrf_tuned"].items()},
                 "relative_score": {k: v for k, v in chosen["relative_score"].items()}}
        measured = run_queries(col, queries, words, modes)
        for split, mask in splits.items():
            rows_sel = np.flatnonzero(mask)
            for mode, got in measured.items():
                found = [got["found"][i] for i in rows_sel]
                shares = {}
                if mode not in ("dense", "keyword"):
                    by = [got["found_by"][i] for i in rows_sel]
                    shares = {f"top1_found_by_{'+'.join(k) or 'none'}": by.count(k) / len(by) for k in set(by)}
                rf.add({"section": "quality", "index": index, "split": split, "mode": mode, "settings": modes[mode],
                        **hits(found, targets[rows_sel]), **latency_percentiles(np.asarray(got["seconds"])[rows_sel]),
                        "n": int(rows_sel.size), **shares, "loadavg": loadavg()})
        # the offline fusion of the tuning grid and the Collection agree (same legs, same code)
        offline = fused_rows(dense, keyword, "rrf", None, 50)
        rf.summary[f"{index}_rrf_offline_equals_collection"] = float(np.mean([a == b for a, b in zip(offline, measured["rrf"]["found"])]))
        held = {r["mode"]: r for r in rf.select(section="quality", index=index, split="held-out")}
        legs = ("dense", "keyword")
        rf.summary[f"{index}_held_out_hybrid_beats_both_legs"] = {
            mode: all(held[mode][m] > max(held[leg][m] for leg in legs) for m in ("hit@1", "hit@10"))
            for mode in ("rrf", "rrf_tuned", "relative_score")}
        for row in update_cost(col, train, texts["train"], args.updates):
            rf.add({**row, "index": index, "n_docs": col.count()}, show=("index", "op", "p50_ms", "p99_ms"))
        rf.write()
        del col
    quality = [r for r in rf.rows if r["section"] == "quality"]
    print(format_table(quality, SHOWN))
    print({k: v for k, v in rf.summary.items()})
    print(f"wrote {rf.write()} (load {os.getloadavg()})")


if __name__ == "__main__":
    main()
