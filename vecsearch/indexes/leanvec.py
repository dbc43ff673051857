"""LeanVecIndex: a graph walked on reduced, LVQ-coded primary vectors, re-ranked with full vectors.

Pipeline (Tepper et al. 2024; Aguerrebere et al. 2023; see ALGORITHMS.md):

* ``train(x, queries=None)``: LeanVec-ID (PCA) or, when a query sample is given, LeanVec-OOD
  (Frank-Wolfe) to ``reduced_dim``; then the LVQ mean of the primary vectors and, for an LVQ8
  secondary, of the full vectors. ``reduced_dim=None`` skips the projection (LVQ on full vectors).
* ``add``: projects and encodes the primary vectors, stores the secondary (float32 / float16 /
  LVQ8, full dimension) and inserts the points into a single-layer graph (see
  :mod:`vecsearch.kernels.leanvec_graph`: batched parallel insertion searched on the primary codes
  and robust-pruned on the decoded primary vectors; medoid entry point), then samples the
  search's entry layer.
* ``search(q, k, ef=None, rerank=None)``: beam search of width ``ef``, started from the best node of
  the entry layer (the medoid and ``ENTRY_SAMPLE - 1`` random nodes), where every distance is
  computed on the primary codes, then the whole buffer is re-scored with the secondary vectors and
  the best ``k`` returned. ``rerank < ef`` re-scores only the best ``rerank`` of the buffer;
  ``rerank > ef`` keeps the best ``rerank`` vectors scored anywhere in the walk (a wider re-rank
  without a wider walk).

Why a single-layer graph and not the shared HNSW kernels: it was written before those existed
and builds in parallel without locks; with a medoid entry and heuristic-pruned links it reaches
HNSW's recall per ef at this scale (DiskANN/Vamana practice) once the out-degree and build beam are
wide enough: on wordnet-minilm (116k) ``M=56, ef_construction=150`` matches HNSW16/200's recall per
ef on both the in- and out-of-distribution queries, where ``M=32, ef_construction=100`` needed
~2.5x HNSW's ef on the OOD ones (see bench/bench_leanvec.py). A better entry point (hierarchy)
measurably does not help there (see :mod:`vecsearch.kernels.leanvec_graph`). ``M`` is the maximum
out-degree (not HNSW's per-level M; there is one level).

Removed vectors stay in the graph as routing nodes and are never returned (no slot reuse).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..codecs.lvq import LVQ8, f16_values, make_codec
from ..codecs.projection import LeanVecProjection, train_leanvec_id, train_leanvec_ood
from ..io import copy_on_write
from ..kernels._jit import num_threads
from ..kernels.distances import METRIC_L2
from ..kernels.leanvec_graph import (
    KIND_FLOAT32,
    MODE_IP,
    MODE_L2,
    MODE_L2_VIA_IP,
    SEC_FLOAT16,
    SEC_FLOAT32,
    SEC_LVQ8,
    apply_reverse_links,
    build_batch_search,
    prune_rows,
    rerank,
    search_codes,
)
from ..params import LeanVecBuildParams, LeanVecSearchParams, parse_params
from .checks import check_links
from .hnsw import EF_GRID
from .leanvec_filtered import LeanVecFilteredSearch

# Robust-prune alpha on (non-squared) L2 distances of the build. 1.0 = hnswlib's heuristic. Measured on
# wordnet-minilm (116k, LeanVec-ID192/LVQ8, M=32, ef_construction=100): alpha 1.0 built in 9.5 s vs
# 13.2 s for Vamana's 1.2 and reached recall@10 0.933 vs 0.906 on the OOD queries at ef=48 (ID: equal).
BUILD_ALPHA = 1.0
# Each insertion batch holds this fraction of the points already in the graph (prefix doubling).
BATCH_FRACTION = 0.02
# Rows may grow to BUILD_SLACK * M links during a build before being re-pruned to M (SVS's
# graph slack factor): the O(M^2) prune then runs once per ~0.3 M new reverse links, not per link.
BUILD_SLACK = 1.3
# Entry layer: the walk starts from the best of this many sampled nodes (the medoid first), scored on
# their primary codes (cache-resident: the same rows every query). On wordnet-minilm (116k,
# LeanVec-ID192/LVQ8, M=56, single thread) 128 nodes replaced ~90 walk reads per query (the first
# hops from the medoid) and raised QPS at recall@10 0.95 by ~7% (ID) / ~4% (OOD); 64 and 192 were
# slightly worse, 512 slower than the medoid alone.
ENTRY_SAMPLE = 128
_SEC_KINDS = {"float32": SEC_FLOAT32, "float16": SEC_FLOAT16, "lvq8": SEC_LVQ8}


class LeanVecIndex(LeanVecFilteredSearch, type_name="leanvec"):
    """Graph index over LeanVec-reduced, LVQ-coded vectors with full-dimension re-ranking.

    ``reduced_dim``: target dimension (``1 <= reduced_dim < dim``) or None for no reduction;
    ``primary``: ``"lvq8" | "lvq4" | "lvq4x8" | "float32"`` (what the graph walk reads);
    ``secondary``: ``"float32" | "float16" | "lvq8"`` (what the re-rank reads);
    ``M``: maximum graph out-degree; ``ef_construction``: build beam width; ``ef_search``: default
    search beam width.
    """

    requires_training = True
    search_knobs = ("ef", "rerank")
    factory_forms = (
        (r"LeanVec(?P<reduced>\d+),(?:LVQ(?P<lvq>8|4x8|4),)?HNSW(?P<M>\d+)", "LeanVec128,LVQ8,HNSW32"),
        (r"(?:LVQ(?P<lvq>8|4x8|4)|(?P<f32>F32)),HNSW(?P<M>\d+)", "LVQ8,HNSW32"),
    )

    def __init__(
        self,
        dim: int,
        metric: str = "l2",
        *,
        reduced_dim: int | None,
        primary: str = "lvq8",
        secondary: str = "float32",
        M: int = 32,
        ef_construction: int = 200,
        ef_search: int = 64,
        seed: int = 0,
    ):
        super().__init__(dim, metric)
        self.params = parse_params(
            LeanVecBuildParams,
            {
                "reduced_dim": reduced_dim,
                "primary": primary,
                "secondary": secondary,
                "M": M,
                "ef_construction": ef_construction,
                "ef_search": ef_search,
                "seed": seed,
            },
            "LeanVecIndex",
        )
        if reduced_dim is not None and reduced_dim >= self.dim:
            raise ValueError(
                f"reduced_dim: expected an integer in [1, {self.dim - 1}] (below dim={self.dim}) or None, got {reduced_dim}"
            )
        self.projection: LeanVecProjection | None = None
        self._primary_codec = None if primary == "float32" else make_codec(primary)
        self._secondary_codec = LVQ8() if secondary == "lvq8" else None
        self._trained = False
        self._n = 0
        self._entry = -1  # the medoid of the first build: the build's entry point
        self._entry_sample = np.array([-1], np.int64)  # the search's entry layer, medoid first
        self.last_walk_reads: np.ndarray | None = (
            None  # primary vectors scored per query, last search
        )
        self._alloc(0)

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
    def _kind(self) -> int:
        return KIND_FLOAT32 if self._primary_codec is None else self._primary_codec.kind

    @property
    def _walk_mode(self) -> int:
        if self.metric != "l2":
            return MODE_IP
        if self.projection is not None and self.projection.kind == "ood":
            return MODE_L2_VIA_IP
        return MODE_L2

    # ---- storage -------------------------------------------------------------------------------
    def _alloc(self, capacity: int) -> None:
        d, D, R = self.reduced_dim, self.dim, self.params.M
        rb = self.primary_bytes_per_vector if self._primary_codec is not None else 0
        self._prim_rows = np.zeros((capacity if rb else 0, rb), np.uint8)
        self._prim_f32 = np.zeros((0 if rb else capacity, d), np.float32)
        self._sqnorms = np.zeros(capacity, np.float32)
        sec = self.params.secondary
        self._sec_f32 = np.zeros((capacity if sec == "float32" else 0, D), np.float32)
        self._sec_f16 = np.zeros((capacity if sec == "float16" else 0, D), np.uint16)
        self._sec_rows = np.zeros((capacity if sec == "lvq8" else 0, D + 4), np.uint8)
        self._neighbors = np.full((capacity, R), -1, np.int32)
        self._degrees = np.zeros(capacity, np.int32)

    def _grow(self, needed: int) -> None:
        cap = self._neighbors.shape[0]
        if needed <= cap:
            return
        new_cap = max(needed, int(cap * 1.5), 1024)
        old = {
            name: getattr(self, name)
            for name in (
                "_prim_rows",
                "_prim_f32",
                "_sqnorms",
                "_sec_f32",
                "_sec_f16",
                "_sec_rows",
                "_neighbors",
                "_degrees",
            )
        }
        self._alloc(new_cap)
        for name, arr in old.items():
            new = getattr(self, name)
            if new.shape[0]:
                new[: self._n] = arr[: self._n]

    # ---- training ------------------------------------------------------------------------------
    def train(self, x: Any, queries: Any = None) -> LeanVecIndex:
        """Learn the projection (OOD when ``queries`` is given) and the LVQ means from ``x`` (n, dim)."""
        self._check_empty("train")
        x = self.prepare_vectors(x, "x")
        if x.shape[0] == 0:
            raise ValueError("x: expected at least one training vector, got 0 rows")
        seed = self.params.seed
        if self.params.reduced_dim is None:
            if queries is not None:
                raise ValueError(
                    "queries: an OOD query sample needs reduced_dim (LeanVec-OOD); got reduced_dim=None"
                )
            self.projection = None
            primary = x
        else:
            if queries is None:
                self.projection = train_leanvec_id(x, self.params.reduced_dim, seed=seed)
            else:
                q = self.prepare_vectors(queries, "queries")
                if q.shape[0] == 0:
                    raise ValueError("queries: expected a non-empty OOD query sample, got 0 rows")
                self.projection = train_leanvec_ood(x, q, self.params.reduced_dim, seed=seed)
            primary = self.projection.transform_database(x)
        if self._primary_codec is not None:
            self._primary_codec.fit(primary)
        if self._secondary_codec is not None:
            self._secondary_codec.fit(x)
        self._trained = True
        return self

    def _check_empty(self, action: str) -> None:
        if self._n:
            raise ValueError(
                f"LeanVecIndex.{action}: the index already holds {self._n} vectors encoded with the current "
                "training; build a new index to retrain"
            )

    def set_projection(self, projection: LeanVecProjection, x: Any) -> LeanVecIndex:
        """Reuse an already trained projection (fits only the LVQ means on ``x``)."""
        self._check_empty("set_projection")
        if (
            self.params.reduced_dim is None
            or projection.dim != self.dim
            or projection.reduced_dim != self.reduced_dim
        ):
            raise ValueError(
                f"projection: expected a {self.dim} -> {self.params.reduced_dim} projection, "
                f"got {projection.dim} -> {projection.reduced_dim}"
            )
        x = self.prepare_vectors(x, "x")
        self.projection = projection
        if self._primary_codec is not None:
            self._primary_codec.fit(projection.transform_database(x))
        if self._secondary_codec is not None:
            self._secondary_codec.fit(x)
        self._trained = True
        return self

    def _to_primary(self, x: np.ndarray) -> np.ndarray:
        return x if self.projection is None else self.projection.transform_database(x)

    def _primary_queries(self, q: np.ndarray) -> np.ndarray:
        if self.projection is None:
            return q
        return self.projection.transform_queries(q, self.metric)

    def _primary_mu(self) -> np.ndarray:
        """The primary LVQ mean (d,) float32 (zeros for float32 primaries)."""
        if self._primary_codec is not None:
            return self._primary_codec.mu
        return np.zeros(self.reduced_dim, np.float32)

    def _decoded_primary(self) -> np.ndarray:
        """Float32 primary vectors of all slots as the walk sees them, (capacity, d)."""
        if self._primary_codec is None:
            return self._prim_f32
        out = np.zeros((self._neighbors.shape[0], self.reduced_dim), np.float32)
        out[: self._n] = self._primary_codec.decode(self._prim_rows[: self._n])
        return out

    # ---- add -----------------------------------------------------------------------------------
    def _add(self, vectors: np.ndarray, ids: np.ndarray, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"LeanVecIndex.add: unexpected parameters {sorted(kwargs)}")
        n_new = vectors.shape[0]
        start, stop = self._n, self._n + n_new
        self._grow(stop)
        prim = self._to_primary(vectors)
        if self._primary_codec is None:
            self._prim_f32[start:stop] = prim
        else:
            self._prim_rows[start:stop] = self._primary_codec.encode(prim)
        self._sqnorms[start:stop] = np.einsum("ij,ij->i", vectors, vectors)
        sec = self.params.secondary
        if sec == "float32":
            self._sec_f32[start:stop] = vectors
        elif sec == "float16":
            self._sec_f16[start:stop] = vectors.astype(np.float16).view(np.uint16)
        else:
            self._sec_rows[start:stop] = self._secondary_codec.encode(vectors)
        self._n = stop
        self._ids.append(ids)
        self._insert(np.arange(start, stop, dtype=np.int64))

    def _insert(self, new_slots: np.ndarray) -> None:
        vectors = self._decoded_primary()
        rng = np.random.default_rng(self.params.seed + int(new_slots[0]))
        order = new_slots[rng.permutation(new_slots.shape[0])]
        if self._entry < 0:
            live = vectors[new_slots]
            centroid = live.mean(axis=0)
            medoid = int(new_slots[np.argmin(((live - centroid) ** 2).sum(axis=1))])
            self._entry = medoid
            order = np.concatenate([[medoid], order[order != medoid]])
            self._degrees[medoid] = 0
            inserted, pos = 1, 1
        else:
            inserted, pos = int(new_slots[0]), 0
        threads = num_threads()
        R, ef = self.params.M, self.params.ef_construction
        alpha_sq = np.float32(BUILD_ALPHA**2)
        # Build on a wider adjacency (slack) and prune back to R at the end of the call.
        n = self._n
        graph = np.full((self._neighbors.shape[0], int(np.ceil(R * BUILD_SLACK))), -1, np.int32)
        graph[:n, :R] = self._neighbors[:n]
        degrees = self._degrees
        mu = self._primary_mu()
        f16 = f16_values()
        while pos < order.shape[0]:
            size = max(threads, int(inserted * BATCH_FRACTION))
            batch = np.ascontiguousarray(order[pos : pos + size])
            links = np.full((batch.shape[0], R), -1, np.int32)
            deg = np.zeros(batch.shape[0], np.int32)
            build_batch_search(
                METRIC_L2,
                self._kind,
                self._prim_rows,
                mu,
                f16,
                vectors,
                graph,
                degrees,
                self._entry,
                batch,
                ef,
                R,
                alpha_sq,
                threads,
                links,
                deg,
            )
            graph[batch, :R] = links
            degrees[batch] = deg
            valid = np.arange(R)[None, :] < deg[:, None]
            targets = links[valid].astype(np.int64)
            sources = np.repeat(batch, deg)
            by_target = np.argsort(targets, kind="stable")
            targets, sources = targets[by_target], np.ascontiguousarray(sources[by_target])
            uniq, first = np.unique(targets, return_index=True)
            offsets = np.append(first, targets.shape[0]).astype(np.int64)
            apply_reverse_links(
                METRIC_L2, vectors, graph, degrees, uniq, offsets, sources, R, alpha_sq
            )
            pos += batch.shape[0]
            inserted += batch.shape[0]
        over = np.flatnonzero(degrees[:n] > R).astype(np.int64)
        prune_rows(METRIC_L2, vectors, graph, degrees, over, R, alpha_sq)
        self._neighbors[:n] = graph[:n, :R]
        self._entry_sample = self._sample_entries()

    def _sample_entries(self) -> np.ndarray:
        """The entry layer (m,) int64: the medoid, then up to ``ENTRY_SAMPLE - 1`` random slots.

        Removed slots may stay in it: they still route the walk and the re-rank never returns them.
        """
        rng = np.random.default_rng(self.params.seed)
        others = np.flatnonzero(np.arange(self._n) != self._entry)
        take = min(ENTRY_SAMPLE - 1, others.shape[0])
        sample = np.sort(rng.choice(others, take, replace=False)) if take else others[:0]
        return np.concatenate([[self._entry], sample]).astype(np.int64)

    # ---- search --------------------------------------------------------------------------------
    def _parse_search_params(self, params: dict[str, Any]) -> LeanVecSearchParams:
        return parse_params(LeanVecSearchParams, params, "LeanVecIndex.search")

    def _walk(
        self, queries: np.ndarray, ef: int, pool: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Beam search on the primary vectors: ``(ids, walk scores, counts)`` of the candidates.

        The candidates are the final beam (nq, ef), or with ``pool > ef`` the ``pool`` best-scoring
        vectors among all scored during the walk (nq, pool); ascending by walk score.
        """
        qp = np.ascontiguousarray(self._primary_queries(queries), dtype=np.float32)
        nq = qp.shape[0]
        ids = np.full((nq, ef), -1, np.int64)
        scores = np.full((nq, ef), np.inf, np.float32)
        count = np.zeros(nq, np.int64)
        use_pool = pool > ef
        pool_ids = np.full((nq if use_pool else 1, pool if use_pool else 0), -1, np.int64)
        pool_scores = np.full(pool_ids.shape, np.inf, np.float32)
        pool_count = np.zeros(nq, np.int64)
        self.last_walk_reads = np.zeros(nq, np.int64)
        mu = self._primary_mu()
        threads = min(num_threads(), nq)
        search_codes(
            self._kind, self._walk_mode, qp, mu, self._prim_rows, self._prim_f32, self._sqnorms, f16_values(),
            self._neighbors, self._degrees, self._entry_sample, self._n, ef, threads, ids, scores, count,
            self.last_walk_reads, pool_ids, pool_scores, pool_count,
        )  # fmt: skip
        if use_pool:
            return pool_ids, pool_scores, pool_count
        return ids, scores, count

    def _search(
        self, queries: np.ndarray, k: int, params: LeanVecSearchParams
    ) -> tuple[np.ndarray, np.ndarray]:
        # ef: width of the walk's beam. rerank: how many candidates the secondary vectors re-score;
        # by default the whole beam; a larger value keeps the best `rerank` vectors scored anywhere
        # in the walk (a wider re-rank without a wider walk).
        ef = max(params.ef or self.params.ef_search, k)
        n_rerank = ef if params.rerank is None else max(params.rerank, k)
        cand, _, count = self._walk(queries, ef, pool=n_rerank)
        return self._rerank(queries, cand, count, n_rerank, k)

    def _rerank(
        self, queries: np.ndarray, cand: np.ndarray, count: np.ndarray, n_rerank: int, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` of the first ``min(n_rerank, count)`` walk candidates ``cand`` (nq, c) int64 by
        the secondary (full-dimension) vectors: ``(slots int64 (nq, k), scores f32 (nq, k))``."""
        out_ids = np.full((queries.shape[0], k), -1, np.int64)
        out_scores = np.full((queries.shape[0], k), np.inf, np.float32)
        sec_mu = (
            self._secondary_codec.mu
            if self._secondary_codec is not None
            else np.zeros(self.dim, np.float32)
        )
        rerank(
            self._metric_code, queries, cand, count, n_rerank, _SEC_KINDS[self.params.secondary],
            self._sec_f32, self._sec_f16, self._sec_rows, sec_mu, f16_values(), self._ids.deleted, k,
            out_ids, out_scores,
        )  # fmt: skip
        return out_ids, out_scores

    # ---- remove / persistence ------------------------------------------------------------------
    def _remove_slots(self, slots: np.ndarray) -> None:
        # Removed nodes keep routing the walk; the re-rank skips them (IdMap.deleted).
        self._ids.mark_deleted(slots)

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
        return {"reduced_dim": min(128, max(1, dim // 3)), "primary": "lvq8", "M": 32, "ef_construction": 200}

    @classmethod
    def search_grid(cls) -> dict[str, list[Any]]:
        return {"ef": list(EF_GRID)}

    @classmethod
    def _from_factory(cls, dim: int, metric: str, groups: dict[str, Any], params: dict[str, Any]) -> LeanVecIndex:
        primary = "float32" if groups["lvq"] is None else "lvq" + groups["lvq"]
        reduced = groups.get("reduced")
        return cls(dim, metric, reduced_dim=None if reduced is None else int(reduced), primary=primary,
                   M=int(groups["M"]), **params)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        n = self._n
        params = self.params.model_dump()
        params["trained"] = self._trained
        params["leanvec_kind"] = None if self.projection is None else self.projection.kind
        arrays: dict[str, np.ndarray] = {
            "primary_rows": self._prim_rows[: n if self._prim_rows.shape[0] else 0],
            "primary_f32": self._prim_f32[: n if self._prim_f32.shape[0] else 0],
            "sqnorms": self._sqnorms[:n],
            "secondary_f32": self._sec_f32[: n if self._sec_f32.shape[0] else 0],
            "secondary_f16": self._sec_f16[: n if self._sec_f16.shape[0] else 0],
            "secondary_rows": self._sec_rows[: n if self._sec_rows.shape[0] else 0],
            "neighbors": self._neighbors[:n],
            "degrees": self._degrees[:n],
            "entry": np.array([self._entry], np.int64),
            "entry_sample": self._entry_sample,
        }
        if self.projection is not None:
            arrays.update(self.projection.to_arrays("leanvec_"))
        if self._primary_codec is not None and self._primary_codec.mu is not None:
            arrays["primary_mu"] = self._primary_codec.mu
        if self._secondary_codec is not None and self._secondary_codec.mu is not None:
            arrays["secondary_mu"] = self._secondary_codec.mu
        return params, arrays

    @classmethod
    def _from_state(cls, dim: int, metric: str, params: dict[str, Any], arrays: dict[str, np.ndarray],
                    n_slots: int) -> LeanVecIndex:
        params = dict(params)
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
        n, d, R = n_slots, index.reduced_dim, index.params.M
        primary_bytes = index.primary_bytes_per_vector if index._primary_codec is not None else 0
        sec = index.params.secondary
        expected = {
            "primary_rows": (np.uint8, (n if primary_bytes else 0, primary_bytes)),
            "primary_f32": (np.float32, (0 if primary_bytes else n, d)),
            "sqnorms": (np.float32, (n,)),
            "secondary_f32": (np.float32, (n if sec == "float32" else 0, dim)),
            "secondary_f16": (np.uint16, (n if sec == "float16" else 0, dim)),
            "secondary_rows": (np.uint8, (n if sec == "lvq8" else 0, dim + 4)),
            "neighbors": (np.int32, (n, R)),
            "degrees": (np.int32, (n,)),
            "entry": (np.int64, (1,)),
        }
        for name, (dtype, shape) in expected.items():
            arr = arrays.get(name)
            if arr is None or arr.dtype != dtype or arr.shape != shape:
                got = "missing" if arr is None else f"{arr.dtype} {arr.shape}"
                raise ValueError(f"{name}: expected {np.dtype(dtype)} {shape}, got {got}")
        for codec, name, width in ((index._primary_codec, "primary_mu", d), (index._secondary_codec, "secondary_mu", dim)):
            if codec is not None and trained:
                mu = arrays.get(name)
                if mu is None or mu.shape != (width,) or mu.dtype != np.float32:
                    raise ValueError(f"{name}: expected float32 ({width},)")
                codec.mu = copy_on_write(mu)
        index._trained = trained
        index._n = n
        index._entry = int(arrays["entry"][0])
        # Files written before the entry layer existed walk from the medoid alone, as they did.
        index._entry_sample = np.array(arrays.get("entry_sample", [index._entry]), np.int64)
        problem = check_links("neighbors", arrays["neighbors"], arrays["degrees"], n, R)
        if not problem and n and not 0 <= index._entry < n:
            problem = f"entry: expected a slot in 0..{n - 1}, got {index._entry}"
        sample = index._entry_sample
        if not problem and n and (sample.ndim != 1 or sample.size == 0 or sample.min() < 0 or sample.max() >= n):
            problem = f"entry_sample: expected slots in 0..{n - 1}"
        if problem:
            raise ValueError(problem)
        index._prim_rows = copy_on_write(arrays["primary_rows"])
        index._prim_f32 = copy_on_write(arrays["primary_f32"])
        index._sqnorms = copy_on_write(arrays["sqnorms"])
        index._sec_f32 = copy_on_write(arrays["secondary_f32"])
        index._sec_f16 = copy_on_write(arrays["secondary_f16"])
        index._sec_rows = copy_on_write(arrays["secondary_rows"])
        index._neighbors = copy_on_write(arrays["neighbors"])
        index._degrees = copy_on_write(arrays["degrees"])
        return index

    @classmethod
    def warmup_kernels(cls, data: np.ndarray) -> None:
        """Compile (or load from cache) the build, walk, filtered walk and re-rank kernels on tiny data."""
        n = data.shape[0]
        for metric in ("l2", "ip", "cosine"):
            index = cls(data.shape[1], metric, reduced_dim=min(4, data.shape[1] - 1), M=8, ef_construction=16)
            index.train(data)
            index.add(data, attributes={"rank": np.arange(n, dtype=np.int64)})
            index.search(data[:1], 5)
            index.search(data[:32], 5)
            for batch in (data[:1], data[:32]):
                index.search(batch, 5, where={"rank": {"$lt": n // 20}}, strategy="filtered_walk")
