"""MUVERA benchmark: recall@10 (vs exact Chamfer) against candidates and end-to-end latency.

Candidate generators compared on WordNet MiniLM token vectors: FDE configs (paper and tuned),
the single-vector token heuristic, one mean-pooled vector per document, next to brute-force
Chamfer over all documents. Recall against candidates uses each generator's ranked candidate
list and the exact Chamfer matrix (re-rank = top-10 by Chamfer among the candidates).
Latency is end to end (encode + inner search + Chamfer re-rank), one query at a time, on ONE
thread (numba; BLAS too when threadpoolctl is installed), through ``MultiVectorIndex.search``.
Candidate sweeps and ground truth use all threads.

    python bench/bench_muvera.py --data /work/mv20k/multivector-20k.npz --token-hnsw   # 20k docs
    python bench/bench_muvera.py --explore --no-latency --out bench/results/muvera_explore.json
    python bench/bench_muvera.py --data none --queries 100 --quick      # shipped 1,500 docs

``--token-hnsw`` also builds an HNSW over every document token (the heuristic's fast form; ~6
minutes for 446k tokens on 2 busy cores); ``--explore`` adds the FDE variants that did not help
(centered / whitened SimHash, k-means partitions, PCA inner projection).

The 20k file is made by ``../shared/data/make_multivector.py --docs 20000``; without it the
shipped 1,500-document ``multivector.npz`` of the WordNet directory (``--wordnet-dir``) is used.
Writes ``bench/results/muvera.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numba
import numpy as np

from vecsearch.benchmark import wordnet
from vecsearch.benchmark.algorithms import limit_threads
from vecsearch.benchmark.evaluation import recall_at_k
from vecsearch.benchmark.results import ResultsFile
from vecsearch.codecs.fde import (
    MINILM_TUNED,
    FDEConfig,
    encode_documents,
    encode_queries,
    fde_random_state,
)
from vecsearch.indexes.multivector import MultiVectorIndex, MultiVectorSearchParams, chamfer_scores
from vecsearch.kernels.fde_encode import fde_aggregate, sign_codes

RESULTS = Path(__file__).resolve().parent / "results"
K = 10
CANDIDATES = (10, 20, 30, 50, 75, 100, 150, 200, 300)
LAT_SHOWN = ("method", "ms_per_query", "cpu_ms_per_query", "cpu_ratio_to_brute_force", "recall")


def load(path: str, n_queries: int, wordnet_dir: str | None):
    """Documents and ``n_queries`` queries (half OOD words, half ID texts) as CSR pairs, and the source."""
    if Path(path).exists():
        with np.load(path) as f:
            data = {key: f[key] for key in f.files}
        source = path
    else:
        data, source = (
            wordnet.load_multivector(data_dir=wordnet_dir),
            "wordnet-minilm/multivector.npz",
        )
    docs = (
        np.ascontiguousarray(data["doc_vecs"], np.float32),
        data["doc_offsets"].astype(np.int64),
    )
    queries = (np.asarray(data["query_vecs"], np.float32), data["query_offsets"].astype(np.int64))
    return docs, subset(queries, both_halves(queries[1].shape[0] - 1, n_queries)), source


def both_halves(n_all: int, n: int) -> np.ndarray:
    """Rows of ``n`` queries out of ``n_all`` held as OOD words then ID texts: the first ``n // 2``
    of each half (``n - n // 2`` of the second)."""
    half = n_all // 2
    return np.concatenate([np.arange(n // 2), half + np.arange(n - n // 2)])


def subset(queries, rows):
    """The CSR token sets of ``rows``."""
    qv, qo = queries
    sets = [qv[qo[i] : qo[i + 1]] for i in rows]
    offsets = np.zeros(len(sets) + 1, np.int64)
    offsets[1:] = np.cumsum([s.shape[0] for s in sets])
    return np.ascontiguousarray(np.concatenate(sets)), offsets


def exact_top(cands: np.ndarray, S: np.ndarray) -> np.ndarray:
    """The K best of each row's candidates (nq, C) by exact Chamfer ``S`` (nq, n_docs); -1 padded."""
    sims = np.where(cands >= 0, np.take_along_axis(S, np.maximum(cands, 0), axis=1), -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :K]
    top = np.take_along_axis(cands, order, axis=1)
    return np.where(np.isfinite(np.take_along_axis(sims, order, axis=1)), top, -1)


def candidate_sweep(
    order: np.ndarray, S: np.ndarray, truth: np.ndarray, cands=CANDIDATES
) -> dict[int, float]:
    """Recall@10 after exact re-rank of the first C of each ranked candidate list (nq, >= C), per C."""
    return {C: recall_at_k(exact_top(order[:, :C], S), truth) for C in cands if C <= order.shape[1]}


def first_reaching(curve: dict[int, float], target: float = 0.9):
    return next((c for c, r in sorted(curve.items()) if r >= target), None)


def one_query(queries, i: int):
    qv, qo = queries
    return qv[qo[i] : qo[i + 1]], np.array([0, qo[i + 1] - qo[i]], np.int64)


def latency(search, queries, n: int) -> tuple[float, float, np.ndarray]:
    """Mean single-query end-to-end wall and CPU latency (ms) on one thread, and the ids found."""
    with limit_threads(1):
        search(one_query(queries, 0))  # compile / warm
        t0, c0 = time.perf_counter(), time.process_time()
        ids = [search(one_query(queries, i)).ids[0] for i in range(n)]
        return (
            (time.perf_counter() - t0) / n * 1e3,
            (time.process_time() - c0) / n * 1e3,
            np.array(ids),
        )


def custom_fde(vecs, offs, cfg, codes_fn, psi_fn, is_query):
    """FDE with a replaced partition (``codes_fn(tokens) -> (N, reps) int32``) and/or psi."""
    rs = fde_random_state(cfg, vecs.shape[1])
    psi = (
        psi_fn(vecs) if psi_fn else (vecs @ rs.projection).reshape(len(vecs), cfg.reps, cfg.d_proj)
    )
    out = np.zeros((len(offs) - 1, cfg.raw_dim), np.float32)
    fde_aggregate(
        codes_fn(vecs),
        np.ascontiguousarray(psi, np.float32),
        offs,
        cfg.n_buckets,
        is_query,
        cfg.fill_empty,
        cfg.normalize_doc_blocks,
        out,
        0,
        len(offs) - 1,
    )
    return out


def explore(docs, queries, add_method, cfg=MINILM_TUNED, seed=0):
    """Variants that did NOT make the cut, measured on top of ``cfg``: data-aware partitions
    (centered / whitened SimHash, spherical k-means buckets) and a PCA inner projection."""
    d_vecs = docs[0]
    R, k, B = cfg.reps, cfg.k_sim, cfg.n_buckets
    rs = fde_random_state(cfg, d_vecs.shape[1])
    rng = np.random.default_rng(seed)
    sample = d_vecs[rng.choice(len(d_vecs), min(50000, len(d_vecs)), replace=False)]
    mean = sample.mean(0)
    evals, evecs = np.linalg.eigh(np.cov((sample - mean).T))
    whiten = ((evecs / np.sqrt(evals + 1e-6)) @ evecs.T).astype(np.float32)

    def simhash(h, center):
        def codes(x):
            out = np.empty((len(x), R), np.int32)
            sign_codes(np.ascontiguousarray((x - center) @ h, dtype=np.float32), R, k, out)
            return out

        return codes

    centroids = []
    for _ in range(R):  # spherical k-means, B centroids per repetition
        c = sample[rng.choice(len(sample), B, replace=False)].copy()
        for _ in range(10):
            assign = np.argmax(sample @ c.T, axis=1)
            for b in range(B):
                m = sample[assign == b].sum(0)
                if np.linalg.norm(m) > 0:
                    c[b] = m / np.linalg.norm(m)
        centroids.append(c)

    def kmeans_codes(x):
        return np.stack([np.argmax(x @ c.T, axis=1) for c in centroids], 1).astype(np.int32)

    pca = np.linalg.eigh((sample.T @ sample) / len(sample))[1][:, ::-1][:, : cfg.d_proj].astype(
        np.float32
    )

    def pca_psi(x):
        return np.repeat((x @ pca)[:, None, :], R, axis=1)

    variants = {
        "explore: centered SimHash": (simhash(rs.hyperplanes, mean), None),
        "explore: whitened SimHash": (simhash(whiten @ rs.hyperplanes, mean), None),
        "explore: k-means partition": (kmeans_codes, None),
        "explore: PCA psi (shared)": (simhash(rs.hyperplanes, 0), pca_psi),
    }
    for name, (codes_fn, psi_fn) in variants.items():
        fd = custom_fde(*docs, cfg, codes_fn, psi_fn, False)
        fq = custom_fde(*queries, cfg, codes_fn, psi_fn, True)
        add_method(name, np.argsort(-(fq @ fd.T), axis=1, kind="stable")[:, : max(CANDIDATES)])


FDE_CONFIGS = {
    "fde paper (20,5,16)": FDEConfig(),
    "fde paper no-fill": FDEConfig(fill_empty=False),
    "fde (20,3,64) no-fill": FDEConfig(reps=20, k_sim=3, d_proj=64, fill_empty=False),
    "fde tuned (40,3,32) nofill+norm": MINILM_TUNED,
    "fde tuned final_dim=2048": MINILM_TUNED.model_copy(update={"final_dim": 2048}),
    "fde (16,3,16) nofill+norm [2048-d]": FDEConfig(
        reps=16, k_sim=3, d_proj=16, fill_empty=False, normalize_doc_blocks=True
    ),
    "fde (40,3,64) nofill+norm": MINILM_TUNED.model_copy(update={"d_proj": 64}),
}


def candidate_methods(a, results, docs, queries, S, truth) -> MultiVectorIndex:
    """FDE configs, explore variants, mean pooling and the token heuristic: recall against candidates.
    Returns the flat token index (reused for latency)."""
    nq, n_docs = S.shape

    def add_method(name, order, extra=None):
        curve = candidate_sweep(order, S, truth)
        row = results.add(
            {
                "section": "candidates",
                "method": name,
                "recall_vs_candidates": curve,
                "ood": candidate_sweep(order[: nq // 2], S[: nq // 2], truth[: nq // 2]),
                "id": candidate_sweep(order[nq // 2 :], S[nq // 2 :], truth[nq // 2 :]),
                "candidates_for_0.9": first_reaching(curve),
                **(extra or {}),
            }
        )
        print(
            f"{name:34s} C@0.9={row['candidates_for_0.9']}  "
            + " ".join(f"{c}:{r:.3f}" for c, r in curve.items()),
            flush=True,
        )
        results.write()

    for name, cfg in FDE_CONFIGS.items():
        t0 = time.perf_counter()
        fd = encode_documents(docs, cfg)
        enc = time.perf_counter() - t0
        order = np.argsort(-(encode_queries(queries, cfg) @ fd.T), axis=1, kind="stable")[
            :, : max(CANDIDATES)
        ]
        add_method(
            name,
            order,
            {
                "fde_dim": cfg.output_dim,
                "encode_docs_s": enc,
                "fde_bytes_per_doc": fd.shape[1] * fd.itemsize,
            },
        )
    if a.explore:
        explore(docs, queries, add_method)
    lens = np.diff(docs[1])
    mean_d = np.add.reduceat(docs[0], docs[1][:-1], axis=0) / lens[:, None]
    sum_q = np.add.reduceat(queries[0], queries[1][:-1], axis=0)
    add_method(
        "mean-pooled", np.argsort(-(sum_q @ mean_d.T), axis=1, kind="stable")[:, : max(CANDIDATES)]
    )

    # Token heuristic: flat token index, exact per-token top-t, union of the owners re-ranked exactly.
    tok = MultiVectorIndex(docs[0].shape[1], candidate_source="tokens")
    t0 = time.perf_counter()
    tok.add(docs)
    print(f"token index (flat) add: {time.perf_counter() - t0:.1f}s")
    t0 = time.perf_counter()
    hits = tok.inner_index.search(queries[0], 32).ids  # (query tokens, 32) token rows, best first
    print(
        f"token top-32 search of {queries[0].shape[0]} query tokens: {time.perf_counter() - t0:.1f}s"
    )
    owner = np.repeat(np.arange(n_docs), lens)
    unions = {}
    for t in (4, 8, 16, 32):
        sets = [
            np.unique(owner[hits[queries[1][i] : queries[1][i + 1], :t].ravel()]) for i in range(nq)
        ]
        cands = np.full((nq, max(s.size for s in sets)), -1, np.int64)
        for i, s in enumerate(sets):
            cands[i, : s.size] = s
        unions[t] = {
            "mean_candidates": float(np.mean([s.size for s in sets])),
            "recall": recall_at_k(exact_top(cands, S), truth),
        }
        print(
            f"tokens top-{t:<3d} union: mean candidates {unions[t]['mean_candidates']:7.1f} "
            f"recall@10 {unions[t]['recall']:.3f}",
            flush=True,
        )
    cands = tok.candidates(
        *queries, MultiVectorSearchParams(candidates=max(CANDIDATES), token_k=32)
    )
    add_method("tokens top-32, capped by estimate", cands, {"uncapped": unions})
    return tok


def latency_methods(a, results, docs, queries, truth, tok) -> None:
    """Single-thread end-to-end latency of brute force and of each index configuration."""
    nq = queries[1].shape[0] - 1
    nl = min(a.latency_queries, nq)
    rows = both_halves(nq, nl)
    lat_q, lat_truth = subset(queries, rows), truth[rows]
    with limit_threads(1) as threads:
        results.summary["latency_blas_limited"] = threads["blas_limited"]
    brute = MultiVectorIndex(docs[0].shape[1], fde=FDEConfig(reps=1, k_sim=0, d_proj=1))
    brute.add(docs)
    bf_ms, bf_cpu, _ = latency(lambda q, index=brute: index.search_exact(q, K), lat_q, nl)
    brute_row = {"ms_per_query": bf_ms, "cpu_ms_per_query": bf_cpu, "recall": 1.0}
    results.add(
        {"section": "latency", "method": "brute-force Chamfer", **brute_row}, show=LAT_SHOWN
    )
    del brute

    def lat_row(name, index, **params):
        ms, cpu_ms, ids = latency(lambda q: index.search(q, K, **params), lat_q, nl)
        measured = {
            "ms_per_query": ms,
            "cpu_ms_per_query": cpu_ms,
            "recall": recall_at_k(ids, lat_truth),
        }
        row = {"section": "latency", "method": name, **measured, "params": params}
        results.add(row | {"cpu_ratio_to_brute_force": cpu_ms / bf_cpu}, show=LAT_SHOWN)
        results.write()

    def built(label, **kwargs):
        index = MultiVectorIndex(docs[0].shape[1], **kwargs)
        t0 = time.perf_counter()
        index.add(docs)
        build_s = time.perf_counter() - t0
        results.add(
            {"section": "build", "method": label, "build_s": build_s}, show=("method", "build_s")
        )
        return index

    index = built("fde tuned flat", fde=MINILM_TUNED)
    for c in (50, 100):
        lat_row(f"fde tuned + flat inner, C={c}", index, candidates=c)
    index = built("mean-pooled flat", candidate_source="mean")
    for c in (100, 200):
        lat_row(f"mean-pooled + flat inner, C={c}", index, candidates=c)
    if not a.quick:
        index = built("fde tuned hnsw", fde=MINILM_TUNED, inner="hnsw", M=16, ef_construction=100)
        for c, ef in ((50, 100), (50, 200), (100, 200), (150, 300)):
            lat_row(
                f"fde tuned + hnsw inner, C={c} ef={ef}",
                index,
                candidates=c,
                inner_search={"ef": ef},
            )
        if a.token_hnsw:
            index = built(
                "tokens hnsw", candidate_source="tokens", inner="hnsw", M=16, ef_construction=100
            )
            for t, c in ((8, 300), (16, 300)):
                lat_row(
                    f"tokens + hnsw, top-{t}, C<={c} ef=64",
                    index,
                    candidates=c,
                    token_k=t,
                    inner_search={"ef": 64},
                )
    del index
    lat_row("tokens + flat token index, top-16, C<=300", tok, candidates=300, token_k=16)
    print(
        f"brute-force Chamfer cpu {bf_cpu:.1f} ms/query; target <= {bf_cpu / 5:.1f} ms at recall@10 >= 0.9"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--data",
        default="/work/mv20k/multivector-20k.npz",
        help="multi-vector .npz (make_multivector.py); missing or 'none': the shipped 1,500 documents",
    )
    ap.add_argument(
        "--wordnet-dir",
        default=None,
        help=f"wordnet-minilm directory for the shipped file (default: ${wordnet.ENV_VAR}, else beside the repo)",
    )
    ap.add_argument(
        "--queries",
        type=int,
        default=200,
        help="queries for recall (half OOD words, half ID texts)",
    )
    ap.add_argument("--latency-queries", type=int, default=40)
    ap.add_argument("--quick", action="store_true", help="skip the HNSW builds")
    ap.add_argument(
        "--token-hnsw", action="store_true", help="also build an HNSW over all tokens (slow)"
    )
    ap.add_argument("--explore", action="store_true", help="also measure the rejected FDE variants")
    ap.add_argument("--no-latency", action="store_true", help="recall curves only")
    ap.add_argument("--out", default=str(RESULTS / "muvera.json"))
    a = ap.parse_args()
    results = ResultsFile(a.out, a, script="bench_muvera")
    docs, queries, source = load(a.data, a.queries, a.wordnet_dir)
    n_docs, nq = docs[1].shape[0] - 1, queries[1].shape[0] - 1
    results.summary.update(data=source, docs=n_docs, tokens=int(docs[0].shape[0]), queries=nq)
    print(
        f"data {source} docs={n_docs} tokens={docs[0].shape[0]} queries={nq} (q tokens {queries[0].shape[0]})"
    )
    print(
        f"load average at start {results.loadavg_start}, numba threads {numba.config.NUMBA_NUM_THREADS}"
    )

    t0 = time.perf_counter()  # exact Chamfer of every (query, document), all threads = ground truth
    S = chamfer_scores(
        *queries, *docs, np.ascontiguousarray(np.broadcast_to(np.arange(n_docs), (nq, n_docs)))
    )
    truth = np.argsort(-S, axis=1, kind="stable")[:, :K]
    print(
        f"exact Chamfer matrix: {time.perf_counter() - t0:.1f}s on {numba.config.NUMBA_NUM_THREADS} threads"
    )
    tok = candidate_methods(a, results, docs, queries, S, truth)
    if not a.no_latency:
        latency_methods(a, results, docs, queries, truth, tok)
    print(
        f"load average at end {results.document()['machine']['loadavg_end']}; wrote {results.write()}"
    )


if __name__ == "__main__":
    main()
