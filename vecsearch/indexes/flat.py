"""FlatIndex: exact search over all stored vectors; the ground-truth oracle and re-rank target."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..base import Index, register_index
from ..factory import register_factory
from ..kernels.distances import METRIC_L2
from ..kernels.exact import rescore_sorted, topk_scan
from ..kernels.heaps import empty_heaps, sort_heaps, topk_merge_block

# Batches at least this large use BLAS (matrix product per database block) instead of the
# per-query numba scan. bench/bench_flat.py (116,659 x 384, 2 cores): with OMP_WAIT_POLICY=PASSIVE
# BLAS wins from nq=1 (4.9 vs 6.0 ms); under the default OpenMP policy, alternating OpenBLAS'
# threads and numba's OpenMP threads stalls each small call for ~12 ms (5,000 rows, nq=1: 12.2 ms
# vs 0.12 ms for the scan), so small batches stay on the numba scan; from 8 queries up the GEMM
# path wins by 2-10x and amortizes a stall.
BLAS_MIN_QUERIES = 8
# Elements of one (queries x database block) score matrix; bounds temporary memory to ~64 MB.
BLAS_BLOCK_ELEMENTS = 1 << 24


@register_index("flat")
class FlatIndex(Index):
    """Exact k-NN search (``l2``, ``ip`` or ``cosine``); results equal faiss ``IndexFlat`` up to ties.

    Vectors are kept contiguous as float32 ``(ntotal, dim)``; ``remove`` compacts storage.
    """

    def __init__(self, dim: int, metric: str = "l2"):
        super().__init__(dim, metric)
        self._vectors = np.empty((0, self.dim), np.float32)
        self._sq_norms = np.empty(0, np.float32)
        self._n = 0

    @property
    def vectors(self) -> np.ndarray:
        """Stored vectors in slot order, float32 ``(n_slots, dim)`` (normalized for cosine)."""
        return self._vectors[: self._n]

    def reconstruct(self, ids: Any) -> np.ndarray:
        """Stored vectors of external ``ids`` (n,), float32 ``(n, dim)``; unknown ids raise ``KeyError``."""
        ids_arr = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        slots = [self._ids._id_to_slot.get(int(i), -1) for i in ids_arr]
        missing = [int(i) for i, s in zip(ids_arr, slots) if s < 0]
        if missing:
            raise KeyError(f"ids: not in the index: {missing[:5]}")
        return self._vectors[np.asarray(slots, np.int64)].copy()

    def _add(self, vectors: np.ndarray, ids: np.ndarray, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"FlatIndex.add: unexpected parameters {sorted(kwargs)}")
        n_new = vectors.shape[0]
        needed = self._n + n_new
        if needed > self._vectors.shape[0] or not self._vectors.flags.writeable:
            capacity = max(needed, int(self._vectors.shape[0] * 1.5), 1024)
            grown = np.empty((capacity, self.dim), np.float32)
            grown[: self._n] = self._vectors[: self._n]
            norms = np.empty(capacity, np.float32)
            norms[: self._n] = self._sq_norms[: self._n]
            self._vectors, self._sq_norms = grown, norms
        self._vectors[self._n : needed] = vectors
        self._sq_norms[self._n : needed] = np.einsum("ij,ij->i", vectors, vectors)
        self._n = needed
        self._ids.append(ids)

    def _search(self, queries: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
        if queries.shape[0] >= BLAS_MIN_QUERIES:
            return self._search_blas(queries, k)
        scores, rows = empty_heaps(queries.shape[0], k)
        topk_scan(self._metric_code, queries, self._vectors, self._n, k, scores, rows)
        return rows, scores

    def _search_blas(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        nq = queries.shape[0]
        heap_scores, heap_rows = empty_heaps(nq, k)
        block = max(1024, BLAS_BLOCK_ELEMENTS // max(nq, 1))
        is_l2 = self._metric_code == METRIC_L2
        for start in range(0, self._n, block):
            stop = min(self._n, start + block)
            scores = queries @ self._vectors[start:stop].T
            if is_l2:
                # ||q - x||^2 = ||x||^2 - 2<q, x> + ||q||^2; ||q||^2 is added once at the end.
                scores *= np.float32(-2.0)
                scores += self._sq_norms[start:stop]
            else:
                np.negative(scores, out=scores)
            topk_merge_block(scores, start, heap_scores, heap_rows)
        sort_heaps(heap_scores, heap_rows)
        # The GEMM form cancels badly for close neighbors: report exact scores for the k kept.
        rescore_sorted(self._metric_code, queries, self._vectors, heap_rows, heap_scores)
        return heap_rows, heap_scores

    def _remove_slots(self, slots: np.ndarray) -> None:
        keep = np.setdiff1d(np.arange(self._n), slots)
        self._vectors = np.ascontiguousarray(self._vectors[keep])
        self._sq_norms = np.ascontiguousarray(self._sq_norms[keep])
        self._n = keep.shape[0]
        self._ids.compact(keep)

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {"vectors": self._vectors[: self._n]}

    @classmethod
    def _from_state(cls, dim: int, metric: str, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> FlatIndex:
        index = cls(dim, metric)
        vectors = arrays["vectors"]
        if vectors.ndim != 2 or vectors.shape[1] != dim or vectors.dtype != np.float32:
            raise ValueError(f"vectors: expected float32 (n, {dim}), got {vectors.dtype} {vectors.shape}")
        index._vectors = vectors
        index._sq_norms = np.einsum("ij,ij->i", vectors, vectors).astype(np.float32)
        index._n = vectors.shape[0]
        return index


@register_factory(r"Flat", "Flat", lambda index: "Flat", FlatIndex)
def _build_flat(dim: int, metric: str, match: Any, params: dict[str, Any]) -> FlatIndex:
    return FlatIndex(dim, metric, **params)
