"""Keyword (BM25) leg for hybrid retrieval: our numba KeywordIndex vs bm25s vs tantivy, and fusion quality.

On the 116,659 WordNet texts (``texts.json.gz``: ``train``; queries ``test_ood``: 1,000 single
words whose source synset is ``ood_target[i]``, and ``test_id``: 1,000 held-out synset texts),
each engine in a fresh process (so its RSS growth is its own), k1=1.2, b=0.75, k=10:

1. build: index every document from raw text, tokenization included;
2. incremental updates, the Collection's pattern: one document per call, searchable when the
   call returns (ours: ``add``/``remove``; tantivy: add + commit + reload, in RAM and on disk;
   bm25s has no incremental add: the only way is a full re-index, timed as such);
3. query latency, one query per call: p50/p99 over the OOD words and over the ID texts;
4. memory: RSS growth over the build, after ``malloc_trim`` (and ours: ``KeywordIndex.nbytes()``;
   bm25s keeps the token lists it must re-index from, so its RSS includes them);
5. persistence: ours ``get_state``/``from_state`` (numpy arrays for the snapshot); bm25s
   ``save``/``load``; tantivy's own segment directory;
6. quality: OOD hit@1/hit@10 of each engine; then dense (exact inner product of the MiniLM
   vectors, numpy) and hybrid: RRF and relative-score fusion (alpha grid) of the dense and our
   keyword top-``--depth`` lists.

bm25s is given our tokenizer's tokens, so its rankings should equal ours (its "lucene" BM25 is
ours without the constant (k1 + 1) factor): a cross-check, reported as ``top10_agreement``.
tantivy tokenizes with its own default analyzer (split on non-alphanumeric, lower-case).

    python bench/bench_keyword.py [--engines ours,bm25s,tantivy] [--incremental 30000]

Writes bench/results/bench_keyword.json (settings, figures, ``os.getloadavg()`` per section).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import gc
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path("/work/shared/data/wordnet-minilm")
HERE = Path(__file__).resolve().parent
K = 10


def rss_bytes() -> int:
    """Resident set size after ``gc.collect()`` and glibc's ``malloc_trim(0)`` (freed heap pages returned)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def load_texts() -> dict:
    with gzip.open(DATA / "texts.json.gz", "rt") as fh:
        return json.load(fh)


def percentiles_us(seconds: list[float]) -> dict:
    arr = np.asarray(seconds) * 1e6
    return {"p50_us": float(np.percentile(arr, 50)), "p99_us": float(np.percentile(arr, 99)),
            "mean_us": float(arr.mean()), "max_us": float(arr.max()), "n": int(arr.size)}


def hits(found: list[list[int]], targets: list[int]) -> dict:
    h1 = sum(1 for f, t in zip(found, targets) if f[:1] == [t])
    h10 = sum(1 for f, t in zip(found, targets) if t in f[:10])
    return {"hit@1": h1 / len(targets), "hit@10": h10 / len(targets)}


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def time_queries(search, queries: list[str]) -> tuple[dict, list[list[int]]]:
    """One query per call; returns (latency percentiles + load, found ids per query)."""
    for q in queries[:20]:
        search(q)  # warm caches and lazy compilation
    lat, found = [], []
    for q in queries:
        t = time.perf_counter()
        ids = search(q)
        lat.append(time.perf_counter() - t)
        found.append(ids)
    return {**percentiles_us(lat), "loadavg": os.getloadavg()}, found


