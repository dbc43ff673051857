"""FDE configuration chosen from the data: candidate recall measured on pseudo-queries made of the documents' own tokens.

Why: the paper's FDE (``reps=20, k_sim=5, d_proj=16``) was measured on ColBERT vectors; on other
token models (MiniLM: anisotropic, not trained for MaxSim) other shapes retrieve far better, and a
constant tuned on one corpus need not hold on the next. :func:`choose_fde` therefore measures, on
the documents being indexed, each configuration of a small grid (:data:`AUTO_GRID`) and the number
of candidates each needs, and keeps the cheapest that reaches the target.

How (all seeded, no clock):

* Evaluation corpus: up to ``max_docs`` documents drawn from the given ones.
* Pseudo-queries, ``n_queries`` of them, half of each kind, drawn from the evaluation corpus:
  *short* ones, a contiguous run of 1-3 tokens of a document (a word or term searched against
  definitions), and *long* ones, a document's whole token set (a text searched against texts).
  The document a pseudo-query came from is left out of its truth and of its candidates.
* Truth: exact Chamfer top-``k`` over the evaluation corpus (BLAS, chunked per query).
* Per configuration: FDEs of the corpus and the pseudo-queries, candidates ranked by FDE inner
  product, recall@``k`` after exact re-rank of the first ``C`` candidates, for growing ``C``.
* Choice: among (configuration, ``C``) whose recall reaches ``target``, the smallest estimated
  search cost ``SCAN_WEIGHT * n * fde_dim + C * mean_doc_tokens * mean_query_tokens * dim`` (flat
  scan of the FDEs plus exact re-rank, in re-rank multiply-adds per query); ``C`` measured on ``m`` documents is scaled by
  ``n_total / m`` (candidates a query needs grow with the corpus). If no pair reaches the target,
  the configuration with the best recall at the largest ``C`` measured.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..kernels.fde_encode import count_sketch
from ..recall import recall_at_k
from .fde import FDEConfig, encode_token_sets, fde_random_state

# Configurations tried (the first is the fallback when there are too few documents to measure).
# Shapes, not a tuned constant: fewer SimHash buckets with more repetitions, blocks normalized,
# at three sizes; and the paper's configuration as published.
# ``MEAN_POOLED`` (one bucket, identity projection once fit_to_dim clamps d_proj to the token dim)
# is one mean-pooled vector per document: the cheapest candidate source, sometimes enough.
_SHAPE = {"k_sim": 3, "d_proj": 16, "fill_empty": False, "normalize_doc_blocks": True}
MEAN_POOLED = FDEConfig(reps=1, k_sim=0, d_proj=1 << 16)
AUTO_GRID: tuple[FDEConfig, ...] = (
    FDEConfig(reps=40, **_SHAPE),
    FDEConfig(reps=20, **_SHAPE),
    FDEConfig(reps=80, **_SHAPE),
    FDEConfig(reps=40, final_dim=1024, **_SHAPE),
    FDEConfig(reps=80, final_dim=2048, **_SHAPE),
    MEAN_POOLED,
    MEAN_POOLED.model_copy(update={"normalize_doc_blocks": True}),
    FDEConfig(),
)
# Search cost of one stored FDE float relative to one multiply-add of the exact Chamfer re-rank: a
# single query's flat scan of the FDEs is memory-bound (1.5 G floats/s on one thread here, against
# ~6.8 G multiply-adds/s per thread for the Chamfer kernel); batches scan with BLAS, far cheaper.
SCAN_WEIGHT = 4.0
# Pseudo-query recall the choice must reach: the 0.9 we promise plus a margin, because pseudo-queries
# are not the user's queries. On WordNet MiniLM slices pseudo-query recall at C / (n / m) candidates
# was 0.03-0.09 BELOW real-query recall at C (a second margin); bench/results/muvera_defaults.json.
AUTO_TARGET = 0.92
AUTO_K = 10
# Fewer documents than this: no measurement, AUTO_GRID[0] and the class default candidates.
MIN_DOCS_TO_MEASURE = 200
# Candidate counts measured, as fractions of the evaluation corpus.
_CANDIDATE_FRACTIONS = (
    0.005,
    0.01,
    0.015,
    0.02,
    0.03,
    0.04,
    0.05,
    0.06,
    0.08,
    0.1,
    0.12,
    0.15,
    0.2,
)


@dataclass
class FDEChoice:
    """What :func:`choose_fde` chose and what it measured.

    ``config`` the chosen FDE; ``candidates`` the candidates per query for the whole corpus (None when
    nothing was measured); ``recall`` per configuration label, ``{C_on_eval_corpus: recall}``;
    ``n_docs`` / ``n_eval_docs`` / ``n_queries`` sizes; ``reached`` whether the target was reached.
    """

    config: FDEConfig
    candidates: int | None
    reached: bool
    target: float
    n_docs: int
    n_eval_docs: int = 0
    n_queries: int = 0
    seconds: float = 0.0
    recall: dict[str, dict[int, float]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "config": self.config.model_dump(),
            "candidates": self.candidates,
            "reached": self.reached,
            "target": self.target,
            "n_docs": self.n_docs,
            "n_eval_docs": self.n_eval_docs,
            "n_queries": self.n_queries,
            "seconds": round(self.seconds, 3),
            "recall": {
                lab: {str(c): r for c, r in curve.items()} for lab, curve in self.recall.items()
            },
        }


def config_label(config: FDEConfig) -> str:
    """Short name: ``(reps,k_sim,d_proj)`` plus ``nofill`` / ``norm`` / ``->final_dim``; one bucket and
    one repetition is ``mean-pooled`` (``normalized`` with ``normalize_doc_blocks``)."""
    if config.reps == 1 and config.k_sim == 0 and config.final_dim is None:
        return (
            "mean-pooled"
            + (" normalized" if config.normalize_doc_blocks else "")
            + f" (d_proj {config.d_proj})"
        )
    flags = ("" if config.fill_empty else " nofill") + (
        " norm" if config.normalize_doc_blocks else ""
    )
    sketch = f" ->{config.final_dim}" if config.final_dim is not None else ""
    return f"({config.reps},{config.k_sim},{config.d_proj}){flags}{sketch}"


def fit_to_dim(config: FDEConfig, dim: int) -> FDEConfig:
    """``config`` with ``d_proj`` at most the token dimension ``dim``."""
    return config if config.d_proj <= dim else config.model_copy(update={"d_proj": dim})


def pseudo_queries(
    vectors: np.ndarray, offsets: np.ndarray, n_queries: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pseudo-queries from CSR documents: ``(q_vecs (M, dim) f32, q_offsets (nq + 1,) int64, source (nq,) int64)``.

    First half short (1-3 contiguous tokens of a document), second half long (a whole document);
    ``source`` is the document each came from.
    """
    n = offsets.shape[0] - 1
    n_short = n_queries // 2
    source = rng.choice(n, size=min(n_queries, n), replace=n_queries > n).astype(np.int64)
    sets = []
    for j, d in enumerate(source):
        start, stop = int(offsets[d]), int(offsets[d + 1])
        if j < n_short:
            length = min(int(rng.integers(1, 4)), stop - start)
            first = start + int(rng.integers(0, stop - start - length + 1))
            sets.append(vectors[first : first + length])
        else:
            sets.append(vectors[start:stop])
    q_offsets = np.zeros(len(sets) + 1, np.int64)
    q_offsets[1:] = np.cumsum([s.shape[0] for s in sets])
    return np.ascontiguousarray(np.concatenate(sets), np.float32), q_offsets, source


