"""Filtered search on a LeanVec graph: the strategies :class:`~vecsearch.indexes.leanvec.LeanVecIndex` owns.

A mixin of ``LeanVecIndex`` (its only user): the methods read the graph, the primary codes and the
secondary vectors of the index they belong to.

* ``filtered_walk``: ACORN-1 walk on the primary codes over the allowed slots, the passing
  candidates re-ranked with the secondary vectors;
* ``prefilter``: the exact scan of the allowed rows, when the secondary vectors are float32;
* ``postfilter``: the base's over-fetch, short rows answered by the scan or the widened walk.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..base import Index
from ..codecs.lvq import f16_values
from ..filtering.compile import AllowedSlots
from ..filtering.planner import FilterCapabilities
from ..kernels._jit import num_threads
from ..kernels.leanvec_filtered import filtered_walk_codes
from .hnsw_filtered import walk_seeds


class LeanVecFilteredSearch(Index):
    """The filtered strategies of ``LeanVecIndex`` (see the module docstring)."""

    def filter_capabilities(self) -> FilterCapabilities:
        return FilterCapabilities(exact_scan=self._exact_vectors() is not None, graph_walk=True)

    def _exact_vectors(self) -> np.ndarray | None:
        """The float32 secondary vectors (full dimension, by slot) when kept: the exact filtered scan."""
        return self._sec_f32 if self._sec_f32.shape[0] >= self._ids.n_slots and self._sec_f32.size else None

    def _run_filtered(self, strategy: str, queries: np.ndarray, k: int, params: Any,
                      allowed: AllowedSlots) -> tuple[np.ndarray, np.ndarray]:
        if strategy == "filtered_walk":
            return self._filtered_walk(queries, k, params, allowed)
        return super()._run_filtered(strategy, queries, k, params, allowed)

    def _postfilter_fallback(self, queries: np.ndarray, k: int, params: Any,
                             allowed: AllowedSlots) -> tuple[np.ndarray, np.ndarray]:
        """Rows post-filtering could not fill: the exact scan while affordable, else the walk widened."""
        tuning = self.filter_tuning
        if self._exact_vectors() is not None and allowed.count <= tuning.fallback_scan_max(False):
            return self._prefilter(queries, k, params, allowed)
        return self._filtered_walk(queries, k, params, allowed, ef_scale=tuning.fallback_walk_ef_scale)

    def _filtered_walk(self, queries: np.ndarray, k: int, params: Any, allowed: AllowedSlots,
                       ef_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """ACORN-1 walk on the primary codes (:func:`vecsearch.kernels.leanvec_filtered.filtered_walk_codes`),
        widened like HNSW's; the passing candidates it ends with are re-ranked by the secondary vectors."""
        tuning = self.filter_tuning
        ef = max(params.ef or self.params.ef_search, k)
        boost = max(ef_scale, min(tuning.walk_ef_boost_max,
                                  tuning.postfilter_min_selectivity / max(allowed.selectivity, 1e-9)))
        ef = math.ceil(ef * boost)
        qp = np.ascontiguousarray(self._primary_queries(queries), dtype=np.float32)
        nq = qp.shape[0]
        cand = np.full((nq, ef), -1, np.int64)
        scores = np.full((nq, ef), np.inf, np.float32)
        count = np.zeros(nq, np.int64)
        mask = allowed.mask
        mask = mask if mask.shape[0] == self._n else np.ascontiguousarray(mask[: self._n])
        filtered_walk_codes(
            self._kind, self._walk_mode, qp, self._primary_mu(), self._prim_rows, self._prim_f32, self._sqnorms,
            f16_values(), self._neighbors, self._degrees, self._entry, self._n, ef, min(num_threads(), nq), mask,
            walk_seeds(allowed, tuning.walk_seeds), cand, scores, count,
        )  # fmt: skip
        n_rerank = ef if params.rerank is None else max(params.rerank, k)
        return self._rerank(queries, cand, count, n_rerank, k)
