"""Query planning of :class:`~vecsearch.store.collection.Collection`: the dense leg, the keyword leg, their fusion.

A ``Collection.query`` call is validated into a :class:`QueryPlan` (:func:`plan_query`), then
runs one or two legs per query and returns :class:`Hits` (internal ids, best first, with what
each leg said about them), which the collection turns into records:

* dense leg (``query_embeddings``): the index's nearest neighbours, restricted by ``where`` (the
  predicate layer and the filtered-search planner) and by the internal ids that pass
  ``where_document`` (:func:`dense_search`);
* keyword leg (``search_text``): BM25 over the documents (:class:`~vecsearch.store.keyword.KeywordIndex`),
  restricted to the ids that pass ``where`` and ``where_document``;
* both: each leg fetches ``fetch_k`` hits and :mod:`vecsearch.store.fusion` ranks their union,
  reciprocal rank fusion (``fusion="rrf"``, default) or Weaviate's relative score fusion
  (``fusion="relative_score"``, ``alpha`` = weight of the dense leg, ``1 - alpha`` of the keyword
  leg); the first ``n_results`` are kept.

Why these defaults (``bench/bench_hybrid.py``, WordNet one-word queries; tuned constants chosen on
the first 500 queries and reported on the other 500): RRF with ``rank_constant=60`` and equal
weights needs no score calibration and beat both legs on hit@1 and hit@10 over the 1,000 queries
with an exact dense leg (0.583/0.922 vs 0.562/0.911 keyword) and with HNSW at ``ef=256``; at
HNSW's default ``ef=64`` only narrowly (0.567/0.913; an earlier run tied the keyword leg's hit@10),
where a dense weight ``alpha=0.3`` with ``rank_constant=10`` does better (0.581/0.926).
``fetch_k`` = ``max(n_results, 50)`` per leg (deeper lists did not change hit@10).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..base import SearchResult
from ..validation import as_vectors, check_k
from .fusion import reciprocal_rank_fusion, relative_score_fusion

FUSIONS = ("rrf", "relative_score")
DEFAULT_ALPHA = 0.5  # relative_score without alpha: both legs weigh the same
DEFAULT_FETCH_K = 50
# A dense leg restricted by where_document to at most this many records is scored exactly from
# the stored vectors (cheaper and exact); larger sets are post-filtered with a growing over-fetch.
EXACT_MAX = 4096


@dataclass(frozen=True)
class QueryPlan:
    """A validated query call: ``texts`` one str per query (None: no keyword leg), ``dense`` whether
    the embeddings leg runs, the fusion settings and the depth ``fetch_k`` of each leg."""

    n_results: int
    nq: int
    dense: bool
    texts: list[str] | None
    fusion: str
    alpha: float | None
    rank_constant: float
    fetch_k: int

    @property
    def hybrid(self) -> bool:
        return self.dense and self.texts is not None

    def leg_depth(self) -> int:
        """Hits asked of each leg: ``fetch_k`` when two legs are fused, else ``n_results``."""
        return self.fetch_k if self.hybrid else self.n_results


def check_search_text(search_text: Any, nq: int | None) -> list[str]:
    """``search_text``: a str or a list of str, one per query (``nq`` of them when embeddings are given)."""
    texts = [search_text] if isinstance(search_text, str) else search_text
    if isinstance(texts, (bytes, dict)) or not isinstance(texts, Sequence):
        raise TypeError(f"search_text: expected a str or a list of str, got {type(search_text).__name__}")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"search_text[{i}]: expected str, got {type(text).__name__}")
    if nq is not None and len(texts) != nq:
        raise ValueError(f"search_text: expected {nq} texts (one per query embedding), got {len(texts)}")
    return texts


def plan_query(nq: int | None, search_text: Any, n_results: Any, fusion: Any, alpha: Any, rank_constant: Any,
               fetch_k: Any) -> QueryPlan:
    """Validate the query arguments. ``nq``: number of query embeddings (None: none given)."""
    n_results = check_k(n_results, "n_results")
    texts = None if search_text is None else check_search_text(search_text, nq)
    if nq is None and texts is None:
        raise ValueError("query_embeddings/search_text: expected query embeddings, search texts or both, got neither")
    if fusion not in FUSIONS:
        raise ValueError(f"fusion: expected one of {FUSIONS}, got {fusion!r}")
    if alpha is not None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)):
            raise TypeError(f"alpha: expected a float in [0, 1] or None, got {type(alpha).__name__}")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha: expected a float in [0, 1] (weight of the dense leg), got {alpha}")
        alpha = float(alpha)
    if isinstance(rank_constant, bool) or not isinstance(rank_constant, (int, float)) or not 0 <= rank_constant < math.inf:
        raise ValueError(f"rank_constant: expected a finite number >= 0, got {rank_constant!r}")
    fetch = max(n_results, DEFAULT_FETCH_K) if fetch_k is None else check_k(fetch_k, "fetch_k")
    if fetch < n_results:
        raise ValueError(f"fetch_k: expected at least n_results={n_results} hits per leg, got {fetch}")
    n = nq if nq is not None else len(texts)  # type: ignore[arg-type]
    return QueryPlan(n_results=n_results, nq=n, dense=nq is not None, texts=texts, fusion=fusion, alpha=alpha,
                     rank_constant=float(rank_constant), fetch_k=fetch)


@dataclass(frozen=True)
class Hits:
    """One query's ranked hits: ``iids`` int64 (m,) best first; ``fused`` float64 (m,) the fused
    score (None unless two legs were fused); per leg: ``*_rank`` int64 (m,) 1-based rank in that
    leg (0: the leg did not return the hit), ``vector_distance`` / ``keyword_score`` float64 (m,)
    (NaN where absent)."""

    iids: np.ndarray
    fused: np.ndarray | None
    vector_rank: np.ndarray
    vector_distance: np.ndarray
    keyword_rank: np.ndarray
    keyword_score: np.ndarray

    def distances(self) -> list[float | None]:
        """The dense distance of each hit, None where the dense leg did not return it."""
        return [None if r == 0 else float(d) for r, d in zip(self.vector_rank.tolist(), self.vector_distance.tolist())]

    def scores(self) -> list[dict[str, Any]]:
        """One dict per hit (``include=["scores"]``), see :meth:`Collection.query`."""
        out = []
        fused = [None] * len(self.iids) if self.fused is None else self.fused.tolist()
        for f, vr, vd, kr, ks in zip(fused, self.vector_rank.tolist(), self.vector_distance.tolist(),
                                     self.keyword_rank.tolist(), self.keyword_score.tolist()):
            found_by = [leg for leg, rank in (("vector", vr), ("keyword", kr)) if rank]
            out.append({"fused": f, "found_by": found_by,
                        "vector_rank": vr or None, "vector_distance": vd if vr else None,
                        "keyword_rank": kr or None, "keyword_score": ks if kr else None})
        return out


def _single(ids: np.ndarray, values: np.ndarray, leg: str) -> Hits:
    m = ids.shape[0]
    ranks = np.arange(1, m + 1, dtype=np.int64)
    none, nan = np.zeros(m, np.int64), np.full(m, np.nan)
    values = values.astype(np.float64)
    if leg == "vector":
        return Hits(ids, None, ranks, values, none, nan)
    return Hits(ids, None, none, nan, ranks, values)


def fuse(plan: QueryPlan, vec: tuple[np.ndarray, np.ndarray] | None, kw: tuple[np.ndarray, np.ndarray] | None) -> Hits:
    """Rank one query's legs: ``vec`` = (iids int64, distances float32) best first, padding (-1)
    removed; ``kw`` = (iids int64, BM25 scores float32). A missing leg is None."""
    if vec is None and kw is None:
        raise ValueError("fuse: expected at least one leg")
    if kw is None:
        return _single(vec[0][: plan.n_results], vec[1][: plan.n_results], "vector")  # type: ignore[index]
    if vec is None:
        return _single(kw[0][: plan.n_results], kw[1][: plan.n_results], "keyword")
    legs = [(vec[0], -vec[1].astype(np.float64)), (kw[0], kw[1])]
    if plan.fusion == "rrf":
        weights = None if plan.alpha is None else (plan.alpha, 1.0 - plan.alpha)
        res = reciprocal_rank_fusion(legs, weights=weights, rank_constant=plan.rank_constant, k=plan.n_results)
    else:
        alpha = DEFAULT_ALPHA if plan.alpha is None else plan.alpha
        res = relative_score_fusion(legs, weights=(alpha, 1.0 - alpha), k=plan.n_results)
    # leg_scores[0] holds -distance: give the distance back.
    return Hits(res.ids, res.scores, res.ranks[0], -res.leg_scores[0], res.ranks[1], res.leg_scores[1])


# ---- the dense leg --------------------------------------------------------------------------------
def dense_search(index: Any, queries: Any, k: int, where: Any, allowed: np.ndarray | None, params: dict[str, Any],
                 multivector: bool) -> SearchResult:
    """``k`` nearest records of each query among those matching ``where`` and, when ``allowed``
    (int64 internal ids, the ``where_document`` matches) is given, in ``allowed``.

    Without ``allowed`` the index filters ``where`` itself (planner) — except the multi-vector index,
    which has no ``where`` in its search and is post-filtered. Returns ``(nq, k)`` ids and distances,
    padded with -1 / +inf; rows are never short of the matches that exist.
    """
    if allowed is None:
        if where is None:
            return index.search(queries, k, **params)
        if not multivector:
            return index.search(queries, k, where=where, **params)
        allowed = index.match(where)
    elif where is not None:
        allowed = np.intersect1d(allowed, index.match(where), assume_unique=True)
    if not multivector and allowed.shape[0] <= EXACT_MAX:
        exact = _exact_search(index, queries, k, allowed)
        if exact is not None:
            return exact
    return _post_filtered(index, queries, k, where if not multivector else None, allowed, params, multivector)


def _exact_search(index: Any, queries: np.ndarray, k: int, allowed: np.ndarray) -> SearchResult | None:
    """Exact distances to the stored vectors of ``allowed`` (None when the index keeps no vectors)."""
    nq = queries.shape[0]
    out_ids = np.full((nq, k), -1, np.int64)
    out_dist = np.full((nq, k), np.inf, np.float32)
    if allowed.shape[0] == 0:
        return SearchResult(out_ids, out_dist)
    try:
        vectors = index.reconstruct(allowed)
    except ValueError:
        return None
    q = np.ascontiguousarray(queries, np.float32)
    if index.metric == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), np.float32(1e-30))
        dist = 1.0 - q @ vectors.T
    elif index.metric == "ip":
        dist = -(q @ vectors.T)
    else:
        dist = (q * q).sum(1)[:, None] - 2.0 * (q @ vectors.T) + (vectors * vectors).sum(1)[None, :]
        np.maximum(dist, 0.0, out=dist)
    take = min(k, allowed.shape[0])
    for i in range(nq):
        row = dist[i]
        top = np.argpartition(row, take - 1)[:take] if take < row.shape[0] else np.arange(row.shape[0])
        top = top[np.lexsort((allowed[top], row[top]))]  # distance, then id: deterministic
        out_ids[i, :take] = allowed[top]
        out_dist[i, :take] = row[top]
    return SearchResult(out_ids, out_dist)


def _post_filtered(index: Any, queries: Any, k: int, where: Any, allowed: np.ndarray, params: dict[str, Any],
                   multivector: bool) -> SearchResult:
    """Search ``where`` with a growing over-fetch and keep the hits in ``allowed``; once the fetch
    covers every record the search is exhaustive, so rows are never short of the matches that exist."""
    nq = len(queries) if multivector else queries.shape[0]
    n_live = index.ntotal
    out_ids = np.full((nq, k), -1, np.int64)
    out_dist = np.full((nq, k), np.inf, np.float32)
    if allowed.shape[0] == 0:
        return SearchResult(out_ids, out_dist)
    need = min(k, allowed.shape[0])
    fetch = min(n_live, max(2 * k, math.ceil(k * n_live / allowed.shape[0] * 1.5) + 8))
    base_candidates = int(params.get("candidates", 100))
    pending = np.arange(nq)
    while pending.size:
        call = dict(params)
        if multivector:
            call["candidates"] = max(base_candidates, fetch)
            batch = [queries[i] for i in pending.tolist()]
        else:
            batch = queries[pending]
            if where is not None:
                call["where"] = where
        res = index.search(batch, fetch, **call)
        keep = np.isin(res.ids, allowed) & (res.ids >= 0)
        for row, qi in enumerate(pending.tolist()):
            cols = np.flatnonzero(keep[row])[:k]
            out_ids[qi, : cols.size] = res.ids[row, cols]
            out_dist[qi, : cols.size] = res.distances[row, cols]
        done = (keep.sum(axis=1) >= need) | (fetch >= n_live)
        pending = pending[~done]
        fetch = min(n_live, fetch * 4)
    return SearchResult(out_ids, out_dist)


def prepare_queries(queries: Any, dim: int | None, multivector: bool) -> Any:
    """``query_embeddings`` as float32 ``(nq, dim)`` (multi-vector: a list of ``(t, dim)`` matrices)."""
    if multivector:
        if isinstance(queries, np.ndarray) and queries.ndim == 2:
            return [queries]
        if not isinstance(queries, (list, tuple)) and not (isinstance(queries, np.ndarray) and queries.ndim == 3):
            raise TypeError(f"query_embeddings: expected a list of (tokens, dim) matrices, got {type(queries).__name__}")
        return list(queries)
    arr = np.asarray(queries)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise ValueError(f"query_embeddings: expected shape (nq, dim) or (dim,), got {arr.ndim}-D shape {arr.shape}")
    if dim is not None:
        arr = as_vectors(arr, dim, "query_embeddings")
    return arr


def shape_results(hits: list[Hits], nq: int, include: list[str],
                  rows: Callable[[list[int], list[str]], dict[str, Any]]) -> dict[str, Any]:
    """The ``query`` result dict: one inner list per query (``nq`` empty ones when ``hits`` is
    empty). ``rows(iids, include)`` gives ``ids``/``documents``/``metadatas``/``embeddings`` of records."""
    out: dict[str, Any] = {"ids": [], "included": list(include)}
    fields = ("documents", "metadatas", "distances", "embeddings", "scores")
    for field in fields:
        out[field] = [] if field in include else None
    for i in range(nq):
        if not hits:
            out["ids"].append([])
            for field in include:
                out[field].append([])
            continue
        found = rows(hits[i].iids.tolist(), include)
        out["ids"].append(found["ids"])
        for field in ("documents", "metadatas", "embeddings"):
            if field in include:
                out[field].append(found[field])
        if "distances" in include:
            out["distances"].append(hits[i].distances())
        if "scores" in include:
            out["scores"].append(hits[i].scores())
    return out