# ---- engines (each runs in its own process) ------------------------------------------------------
def run_ours(texts: dict, args: argparse.Namespace) -> dict:
    from vecsearch.store.keyword import KeywordIndex

    train, n = texts["train"], len(texts["train"])
    out: dict = {"engine": "ours", "version": "vecsearch.store.keyword",
                 "persistence_fit": "get_state(): JSON header + 6 numpy arrays (forward index, terms) for the snapshot; "
                                    "WAL replay = add/remove per record, O(tokens) each"}
    warm = KeywordIndex()  # compile (or load from numba's cache) before timing
    warm.add(np.arange(50), train[:50])
    warm.search("dog", K)
    warm.search("dog", K, allowed=np.arange(10))
    warm.remove(np.arange(5))
    warm.compact()
    KeywordIndex.from_state(*warm.get_state())

    gc.collect()
    rss0 = rss_bytes()
    t = time.perf_counter()
    index = KeywordIndex()
    index.add(np.arange(n, dtype=np.int64), train)
    out["build_s"] = time.perf_counter() - t
    out["build_loadavg"] = os.getloadavg()
    gc.collect()
    out["rss_growth_bytes"] = rss_bytes() - rss0
    out["nbytes"] = index.nbytes()
    out["n_terms"], out["n_postings"] = index.n_terms, index.n_postings

    def search(q: str) -> list[int]:
        return index.search(q, K)[0].tolist()

    out["query_ood"], found = time_queries(search, texts["test_ood"])
    out["quality_ood"] = hits(found, texts["ood_target"])
    out["query_id"], found_id = time_queries(search, texts["test_id"])
    out["found_ood"], out["found_id"] = found, found_id
    # Filtered: a random 10% of the documents allowed (as a metadata filter would give).
    allowed = np.sort(np.random.default_rng(0).choice(n, n // 10, replace=False)).astype(np.int64)
    out["query_ood_allowed10pct"], _ = time_queries(lambda q: index.search(q, K, allowed=allowed)[0].tolist(),
                                                    texts["test_ood"])

    # State for the snapshot, and back.
    t = time.perf_counter()
    header, arrays = index.get_state()
    get_s = time.perf_counter() - t
    t = time.perf_counter()
    restored = KeywordIndex.from_state(header, arrays)
    from_s = time.perf_counter() - t
    same = all(np.array_equal(restored.search(q, K)[0], index.search(q, K)[0]) for q in texts["test_ood"][:200])
    out["state"] = {"get_state_s": get_s, "from_state_s": from_s, "array_bytes": int(sum(a.nbytes for a in arrays.values())),
                    "arrays": {k: [str(a.dtype), list(a.shape)] for k, a in arrays.items()},
                    "same_results_after_round_trip": bool(same), "loadavg": os.getloadavg()}
    del restored

    # Incremental: the last `m` documents added one per call to an index of the others, then removed one per call.
    m = min(args.incremental, n // 2)
    base = KeywordIndex()
    base.add(np.arange(n - m, dtype=np.int64), train[: n - m])
    add_lat, del_lat = [], []
    for i in range(n - m, n):
        ids, doc = np.array([i], np.int64), [train[i]]
        t = time.perf_counter()
        base.add(ids, doc)
        add_lat.append(time.perf_counter() - t)
    out["incremental_add"] = {**percentiles_us(add_lat), "start_docs": n - m, "loadavg": os.getloadavg()}
    out["query_ood_after_incremental"], found_inc = time_queries(search_fn(base), texts["test_ood"])
    out["incremental_same_results"] = found_inc == found
    for i in range(n - m, n):
        ids = np.array([i], np.int64)
        t = time.perf_counter()
        base.remove(ids)
        del_lat.append(time.perf_counter() - t)
    out["incremental_remove"] = {**percentiles_us(del_lat), "loadavg": os.getloadavg()}
    del base

    # Whole corpus one document per call from empty (the Collection's ingest path), tail included.
    inc = KeywordIndex()
    t = time.perf_counter()
    for i in range(n):
        inc.add(np.array([i], np.int64), [train[i]])
    total = time.perf_counter() - t
    out["one_per_call_build"] = {"total_s": total, "per_doc_us": total / n * 1e6, "loadavg": os.getloadavg(),
                                 "tail_postings_at_end": int(inc._tail_next.size)}
    out["query_ood_one_per_call_index"], found_pc = time_queries(search_fn(inc), texts["test_ood"])
    out["one_per_call_same_results"] = found_pc == found
    return out


def search_fn(index):
    return lambda q: index.search(q, K)[0].tolist()


def run_bm25s(texts: dict, args: argparse.Namespace) -> dict:
    import bm25s

    from vecsearch.store.keyword import Tokenizer

    tok = Tokenizer()
    train = texts["train"]
    out: dict = {"engine": "bm25s", "version": getattr(bm25s, "__version__", "?"), "method": "lucene", "backend": "numpy"}
    out["persistence_fit"] = ("save(): npy score matrix + JSON vocab, fits a snapshot; but any add/delete "
                              "(live or replayed from the WAL) needs a full re-index, so replay must batch to one rebuild")
    # (query_*: the default numpy backend; query_*_numba_backend: backend="numba")
    gc.collect()
    rss0 = rss_bytes()
    t = time.perf_counter()
    tokens = [tok(x) for x in train]
    tokenize_s = time.perf_counter() - t
    t = time.perf_counter()
    retriever = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    retriever.index(tokens, show_progress=False)
    index_s = time.perf_counter() - t
    out["build_s"] = tokenize_s + index_s
    out["build_index_only_s"] = index_s
    out["build_loadavg"] = os.getloadavg()
    gc.collect()
    out["rss_growth_bytes"] = rss_bytes() - rss0  # includes the kept token lists (needed to re-index)
    out["score_array_bytes"] = int(sum(v.nbytes for v in retriever.scores.values() if isinstance(v, np.ndarray)))

    def search(q: str) -> list[int]:
        docs, scores = retriever.retrieve([tok(q) or [""]], k=K, show_progress=False, n_threads=0)
        return [int(d) for d, s in zip(docs[0], scores[0]) if s > 0]

    out["query_ood"], found = time_queries(search, texts["test_ood"])
    out["quality_ood"] = hits(found, texts["ood_target"])
    out["query_id"], found_id = time_queries(search, texts["test_id"])
    out["found_ood"], out["found_id"] = found, found_id

    # bm25s's faster retrieval backend (numba top-k); its compile time is kept out of the timings.
    fast = bm25s.BM25(k1=1.2, b=0.75, method="lucene", backend="numba")
    fast.index(tokens, show_progress=False)
    t = time.perf_counter()
    fast.retrieve([tok("warm up")], k=K, show_progress=False, n_threads=0)
    out["numba_backend_first_query_s"] = time.perf_counter() - t

    def search_fast(q: str) -> list[int]:
        docs, scores = fast.retrieve([tok(q) or [""]], k=K, show_progress=False, n_threads=0)
        return [int(d) for d, s in zip(docs[0], scores[0]) if s > 0]

    out["query_ood_numba_backend"], _ = time_queries(search_fast, texts["test_ood"])
    out["query_id_numba_backend"], _ = time_queries(search_fast, texts["test_id"])

    # No incremental add: a new document changes N, avgdl and df, and bm25s stores precomputed
    # per-(doc, term) scores, so adding (or deleting) one document means indexing all of them again.
    rebuilds = []
    for r in range(args.bm25s_rebuilds):
        extra = tok(texts["test_id"][r])
        t = time.perf_counter()
        again = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
        again.index(tokens + [extra], show_progress=False)
        rebuilds.append(time.perf_counter() - t)
        del again
    out["incremental_add"] = {**percentiles_us(rebuilds), "how": "full re-index of the cached tokens per added document",
                              "loadavg": os.getloadavg()}
    save_dir = Path(tempfile.mkdtemp(prefix="bench-bm25s-"))
    try:
        t = time.perf_counter()
        retriever.save(str(save_dir), show_progress=False)
        save_s = time.perf_counter() - t
        t = time.perf_counter()
        bm25s.BM25.load(str(save_dir))
        load_s = time.perf_counter() - t
        out["state"] = {"save_s": save_s, "load_s": load_s, "dir_bytes": dir_bytes(save_dir),
                        "files": sorted(p.name for p in save_dir.iterdir()), "loadavg": os.getloadavg()}
    finally:
        shutil.rmtree(save_dir, ignore_errors=True)
    return out


_WORD = re.compile(r"\w+")


def run_tantivy(texts: dict, args: argparse.Namespace) -> dict:
    import tantivy

    train, n = texts["train"], len(texts["train"])
    out: dict = {"engine": "tantivy", "version": getattr(tantivy, "__version__", "?"), "writer_threads": 1,
                 "persistence_fit": "own segment directory with its own commits (not numpy arrays): copy it into "
                                    "each snapshot or rebuild it from the documents at open; visibility needs "
                                    "commit + reload per write"}

    def make_schema():
        sb = tantivy.SchemaBuilder()
        sb.add_integer_field("doc_id", stored=True, indexed=True, fast=True)
        sb.add_text_field("body", stored=False, tokenizer_name="default")
        return sb.build()

    def build(path: str | None, docs: range) -> tuple:
        if path:
            Path(path).mkdir(parents=True)
        index = tantivy.Index(make_schema(), path=path) if path else tantivy.Index(make_schema())
        writer = index.writer(heap_size=128_000_000, num_threads=1)
        for i in docs:
            writer.add_document(tantivy.Document(doc_id=i, body=train[i]))
        writer.commit()
        writer.wait_merging_threads()
        writer = index.writer(heap_size=128_000_000, num_threads=1)
        index.reload()
        return index, writer

    def searcher_fn(index):
        searcher = index.searcher()

        def search(q: str) -> list[int]:
            words = " ".join(w.lower() for w in _WORD.findall(q))
            if not words:
                return []
            hits_ = searcher.search(index.parse_query(words, ["body"]), K).hits
            return [searcher.doc(addr)["doc_id"][0] for _, addr in hits_]

        return search

    tmp = Path(tempfile.mkdtemp(prefix="bench-tantivy-"))
    try:
        gc.collect()
        rss0 = rss_bytes()
        t = time.perf_counter()
        index, writer = build(str(tmp / "full"), range(n))
        out["build_s"] = time.perf_counter() - t
        out["build_loadavg"] = os.getloadavg()
        gc.collect()
        out["rss_growth_bytes"] = rss_bytes() - rss0
        out["state"] = {"dir_bytes": dir_bytes(tmp / "full"), "format": "tantivy segment files + meta.json"}
        search = searcher_fn(index)
        out["query_ood"], found = time_queries(search, texts["test_ood"])
        out["quality_ood"] = hits(found, texts["ood_target"])
        out["query_id"], found_id = time_queries(search, texts["test_id"])
        out["found_ood"], out["found_id"] = found, found_id
        del writer, index

        # One document per call, searchable on return: add + commit + reload (RAM and on disk).
        m = args.tantivy_incremental
        for where in ("ram", "disk"):
            index, writer = build(str(tmp / "inc") if where == "disk" else None, range(n - m))
            add_lat = []
            for i in range(n - m, n):
                t = time.perf_counter()
                writer.add_document(tantivy.Document(doc_id=i, body=train[i]))
                writer.commit()
                index.reload()
                add_lat.append(time.perf_counter() - t)
            out[f"incremental_add_{where}"] = {**percentiles_us(add_lat), "start_docs": n - m, "loadavg": os.getloadavg()}
            del_lat = []
            for i in range(n - m, n):
                t = time.perf_counter()
                writer.delete_documents_by_term("doc_id", i)
                writer.commit()
                index.reload()
                del_lat.append(time.perf_counter() - t)
            out[f"incremental_remove_{where}"] = {**percentiles_us(del_lat), "loadavg": os.getloadavg()}
            out[f"segments_after_incremental_{where}"] = index.searcher().num_segments
            writer.wait_merging_threads()
            del writer, index
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# ---- hybrid (parent process) ---------------------------------------------------------------------
def dense_top(depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-``depth`` of test_ood against train (float32 from the float16 files)."""
    train = np.load(DATA / "train.npy").astype(np.float32)
    queries = np.load(DATA / "test_ood.npy").astype(np.float32)
    ids = np.empty((queries.shape[0], depth), np.int64)
    scores = np.empty((queries.shape[0], depth), np.float32)
    for s in range(0, queries.shape[0], 100):
        block = queries[s : s + 100] @ train.T
        part = np.argpartition(-block, depth, axis=1)[:, :depth]
        part_scores = np.take_along_axis(block, part, axis=1)
        order = np.lexsort((part, -part_scores), axis=1)
        ids[s : s + 100] = np.take_along_axis(part, order, axis=1)
        scores[s : s + 100] = np.take_along_axis(part_scores, order, axis=1)
    return ids, scores


def run_hybrid(texts: dict, depth: int) -> dict:
    from vecsearch.store.fusion import reciprocal_rank_fusion, relative_score_fusion
    from vecsearch.store.keyword import KeywordIndex

    targets = texts["ood_target"]
    t = time.perf_counter()
    dense_ids, dense_scores = dense_top(depth)
    dense_s = time.perf_counter() - t
    index = KeywordIndex()
    index.add(np.arange(len(texts["train"]), dtype=np.int64), texts["train"])
    kw = [index.search(q, depth) for q in texts["test_ood"]]
    out: dict = {"depth": depth, "dense_numpy_s": dense_s, "loadavg": os.getloadavg()}
    out["dense"] = hits([r[:K].tolist() for r in dense_ids], targets)
    out["keyword"] = hits([ids[:K].tolist() for ids, _ in kw], targets)
    legs = [[(dense_ids[i], dense_scores[i]), kw[i]] for i in range(len(targets))]
    out["keyword_empty_queries"] = sum(1 for ids, _ in kw if ids.size == 0)
    t = time.perf_counter()
    rrf = [reciprocal_rank_fusion(leg, k=K) for leg in legs]
    out["rrf_fusion_us_per_query"] = (time.perf_counter() - t) / len(legs) * 1e6
    out["rrf"] = hits([f.ids.tolist() for f in rrf], targets)
    out["rrf_found_by"] = {"both": float(np.mean([f.found_by(0)[0] and f.found_by(1)[0] for f in rrf if len(f)])),
                           "dense_only": float(np.mean([f.found_by(0)[0] and not f.found_by(1)[0] for f in rrf if len(f)])),
                           "keyword_only": float(np.mean([f.found_by(1)[0] and not f.found_by(0)[0] for f in rrf if len(f)]))}
    out["relative_score"] = {}
    for alpha in np.round(np.linspace(0, 1, 11), 2).tolist():
        fused = [relative_score_fusion(leg, weights=(alpha, 1 - alpha), k=K) for leg in legs]
        out["relative_score"][f"alpha={alpha}"] = hits([f.ids.tolist() for f in fused], targets)
    return out


def best_of(runs: list[dict]) -> dict:
    """Per timing (keys ending in ``_s`` or ``_us``) the minimum over rounds; other values from the first round."""
    out: dict = {}
    for key, value in runs[0].items():
        if isinstance(value, dict):
            out[key] = best_of([r[key] for r in runs])
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and key.endswith(("_s", "_us")):
            out[key] = min(r[key] for r in runs)
        elif key.endswith("loadavg"):
            out[key] = [r[key] for r in runs]  # one per round
        else:
            out[key] = value
    return out


def agreement(a: list[list[int]], b: list[list[int]]) -> float:
    """Mean overlap of two engines' top-10 sets per query (1.0: the same documents)."""
    return float(np.mean([len(set(x) & set(y)) / max(len(x), len(y), 1) for x, y in zip(a, b)]))


def run_worker(worker: str, args: argparse.Namespace, attempts: int = 3) -> dict:
    """Run one worker in a fresh process; a failure is retried after 30 s (others may be mid-edit
    in a shared tree), and reported as ``{"error": ...}`` after the last attempt."""
    cmd = [sys.executable, __file__, "--worker", worker, "--incremental", str(args.incremental),
           "--tantivy-incremental", str(args.tantivy_incremental), "--bm25s-rebuilds", str(args.bm25s_rebuilds),
           "--depth", str(args.depth)]
    for attempt in range(attempts):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{worker}: attempt {attempt + 1} failed\n{proc.stderr[-1500:]}", file=sys.stderr, flush=True)
        if attempt + 1 < attempts:
            time.sleep(30)
    return {"error": proc.stderr.strip().splitlines()[-5:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", default="ours,bm25s,tantivy")
    parser.add_argument("--incremental", type=int, default=30000, help="documents added/removed one per call (ours)")
    parser.add_argument("--tantivy-incremental", type=int, default=200, help="one-per-call adds/deletes (tantivy)")
    parser.add_argument("--bm25s-rebuilds", type=int, default=3, help="full re-indexes timed (bm25s)")
    parser.add_argument("--depth", type=int, default=100, help="candidates per leg for fusion")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of all engines; timings: best")
    parser.add_argument("--out", default=str(HERE / "results" / "bench_keyword.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    texts = load_texts()
    if args.worker:
        if args.worker == "hybrid":
            print(json.dumps(run_hybrid(texts, args.depth)))
            return
        runner = {"ours": run_ours, "bm25s": run_bm25s, "tantivy": run_tantivy}[args.worker]
        print(json.dumps(runner(texts, args)))
        return

    result: dict = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "loadavg_start": os.getloadavg(),
                    "machine": {"cpus": os.cpu_count()}, "settings": {
                        "n_docs": len(texts["train"]), "k": K, "k1": 1.2, "b": 0.75, "incremental": args.incremental,
                        "tantivy_incremental": args.tantivy_incremental, "bm25s_rebuilds": args.bm25s_rebuilds,
                        "depth": args.depth, "rounds": args.rounds, "tokenizer": "vecsearch Tokenizer() defaults (NFKC, casefold, words)"},
                    "engines": {}}
    rounds: dict[str, list[dict]] = {}
    found = {}
    for r in range(args.rounds):  # engines interleaved, round after round (the machine is shared)
        for engine in args.engines.split(","):
            res = run_worker(engine, args)
            if "error" in res:
                rounds.setdefault(engine, []).append(res)
                continue
            found_lists = (res.pop("found_ood"), res.pop("found_id"))
            found.setdefault(engine, found_lists)
            rounds.setdefault(engine, []).append(res)
            print(f"round {r} {engine}: build {res['build_s']:.2f}s  query ood p50 {res['query_ood']['p50_us']:.0f}us "
                  f"id p50 {res['query_id']['p50_us']:.0f}us  ood {res['quality_ood']}  load {os.getloadavg()}", flush=True)
    for engine, runs in rounds.items():
        ok = [x for x in runs if "error" not in x]
        result["engines"][engine] = {"best": best_of(ok) if ok else None, "rounds": runs}
    if "ours" in found:
        for other in found:
            if other != "ours" and result["engines"][other]["best"] is not None:
                result["engines"][other]["best"]["top10_agreement_with_ours"] = {
                    "ood": agreement(found["ours"][0], found[other][0]), "id": agreement(found["ours"][1], found[other][1])}
    result["hybrid"] = run_worker("hybrid", args)
    print("hybrid:", json.dumps({k: v for k, v in result["hybrid"].items() if k != "relative_score"}))
    result["loadavg_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
