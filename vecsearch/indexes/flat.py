"""FlatIndex: exact search over all stored vectors; the ground-truth oracle and re-rank target."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..base import Index
from ..exact import exact_topk
from ..filtering.planner import FilterCapabilities
from ..validation import check_stored_vectors


class FlatIndex(Index, type_name="flat"):
    """Exact k-NN search (``l2``, ``ip`` or ``cosine``); results equal faiss ``IndexFlat`` up to ties.

    Vectors are kept contiguous as float32 ``(ntotal, dim)``; ``remove`` compacts storage. Search
    and filtered search run the library's one exact top-k (:func:`vecsearch.exact.exact_topk`).
    """

    factory_forms = ((r"Flat", "Flat"),)
    keeps_removed_slots = False

    def __init__(self, dim: int, metric: str = "l2"):
        super().__init__(dim, metric)
        self._vectors = np.empty((0, self.dim), np.float32)
        self._sq_norms = np.empty(0, np.float32)
        self._n = 0

    @property
    def vectors(self) -> np.ndarray:
        """Stored vectors in slot order, float32 ``(n_slots, dim)`` (normalized for cosine)."""
        return self._vectors[: self._n]

    def describe(self) -> str:
        return "Flat"

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
        return exact_topk(self._metric_code, queries, self._vectors, k, n_rows=self._n, sq_norms=self._sq_norms)

    def filter_capabilities(self) -> FilterCapabilities:
        return FilterCapabilities(exact_search=True, exact_scan=True)

    def _exact_vectors(self) -> np.ndarray:
        return self._vectors

    def _remove_slots(self, slots: np.ndarray) -> None:
        keep_mask = np.ones(self._n, np.bool_)
        keep_mask[slots] = False
        keep = np.flatnonzero(keep_mask)
        self._vectors = np.ascontiguousarray(self._vectors[keep])
        self._sq_norms = np.ascontiguousarray(self._sq_norms[keep])
        self._n = keep.shape[0]
        self._ids.compact(keep)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {"vectors": self._vectors[: self._n]}

    @classmethod
    def _from_state(cls, dim: int, metric: str, params: dict[str, Any], arrays: dict[str, np.ndarray],
                    n_slots: int) -> FlatIndex:
        if params:
            raise ValueError(f"params: FlatIndex takes none, got {sorted(params)}")
        index = cls(dim, metric)
        vectors = arrays.get("vectors")
        if vectors is None or vectors.dtype != np.float32 or vectors.shape != (n_slots, dim):
            got = "missing" if vectors is None else f"{vectors.dtype} {vectors.shape}"
            raise ValueError(f"vectors: expected float32 ({n_slots}, {dim}), got {got}")
        check_stored_vectors(vectors, "vectors", metric)
        index._vectors = vectors
        index._sq_norms = np.einsum("ij,ij->i", vectors, vectors).astype(np.float32)
        index._n = n_slots
        return index
