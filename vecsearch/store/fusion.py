"""Fusion of ranked result lists (the vector and keyword legs of hybrid search) into one ranking.

::

    vec = (vector_ids, -vector_distances)        # each leg: (ids best first, scores: larger = better)
    kw = keyword_index.search(text, k=50)
    fused = reciprocal_rank_fusion([vec, kw], k=10)
    fused = relative_score_fusion([vec, kw], weights=(alpha, 1 - alpha), k=10)
    fused.ids, fused.scores                      # int64 (m,), float64 (m,), best first
    fused.ranks[1] > 0                           # which hits the keyword leg found (1-based rank, 0 = not found)

* Reciprocal rank fusion (Cormack, Clarke & Buettcher 2009): ``fused(d) = sum over legs of
  weight * 1 / (rank_constant + rank(d))``, rank counted from 1 (the leg's best hit has rank 1),
  ``rank_constant`` 60; a leg that did not return ``d`` adds nothing. (Weaviate's ``rankedFusion``
  counts ranks from 0, so its top hit gets ``1/60`` where this gets ``1/61``.)
* Relative score fusion (Weaviate's ``relativeScoreFusion``): each leg's scores are min-max
  normalized over the hits that leg returned (best 1, worst 0; all equal: 1) and summed with the
  leg weights; with legs ``(vector, keyword)`` and ``weights=(alpha, 1 - alpha)`` that is
  ``alpha * vector + (1 - alpha) * keyword``. Scores must grow with relevance: pass ``-distances``
  (or ``1 - distances``; min-max normalization makes them the same) for a vector leg.

Negative ids (the ``-1`` padding of search results) are dropped from the legs. Ties of the fused
score are ordered by the weighted reciprocal rank (``sum weight / (60 + rank)``), then by id. This
matters for relative scores: min-max normalization gives a leg's worst hit 0, the same as a hit
that leg did not return, so without it ``weights=(0, 1)`` could rank a vector-only hit above the
keyword leg's own last hit; with it, weights ``(0, 1)`` and ``(1, 0)`` reproduce the order of the
leg that has all the weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..validation import check_k

RANK_CONSTANT = 60


@dataclass(frozen=True)
class FusedResult:
    """Fused hits, best first, with what each leg said about them.

    ``ids`` int64 (m,); ``scores`` float64 (m,) fused scores; ``ranks`` int64 (n_legs, m): 1-based
    rank of each hit in each leg, 0 where that leg did not return it; ``leg_scores`` float64
    (n_legs, m): the leg's own score (as given, before any normalization), NaN where absent or
    where the leg had no scores.
    """

    ids: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray
    leg_scores: np.ndarray

    def found_by(self, leg: int) -> np.ndarray:
        """bool (m,): which hits leg ``leg`` returned."""
        return self.ranks[leg] > 0

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def _check_legs(legs: Any, need_scores: bool) -> list[tuple[np.ndarray, np.ndarray | None]]:
    if isinstance(legs, (str, bytes)) or not isinstance(legs, Sequence) or len(legs) == 0:
        raise ValueError(f"legs: expected a non-empty sequence of (ids, scores) pairs, got {type(legs).__name__}")
    out = []
    for i, leg in enumerate(legs):
        if not isinstance(leg, (tuple, list)) or len(leg) != 2:
            raise ValueError(f"legs[{i}]: expected an (ids, scores) pair, got {type(leg).__name__}")
        ids = np.asarray(leg[0])
        if ids.ndim != 1:
            raise ValueError(f"legs[{i}] ids: expected a 1-D array, got shape {ids.shape}")
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"legs[{i}] ids: expected integer ids, got dtype {ids.dtype}")
        ids = ids.astype(np.int64)
        scores = None
        if leg[1] is not None:
            scores = np.asarray(leg[1])
            if scores.shape != ids.shape:
                raise ValueError(f"legs[{i}] scores: expected shape {ids.shape} like the ids, got {scores.shape}")
            if scores.size and not np.issubdtype(scores.dtype, np.number):
                raise TypeError(f"legs[{i}] scores: expected numbers, got dtype {scores.dtype}")
            scores = scores.astype(np.float64)
        elif need_scores:
            raise ValueError(f"legs[{i}] scores: relative score fusion needs the scores of every leg, got None")
        keep = ids >= 0
        ids = ids[keep]
        if scores is not None:
            scores = scores[keep]
            if not np.isfinite(scores).all():
                raise ValueError(f"legs[{i}] scores: expected finite scores for the returned ids (padding uses id -1)")
        if np.unique(ids).shape[0] != ids.shape[0]:
            raise ValueError(f"legs[{i}] ids: an id appears twice in one leg")
        out.append((ids, scores))
    return out


def _check_weights(weights: Any, n_legs: int) -> np.ndarray:
    if weights is None:
        return np.ones(n_legs)
    arr = np.asarray(weights, dtype=np.float64) if not isinstance(weights, (str, bytes)) else None
    if arr is None or arr.shape != (n_legs,):
        raise ValueError(f"weights: expected {n_legs} numbers (one per leg), got {weights!r}")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"weights: expected finite non-negative numbers, got {weights!r}")
    return arr


def _fuse(legs: list[tuple[np.ndarray, np.ndarray | None]], contributions: list[np.ndarray], weights: np.ndarray,
          k: int | None) -> FusedResult:
    all_ids = np.concatenate([ids for ids, _ in legs])
    union, inverse = np.unique(all_ids, return_inverse=True)
    m = union.shape[0]
    fused = np.zeros(m)
    by_rank = np.zeros(m)  # weighted reciprocal rank: breaks ties of the fused score
    ranks = np.zeros((len(legs), m), np.int64)
    leg_scores = np.full((len(legs), m), np.nan)
    start = 0
    for j, ((ids, scores), contrib) in enumerate(zip(legs, contributions)):
        pos = inverse[start : start + ids.shape[0]]
        start += ids.shape[0]
        fused[pos] += contrib
        ranks[j, pos] = np.arange(1, ids.shape[0] + 1)
        by_rank[pos] += weights[j] / (RANK_CONSTANT + ranks[j, pos])
        if scores is not None:
            leg_scores[j, pos] = scores
    order = np.lexsort((union, -by_rank, -fused))  # fused score, then weighted ranks, descending; then id
    if k is not None:
        order = order[:k]
    return FusedResult(ids=union[order], scores=fused[order], ranks=ranks[:, order], leg_scores=leg_scores[:, order])


def reciprocal_rank_fusion(legs: Sequence[tuple[Any, Any]], *, weights: Sequence[float] | None = None,
                           rank_constant: float = RANK_CONSTANT, k: int | None = None) -> FusedResult:
    """Fuse legs ``[(ids best first, scores or None), ...]`` by ``sum weight / (rank_constant + rank)``.

    ``weights``: one non-negative number per leg (default all 1). ``rank_constant`` >= 0 (60).
    ``k``: keep the ``k`` best fused hits (None: all of the union).
    """
    checked = _check_legs(legs, need_scores=False)
    w = _check_weights(weights, len(checked))
    if isinstance(rank_constant, bool) or not isinstance(rank_constant, (int, float)) or not 0 <= rank_constant < np.inf:
        raise ValueError(f"rank_constant: expected a finite number >= 0, got {rank_constant!r}")
    k = None if k is None else check_k(k)
    contributions = [w[j] / (rank_constant + np.arange(1, ids.shape[0] + 1)) for j, (ids, _) in enumerate(checked)]
    return _fuse(checked, contributions, w, k)


def relative_score_fusion(legs: Sequence[tuple[Any, Any]], *, weights: Sequence[float] | None = None,
                          k: int | None = None) -> FusedResult:
    """Fuse legs ``[(ids, scores), ...]`` by ``sum weight * min-max-normalized score`` (Weaviate).

    Scores must grow with relevance. A leg's scores are normalized over the hits it returned:
    ``(s - min) / (max - min)``, or 1 for every hit when they are all equal. ``weights``: one
    non-negative number per leg (default all 1; ``(alpha, 1 - alpha)`` for vector and keyword
    legs). ``k``: keep the ``k`` best fused hits (None: all).
    """
    checked = _check_legs(legs, need_scores=True)
    w = _check_weights(weights, len(checked))
    k = None if k is None else check_k(k)
    contributions = []
    for j, (_, leg_scores) in enumerate(checked):
        scores = np.asarray(leg_scores, np.float64)  # never None: _check_legs(need_scores=True)
        if scores.size == 0:
            contributions.append(scores)
            continue
        lo, hi = scores.min(), scores.max()
        norm = np.ones_like(scores) if hi == lo else (scores - lo) / (hi - lo)
        contributions.append(w[j] * norm)
    return _fuse(checked, contributions, w, k)
