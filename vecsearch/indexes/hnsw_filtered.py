"""Filtered search on an HNSW graph: the strategies :class:`~vecsearch.indexes.hnsw.HNSWIndex` owns.

A mixin of ``HNSWIndex`` (its only user): the methods read the graph, the float32 vectors, the
LVQ8 shadow codes and the scratch pool of the index they belong to. The planner
(:mod:`vecsearch.filtering.planner`) chooses among them from :meth:`HNSWFilteredSearch.filter_capabilities`;
their thresholds are fields of the index's :class:`~vecsearch.filtering.tuning.FilterTuning`.

* ``prefilter``: the allowed rows scanned exactly, or from ``code_scan_min_matches`` matches over
  the LVQ8 shadow codes re-ranked with the float32 vectors.
* ``filtered_walk``: ACORN-1 walk (only passing nodes scored, failing ones expanded two hops).
* ``beam_collect``: the unfiltered beam on the shadow codes keeping the best passing nodes it
  scores, re-scored exactly; rows that look anti-correlated are answered again by the scan or walk.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..base import Index
from ..exact import BLAS_MIN_QUERIES
from ..filtering.compile import AllowedSlots
from ..filtering.planner import FilterCapabilities, record_beam_feedback
from ..kernels.graph_filtered import (
    beam_collect_batch,
    beam_collect_serial,
    filtered_walk_batch,
    filtered_walk_serial,
)
from ..kernels.heaps import empty_heaps
from ..parallel import run_serial, thread_rows


def walk_seeds(allowed: AllowedSlots, n_seeds: int) -> np.ndarray:
    """Up to ``n_seeds`` passing slots spread evenly over the allowed set (int64): extra walk entries."""
    slots = allowed.slots
    if slots.shape[0] <= n_seeds:
        return np.ascontiguousarray(slots, np.int64)
    return np.ascontiguousarray(slots[np.linspace(0, slots.shape[0] - 1, n_seeds).astype(np.int64)], np.int64)


def merge_distinct(slots_a: np.ndarray, scores_a: np.ndarray, slots_b: np.ndarray, scores_b: np.ndarray,
                   k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` distinct slots per row of two result sets ``(slots int64, scores f32)`` (nq, *), best first.

    Padding (-1 / +inf) fills rows with fewer than ``k`` distinct slots.
    """
    slots = np.concatenate([slots_a, slots_b], axis=1)
    scores = np.concatenate([scores_a, scores_b], axis=1)
    out_scores, out_slots = empty_heaps(slots.shape[0], k)
    for i in range(slots.shape[0]):
        order = np.argsort(scores[i], kind="stable")
        row = slots[i, order]
        _, first = np.unique(row, return_index=True)
        keep = np.sort(first)  # first occurrence (best score) of each slot, in score order
        keep = keep[row[keep] >= 0][:k]
        out_slots[i, : keep.shape[0]] = row[keep]
        out_scores[i, : keep.shape[0]] = scores[i, order][keep]
    return out_slots, out_scores


