"""MUVERA benchmark: recall@10 (vs exact Chamfer) against candidates and end-to-end latency.

Candidate generators compared on WordNet MiniLM token vectors: FDE configs (paper and tuned),
the single-vector token heuristic, one mean-pooled vector per document, next to brute-force
Chamfer over all documents. Recall against candidates uses each generator's ranked candidate
list and the exact Chamfer matrix (re-rank = top-10 by Chamfer among the candidates).
Latency is end to end (encode + inner search + Chamfer re-rank), one query at a time, on ONE
thread (numba; BLAS via threadpoolctl), through ``MultiVectorIndex.search``. Recall curves and
ground truth use all threads.

    python bench/bench_muvera.py --data /work/mv20k/multivector-20k.npz --token-hnsw   # 20k docs
    python bench/bench_muvera.py --explore --no-latency --out bench/results/muvera_explore.json
    python bench/bench_muvera.py --data none --queries 100 --quick      # shipped 1,500 docs

``--token-hnsw`` also builds an HNSW over every document token (the heuristic's fast form; ~6
minutes for 446k tokens on 2 busy cores); ``--explore`` adds the FDE variants that did not help
(centered / whitened SimHash, k-means partitions, PCA inner projection).

The 20k file is made by ``../shared/data/make_multivector.py --docs 20000``; without it the
shipped 1,500-document ``multivector.npz`` is used. Writes ``bench/results/muvera.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import time
from pathlib import Path

import numba
import numpy as np

from vecsearch.codecs.fde import (
    MINILM_TUNED,
    FDEConfig,
    encode_documents,
    encode_queries,
    fde_random_state,
)
from vecsearch.indexes.multivector import MultiVectorIndex, MultiVectorSearchParams
from vecsearch.kernels.chamfer import chamfer_candidates
from vecsearch.kernels.fde_encode import fde_aggregate, sign_codes

SHARED = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "wordnet-minilm"
    / "multivector.npz"
)
RESULTS = Path(__file__).resolve().parent / "results"
K = 10
CANDIDATES = (10, 20, 30, 50, 75, 100, 150, 200, 300)


def load(path: Path, n_queries: int):
    f = np.load(path)
    docs = (
        np.ascontiguousarray(f["doc_vecs"].astype(np.float32)),
        f["doc_offsets"].astype(np.int64),
    )
    qv, qo = f["query_vecs"].astype(np.float32), f["query_offsets"].astype(np.int64)
    nq_all = qo.shape[0] - 1
    half = nq_all // 2  # first half OOD words, second half ID texts: take both equally
    pick = np.concatenate([np.arange(n_queries // 2), half + np.arange(n_queries - n_queries // 2)])
    sets = [qv[qo[i] : qo[i + 1]] for i in pick]
    q_offs = np.zeros(len(sets) + 1, np.int64)
    q_offs[1:] = np.cumsum([s.shape[0] for s in sets])
    return docs, (np.ascontiguousarray(np.concatenate(sets)), q_offs)


def recall_curve(
    order: np.ndarray, S: np.ndarray, truth: np.ndarray, cands=CANDIDATES
) -> dict[int, float]:
    """Recall@10 after exact re-rank of the first C of each ranked candidate list (nq, >= C)."""
    out = {}
    for C in cands:
        if C > order.shape[1]:
            break
        top = order[:, :C]
        sims = np.where(top >= 0, np.take_along_axis(S, np.maximum(top, 0), axis=1), -np.inf)
        best = np.take_along_axis(top, np.argsort(-sims, axis=1, kind="stable")[:, :K], axis=1)
        out[C] = float(np.mean([len(set(b[b >= 0]) & set(t)) / K for b, t in zip(best, truth)]))
    return out


def first_reaching(curve: dict[int, float], target: float = 0.9):
    return next((c for c, r in sorted(curve.items()) if r >= target), None)


@contextlib.contextmanager
def single_thread():
    """numba on one thread, and BLAS too when threadpoolctl is installed."""
    numba.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limiter = contextlib.nullcontext()
        print("(threadpoolctl missing: BLAS threads not limited; set OMP_NUM_THREADS=1)")
    else:
        limiter = threadpool_limits(1)
    try:
        with limiter:
            yield
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def latency(index: MultiVectorIndex, queries, n: int, **params) -> tuple[float, float, np.ndarray]:
    """Mean single-query end-to-end wall and CPU latency (ms), and the ids found."""
    qv, qo = queries
    with single_thread():
        index.search(
            (qv[qo[0] : qo[1]], np.array([0, qo[1] - qo[0]])), K, **params
        )  # compile / warm
        t0, c0 = time.perf_counter(), time.process_time()
        ids = []
        for i in range(n):
            s = qv[qo[i] : qo[i + 1]]
            ids.append(index.search((s, np.array([0, s.shape[0]], np.int64)), K, **params).ids[0])
        ms = (time.perf_counter() - t0) / n * 1e3
        cpu_ms = (time.process_time() - c0) / n * 1e3
    return ms, cpu_ms, np.array(ids)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def custom_fde(vecs, offs, cfg, codes_fn, psi_fn, is_query):
    """FDE with a replaced partition (``codes_fn(tokens) -> (N, reps) int32``) and/or psi."""
    rs = fde_random_state(cfg, vecs.shape[1])
    codes = codes_fn(vecs)
    psi = (
        psi_fn(vecs) if psi_fn else (vecs @ rs.projection).reshape(len(vecs), cfg.reps, cfg.d_proj)
    )
    out = np.zeros((len(offs) - 1, cfg.raw_dim), np.float32)
    fde_aggregate(
        codes,
        np.ascontiguousarray(psi, np.float32),
        offs,
        cfg.n_buckets,
        is_query,
        cfg.fill_empty,
        cfg.normalize_doc_blocks,
        out,
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

    second = (sample.T @ sample) / len(sample)
    pca = np.linalg.eigh(second)[1][:, ::-1][:, : cfg.d_proj].astype(np.float32)

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/mv20k/multivector-20k.npz")
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
    path = Path(a.data) if Path(a.data).exists() else SHARED
    docs, queries = load(path, a.queries)
    n_docs = docs[1].shape[0] - 1
    nq = queries[1].shape[0] - 1
    load_avg = os.getloadavg()
    print(
        f"data {path} docs={n_docs} tokens={docs[0].shape[0]} queries={nq} (q tokens {queries[0].shape[0]})"
    )
    print(f"load average at start {load_avg}, numba threads {numba.config.NUMBA_NUM_THREADS}")
    report: dict = {
        "data": str(path),
        "docs": n_docs,
        "tokens": int(docs[0].shape[0]),
        "queries": nq,
        "load_avg_start": load_avg,
        "methods": {},
    }

    # ---- exact Chamfer (all threads) = ground truth ------------------------------------------------
    t0 = time.perf_counter()
    S = np.empty((nq, n_docs), np.float32)
    chamfer_candidates(
        *queries, *docs, np.ascontiguousarray(np.broadcast_to(np.arange(n_docs), (nq, n_docs))), S
    )
    truth = np.argsort(-S, axis=1, kind="stable")[:, :K]
    print(
        f"exact Chamfer matrix: {time.perf_counter() - t0:.1f}s on {numba.config.NUMBA_NUM_THREADS} threads"
    )

    def save():
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(report, indent=2, default=str))

    def add_method(name, order, extra=None):
        curve = recall_curve(order, S, truth)
        ood = recall_curve(order[: nq // 2], S[: nq // 2], truth[: nq // 2])
        idt = recall_curve(order[nq // 2 :], S[nq // 2 :], truth[nq // 2 :])
        report["methods"][name] = {
            "recall_vs_candidates": curve,
            "ood": ood,
            "id": idt,
            "candidates_for_0.9": first_reaching(curve),
            **(extra or {}),
        }
        row = " ".join(f"{c}:{r:.3f}" for c, r in curve.items())
        print(f"{name:34s} C@0.9={first_reaching(curve)}  {row}", flush=True)
        save()

    # ---- FDE configs (flat inner = exact MIPS over FDEs) -------------------------------------------
    configs = {
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
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for name, cfg in configs.items():
        t0 = time.perf_counter()
        Fd = encode_documents(docs, cfg)
        enc = time.perf_counter() - t0
        Fq = encode_queries(queries, cfg)
        order = np.argsort(-(Fq @ Fd.T), axis=1, kind="stable")[:, : max(CANDIDATES)]
        add_method(
            name,
            order,
            {
                "fde_dim": cfg.output_dim,
                "encode_docs_s": enc,
                "fde_bytes_per_doc": cfg.output_dim * 4,
            },
        )
        del Fd, Fq

    if a.explore:
        explore(docs, queries, add_method)

    # ---- mean pooled ----------------------------------------------------------------------------
    lens = np.diff(docs[1])
    mean_d = np.add.reduceat(docs[0], docs[1][:-1], axis=0) / lens[:, None]
    sum_q = np.add.reduceat(queries[0], queries[1][:-1], axis=0)
    add_method(
        "mean-pooled", np.argsort(-(sum_q @ mean_d.T), axis=1, kind="stable")[:, : max(CANDIDATES)]
    )

    # ---- token heuristic (flat token index, exact per-token top-t) --------------------------------
    tok = MultiVectorIndex(docs[0].shape[1], candidate_source="tokens")
    t0 = time.perf_counter()
    tok.add(docs)
    print(f"token index (flat) add: {time.perf_counter() - t0:.1f}s")
    tok_rows = {}
    t0 = time.perf_counter()
    hits = tok.inner_index.search(queries[0], 32).ids  # (query tokens, 32) token rows, best first
    print(
        f"token top-32 search of {queries[0].shape[0]} query tokens: {time.perf_counter() - t0:.1f}s"
    )
    owner = np.repeat(np.arange(n_docs), lens)
    for t in (4, 8, 16, 32):
        n_c, hit = [], 0
        for i in range(nq):
            union = np.unique(owner[hits[queries[1][i] : queries[1][i + 1], :t].ravel()])
            n_c.append(union.size)
            hit += len(set(union) & set(truth[i]))
        r = hit / (nq * K)
        tok_rows[t] = {"mean_candidates": float(np.mean(n_c)), "recall": r}
        print(
            f"tokens top-{t:<3d} union: mean candidates {np.mean(n_c):7.1f} recall@10 {r:.3f}",
            flush=True,
        )
    cands = tok.candidates(
        *queries, MultiVectorSearchParams(candidates=max(CANDIDATES), token_k=32)
    )
    add_method("tokens top-32, capped by estimate", cands, {"uncapped": tok_rows})

    if a.no_latency:
        save()
        return

    # ---- end-to-end single-thread latency -------------------------------------------------------
    lat: dict = {}
    build: dict = {}
    nl = min(a.latency_queries, nq)
    lat_q = queries  # first nl queries: OOD words first, so take both halves
    half = nq // 2
    sel = np.concatenate([np.arange(nl // 2), half + np.arange(nl - nl // 2)])
    sets = [queries[0][queries[1][i] : queries[1][i + 1]] for i in sel]
    lo = np.zeros(len(sets) + 1, np.int64)
    lo[1:] = np.cumsum([s.shape[0] for s in sets])
    lat_q = (np.ascontiguousarray(np.concatenate(sets)), lo)
    lat_truth = truth[sel]

    def lat_row(name, index, **params):
        ms, cpu_ms, ids = latency(index, lat_q, nl, **params)
        rec = float(np.mean([len(set(i[i >= 0]) & set(t)) / K for i, t in zip(ids, lat_truth)]))
        lat[name] = {
            "ms_per_query": ms,
            "cpu_ms_per_query": cpu_ms,
            "recall": rec,
            "params": params,
            "cpu_ratio_to_brute_force": cpu_ms / bf_cpu,
        }
        print(
            f"latency {name:46s} wall {ms:8.2f} ms  cpu {cpu_ms:8.2f} ms/query  "
            f"(cpu x{cpu_ms / bf_cpu:.3f} of brute force)  recall@10 {rec:.3f}",
            flush=True,
        )
        report["latency_single_thread"] = lat
        report["build_s"] = build
        save()
        return ms

    brute = MultiVectorIndex(docs[0].shape[1], fde=FDEConfig(reps=1, k_sim=0, d_proj=1))
    brute.add(docs)
    with single_thread():
        brute.search_exact((lat_q[0][: lo[1]], lo[:2]), K)
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(nl):
            brute.search_exact((lat_q[0][lo[i] : lo[i + 1]], np.array([0, lo[i + 1] - lo[i]])), K)
        bf_ms = (time.perf_counter() - t0) / nl * 1e3
        bf_cpu = (time.process_time() - c0) / nl * 1e3
    lat["brute-force Chamfer"] = {"ms_per_query": bf_ms, "cpu_ms_per_query": bf_cpu, "recall": 1.0}
    print(
        f"latency {'brute-force Chamfer':46s} wall {bf_ms:8.2f} ms  cpu {bf_cpu:8.2f} ms/query",
        flush=True,
    )
    del brute

    for name, cfg in (("fde tuned", MINILM_TUNED),):
        index = MultiVectorIndex(docs[0].shape[1], fde=cfg)
        t0 = time.perf_counter()
        index.add(docs)
        build[f"{name} flat"] = time.perf_counter() - t0
        for c in (50, 100):
            lat_row(f"{name} + flat inner, C={c}", index, candidates=c)
        del index
    mean_index = MultiVectorIndex(docs[0].shape[1], candidate_source="mean")
    mean_index.add(docs)
    for c in (100, 200):
        lat_row(f"mean-pooled + flat inner, C={c}", mean_index, candidates=c)
    del mean_index
    if not a.quick:
        for name, cfg in (("fde tuned", MINILM_TUNED),):
            index = MultiVectorIndex(
                docs[0].shape[1], fde=cfg, inner="hnsw", M=16, ef_construction=100
            )
            t0 = time.perf_counter()
            index.add(docs)
            build[f"{name} hnsw"] = time.perf_counter() - t0
            print(f"build {name} + HNSW(M=16, efc=100): {build[f'{name} hnsw']:.1f}s", flush=True)
            for c, ef in ((50, 100), (50, 200), (100, 200), (150, 300)):
                lat_row(
                    f"{name} + hnsw inner, C={c} ef={ef}",
                    index,
                    candidates=c,
                    inner_search={"ef": ef},
                )
            del index
        if a.token_hnsw:
            tok_h = MultiVectorIndex(
                docs[0].shape[1], candidate_source="tokens", inner="hnsw", M=16, ef_construction=100
            )
            t0 = time.perf_counter()
            tok_h.add(docs)
            build["tokens hnsw"] = time.perf_counter() - t0
            print(
                f"build tokens + HNSW over {docs[0].shape[0]} tokens: {build['tokens hnsw']:.1f}s",
                flush=True,
            )
            for t, c in ((8, 300), (16, 300)):
                lat_row(
                    f"tokens + hnsw, top-{t}, C<={c} ef=64",
                    tok_h,
                    candidates=c,
                    token_k=t,
                    inner_search={"ef": 64},
                )
            del tok_h
    for t, c in ((16, 300),):
        lat_row(f"tokens + flat token index, top-{t}, C<={c}", tok, candidates=c, token_k=t)
    report["latency_single_thread"] = lat
    report["build_s"] = build
    report["peak_rss_mb"] = rss_mb()
    report["load_avg_end"] = os.getloadavg()
    print(
        f"brute-force Chamfer cpu {bf_cpu:.1f} ms/query; target <= {bf_cpu / 5:.1f} ms at recall@10 >= 0.9"
    )
    print(f"load average at end {report['load_avg_end']}, peak RSS {report['peak_rss_mb']:.0f} MB")
    try:
        report["uptime"] = subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        pass
    save()
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