def exact_chamfer_matrix(
    q_vecs: np.ndarray, q_offsets: np.ndarray, vectors: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    """Chamfer similarities ``(nq, n_docs)`` float32 with BLAS.

    Per chunk of whole queries (about 256 query tokens): token similarities ``(N tokens, chunk)``,
    max over each document's rows, then the sum over each query's columns.
    """
    nq, n = q_offsets.shape[0] - 1, offsets.shape[0] - 1
    out = np.empty((nq, n), np.float32)
    i = 0
    while i < nq:
        j = max(i + 1, int(np.searchsorted(q_offsets, q_offsets[i] + 256, side="right")) - 1)
        j = min(j, nq)
        lo, hi = q_offsets[i], q_offsets[j]
        sims = vectors @ q_vecs[lo:hi].T  # (N tokens, chunk tokens)
        per_doc = np.maximum.reduceat(sims, offsets[:-1], axis=0)  # (n, chunk tokens)
        out[i:j] = np.add.reduceat(per_doc, q_offsets[i:j] - lo, axis=1).T
        i = j
    return out


def candidate_recall(
    fde_q: np.ndarray,
    fde_d: np.ndarray,
    truth_sims: np.ndarray,
    source: np.ndarray,
    k: int,
    steps: list[int],
) -> dict[int, float]:
    """Recall@``k`` after exact re-rank of each query's first ``C`` FDE candidates, per ``C`` in ``steps``.

    ``truth_sims`` (nq, n) exact Chamfer; each query's ``source`` document is left out of both.
    """
    nq = fde_q.shape[0]
    rows = np.arange(nq)
    approx = fde_q @ fde_d.T
    approx[rows, source] = -np.inf
    exact = truth_sims.copy()
    exact[rows, source] = -np.inf
    truth = np.argsort(-exact, axis=1, kind="stable")[:, :k]
    order = np.argsort(-approx, axis=1, kind="stable")[:, : max(steps)]
    curve = {}
    for c in steps:
        cand = order[:, :c]
        top = np.take_along_axis(
            cand,
            np.argsort(-np.take_along_axis(exact, cand, axis=1), axis=1, kind="stable")[:, :k],
            axis=1,
        )
        curve[c] = recall_at_k(top, truth, k)
    return curve


def _sketch(raw: np.ndarray, config: FDEConfig, state) -> np.ndarray:
    out = np.zeros((raw.shape[0], config.output_dim), np.float32)
    count_sketch(raw, state.sketch_buckets, state.sketch_signs, out)
    return out


def choose_fde(
    vectors: np.ndarray,
    offsets: np.ndarray,
    *,
    target: float = AUTO_TARGET,
    k: int = AUTO_K,
    grid: tuple[FDEConfig, ...] = AUTO_GRID,
    max_docs: int = 1500,
    n_queries: int = 128,
    seed: int = 0,
) -> FDEChoice:
    """Choose an FDE configuration and a candidate count for CSR documents (see the module docstring).

    ``vectors`` (N, dim) float32 and ``offsets`` (n + 1,) int64 as validated by
    :func:`vecsearch.codecs.fde.as_token_sets`. Deterministic for a given ``seed``.
    """
    t0 = time.perf_counter()
    n, dim = offsets.shape[0] - 1, vectors.shape[1]
    grid = tuple(fit_to_dim(config, dim) for config in grid)
    if n < MIN_DOCS_TO_MEASURE:
        return FDEChoice(grid[0], None, False, target, n)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(n, max_docs), replace=False))
    m = rows.size
    if m <= 2 * k:  # too few documents for a top-k to mean anything
        return FDEChoice(grid[0], None, False, target, n, m)
    lengths = np.diff(offsets)[rows]
    e_offsets = np.zeros(rows.size + 1, np.int64)
    e_offsets[1:] = np.cumsum(lengths)
    e_vectors = np.ascontiguousarray(
        np.concatenate([vectors[offsets[r] : offsets[r + 1]] for r in rows]), np.float32
    )
    q_vecs, q_offs, source = pseudo_queries(e_vectors, e_offsets, n_queries, rng)
    truth_sims = exact_chamfer_matrix(q_vecs, q_offs, e_vectors, e_offsets)
    steps = sorted(
        {max(k, math.ceil(f * m)) for f in _CANDIDATE_FRACTIONS if max(k, math.ceil(f * m)) < m}
    )
    scale = n / m
    mean_doc_tokens = float(np.diff(offsets).mean())
    mean_query_tokens = float(np.diff(q_offs).mean())
    best: tuple[float, FDEConfig, int] | None = None
    fallback: tuple[float, FDEConfig, int] | None = None
    curves: dict[str, dict[int, float]] = {}
    raw_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for config in grid:
        # a count-sketched config shares its raw FDE with the unsketched one (same draws, see fde.py)
        base = config.model_copy(update={"final_dim": None})
        if config_label(base) not in raw_cache:
            state = fde_random_state(base, dim)
            raw_cache[config_label(base)] = (
                encode_token_sets(e_vectors, e_offsets, base, state, is_query=False),
                encode_token_sets(q_vecs, q_offs, base, state, is_query=True),
            )
        fde_d, fde_q = raw_cache[config_label(base)]
        if config.final_dim is not None:
            state = fde_random_state(config, dim)
            fde_d, fde_q = (_sketch(x, config, state) for x in (fde_d, fde_q))
        curve = candidate_recall(fde_q, fde_d, truth_sims, source, k, steps)
        curves[config_label(config)] = curve
        last = max(curve)
        if fallback is None or curve[last] > fallback[0]:
            fallback = (curve[last], config, last)
        reaching = [c for c in steps if curve[c] >= target]
        if reaching:
            c_full = min(n, math.ceil(reaching[0] * scale))
            cost = (
                SCAN_WEIGHT * n * config.output_dim
                + c_full * mean_doc_tokens * mean_query_tokens * dim
            )
            if best is None or cost < best[0]:
                best = (cost, config, c_full)
    if best is None or fallback is None:
        fallback = fallback or (0.0, grid[0], steps[-1] if steps else m)
        config, c_full, reached = fallback[1], min(n, math.ceil(fallback[2] * scale)), False
    else:
        config, c_full, reached = best[1], best[2], True
    return FDEChoice(
        config,
        int(c_full),
        reached,
        target,
        n,
        m,
        int(source.size),
        time.perf_counter() - t0,
        curves,
    )
