"""LVQ8 shadow codes of a graph index's float32 vectors, for fast scans of many allowed rows.

The filtered planner scans the allowed rows exactly when there are few of them, or when the
graph walk doubts its answer (a filter anti-correlated with the query). Past a few thousand rows
that scan is bound by memory bandwidth; the LVQ8 codes (:class:`vecsearch.codecs.lvq.LVQ8`, a quarter of
the bytes) are scanned instead and the best candidates re-scored with the float32 vectors
(:mod:`vecsearch.kernels.code_scan`): about 2.6x faster at 12-14k allowed rows of 384-d vectors,
recall@10 1.000 against the exact scan (116k WordNet vectors, 200 queries).

The codes are built on the first scan that needs them (about 0.2 s per 100k 384-d vectors) and
cost ``d + 4`` bytes per vector. They are not saved with the index: a loaded index rebuilds them
on demand. Slots appended later are encoded on the next scan; an index that rewrites a slot in
place must call :meth:`ShadowCodes.refresh` (one slot reused) or :meth:`ShadowCodes.reset`
(compaction renumbers them all).
"""

from __future__ import annotations

import threading

import numpy as np

from ..kernels.code_scan import topk_codes_rows, topk_codes_rows_serial
from ..kernels.heaps import empty_heaps
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


def walk_rerank(k: int) -> int:
    """How many of a code walk's best nodes are re-scored with the float32 vectors for top-``k``."""
    return max(WALK_RERANK_PER_K * k, WALK_RERANK_MIN)


class ShadowCodes:
    """LVQ8 rows for slots ``0 .. n_encoded - 1`` of an index's vectors (capacity doubles as it grows).

    Owned by one index; built on the first :meth:`ensure` that needs them. ``rows`` uint8
    (capacity, d + 4), ``codec`` the fitted :class:`vecsearch.codecs.lvq.LVQ8` (``codec.mu`` f32 (d,)).
    """

    def __init__(self) -> None:
        self.codec: LVQ8 | None = None
        self.rows = np.empty((0, 1), np.uint8)
        self.n_encoded = 0
        self._lock = threading.Lock()

    def ensure(self, vectors: np.ndarray, n_slots: int) -> ShadowCodes:
        """Encode (first the codec fit, then) slots up to ``n_slots`` of ``vectors`` (n, d) f32; returns self."""
        if self.codec is not None and self.n_encoded >= n_slots:
            return self  # the search hot path: up to date, no lock
        with self._lock:
            if self.codec is None:
                live = vectors[:n_slots]
                codec = LVQ8().fit(live if n_slots else vectors[:1])
                self.rows, self.n_encoded = codec.encode(live), n_slots
                self.codec = codec
            elif n_slots > self.n_encoded:
                rows = self.rows
                if n_slots > rows.shape[0]:
                    grown = np.empty((max(n_slots, 2 * rows.shape[0]), rows.shape[1]), np.uint8)
                    grown[: self.n_encoded] = rows[: self.n_encoded]
                    rows = grown
                rows[self.n_encoded : n_slots] = self.codec.encode(vectors[self.n_encoded : n_slots])
                self.rows, self.n_encoded = rows, n_slots
        return self

    def refresh(self, vectors: np.ndarray, slots: np.ndarray) -> None:
        """Re-encode ``slots`` whose vectors were rewritten in place (a deleted slot reused by ``add``)."""
        with self._lock:
            if self.codec is None:
                return
            stale = slots[slots < self.n_encoded]
            if stale.size:
                self.rows[stale] = self.codec.encode(vectors[stale])

    def reset(self) -> None:
        """Forget the codes (after slots were renumbered, e.g. by compaction); rebuilt on demand."""
        with self._lock:
            self.codec, self.rows, self.n_encoded = None, np.empty((0, 1), np.uint8), 0

    @property
    def nbytes(self) -> int:
        return int(self.rows.nbytes)

    def scan(self, metric: int, queries: np.ndarray, vectors: np.ndarray, n_slots: int, slots: np.ndarray,
             k: int, serial: bool) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` of ``queries`` (nq, d) f32 over ``slots`` (m,) int64 (< ``n_slots``) of ``vectors``.

        LVQ8 scan of the codes, the best ``max(RERANK_PER_K * k, RERANK_MIN)`` re-scored with
        ``vectors``; returns ``(slots int64 (nq, k), scores f32 (nq, k))`` best first, padded -1 / +inf.
        """
        self.ensure(vectors, n_slots)
        n_cand = min(max(RERANK_PER_K * k, RERANK_MIN), max(slots.shape[0], 1))
        n_cand = max(n_cand, k)
        out_scores, out_slots = empty_heaps(queries.shape[0], k)
        kernel = topk_codes_rows_serial if serial else topk_codes_rows
        kernel(metric, queries, self.rows, self.codec.mu, f16_values(), slots, n_cand, vectors, out_scores, out_slots)
        return out_slots, out_scores
