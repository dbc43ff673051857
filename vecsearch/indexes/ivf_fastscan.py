"""IVFFastScanIndex: k-means inverted lists of 4-bit PQ codes scanned in SIMD registers, exact re-rank.

Reference behaviour: faiss ``IndexIVFPQFastScan`` (+ ``IndexRefineFlat`` for the re-rank), factory
``IVF1024,PQ96x4fs`` (``,Refine`` keeps the float32 vectors). Codec: :class:`vecsearch.codecs.pq4.PQ4Codec`;
scan: :mod:`vecsearch.kernels.fastscan`; growable lists: :mod:`vecsearch.kernels.fastscan_lists`.

Memory per vector in the lists: ``m_pad / 2`` code bytes + a 4-byte slot, plus the 8-byte external
id of the id map (faiss: ``m / 2`` + an 8-byte id in the lists); the code lists are padded to
blocks of 32 vectors, as in faiss, the slots are not (a list built by one ``add`` has no spare
room). ``keep_vectors=True`` adds ``4 * dim`` bytes. Not saved, derived at load: the centroids in
the tiled layout of the coarse kernel (``nlist * dim`` float32 again), the PCA-reduced centroids of
the two-stage probe (:mod:`.ivf_coarse`, ``(nlist + dim) * coarse_rank`` float32; its rank is saved)
and, for L2, the per-list table ``nlist * m * 16`` float32.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import Field

from ..base import Index
from ..codecs.fastscan_runner import GROUPED_MIN_QUERIES, run_fastscan
from ..codecs.kmeans import (
    assign,
    centroid_tiles,
    kmeans,
    nearest_centroids,
    probes_per_query,
    sample_training_rows,
)
from ..codecs.pq4 import PQ4Codec
from ..filtering.planner import FilterCapabilities
from ..io import copy_on_write
from ..kernels.distances import METRIC_L2
from ..kernels.fastscan_ivf import append_codes, relayout_blocks, remove_from_lists
from ..kernels.fastscan_simd import BLOCK, KSUB
from ..kernels.ivf import l2_list_tables
from ..params import MAX_WIDTH, StrictModel, parse_params
from ..validation import check_stored_vectors
from .ivf_coarse import (
    CHECK_NPROBES,
    CHOICE_QUERIES,
    STATE_ARRAYS,
    ReducedProbe,
    candidates,
    measured_probe,
    saved_probe,
    state_arrays,
)
from .ivf_coarse import warmup as coarse_warmup
from .ivf_lists import IVFListsMixin
from .ivfpq import L2_TABLE_MAX_BYTES, suggested_nlist

# Lists per query a recall/speed sweep tries, and candidates re-ranked (search_grid).
NPROBE_GRID = (1, 2, 4, 8, 16, 32, 64, 128)
RERANK_GRID = (40, 100)
# Candidates re-ranked per query when ``rerank`` is not given: RERANK_PER_K * k (faiss k_factor 10).
RERANK_PER_K = 10
# Rows encoded per step of add (bounds the float32 residual temporary: 96 MB at 384 dims).
ADD_CHUNK = 65536
# remove() compacts storage (drops removed rows, renumbers slots) once this share of the slots,
# and at least COMPACT_MIN_REMOVED of them, are removed (the Collection's thresholds).
COMPACT_FRACTION = 0.25
COMPACT_MIN_REMOVED = 1024
# A growing list gets room for this fraction more vectors than it needs (amortized O(1) appends).
LIST_GROWTH = 0.25
# Target dimensions per 4-bit sub-quantizer (faiss PQ96x4fs on 384 dims).
DIMS_PER_SUBQUANTIZER = 4
# Batches of at least this many queries take the coarse scores from the tiled kernel (12 queries
# per register block: smaller batches would mostly multiply padding rows).
PROBE_TILED_MIN_QUERIES = 8


class IVFFastScanBuildParams(StrictModel):
    nlist: int = Field(ge=1, le=MAX_WIDTH)
    m: int = Field(ge=1, le=MAX_WIDTH)
    keep_vectors: bool = False
    nprobe: int = Field(16, ge=1, le=MAX_WIDTH)
    seed: int = Field(0, ge=0)
    max_train_points_per_centroid: int = Field(256, ge=1)
    kmeans_iters: int = Field(10, ge=1)  # coarse k-means Lloyd iterations (faiss IVF: 10)
    pq_iters: int = Field(25, ge=1)  # per-sub-space k-means iterations (faiss PQ: 25)


class IVFFastScanSearchParams(StrictModel):
    width_fields = ("rerank",)
    nprobe: int | None = Field(None, ge=1)
    rerank: int | None = Field(None, ge=0)  # candidates re-ranked exactly; 0 = return the 4-bit estimates


def suggested_m(dim: int) -> int:
    """Sub-quantizers for ``dim``: the divisor of ``dim`` whose sub-vectors are nearest to 4 dims
    (ties: more sub-quantizers). 384 -> 96, 100 -> 25, 97 (prime) -> 97, 3 -> 1."""
    divisors = [m for m in range(1, dim + 1) if dim % m == 0]
    return min(divisors, key=lambda m: (abs(dim / m - DIMS_PER_SUBQUANTIZER), -m))


def probe_lists(queries: np.ndarray, tiles: np.ndarray, centroids_t: np.ndarray, c_sq_norms: np.ndarray,
                metric_code: int, nprobe: int, reduced: ReducedProbe | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``nprobe`` nearest lists of ``queries`` (nq, d) f32: ``(lists int64, scores f32)`` (nq, nprobe).

    ``tiles`` f32 ``(ceil(nlist / 16), d, 16)`` (:func:`vecsearch.codecs.kmeans.centroid_tiles`),
    ``centroids_t`` f32 ``(d, nlist)``, ``c_sq_norms`` f32 ``(nlist,)``. Batches of
    ``PROBE_TILED_MIN_QUERIES`` or more: the two-stage probe of ``reduced`` when given and ``nprobe``
    is at most the largest it was checked at (:mod:`.ivf_coarse`), else
    :func:`vecsearch.codecs.kmeans.nearest_centroids` (the tiled kernel, groups of 48 queries taken
    by the threads in turn); smaller ones the per-query kernel, on the calling thread for one query.
    """
    nq = queries.shape[0]
    if nq >= PROBE_TILED_MIN_QUERIES:
        if reduced is not None and nprobe <= max(CHECK_NPROBES) and candidates(nprobe) < c_sq_norms.shape[0]:
            return reduced.probe(queries, metric_code, nprobe)
        return nearest_centroids(queries, tiles, c_sq_norms, metric_code, nprobe)
    return probes_per_query(queries, centroids_t, c_sq_norms, metric_code, nprobe)


