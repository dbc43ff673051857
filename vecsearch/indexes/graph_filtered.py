"""Filtered search on a graph index: the strategies every :class:`~vecsearch.indexes.graph.GraphIndex` owns.

A mixin of ``GraphIndex`` (its only user): the methods read the graph, the storages and the scratch
pool of the index they belong to. The planner (:mod:`vecsearch.filtering.planner`) chooses among
them from :meth:`GraphFilteredSearch.filter_capabilities`; their thresholds are fields of the index's
:class:`~vecsearch.filtering.tuning.FilterTuning`.

* ``prefilter``: the allowed rows scanned: exactly over float32 vectors, or, when the walk storage
  is compressed, over its codes with the best candidates re-scored by the re-rank storage;
* ``filtered_walk``: ACORN-1 walk (only passing nodes scored, failing ones expanded two hops);
* ``beam_collect``: the unfiltered beam keeping the best passing nodes it scores (re-scored exactly);
  rows that look anti-correlated are answered again by the scan or the widened walk.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..base import Index
from ..exact import BLAS_MIN_QUERIES, allowed_rows, exact_topk, scan
from ..filtering.compile import AllowedSlots
from ..filtering.planner import FilterCapabilities, record_beam_feedback
from ..kernels.graph_walk import POLICY_ACORN, POLICY_COLLECT, POLICY_PLAIN, Policy
from ..kernels.heaps import empty_heaps
from ..kernels.storage import STORE_F32

# A scan of compressed codes re-scores its best max(CODE_RERANK_PER_K * k, CODE_RERANK_MIN)
# candidates exactly. LVQ8 ranks 384-d WordNet vectors almost exactly (recall@10 1.000 with 100
# candidates); 64 costs ~7 us.
CODE_RERANK_PER_K = 8
CODE_RERANK_MIN = 64

_NO_MASK = np.empty(0, np.bool_)
_NO_SEEDS = np.empty(0, np.int64)


def plain_policy(deleted: np.ndarray, has_deleted: bool) -> Policy:
    """The unfiltered walk: every node returned but those flagged in ``deleted`` bool (n,)."""
    return Policy(POLICY_PLAIN, deleted, bool(has_deleted), _NO_MASK, _NO_SEEDS, 0.0, 0, False)


def acorn_policy(mask: np.ndarray, seeds: np.ndarray) -> Policy:
    """ACORN-1 walk over the slots of ``mask`` bool (n,), also entering at ``seeds`` int64 (s,)."""
    return Policy(POLICY_ACORN, _NO_MASK, False, mask, seeds, 0.0, 0, False)


def collect_policy(mask: np.ndarray, min_local: float = 0.0, min_scored: int = 2**62,
                   pre_probe: bool = False) -> Policy:
    """The plain walk keeping a pool of the best scored nodes of ``mask`` (empty: all nodes)."""
    return Policy(POLICY_COLLECT, _NO_MASK, False, mask, _NO_SEEDS, float(min_local), int(min_scored), bool(pre_probe))


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


class GraphFilteredSearch(Index):
    """The filtered strategies of ``GraphIndex`` (see the module docstring)."""

    def _codes_walk(self) -> bool:
        """The walk storage is compressed (a scan of it is cheaper per row than the float32 one)."""
        return self._bundles()[1][0] != STORE_F32

    def filter_capabilities(self) -> FilterCapabilities:
        return FilterCapabilities(exact_scan=self._exact_vectors() is not None, code_scan=self._codes_walk(),
                                  beam_collect=True, graph_walk=True)

    def _run_filtered(self, strategy: str, queries: np.ndarray, k: int, params: Any,
                      allowed: AllowedSlots) -> tuple[np.ndarray, np.ndarray]:
        if strategy == "filtered_walk":
            return self._filtered_walk(queries, k, params, allowed)
        if strategy == "beam_collect":
            return self._beam_collect(queries, k, params, allowed)
        return super()._run_filtered(strategy, queries, k, params, allowed)

    def _prefilter(self, queries: np.ndarray, k: int, params: Any, allowed: AllowedSlots) -> tuple[np.ndarray, np.ndarray]:
        return self._scan(queries, k, allowed, max(CODE_RERANK_PER_K * k, CODE_RERANK_MIN))

    def _scan(self, queries: np.ndarray, k: int, allowed: AllowedSlots | None,
              n_rerank: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` over the allowed live slots (``None``: all live slots). Exact over the float32
        vectors below ``code_scan_min_matches`` matches or for BLAS-sized batches when they are kept;
        else the walk storage's rows, the best ``n_rerank`` re-scored by the re-rank storage."""
        nq = queries.shape[0]
        count = self.ntotal if allowed is None else allowed.count
        exact = self._exact_vectors() is not None and (
            not self._codes_walk() or count < self.filter_tuning.code_scan_min_matches or nq >= BLAS_MIN_QUERIES)
        live = allowed
        if allowed is None and self.n_deleted:
            live = self.compile_where({})  # every live slot
        if exact:
            return exact_topk(self._metric_code, queries, self._exact_vectors(), k, n_rows=self._n, allowed=live)
        rows, mask = allowed_rows(live)
        _, st, sec, _ = self._bundles()
        return scan(st, sec, self._walk_queries(queries), queries, k, self._n, rows, mask, min(n_rerank, max(count, 1)))

    def _postfilter_fallback(self, queries: np.ndarray, k: int, params: Any,
                             allowed: AllowedSlots) -> tuple[np.ndarray, np.ndarray]:
        """Rows post-filtering could not fill: the scan while it is affordable, else the walk widened."""
        tuning = self.filter_tuning
        if allowed.count <= tuning.fallback_scan_max(self._codes_walk()):
            return self._prefilter(queries, k, params, allowed)
        return self._filtered_walk(queries, k, params, allowed, ef_scale=tuning.fallback_walk_ef_scale)

    def _filtered_walk(self, queries: np.ndarray, k: int, params: Any, allowed: AllowedSlots,
                       ef_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """ACORN-1 walk; its beam widens by ``tuning.walk_ef_scale(selectivity)`` (at least ``ef_scale``)."""
        tuning = self.filter_tuning
        ef = max(params.ef if params.ef is not None else self.ef_search, k)
        ef = math.ceil(ef * max(ef_scale, tuning.walk_ef_scale(allowed.selectivity)))
        policy = acorn_policy(allowed.mask, walk_seeds(allowed, tuning.walk_seeds))
        slots, scores, _ = self._walk(queries, k, ef, policy, self._n_rerank(k, ef, params))
        return slots, scores

    def _beam_collect(self, queries: np.ndarray, k: int, params: Any, allowed: AllowedSlots,
                      ef_scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Unfiltered walk keeping the best passing nodes it scores; doubtful rows fall back.

        A row falls back when it ends with fewer than ``min(k, matches)`` results or when its local
        selectivity (passing / scored nodes) is below ``beam_min_local_ratio`` of the global one: to
        the scan of the allowed rows up to ``fallback_scan_max`` matches, else to the widened walk.
        """
        tuning = self.filter_tuning
        selectivity = max(allowed.selectivity, 1e-9)
        ef = max(params.ef if params.ef is not None else self.ef_search, k)
        if ef_scale is None:
            ef_scale = tuning.beam_ef_scale(selectivity)
        ef = math.ceil(ef * ef_scale)
        nq = queries.shape[0]
        min_local = tuning.beam_min_local_ratio * allowed.selectivity
        probe = max(tuning.beam_probe_nodes, math.ceil(tuning.beam_probe_passing / selectivity))
        policy = collect_policy(allowed.mask, min_local, probe, allowed.count <= tuning.beam_pre_probe_max_matches)
        out_slots, out_scores, local = self._walk(queries, k, ef, policy, self._n_rerank(k, ef, params),
                                                  need=min(k, allowed.count))
        doubtful = np.flatnonzero(local < min_local)
        record_beam_feedback(allowed, nq, int(doubtful.size), tuning)
        if not doubtful.size:
            return out_slots, out_scores
        scan = self.filter_capabilities().prefilter and allowed.count <= tuning.fallback_scan_max(self._codes_walk())
        if scan and nq == 1:  # the latency path: the scan's answer is the answer
            return self._prefilter(queries, k, params, allowed)
        if scan:
            out_slots[doubtful], out_scores[doubtful] = self._prefilter(queries[doubtful], k, params, allowed)
        else:  # the walk is approximate too: keep the better of both answers per result
            rows, scores = self._filtered_walk(queries[doubtful], k, params, allowed,
                                               ef_scale=tuning.fallback_walk_ef_scale)
            out_slots[doubtful], out_scores[doubtful] = merge_distinct(
                out_slots[doubtful], out_scores[doubtful], rows, scores, k)
        return out_slots, out_scores
