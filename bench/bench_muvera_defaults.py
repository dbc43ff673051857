"""MUVERA class defaults (issue #20): recall@10 and latency of ``MultiVectorIndex(384)`` against brute-force Chamfer.

On 5,000-document slices of the MiniLM token vectors of all WordNet glosses
(``../shared/data/make_multivector.py --docs 116659``; keys ``doc_vecs``, ``doc_offsets``,
``query_vecs``, ``query_offsets``), with the 600 shipped queries (300 OOD single words, 300 ID texts):

* ``tuning``: documents 0-4,999 of the tuning part (first 80% of train.npy), where the FDE grid of
  ``vecsearch.codecs.fde_auto`` was looked at;
* ``second``: the first 5,000 verb / adjective / adverb synsets after document 5,000 of the tuning
  part (another token distribution: no nouns);
* ``held-out``: documents cut+1,000 ... cut+5,999 of the held-out part (last 20%), never tuned on.

Per slice: ``MultiVectorIndex(384)`` with nothing else given (``fde="auto"``: the first ``add`` chooses
the FDE and the candidate count), build time and its choice; recall@10 against exact brute-force
Chamfer top-10 (``search_exact``, the truth) for all, OOD and ID queries; the previous default
(paper FDE, 100 candidates) for comparison. Latency, interleaved in ``--rounds`` rounds, each round
timing brute force and the index on the same queries: batch (one call, wall time per query) and
single-query (one call per query), every thread numba/BLAS has; load average recorded per round.

    flock /work/notes/bench.lock nice -n 5 python bench/bench_muvera_defaults.py
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numba
import numpy as np

from vecsearch.benchmark.evaluation import recall_at_k
from vecsearch.benchmark.results import ResultsFile, loadavg
from vecsearch.codecs.fde import FDEConfig
from vecsearch.codecs.fde_auto import config_label
from vecsearch.indexes.multivector import MultiVectorIndex

RESULTS = Path(__file__).resolve().parent / "results"
K = 10
N_TRAIN = 116_659


def slice_rows(name: str, n_docs: int, attrs_path: Path) -> np.ndarray:
    cut = int(0.8 * N_TRAIN)
    if name == "tuning":
        return np.arange(n_docs)
    if name == "second":
        pos = np.load(attrs_path)["pos"]
        return np.flatnonzero(np.isin(pos[n_docs:cut], ["v", "a", "s", "r"]))[:n_docs] + n_docs
    if name == "held-out":
        return np.arange(cut + 1000, cut + 1000 + n_docs)
    raise ValueError(f"slice: expected tuning, second or held-out, got {name!r}")


def csr(vecs: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sets = [vecs[offsets[i] : offsets[i + 1]] for i in rows]
    out = np.zeros(len(sets) + 1, np.int64)
    out[1:] = np.cumsum([s.shape[0] for s in sets])
    return np.ascontiguousarray(np.concatenate(sets), np.float32), out


def timed(fn, queries, single: bool) -> float:
    """Wall ms per query of ``fn`` on CSR ``queries``: one call (batch) or one call per query."""
    qv, qo = queries
    nq = qo.shape[0] - 1
    t0 = time.perf_counter()
    if single:
        for i in range(nq):
            fn((qv[qo[i] : qo[i + 1]], np.array([0, qo[i + 1] - qo[i]], np.int64)))
    else:
        fn(queries)
    return (time.perf_counter() - t0) / nq * 1e3


def by_query_kind(ids: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    h = truth.shape[0] // 2
    return {
        "recall": recall_at_k(ids, truth),
        "recall_ood": recall_at_k(ids[:h], truth[:h]),
        "recall_id": recall_at_k(ids[h:], truth[h:]),
    }


def run_slice(a, results: ResultsFile, name: str, docs, queries) -> None:
    qv, qo = queries
    nq = qo.shape[0] - 1
    load0 = loadavg()
    t0 = time.perf_counter()
    index = MultiVectorIndex(docs[0].shape[1])  # the class defaults: nothing else given
    index.add(docs)
    build_s = time.perf_counter() - t0
    choice = index.fde_choice
    results.add(
        {
            "section": "build",
            "slice": name,
            "build_s": build_s,
            "choice_s": choice.seconds,
            "fde": config_label(index.fde),
            "fde_dim": index.fde.output_dim,
            "candidates": index.search_defaults.get("candidates"),
            "choice": choice.as_dict(),
            "loadavg": [load0, loadavg()],
        },
        show=("slice", "build_s", "choice_s", "fde", "candidates"),
    )
    t0 = time.perf_counter()
    truth = index.search_exact(queries, K).ids
    truth_s = time.perf_counter() - t0
    ids = index.search(queries, K).ids
    results.add(
        {
            "section": "recall",
            "slice": name,
            "method": "MultiVectorIndex(384) defaults",
            **by_query_kind(ids, truth),
            "queries": nq,
            "truth_batch_ms_per_query": truth_s / nq * 1e3,
        },
        show=("slice", "method", "recall", "recall_ood", "recall_id"),
    )
    old = MultiVectorIndex(docs[0].shape[1], fde=FDEConfig())
    old.add(docs)
    results.add(
        {
            "section": "recall",
            "slice": name,
            "method": "previous default: paper FDE (20,5,16), C=100",
            **by_query_kind(old.search(queries, K, candidates=100).ids, truth),
            "queries": nq,
        },
        show=("slice", "method", "recall", "recall_ood", "recall_id"),
    )
    del old
    results.write()

    def pick(n):  # the first n/2 OOD and n/2 ID queries
        h = nq // 2
        rows = np.concatenate([np.arange(n // 2), h + np.arange(n - n // 2)])
        return csr(qv, qo, rows)

    for mode, q in (("batch", pick(a.batch_queries)), ("single", pick(a.single_queries))):
        single = mode == "single"
        timed(lambda x: index.search(x, K), q, single)  # warm
        timed(lambda x: index.search_exact(x, K), pick(2), single)
        rounds = []
        for r in range(a.rounds):
            order = ("brute", "index") if r % 2 == 0 else ("index", "brute")
            ms = {}
            load = loadavg()
            for who in order:
                fn = (
                    (lambda x: index.search_exact(x, K))
                    if who == "brute"
                    else (lambda x: index.search(x, K))
                )
                ms[who] = timed(fn, q, single)
            rounds.append(
                {
                    "round": r,
                    "brute_ms": ms["brute"],
                    "index_ms": ms["index"],
                    "ratio": ms["index"] / ms["brute"],
                    "loadavg": load,
                }
            )
        ratios = [x["ratio"] for x in rounds]
        results.add(
            {
                "section": "latency",
                "slice": name,
                "mode": mode,
                "queries": q[1].shape[0] - 1,
                "brute_ms_per_query": float(np.median([x["brute_ms"] for x in rounds])),
                "index_ms_per_query": float(np.median([x["index_ms"] for x in rounds])),
                "ratio_median": float(np.median(ratios)),
                "ratio_range": [min(ratios), max(ratios)],
                "rounds": rounds,
                "numba_threads": numba.get_num_threads(),
            },
            show=(
                "slice",
                "mode",
                "brute_ms_per_query",
                "index_ms_per_query",
                "ratio_median",
                "ratio_range",
            ),
        )
        results.write()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default="/work/cache/data/multivector-all.npz")
    ap.add_argument(
        "--attrs",
        default=str(Path(__file__).resolve().parents[2] / "shared/data/wordnet-minilm/attrs.npz"),
    )
    ap.add_argument("--slices", default="tuning,second,held-out")
    ap.add_argument("--docs", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-queries", type=int, default=200)
    ap.add_argument("--single-queries", type=int, default=40)
    ap.add_argument("--out", default=str(RESULTS / "muvera_defaults.json"))
    a = ap.parse_args()
    results = ResultsFile(a.out, a, script="bench_muvera_defaults")
    with np.load(a.data) as f:
        offsets, queries = (
            f["doc_offsets"],
            (f["query_vecs"].astype(np.float32), f["query_offsets"].astype(np.int64)),
        )
        vecs = f["doc_vecs"]
    results.summary.update(numba_threads=numba.get_num_threads(), cpu_count=os.cpu_count())
    for name in a.slices.split(","):
        rows = slice_rows(name, a.docs, Path(a.attrs))
        docs = csr(vecs, offsets, rows)
        print(
            f"slice {name}: {rows.size} docs, {docs[0].shape[0]} tokens, load {loadavg()}",
            flush=True,
        )
        run_slice(a, results, name, docs, queries)
    print(f"wrote {results.write()}")


if __name__ == "__main__":
    main()