class IVFFastScanIndex(IVFListsMixin, Index, type_name="ivf_fastscan"):
    """IVF index over 4-bit PQ codes in the fast-scan layout (``l2``, ``ip`` or ``cosine``).

    ``nlist`` k-means lists; each vector keeps ``m`` 4-bit codes (16 codewords per sub-space) of
    its residual to the list centroid for ``l2``, of the vector itself for ``ip``/``cosine`` (on
    the unit-norm WordNet vectors the residual codes ranked worse without re-rank and no better
    with it: ``bench/results/bench_fastscan.json``). ``search`` scans the ``nprobe`` nearest lists
    with uint8 look-up tables in SIMD registers. With ``keep_vectors=True`` the best ``rerank``
    candidates (default ``10 * k``) are re-scored exactly from the float32 vectors; without them
    the results are ranked and scored by the 4-bit estimates (distances approximate): recall@10 on
    the test slice falls from ~0.96 to ~0.7 (``tests/indexes/test_ivf_fastscan.py`` measures it).

    ``remove`` drops the vectors' codes from their lists at once (scans never see them) and flags
    their slots removed; :meth:`compact` (run automatically once a quarter of the slots are removed)
    drops the removed rows, renumbers the slots and gives back the lists' spare blocks.
    Filtered search: an exact scan of the allowed rows when vectors are kept, else post-filtering
    (no masked list scan yet). A search probes at least the lists needed to hold ~2k vectors.
    """

    build_params_class = IVFFastScanBuildParams

    requires_training = True
    search_knobs = ("nprobe", "rerank")
    factory_forms = ((r"IVF(?P<nlist>\d+),PQ(?P<m>\d+)x4fs(?P<refine>,Refine)?", "IVF1024,PQ96x4fs"),)

    def __init__(self, dim: int, metric: str = "l2", *, nlist: int, m: int, keep_vectors: bool = False,
                 nprobe: int = 16, seed: int = 0, max_train_points_per_centroid: int = 256, kmeans_iters: int = 10,
                 pq_iters: int = 25):
        super().__init__(dim, metric)
        self.params: IVFFastScanBuildParams = parse_params(
            IVFFastScanBuildParams,
            {"nlist": nlist, "m": m, "keep_vectors": keep_vectors, "nprobe": nprobe, "seed": seed,
             "max_train_points_per_centroid": max_train_points_per_centroid, "kmeans_iters": kmeans_iters,
             "pq_iters": pq_iters},
            "IVFFastScanIndex",
        )
        p = self.params
        if self.dim % p.m != 0:
            raise ValueError(f"m: the dimension {self.dim} must be divisible by m, got m={p.m} "
                             f"(dim % m = {self.dim % p.m}; suggested_m({self.dim}) = {suggested_m(self.dim)})")
        self._codec = PQ4Codec(self.dim, p.m, niter=p.pq_iters, max_points_per_centroid=p.max_train_points_per_centroid,
                               seed=p.seed + 1)
        self._by_residual = self.metric == "l2"
        self._centroids: np.ndarray | None = None
        self._reduced: ReducedProbe | None = None  # the two-stage coarse probe (None: exact)
        self._l2_terms = np.zeros((0, p.m, KSUB), np.float32)
        self._packed = np.zeros((0, self._codec.m_pad, KSUB), np.uint8)
        self._list_slots = np.zeros(0, np.int32)
        self._block_offsets = np.zeros(p.nlist + 1, np.int64)
        self._slot_offsets = np.zeros(p.nlist + 1, np.int64)
        self._sizes = np.zeros(p.nlist, np.int64)
        self._vectors = np.zeros((0, self.dim), np.float32)

    # ---- properties ----------------------------------------------------------------------------
    @property
    def codec(self) -> PQ4Codec:
        """The 4-bit product quantizer (trained by :meth:`train`)."""
        return self._codec

    @property
    def centroids(self) -> np.ndarray:
        """Coarse centroids, float32 ``(nlist, dim)``."""
        self._check_trained("centroids")
        return self._centroids

    @property
    def by_residual(self) -> bool:
        """Codes encode ``x - centroid`` (``l2``) rather than ``x`` (``ip``, ``cosine``)."""
        return self._by_residual

    @property
    def code_size(self) -> int:
        """Bytes per vector in the lists: the packed 4-bit code and the int32 slot (id map not included)."""
        return self._codec.code_size + 4

    def list_sizes(self) -> np.ndarray:
        """Number of vectors in each inverted list, int64 ``(nlist,)``."""
        return self._sizes.copy()

    @property
    def coarse_rank(self) -> int:
        """Dimensions of the reduced centroids batch searches rank the lists in before the exact
        re-score (:mod:`vecsearch.indexes.ivf_coarse`); 0: the exact probe. Measured at train time."""
        return self._reduced.rank if self._reduced is not None else 0

    def set_coarse_rank(self, rank: int) -> None:
        """Use the two-stage coarse probe at ``rank`` dimensions (a multiple of 16 up to ``dim``), or the
        exact probe (0). For comparisons: :meth:`train` chooses the rank by measurement."""
        self._check_trained("set_coarse_rank")
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not (rank == 0 or (
                rank % 16 == 0 and 16 <= rank <= self.dim)):
            raise ValueError(f"rank: expected 0 or a multiple of 16 in [16, {self.dim}], got {rank!r}")
        self._reduced = ReducedProbe(self._centroids, self._c_sq_norms, int(rank)) if rank else None

    def list_capacity(self) -> int:
        """Vectors the lists have room for now, spare room included (``>= ntotal``)."""
        return int(self._slot_offsets[-1])

    def describe(self) -> str:
        p = self.params
        return f"IVF{p.nlist},PQ{p.m}x4fs" + (",Refine" if p.keep_vectors else "")

    @classmethod
    def _from_factory(cls, dim: int, metric: str, groups: dict[str, Any], params: dict[str, Any]) -> IVFFastScanIndex:
        return cls(dim, metric, nlist=int(groups["nlist"]), m=int(groups["m"]),
                   keep_vectors=groups["refine"] is not None, **params)

    @classmethod
    def suggested_params(cls, n: int, dim: int) -> dict[str, Any]:
        # keep_vectors: the search grid re-ranks (faiss IndexRefineFlat's role), which needs them.
        return {"nlist": suggested_nlist(n), "m": suggested_m(dim), "keep_vectors": True}

    @classmethod
    def search_grid(cls) -> dict[str, list[Any]]:
        return {"nprobe": list(NPROBE_GRID), "rerank": list(RERANK_GRID)}

    # ---- training ------------------------------------------------------------------------------
    def train(self, x: Any) -> IVFFastScanIndex:
        """Learn the coarse centroids and the 4-bit PQ from ``x`` (n, dim), ``n >= max(nlist, 16)``.

        k-means runs on at most ``nlist * max_train_points_per_centroid`` random rows, the PQ on
        at most ``16 * max_train_points_per_centroid`` (faiss' sampling).
        """
        if self.is_trained:
            raise ValueError("IVFFastScanIndex.train: the index is already trained; build a new index to retrain")
        x = self.prepare_vectors(x, "x")
        p = self.params
        needed = max(p.nlist, KSUB)
        if x.shape[0] < needed:
            raise ValueError(f"x: training IVFFastScanIndex(nlist={p.nlist}) needs at least {needed} training "
                             f"points (max(nlist, 16)), got {x.shape[0]}")
        kmetric = self._kmeans_metric()
        centroids, _ = kmeans(x, p.nlist, metric=kmetric, niter=p.kmeans_iters, seed=p.seed,
                              max_points_per_centroid=p.max_train_points_per_centroid, spherical=kmetric == "ip")
        rows = sample_training_rows(x.shape[0], KSUB, p.max_train_points_per_centroid,
                                    np.random.default_rng(p.seed + 2))
        sample = x[rows]
        if self._by_residual:
            sample = sample - centroids[assign(sample, centroids, kmetric)[0]]
        self._codec.fit(sample)
        rows = np.random.default_rng(p.seed + 3).choice(x.shape[0], min(CHOICE_QUERIES, x.shape[0]), replace=False)
        self._set_centroids(centroids, sample=x[np.sort(rows)])
        return self

    def _kmeans_metric(self) -> str:
        return "l2" if self.metric == "l2" else "ip"

    def _set_centroids(self, centroids: np.ndarray, *, sample: np.ndarray | None = None, rank: int | None = None,
                       basis: np.ndarray | None = None) -> None:
        """Derive the probe layouts of ``centroids`` f32 (nlist, dim); the two-stage probe at ``rank``
        (with a saved ``basis`` (dim, rank)), or at the rank :func:`choose_rank` measures with
        ``sample`` (nq, dim) as queries."""
        self._centroids_t = np.ascontiguousarray(np.asarray(centroids).T)
        self._tiles = centroid_tiles(centroids)
        self._c_sq_norms = np.einsum("ij,ij->i", centroids, centroids).astype(np.float32)
        p = self.params
        if self._by_residual and p.nlist * p.m * KSUB * 4 <= L2_TABLE_MAX_BYTES:
            self._l2_terms = np.empty((p.nlist, p.m, KSUB), np.float32)
            l2_list_tables(centroids, self._codec.codebooks_t, self._codec.cb_sq_norms, self._l2_terms)
        self._centroids = centroids
        if rank is None:  # measured: the probe choose_rank picked, its axes computed once
            self._reduced = measured_probe(centroids, self._c_sq_norms, self._metric_code, sample, self._tiles)
        else:
            self._reduced = ReducedProbe(centroids, self._c_sq_norms, rank, basis) if rank else None

    # ---- add / remove / compact ----------------------------------------------------------------
    def _add(self, vectors: np.ndarray, ids: np.ndarray, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"IVFFastScanIndex.add: unexpected parameters {sorted(kwargs)}")
        start = self._ids.n_slots
        labels, _ = assign(vectors, self._centroids, self._kmeans_metric())
        self._reserve(labels)
        if self.params.keep_vectors:
            self._store_vectors(start, vectors)
        for lo in range(0, vectors.shape[0], ADD_CHUNK):
            hi = min(lo + ADD_CHUNK, vectors.shape[0])
            part = vectors[lo:hi]
            codes = self._codec.encode(part - self._centroids[labels[lo:hi]] if self._by_residual else part)
            new_slots = np.arange(start + lo, start + hi, dtype=np.int32)
            append_codes(codes, new_slots, labels[lo:hi], self._packed, self._list_slots, self._block_offsets,
                         self._slot_offsets, self._sizes)
        self._ids.append(ids)

    def _reserve(self, new_lists: np.ndarray) -> None:
        """Room for one more vector in each of ``new_lists`` int64 (n,): a new layout when a list is full.

        A list that grows gets ``LIST_GROWTH`` spare room; a list filled for the first time gets none
        (an index built by one ``add`` is tight).
        """
        need = self._sizes + np.bincount(new_lists, minlength=self.params.nlist)
        capacity = np.diff(self._slot_offsets)
        full = need > capacity
        if not full.any():
            return
        target = np.where(self._sizes > 0, need + (need * LIST_GROWTH).astype(np.int64), need)
        self._set_lists(*self._copy_lists(np.where(full, target, capacity)))

    def _set_lists(self, packed: np.ndarray, slots: np.ndarray, block_offsets: np.ndarray,
                   slot_offsets: np.ndarray) -> None:
        self._packed, self._list_slots = packed, slots
        self._block_offsets, self._slot_offsets = block_offsets, slot_offsets

    def _copy_lists(self, capacity: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The lists in a new layout with room for ``capacity`` int64 (nlist,) vectors each (>= sizes):
        ``(packed, slots, block_offsets, slot_offsets)``."""
        slot_offsets, block_offsets = list_offsets(capacity)
        packed = np.zeros((int(block_offsets[-1]), self._codec.m_pad, KSUB), np.uint8)
        slots = np.full(int(slot_offsets[-1]), -1, np.int32)
        relayout_blocks(self._packed, self._list_slots, self._block_offsets, self._slot_offsets, self._sizes,
                        block_offsets, slot_offsets, packed, slots)
        return packed, slots, block_offsets, slot_offsets

    def _store_vectors(self, start: int, x: np.ndarray) -> None:
        needed = start + x.shape[0]
        if needed > self._vectors.shape[0]:
            capacity = max(needed, int(self._vectors.shape[0] * 1.5), 1024) if start else needed
            grown = np.empty((capacity, self.dim), np.float32)
            grown[:start] = self._vectors[:start]
            self._vectors = grown
        self._vectors[start:needed] = x

    def _remove_slots(self, slots: np.ndarray) -> None:
        removed = np.zeros(self._ids.n_slots, np.bool_)
        removed[slots] = True
        dropped = remove_from_lists(self._packed, self._list_slots, self._block_offsets, self._slot_offsets,
                                    self._sizes, removed)
        if dropped != slots.shape[0]:  # every live slot sits in exactly one list
            raise RuntimeError(f"IVFFastScanIndex.remove: {slots.shape[0]} slots removed, {dropped} list entries")
        self._ids.mark_deleted(slots)
        n_removed = self._ids.n_slots - self._ids.n_live
        if n_removed >= max(COMPACT_MIN_REMOVED, COMPACT_FRACTION * self._ids.n_slots):
            self._compact_storage()

    def compact(self) -> int:
        """Drop removed rows, renumber the slots and trim the lists' spare blocks; returns the rows dropped."""
        n_dropped = self._compact_storage()
        self._attributes_changed()
        return n_dropped

    def _compact_storage(self) -> int:
        keep = np.flatnonzero(~self._ids.deleted)
        n_dropped = self._ids.n_slots - keep.shape[0]
        if self.is_trained:
            packed, slots, block_offsets, slot_offsets = self._copy_lists(self._sizes)
            if n_dropped:  # tight lists: every slot is used
                slot_map = np.full(self._ids.n_slots, -1, np.int32)
                slot_map[keep] = np.arange(keep.shape[0], dtype=np.int32)
                slots = slot_map[slots]
            self._set_lists(packed, slots, block_offsets, slot_offsets)
        if n_dropped:
            if self.params.keep_vectors:
                self._vectors = np.ascontiguousarray(self._vectors[keep])
            self._ids.compact(keep)
        return int(n_dropped)

    # ---- search ----------------------------------------------------------------------------------
    def _parse_search_params(self, params: dict[str, Any]) -> IVFFastScanSearchParams:
        parsed = parse_params(IVFFastScanSearchParams, params, "IVFFastScanIndex.search")
        if parsed.rerank and not self.params.keep_vectors:
            p = self.params
            raise ValueError(f"rerank: re-ranking needs the float32 vectors; build the index with keep_vectors=True "
                             f"(factory 'IVF{p.nlist},PQ{p.m}x4fs,Refine'), got rerank={parsed.rerank} on an index "
                             "without them")
        return parsed

    def _search(self, queries: np.ndarray, k: int, params: IVFFastScanSearchParams) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        rerank = params.rerank if params.rerank is not None else (RERANK_PER_K * k if p.keep_vectors else 0)
        n_cand = min(max(rerank, k), max(self._ids.n_slots, k))
        # probe at least the lists that hold ~2k vectors on average (large k, post-filter fetches)
        enough = math.ceil(2 * k * p.nlist / max(self._ids.n_live, 1))
        nprobe = min(max(params.nprobe or p.nprobe, enough), p.nlist)
        lists, coarse = probe_lists(queries, self._tiles, self._centroids_t, self._c_sq_norms, self._metric_code,
                                    nprobe, self._reduced)
        vectors = self._vectors if rerank else self._vectors[:0]
        return self._scan(queries, lists, coarse, k, n_cand, vectors)

    def _scan(self, queries: np.ndarray, lists: np.ndarray, coarse: np.ndarray, k: int, n_cand: int,
              vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fast-scan of the probed ``lists`` (nq, nprobe) with their ``coarse`` scores; ``vectors``
        (rows >= n_slots, or 0 rows: no re-rank). Returns ``(slots int64, scores f32)`` (nq, k)."""
        nq = queries.shape[0]
        out_scores = np.full((nq, k), np.inf, np.float32)
        out_slots = np.full((nq, k), -1, np.int64)
        run_fastscan(self._metric_code, self._by_residual, queries, lists, coarse, self._codec.codebooks_t,
                     self._codec.cb_sq_norms, self._centroids, self._l2_terms, self._packed, self._list_slots,
                     self._block_offsets, self._slot_offsets, self._sizes, n_cand, vectors, out_scores, out_slots)
        if self._metric_code == METRIC_L2:
            np.maximum(out_scores, np.float32(0.0), out=out_scores)
        return out_slots, out_scores

    # ---- filtered search ------------------------------------------------------------------------
    def filter_capabilities(self) -> FilterCapabilities:
        return FilterCapabilities(exact_scan=self.params.keep_vectors)

    def _exact_vectors(self) -> np.ndarray | None:
        return self._vectors if self.params.keep_vectors else None

    # ---- persistence -----------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        self._check_trained("save")
        if np.array_equal(np.diff(self._slot_offsets), self._sizes):
            packed, slots, offsets = self._packed, self._list_slots, self._block_offsets
        else:  # spare room is not saved
            packed, slots, offsets, _ = self._copy_lists(self._sizes)
        arrays = {"centroids": self._centroids, "codebooks": self._codec.codebooks, "list_codes": packed,
                  "list_slots": slots, "list_block_offsets": offsets, "list_sizes": self._sizes,
                  **state_arrays(self._reduced)}
        if self.params.keep_vectors:
            arrays["vectors"] = self._vectors[: self._ids.n_slots]
        return self.params.model_dump(), arrays

    @classmethod
    def _from_state(cls, dim: int, metric: str, params: dict[str, Any], arrays: dict[str, np.ndarray],
                    n_slots: int) -> IVFFastScanIndex:
        try:
            index = cls(dim, metric, **params)
        except TypeError as exc:
            raise ValueError(f"params: {exc}") from None
        p = index.params
        m_pad = index.codec.m_pad
        expected = {
            "list_block_offsets": ((p.nlist + 1,), np.int64),
            "list_sizes": ((p.nlist,), np.int64),
            "centroids": ((p.nlist, dim), np.float32),
            "codebooks": ((p.m, KSUB, dim // p.m), np.float32),
        }
        check_array_shapes(arrays, expected)
        offsets, sizes = np.array(arrays["list_block_offsets"]), np.array(arrays["list_sizes"])
        codes = arrays.get("list_codes")
        n_blocks = codes.shape[0] if codes is not None and codes.ndim == 3 else -1
        if offsets[0] != 0 or (np.diff(offsets) < 0).any() or offsets[-1] != n_blocks:
            raise ValueError(f"list_block_offsets: expected non-decreasing offsets from 0 to the {n_blocks} blocks "
                             f"of list_codes, got {offsets[0]} .. {offsets[-1]}")
        lists = {"list_codes": ((n_blocks, m_pad, KSUB), np.uint8)}
        if p.keep_vectors:
            lists["vectors"] = ((n_slots, dim), np.float32)
        check_array_shapes(arrays, lists)
        expected.update(lists)
        optional = {"list_slots", *STATE_ARRAYS}  # list_slots' shape: check_fastscan_lists
        unexpected = sorted(set(arrays) - set(expected) - optional)
        if unexpected:
            raise ValueError(f"{unexpected[0]}: unexpected array (keep_vectors={p.keep_vectors}; known: {sorted({*expected, *optional})})")
        rank, basis = saved_probe(arrays, dim)
        slots, problem = check_fastscan_lists(arrays.get("list_slots"), offsets, sizes, n_slots)
        if problem:
            raise ValueError(problem)
        check_stored_vectors(np.asarray(arrays["centroids"]), "centroids", "l2")
        check_stored_vectors(np.asarray(arrays["codebooks"]).reshape(-1, dim // p.m), "codebooks", "l2")
        if p.keep_vectors:
            check_stored_vectors(np.asarray(arrays["vectors"]), "vectors", metric)
            index._vectors = copy_on_write(arrays["vectors"])
        index.codec.set_codebooks(np.array(arrays["codebooks"]))
        index._set_lists(copy_on_write(arrays["list_codes"]), copy_on_write(slots), offsets, list_offsets(sizes)[0])
        index._sizes = sizes
        # saves from before the two-stage probe: measured now, the stored vectors (else the centroids) as queries
        proxies = index._vectors[:n_slots:max(1, n_slots // CHOICE_QUERIES)] if p.keep_vectors and n_slots else None
        index._set_centroids(copy_on_write(arrays["centroids"]), rank=rank, basis=basis,
                             sample=np.asarray(arrays["centroids"] if proxies is None else proxies))
        return index

    def _check_restored(self) -> None:
        """Every live slot sits in exactly one list position and no removed slot does."""
        used = self._list_slots[self._list_slots >= 0]
        if used.shape[0] != self._ids.n_live or self._ids.deleted[used].any():
            raise ValueError(f"list_slots: the lists hold {used.shape[0]} vectors, expected exactly the "
                             f"{self._ids.n_live} live slots of the id map")

    # ---- warm-up ---------------------------------------------------------------------------------
    @classmethod
    def warmup_kernels(cls, data: np.ndarray) -> None:
        """Compile every fast-scan path on a tiny index for every metric: add, single query, batch,
        grouped batch (parallel and serial), re-rank or not, filtered search, remove, compact, save."""
        import numba

        data = np.ascontiguousarray(data, np.float32)
        n, d = data.shape
        half = {"rank": {"$lt": n // 2}}
        for metric in ("l2", "ip", "cosine"):
            index = cls(d, metric, nlist=4, m=suggested_m(d), keep_vectors=True, nprobe=2)
            index.train(data)
            index.add(data[: n // 2], attributes={"rank": np.arange(n // 2, dtype=np.int64)})
            index.add(data[n // 2:], attributes={"rank": np.arange(n // 2, n, dtype=np.int64)})
            for batch in (data[:1], data[:32], data[:GROUPED_MIN_QUERIES]):
                index.search(batch, 5)
                index.search(batch, 5, rerank=0)
                for strategy in ("prefilter", "postfilter"):
                    index.search(batch, 5, where=half, strategy=strategy)
            threads = numba.get_num_threads()
            numba.set_num_threads(1)
            try:
                index.search(data[:GROUPED_MIN_QUERIES], 5)
            finally:
                numba.set_num_threads(threads)
            index.remove([0])
            index.compact()
            index.get_state()
        coarse_warmup(data)  # the two-stage probe (nlist >= MIN_NLIST only: not reached above)


def check_array_shapes(arrays: dict[str, np.ndarray], expected: dict[str, tuple[tuple[int, ...], Any]]) -> None:
    """Raise ``ValueError`` naming the first array of ``expected`` (name -> (shape, dtype)) that is
    missing or has another shape or dtype."""
    for name, (shape, dtype) in expected.items():
        arr = arrays.get(name)
        if arr is None or arr.shape != shape or arr.dtype != dtype:
            got = "missing" if arr is None else f"{arr.dtype} {arr.shape}"
            raise ValueError(f"{name}: expected {np.dtype(dtype)} {shape}, got {got}")


def list_offsets(capacity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(slot_offsets, block_offsets)`` int64 (nlist + 1,) of lists with room for ``capacity`` int64
    (nlist,) vectors each (``ceil(capacity / 32)`` blocks)."""
    slot_offsets = np.zeros(capacity.shape[0] + 1, np.int64)
    np.cumsum(capacity, out=slot_offsets[1:])
    block_offsets = np.zeros(capacity.shape[0] + 1, np.int64)
    np.cumsum(-(-capacity // BLOCK), out=block_offsets[1:])
    return slot_offsets, block_offsets


def check_fastscan_lists(slots: np.ndarray | None, offsets: np.ndarray, sizes: np.ndarray,
                         n_slots: int) -> tuple[np.ndarray | None, str]:
    """Lists as saved: ``offsets`` int64 (nlist + 1,) block offsets from 0, non-decreasing, ending at
    the number of blocks; ``sizes`` int64 (nlist,) within each list's ``32 * blocks``; ``slots`` int32
    (sum(sizes),) the lists' slots one list after the other, each in [0, n_slots) at most once.
    Saves from before the slots were unpadded hold (n_blocks * 32,) slots with -1 past each list's
    size; they are read into the new layout. Returns ``(slots, "")`` or ``(None, message naming the
    array)`` (the caller raises it)."""
    n_blocks = int(offsets[-1])
    if offsets[0] != 0 or (np.diff(offsets) < 0).any():
        return None, "list_block_offsets: expected non-decreasing block offsets from 0"
    if (sizes < 0).any() or (sizes > np.diff(offsets) * BLOCK).any():
        bad = int(np.flatnonzero((sizes < 0) | (sizes > np.diff(offsets) * BLOCK))[0])
        return None, (f"list_sizes: list {bad} claims {int(sizes[bad])} vectors in "
                      f"{int(offsets[bad + 1] - offsets[bad])} blocks")
    n_used = int(sizes.sum())
    if slots is None or slots.dtype != np.int32 or slots.ndim != 1:
        got = "missing" if slots is None else f"{slots.dtype} {slots.shape}"
        return None, f"list_slots: expected int32 ({n_used},), got {got}"
    if slots.shape[0] == n_blocks * BLOCK != n_used:  # the padded layout of earlier saves
        starts = offsets[:-1] * BLOCK - np.concatenate(([0], np.cumsum(sizes)[:-1]))
        used = np.repeat(starts, sizes) + np.arange(n_used)
        padding = np.ones(slots.shape[0], np.bool_)
        padding[used] = False
        if (slots[padding] != -1).any():
            return None, f"list_slots: position {int(np.flatnonzero(padding & (slots != -1))[0])} is past its list's size but holds a slot"
        slots = slots[used]
    if slots.shape[0] != n_used:
        return None, f"list_slots: expected int32 ({n_used},) (the lists' sizes), got {slots.dtype} {slots.shape}"
    if slots.size and (slots.min() < 0 or slots.max() >= n_slots):
        return None, f"list_slots: slot {int(slots[(slots < 0) | (slots >= n_slots)][0])} outside 0..{n_slots - 1}"
    if slots.size and np.bincount(slots, minlength=n_slots).max() > 1:
        return None, "list_slots: a slot appears in more than one list position"
    return slots, ""
