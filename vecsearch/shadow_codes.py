"""LVQ8 shadow codes of a graph index's float32 vectors, for fast scans of many allowed rows.

The filtered planner scans the allowed rows exactly when there are few of them, or when the
graph walk doubts its answer (a filter anti-correlated with the query). Past a few thousand rows
that scan is bound by memory bandwidth; the LVQ8 codes (:class:`vecsearch.lvq.LVQ8`, a quarter of
the bytes) are scanned instead and the best candidates re-scored with the float32 vectors
(:mod:`vecsearch.kernels.code_scan`): about 2.6x faster at 12-14k allowed rows of 384-d vectors,
recall@10 1.000 against the exact scan (116k WordNet vectors, 200 queries).

The codes are built on the first scan that needs them (about 0.2 s per 100k 384-d vectors) and
cost ``d + 4`` bytes per vector. They are not saved with the index: a loaded index rebuilds them
on demand. Slots appended later are encoded on the next scan; an index that rewrites a slot in
place must call :func:`refresh_shadow_codes` (one slot reused) or :func:`drop_shadow_codes`
(compaction renumbers them all).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from .kernels.code_scan import topk_codes_rows, topk_codes_rows_serial
from .kernels.heaps import empty_heaps
from .lvq import LVQ8, f16_values

# Code candidates re-scored exactly per query: max(RERANK_PER_K * k, RERANK_MIN). LVQ8 ranks
# 384-d WordNet vectors almost exactly (recall@10 1.000 with 100 candidates); 64 costs ~7 us.
RERANK_PER_K = 8
RERANK_MIN = 64

# An index that walks its graph on the codes (HNSWIndex(walk_codes=True)) re-scores the walk's best
# max(WALK_RERANK_PER_K * k, WALK_RERANK_MIN) nodes exactly (116k WordNet, ef 64: 20 re-scored
# gave the same recall@10 as re-scoring all 64).
WALK_RERANK_PER_K = 2
WALK_RERANK_MIN = 20

_ATTR = "_shadow_codes"


def walk_rerank(k: int) -> int:
    """How many of a code walk's best nodes are re-scored with the float32 vectors for top-``k``."""
    return max(WALK_RERANK_PER_K * k, WALK_RERANK_MIN)
_LOCK = threading.Lock()


class ShadowCodes:
    """LVQ8 rows for slots ``0 .. n_encoded - 1`` of a vectors array (capacity doubles as it grows)."""

    def __init__(self, codec: LVQ8, rows: np.ndarray, n_encoded: int):
        self.codec = codec
        self.rows = rows  # uint8 (capacity, d + 4)
        self.n_encoded = n_encoded

    def extend(self, vectors: np.ndarray, n_slots: int) -> None:
        """Encode slots ``n_encoded .. n_slots - 1`` of ``vectors`` (n, d) f32."""
        if n_slots <= self.n_encoded:
            return
        if n_slots > self.rows.shape[0]:
            grown = np.empty((max(n_slots, 2 * self.rows.shape[0]), self.rows.shape[1]), np.uint8)
            grown[: self.n_encoded] = self.rows[: self.n_encoded]
            self.rows = grown
        self.rows[self.n_encoded : n_slots] = self.codec.encode(vectors[self.n_encoded : n_slots])
        self.n_encoded = n_slots


def shadow_codes(index: Any, vectors: np.ndarray, n_slots: int) -> ShadowCodes:
    """The index's shadow codes covering slots ``< n_slots`` of ``vectors`` (built or extended here)."""
    codes = index.__dict__.get(_ATTR)
    if codes is not None and codes.n_encoded >= n_slots:
        return codes  # the search hot path: up to date, no lock
    with _LOCK:
        codes = index.__dict__.get(_ATTR)
        if codes is None:
            live = vectors[:n_slots]
            codec = LVQ8().fit(live if n_slots else vectors[:1])
            codes = ShadowCodes(codec, codec.encode(live), n_slots)
            index.__dict__[_ATTR] = codes
        else:
            codes.extend(vectors, n_slots)
        return codes


def refresh_shadow_codes(index: Any, vectors: np.ndarray, slots: np.ndarray) -> None:
    """Re-encode ``slots`` whose vectors were rewritten in place (a deleted slot reused by ``add``)."""
    with _LOCK:
        codes = index.__dict__.get(_ATTR)
        if codes is None:
            return
        stale = slots[slots < codes.n_encoded]
        if stale.size:
            codes.rows[stale] = codes.codec.encode(vectors[stale])


def drop_shadow_codes(index: Any) -> None:
    """Forget the codes (call after slots were rewritten in place, e.g. by compaction)."""
    with _LOCK:
        index.__dict__.pop(_ATTR, None)


def code_scan(metric: int, queries: np.ndarray, index: Any, vectors: np.ndarray, n_slots: int,
              slots: np.ndarray, k: int, serial: bool) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of ``queries`` (nq, d) f32 over ``slots`` (m,) int64 (< ``n_slots``) of ``vectors``.

    LVQ8 scan of the shadow codes, the best ``max(RERANK_PER_K * k, RERANK_MIN)`` re-scored with
    ``vectors``; returns ``(slots int64 (nq, k), scores f32 (nq, k))`` best first, padded -1 / +inf.
    """
    codes = shadow_codes(index, vectors, n_slots)
    n_cand = min(max(RERANK_PER_K * k, RERANK_MIN), max(slots.shape[0], 1))
    n_cand = max(n_cand, k)
    out_scores, out_slots = empty_heaps(queries.shape[0], k)
    kernel = topk_codes_rows_serial if serial else topk_codes_rows
    kernel(metric, queries, codes.rows, codes.codec.mu, f16_values(), slots, n_cand, vectors, out_scores, out_slots)
    return out_slots, out_scores
