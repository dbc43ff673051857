"""LeanVecIndex: the graph (:mod:`vecsearch.indexes.graph`) over reduced, LVQ-coded vectors, re-ranked
with the full vectors.

Pipeline (Tepper et al. 2024; Aguerrebere et al. 2023; see ALGORITHMS.md):

* ``train(x, queries=None)``: LeanVec-ID (PCA) or, when a query sample is given, LeanVec-OOD
  (Frank-Wolfe) to ``reduced_dim``; then the LVQ mean of the primary vectors and, for an LVQ8
  secondary, of the full vectors. ``reduced_dim="auto"`` (default) chooses the dimension from
  ``dim`` (:func:`auto_reduced_dim`: about two thirds of it, a multiple of 64; none up to 192 dimensions);
  ``None`` skips the projection (LVQ on full vectors).
* ``add``: projects and encodes the primary vectors, stores the secondary (float32 / float16 /
  LVQ8, full dimension) and inserts the points into the HNSW graph, built on the primary codes.
* ``search(q, k, ef=None, rerank=None)``: the graph walk of width ``ef`` scores the primary codes of
  the projected query; its best ``rerank`` candidates (default: :func:`default_rerank`, ``max(2k, 20)``
  at the default reduction, at most ``ef``) are re-scored with
  the secondary vectors. ``rerank > ef`` keeps the best ``rerank`` nodes scored anywhere in the walk
  (a wider re-rank without a wider walk).

Every filtered strategy of the graph applies (:mod:`vecsearch.indexes.graph_filtered`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..codecs.lvq import LVQ8, f16_values, make_codec
from ..codecs.projection import LeanVecProjection, train_leanvec_id, train_leanvec_ood
from ..io import copy_on_write
from ..kernels.storage import (
    MODE_IP,
    MODE_L2,
    MODE_L2_VIA_IP,
    STORE_F16,
    STORE_F32,
    STORE_LVQ8,
    Storage,
    make_storage,
)
from ..params import LEANVEC_DEFAULT_M, LeanVecBuildParams, LeanVecSearchParams, parse_params
from .graph import EF_GRID, GraphIndex, code_walk_rerank

_ROW_ARRAYS = ("_prim_rows", "_prim_f32", "_sqnorms", "_sec_f32", "_sec_f16", "_sec_rows")


# The default reduced dimension: about REDUCED_SHARE of ``dim``, a multiple of VECTOR_BLOCK. Measured with
# bench/bench_leanvec.py (WordNet MiniLM 384-d, one-word out-of-distribution queries, LeanVec-OOD, M=16,
# one thread, QPS at recall@10 0.95 against hnswlib; bench/results/leanvec_dims_*.json): see the
# README's LeanVec section for the figures. Dimensions that are not a multiple of 64 pay for a scalar
# tail in the LVQ8 inner product (LLVM's vector loop takes 64 codes a step): on the held-out part 252
# dims measured 1.62x hnswlib, 288 1.79x, 256 2.07x (bench/results/leanvec_dims_held_out.json). Up to
# NO_REDUCTION_UP_TO dimensions there is too little to cut: full-dimension LVQ8.
REDUCED_SHARE = 2 / 3
VECTOR_BLOCK = 64
NO_REDUCTION_UP_TO = 192


def auto_reduced_dim(dim: int) -> int | None:
    """The default reduced dimension for ``dim``-dimensional data: ``REDUCED_SHARE * dim`` rounded to a
    multiple of :data:`VECTOR_BLOCK` (384 -> 256, 768 -> 512, 1536 -> 1024), or ``None`` (full-dimension
    LVQ8 codes) up to :data:`NO_REDUCTION_UP_TO` dimensions."""
    if dim <= NO_REDUCTION_UP_TO:
        return None
    reduced = VECTOR_BLOCK * max(1, round(dim * REDUCED_SHARE / VECTOR_BLOCK))
    return reduced if reduced < dim else None


def default_rerank(k: int, ef: int, dim: int, reduced_dim: int) -> int:
    """Default re-rank pool: the code walks' :func:`~vecsearch.indexes.graph.code_walk_rerank`, widened in
    proportion when the reduction cuts deeper than the default's (``reduced_dim`` below two thirds of
    ``dim``: the reduced scores rank less reliably). WordNet 384-d: at 256 dims re-scoring 20 nodes gave
    the recall@10 of re-scoring the whole beam to 0.0007 (held-out part, ef 48-64); at 128 dims (PCA)
    20 lost recall at ef 128 (0.9485 against >= 0.95 with the whole beam)."""
    widen = max(1.0, dim * REDUCED_SHARE / reduced_dim)
    return min(ef, int(np.ceil(code_walk_rerank(k, ef) * widen)))


class LeanVecIndex(GraphIndex, type_name="leanvec"):
    """Graph index over LeanVec-reduced, LVQ-coded vectors with full-dimension re-ranking.

    ``reduced_dim``: ``"auto"`` (default, :func:`auto_reduced_dim`), an integer in ``[1, dim)`` or
    None for no reduction; ``primary``: ``"lvq8" | "lvq4" | "lvq4x8" | "float32"`` (what the walk
    reads); ``secondary``: ``"float32" | "float16" | "lvq8"`` (what the re-rank reads); ``M``, ``ef_construction``,
    ``ef_search``, ``seed`` as :class:`~vecsearch.indexes.hnsw.HNSWIndex`.
    """

    requires_training = True
    search_knobs = ("ef", "rerank")
    factory_forms = (
        (r"LeanVec(?P<reduced>\d+),(?:LVQ(?P<lvq>8|4x8|4),)?HNSW(?P<M>\d+)", "LeanVec128,LVQ8,HNSW32"),
        (r"(?:LVQ(?P<lvq>8|4x8|4)|(?P<f32>F32)),HNSW(?P<M>\d+)", "LVQ8,HNSW32"),
    )

    def __init__(self, dim: int, metric: str = "l2", *, reduced_dim: int | str | None = "auto",
                 primary: str = "lvq8", secondary: str = "float32", M: int = LEANVEC_DEFAULT_M,
                 ef_construction: int = 200, ef_search: int = 64, seed: int = 0):
        super().__init__(dim, metric)
        values = {"reduced_dim": reduced_dim, "primary": primary, "secondary": secondary, "M": M,
                  "ef_construction": ef_construction, "ef_search": ef_search, "seed": seed}
        params = parse_params(LeanVecBuildParams, values, "LeanVecIndex")
        if params.reduced_dim == "auto":
            params = params.model_copy(update={"reduced_dim": auto_reduced_dim(self.dim)})
        if params.reduced_dim is not None and not 1 <= params.reduced_dim < self.dim:
            raise ValueError(f"reduced_dim: expected an integer in [1, {self.dim - 1}] (below dim={self.dim}), "
                             f"'auto' or None, got {params.reduced_dim}")
        self.params = params
        self._init_graph(params.M, params.ef_construction, params.seed, False)
        self.projection: LeanVecProjection | None = None
        self._primary_codec = None if primary == "float32" else make_codec(primary)
        self._secondary_codec = LVQ8() if secondary == "lvq8" else None
        self._trained = False
        d, D = self.reduced_dim, self.dim
        rb = self.primary_bytes_per_vector if self._primary_codec is not None else 1
        self._prim_rows = np.zeros((0, rb), np.uint8)
        self._prim_f32 = np.zeros((0, d), np.float32)
        self._sqnorms = np.zeros(0, np.float32)
        self._sec_f32 = np.zeros((0, D), np.float32)
        self._sec_f16 = np.zeros((0, D), np.uint16)
        self._sec_rows = np.zeros((0, D + 4), np.uint8)

    # ---- properties ----------------------------------------------------------------------------
    @property
    def is_trained(self) -> bool:
        return self._trained

    @property
    def reduced_dim(self) -> int:
        """Dimension of the primary vectors the graph walks on."""
        return self.dim if self.params.reduced_dim is None else self.params.reduced_dim

    @property
    def primary_bytes_per_vector(self) -> int:
        """Bytes of one primary vector (what each distance of the walk reads)."""
        if self._primary_codec is None:
            return 4 * self.reduced_dim
        return self._primary_codec.code_bytes(self.reduced_dim) + 4

    @property
    def ef_search(self) -> int:
        """Default beam width of ``search`` (per call: ``ef=``); saved with the index."""
        return self.params.ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self.params = parse_params(LeanVecBuildParams, {**self.params.model_dump(), "ef_search": value}, "LeanVecIndex")

    def describe(self) -> str:
        p = self.params
        primary = "F32" if p.primary == "float32" else "LVQ" + p.primary[3:]
        if p.reduced_dim is None:
            return f"{primary},HNSW{p.M}"
        return f"LeanVec{p.reduced_dim}," + ("" if p.primary == "float32" else primary + ",") + f"HNSW{p.M}"

    @classmethod
    def suggested_params(cls, n: int, dim: int) -> dict[str, Any]:
        return {"M": LEANVEC_DEFAULT_M, "ef_construction": 200}

    @classmethod
    def search_grid(cls) -> dict[str, list[Any]]:
        return {"ef": list(EF_GRID)}

    @classmethod
    def _from_factory(cls, dim: int, metric: str, groups: dict[str, Any], params: dict[str, Any]) -> LeanVecIndex:
        primary = "float32" if groups["lvq"] is None else "lvq" + groups["lvq"]
        reduced = groups.get("reduced")
        return cls(dim, metric, reduced_dim=None if reduced is None else int(reduced), primary=primary,
                   M=int(groups["M"]), **params)

    # ---- training ------------------------------------------------------------------------------
    def train(self, x: Any, queries: Any = None) -> LeanVecIndex:
        """Learn the projection (OOD when ``queries`` (nq, dim) is given) and the LVQ means from ``x`` (n, dim).

        Without a reduction (``reduced_dim=None``, the default up to 384 dimensions) ``queries`` are
        checked and not used, so the same call works whatever the default chooses."""
        self._check_empty("train")
        x = self.prepare_vectors(x, "x")
        if x.shape[0] == 0:
            raise ValueError("x: expected at least one training vector, got 0 rows")
        seed = self.params.seed
        if self.params.reduced_dim is None:
            if queries is not None:  # checked, then unused: there is no projection to fit them to
                self.prepare_vectors(queries, "queries")
            self.projection = None
        elif queries is None:
            self.projection = train_leanvec_id(x, self.params.reduced_dim, seed=seed)
        else:
            q = self.prepare_vectors(queries, "queries")
            if q.shape[0] == 0:
                raise ValueError("queries: expected a non-empty OOD query sample, got 0 rows")
            self.projection = train_leanvec_ood(x, q, self.params.reduced_dim, seed=seed)
        self._fit_codecs(x)
        return self

    def set_projection(self, projection: LeanVecProjection, x: Any) -> LeanVecIndex:
        """Reuse an already trained projection (fits only the LVQ means on ``x``)."""
        self._check_empty("set_projection")
        if self.params.reduced_dim is None or projection.dim != self.dim or projection.reduced_dim != self.reduced_dim:
            raise ValueError(f"projection: expected a {self.dim} -> {self.params.reduced_dim} projection, "
                             f"got {projection.dim} -> {projection.reduced_dim}")
        self.projection = projection
        self._fit_codecs(self.prepare_vectors(x, "x"))
        return self

    def _fit_codecs(self, x: np.ndarray) -> None:
        if self._primary_codec is not None:
            self._primary_codec.fit(self._to_primary(x))
        if self._secondary_codec is not None:
            self._secondary_codec.fit(x)
        self._trained = True
        self._bundles_changed()

    def _check_empty(self, action: str) -> None:
        if self._n:
            raise ValueError(f"LeanVecIndex.{action}: the index already holds {self._n} vectors encoded with the "
                             "current training; build a new index to retrain")

    def _to_primary(self, x: np.ndarray) -> np.ndarray:
        return x if self.projection is None else self.projection.transform_database(x)

    def _walk_queries(self, queries: np.ndarray) -> np.ndarray:
        if self.projection is None:
            return queries
        return np.ascontiguousarray(self.projection.transform_queries(queries, self.metric), np.float32)

    # ---- storage -------------------------------------------------------------------------------
    def _reserve_rows(self, capacity: int) -> None:
        for name in _ROW_ARRAYS:
            arr = getattr(self, name)
            if arr.shape[0] == 0 and not self._row_array_used(name):
                continue
            if capacity > arr.shape[0] or not arr.flags.writeable:
                out = np.zeros((max(capacity, arr.shape[0]),) + arr.shape[1:], arr.dtype)
                out[: arr.shape[0]] = arr
                setattr(self, name, out)

    def _row_array_used(self, name: str) -> bool:
        sec = self.params.secondary
        return {"_prim_rows": self._primary_codec is not None, "_prim_f32": self._primary_codec is None,
                "_sqnorms": True, "_sec_f32": sec == "float32", "_sec_f16": sec == "float16",
                "_sec_rows": sec == "lvq8"}[name]

    def _write_rows(self, slots: np.ndarray, vectors: np.ndarray) -> None:
        prim = self._to_primary(vectors)
        if self._primary_codec is None:
            self._prim_f32[slots] = prim
        else:
            self._prim_rows[slots] = self._primary_codec.encode(prim)
        self._sqnorms[slots] = np.einsum("ij,ij->i", vectors, vectors)
        sec = self.params.secondary
        if sec == "float32":
            self._sec_f32[slots] = vectors
        elif sec == "float16":
            self._sec_f16[slots] = vectors.astype(np.float16).view(np.uint16)
        else:
            self._sec_rows[slots] = self._secondary_codec.encode(vectors)

    def _keep_rows(self, keep: np.ndarray) -> None:
        for name in _ROW_ARRAYS:
            arr = getattr(self, name)
            if arr.shape[0]:
                setattr(self, name, np.ascontiguousarray(arr[keep]))

    def _primary_storage(self, mode: int) -> Storage:
        if self._primary_codec is None:
            return make_storage(STORE_F32, mode, f32=self._prim_f32, norms=self._sqnorms)
        return make_storage(STORE_LVQ8 + self._primary_codec.kind, mode, codes=self._prim_rows,
                            mu=self._primary_codec.mu, norms=self._sqnorms, f16=f16_values())

    def _walk_mode(self) -> int:
        if self.metric != "l2":
            return MODE_IP
        if self.projection is not None and self.projection.kind == "ood":
            return MODE_L2_VIA_IP  # OOD approximates inner products only: exact norms, approximate <q, x>
        return MODE_L2

    def _build_storage(self) -> Storage:
        return self._primary_storage(MODE_L2)  # neighbours by L2 among the reduced database vectors

    def _walk_storage(self) -> Storage:
        return self._primary_storage(self._walk_mode())

    def _rerank_storage(self) -> Storage:
        sec, metric = self.params.secondary, self._metric_code
        if sec == "float32":
            return make_storage(STORE_F32, metric, f32=self._sec_f32)
        if sec == "float16":
            return make_storage(STORE_F16, metric, u16=self._sec_f16, f16=f16_values())
        return make_storage(STORE_LVQ8, metric, codes=self._sec_rows, mu=self._secondary_codec.mu, f16=f16_values())

    def _n_rerank(self, k: int, ef: int, params: Any) -> int:
        rerank = getattr(params, "rerank", None)
        return default_rerank(k, ef, self.dim, self.reduced_dim) if rerank is None else max(rerank, k)

    def _exact_vectors(self) -> np.ndarray | None:
        """The float32 secondary vectors (full dimension, by slot) when kept: the exact filtered scan."""
        return self._sec_f32 if self._sec_f32.shape[0] >= self._ids.n_slots and self._sec_f32.size else None

    def _parse_search_params(self, params: dict[str, Any]) -> LeanVecSearchParams:
        return parse_params(LeanVecSearchParams, params, "LeanVecIndex.search")

    # ---- persistence ----------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        graph_params, arrays = self._graph_state()
        n = self._n
        params = {**self.params.model_dump(), **graph_params, "trained": self._trained,
                  "leanvec_kind": None if self.projection is None else self.projection.kind}
        for name in _ROW_ARRAYS:
            if self._row_array_used(name):
                arrays[name[1:]] = getattr(self, name)[:n]
        if self.projection is not None:
            arrays.update(self.projection.to_arrays("leanvec_"))
        if self._primary_codec is not None and self._primary_codec.mu is not None:
            arrays["primary_mu"] = self._primary_codec.mu
        if self._secondary_codec is not None and self._secondary_codec.mu is not None:
            arrays["secondary_mu"] = self._secondary_codec.mu
        return params, arrays

    @classmethod
    def _restore_rows(cls, dim: int, metric: str, params: dict[str, Any], arrays: dict[str, np.ndarray],
                      n_slots: int) -> LeanVecIndex:
        trained = params.pop("trained", False)
        kind = params.pop("leanvec_kind", None)
        if not isinstance(trained, bool) or kind not in (None, "id", "ood"):
            raise ValueError(f"params: trained / leanvec_kind malformed ({trained!r}, {kind!r})")
        index = cls(dim, metric, **params)
        if (kind is None) != (index.params.reduced_dim is None):
            raise ValueError(f"params.leanvec_kind: {kind!r} does not fit reduced_dim={index.params.reduced_dim}")
        if kind is not None:
            index.projection = LeanVecProjection.from_arrays(kind, arrays, "leanvec_")
            if index.projection.dim != dim or index.projection.reduced_dim != index.reduced_dim:
                raise ValueError(f"leanvec_database_matrix: expected a {dim} -> {index.reduced_dim} projection")
        for codec, name, width in ((index._primary_codec, "primary_mu", index.reduced_dim),
                                   (index._secondary_codec, "secondary_mu", dim)):
            if codec is not None and trained:
                mu = arrays.get(name)
                if mu is None or mu.shape != (width,) or mu.dtype != np.float32 or not np.isfinite(mu).all():
                    raise ValueError(f"{name}: expected finite float32 ({width},)")
                codec.mu = copy_on_write(mu)
        index._trained = trained
        for name in _ROW_ARRAYS:
            if not index._row_array_used(name):
                continue
            template = getattr(index, name)
            arr = arrays.get(name[1:])
            shape = (n_slots,) + template.shape[1:]
            if arr is None or arr.dtype != template.dtype or arr.shape != shape:
                got = "missing" if arr is None else f"{arr.dtype} {arr.shape}"
                raise ValueError(f"{name[1:]}: expected {template.dtype} {shape}, got {got}")
            setattr(index, name, copy_on_write(arr))
        return index

    @classmethod
    def warmup_kernels(cls, data: np.ndarray) -> None:
        """Compile (or load from cache) training and the LVQ kernels; the graph kernels are HNSW's."""
        n = data.shape[0]
        index = cls(data.shape[1], "l2", reduced_dim=min(4, data.shape[1] - 1), M=8, ef_construction=16)
        index.train(data)
        index.add(data, attributes={"rank": np.arange(n, dtype=np.int64)}, progress=False)
        for batch in (data[:1], data[:32]):
            index.search(batch, 5)
            index.search(batch, 5, where={"rank": {"$lt": n // 2}}, strategy="prefilter")