class HNSWFilteredSearch(Index):
    """The filtered strategies of ``HNSWIndex`` (see the module docstring)."""

    def filter_capabilities(self) -> FilterCapabilities:
        return FilterCapabilities(exact_scan=True, code_scan=True, beam_collect=True, graph_walk=True)

    def _exact_vectors(self) -> np.ndarray:
        return self._vectors

    def _run_filtered(self, strategy: str, queries: np.ndarray, k: int, params: Any,
                      allowed: AllowedSlots) -> tuple[np.ndarray, np.ndarray]:
        if strategy == "filtered_walk":
            return self._filtered_walk(queries, k, params, allowed)
        if strategy == "beam_collect":
            return self._beam_collect(queries, k, params, allowed)
        return super()._run_filtered(strategy, queries, k, params, allowed)

    def _prefilter(self, queries: np.ndarray, k: int, params: Any, allowed: AllowedSlots) -> tuple[np.ndarray, np.ndarray]:
        """The allowed rows scanned: exactly below ``code_scan_min_matches`` matches or for BLAS-sized
        batches, else over the LVQ8 shadow codes re-ranked exactly."""
        nq = queries.shape[0]
        if allowed.count < self.filter_tuning.code_scan_min_matches or nq >= BLAS_MIN_QUERIES:
            return super()._prefilter(queries, k, params, allowed)
        return self._shadow.scan(self._metric_code, queries, self._vectors, self._ids.n_slots, allowed.slots, k,
                                 serial=run_serial(nq))

    def warm_code_scan(self, queries: np.ndarray) -> None:
        """Compile the shadow-code scan (serial and parallel) on ``queries`` (a warm-up helper)."""
        every = np.arange(self._ids.n_slots, dtype=np.int64)
        for serial in (True, False):
            self._shadow.scan(self._metric_code, queries, self._vectors, self._ids.n_slots, every, 5, serial)

    def _postfilter_fallback(self, queries: np.ndarray, k: int, params: Any,
                             allowed: AllowedSlots) -> tuple[np.ndarray, np.ndarray]:
        """Rows post-filtering could not fill: the scan while it is affordable, else the walk widened."""
        tuning = self.filter_tuning
        if allowed.count <= tuning.fallback_scan_max(True):
            return self._prefilter(queries, k, params, allowed)
        return self._filtered_walk(queries, k, params, allowed, ef_scale=tuning.fallback_walk_ef_scale)

    def _filtered_walk(self, queries: np.ndarray, k: int, params: Any, allowed: AllowedSlots,
                       ef_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """ACORN-1 walk; the beam widens by ``walk_ef_boost_max`` below 10% selectivity (or ``ef_scale``)."""
        tuning = self.filter_tuning
        ef = max(params.ef if params.ef is not None else self.ef_search, k)
        boost = max(ef_scale, min(tuning.walk_ef_boost_max,
                                  tuning.postfilter_min_selectivity / max(allowed.selectivity, 1e-9)))
        ef = math.ceil(ef * boost)
        nq = queries.shape[0]
        out_scores, out_slots = empty_heaps(nq, k)
        kernel = filtered_walk_serial if run_serial(nq) else filtered_walk_batch
        with self._scratch.borrow(thread_rows(nq), self._vectors.shape[0], ef) as scratch:
            kernel(self._metric_code, queries, k, ef, self._vectors, *self._graph(), self._entry, self._max_level,
                   allowed.mask, walk_seeds(allowed, tuning.walk_seeds), *scratch, out_slots, out_scores)
        return out_slots, out_scores

    def _beam_collect(self, queries: np.ndarray, k: int, params: Any, allowed: AllowedSlots,
                      ef_scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Unfiltered walk on the shadow codes keeping the best passing nodes it scores; doubtful rows fall back.

        A row falls back when it ends with fewer than ``min(k, matches)`` results or when its local
        selectivity (passing / scored nodes) is below ``beam_min_local_ratio`` of the global one: to
        the scan of the allowed rows up to ``fallback_scan_max`` matches, else to the widened walk.
        """
        tuning = self.filter_tuning
        selectivity = max(allowed.selectivity, 1e-9)
        ef = max(params.ef if params.ef is not None else self.ef_search, k)
        if ef_scale is None:
            ratio = tuning.beam_full_selectivity / selectivity
            ef_scale = min(tuning.beam_ef_boost_max, max(1.0, ratio**tuning.beam_ef_exponent))
        ef = math.ceil(ef * ef_scale)
        nq = queries.shape[0]
        out_scores = np.empty((nq, k), np.float32)  # the kernel fills them
        out_slots = np.empty((nq, k), np.int64)
        local = np.empty(nq, np.float32)
        min_local = tuning.beam_min_local_ratio * allowed.selectivity
        probe = max(tuning.beam_probe_nodes, math.ceil(tuning.beam_probe_passing / selectivity))
        kernel = beam_collect_serial if run_serial(nq) else beam_collect_batch
        with self._scratch.borrow(thread_rows(nq), self._vectors.shape[0], ef) as scratch:
            n_doubtful = kernel(self._metric_code, queries, k, ef, self._vectors, *self._graph(), self._entry,
                                self._max_level, allowed.mask, *scratch, min(k, allowed.count), min_local, probe,
                                allowed.count <= tuning.beam_pre_probe_max_matches, *self._code_walk_storage(k),
                                out_slots, out_scores, local)
        record_beam_feedback(allowed, nq, n_doubtful, tuning)
        if not n_doubtful:
            return out_slots, out_scores
        scan = allowed.count <= tuning.fallback_scan_max(True)
        if scan and nq == 1:  # the latency path: the scan's answer is the answer
            return self._prefilter(queries, k, params, allowed)
        doubtful = np.flatnonzero(local < min_local)
        if scan:
            out_slots[doubtful], out_scores[doubtful] = self._prefilter(queries[doubtful], k, params, allowed)
        else:  # the walk is approximate too: keep the better of both answers per result
            rows, scores = self._filtered_walk(queries[doubtful], k, params, allowed,
                                               ef_scale=tuning.fallback_walk_ef_scale)
            out_slots[doubtful], out_scores[doubtful] = merge_distinct(
                out_slots[doubtful], out_scores[doubtful], rows, scores, k)
        return out_slots, out_scores
