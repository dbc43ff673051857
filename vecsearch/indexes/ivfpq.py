"""IVFPQIndex: k-means inverted lists + product-quantized residuals, ADC scan, optional exact re-rank.

Reference behaviour: faiss ``IndexIVFPQ`` (``by_residual``, precomputed L2 tables) and
``IndexRefineFlat`` for the re-rank. Layout and kernels: :mod:`vecsearch.kernels.ivf`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..base import Index
from ..codecs.kmeans import assign, kmeans, probes_per_query, sample_training_rows
from ..codecs.pq import (
    ProductQuantizer,
    blas_limit_available,
    single_threaded_blas,
    train_opq_rotation,
)
from ..exact import exact_topk
from ..filtering.compile import AllowedSlots
from ..filtering.planner import FilterCapabilities
from ..io import copy_on_write
from ..kernels.distances import METRIC_L2
from ..kernels.heaps import empty_heaps
from ..kernels.ivf import (
    append_to_lists,
    compact_lists,
    ivfpq_search,
    l2_list_tables,
    relayout_lists,
    select_probes,
)
from ..kernels.ivf_masked import ivfpq_search_masked
from ..parallel import run_shared, workers_for
from ..params import IVFPQBuildParams, IVFPQSearchParams, parse_params
from ..validation import check_stored_vectors
from .checks import check_ivf_lists
from .ivf_lists import IVFListsMixin

# Queries per chunk a thread takes in a batch search (a chunk is ~16 x tens of microseconds of work).
SEARCH_GRAIN = 16

# The L2 (list, sub-space, codeword) table is precomputed when it fits in this many bytes
# (nlist=1024, m=48, nbits=8 -> 50 MB); beyond it the terms are computed per probed list.
L2_TABLE_MAX_BYTES = 1 << 28
# From this many queries the coarse scores come from a single-threaded BLAS product (when
# threadpoolctl is installed): 7 us vs 15 us per query for 1024 x 384 centroids in the numba
# kernel (1 core, CPU time). Smaller batches and single queries use the numba kernel.
BLAS_PROBE_MIN_QUERIES = 32
# Queries per coarse matrix product (bounds the (queries x nlist) temporary).
COARSE_BLOCK = 2048
# Lists per query a recall/speed sweep tries (search_grid).
NPROBE_GRID = (1, 2, 4, 8, 16, 32, 64)


def suggested_nlist(n: int) -> int:
    """A power of two near 4*sqrt(n), with at least 39 training points per list (faiss' minimum)."""
    target = 2 ** round(math.log2(max(4.0 * math.sqrt(max(n, 1)), 1.0)))
    cap = 2 ** int(math.log2(max(n // 39, 1)))
    return int(max(1, min(target, cap)))


def suggested_m(dim: int) -> int:
    """PQ sub-quantizers: 8 dimensions per byte when that divides ``dim``, else the largest divisor <= dim/4."""
    if dim % 8 == 0:
        return dim // 8
    for m in range(max(1, dim // 4), 0, -1):
        if dim % m == 0:
            return m
    return 1


class IVFPQIndex(IVFListsMixin, Index, type_name="ivfpq"):
    """Inverted-file index with product quantization (``l2``, ``ip`` or ``cosine``).

    ``nlist`` k-means lists; each vector stores the ``m``-byte PQ code of its residual to its
    list centroid (``2**nbits`` codewords per sub-quantizer). ``search`` scans the ``nprobe``
    nearest lists with asymmetric distances; ``rerank=r`` re-scores the best ``k * r``
    candidates exactly with the raw vectors, which are kept only when ``keep_vectors=True``.
    ``opq=True`` learns an orthonormal rotation (OPQ) applied before everything else.
    """

    build_params_class = IVFPQBuildParams

    requires_training = True
    keeps_removed_slots = False
    search_knobs = ("nprobe", "rerank")
    factory_forms = ((r"(?:OPQ(?P<opq_m>\d+),)?IVF(?P<nlist>\d+),PQ(?P<m>\d+)(?:x(?P<nbits>\d+))?(?P<refine>,Refine)?",
                      "IVF1024,PQ48x8,Refine"),)

    def __init__(
        self,
        dim: int,
        metric: str = "l2",
        *,
        nlist: int,
        m: int,
        nbits: int = 8,
        opq: bool = False,
        keep_vectors: bool = False,
        nprobe: int = 8,
        seed: int = 0,
        max_train_points_per_centroid: int = 256,
        kmeans_iters: int = 10,
        pq_iters: int = 25,
    ):
        super().__init__(dim, metric)
        self.params: IVFPQBuildParams = parse_params(
            IVFPQBuildParams,
            {
                "nlist": nlist,
                "m": m,
                "nbits": nbits,
                "opq": opq,
                "keep_vectors": keep_vectors,
                "nprobe": nprobe,
                "seed": seed,
                "max_train_points_per_centroid": max_train_points_per_centroid,
                "kmeans_iters": kmeans_iters,
                "pq_iters": pq_iters,
            },
            "IVFPQIndex",
        )
        if self.dim % self.params.m != 0:
            raise ValueError(
                f"m: the dimension {self.dim} must be divisible by m, got m={self.params.m} (dim % m = {self.dim % self.params.m})"
            )
        p = self.params
        self._pq = ProductQuantizer(
            self.dim,
            p.m,
            p.nbits,
            niter=p.pq_iters,
            max_points_per_centroid=p.max_train_points_per_centroid,
            seed=p.seed + 1,
        )
        self._centroids: np.ndarray | None = None
        self._rotation: np.ndarray | None = None
        self._l2_table = np.empty((0, p.m, self._pq.ksub), np.float32)
        self._codes = np.empty((0, p.m), np.uint8)
        self._slots = np.empty(0, np.int32)
        self._offsets = np.zeros(p.nlist + 1, np.int64)
        self._sizes = np.zeros(p.nlist, np.int64)
        self._vectors = np.empty((0, self.dim), np.float32)

    # ---- properties ----------------------------------------------------------------------------
    def describe(self) -> str:
        p = self.params
        text = f"IVF{p.nlist},PQ{p.m}" + (f"x{p.nbits}" if p.nbits != 8 else "")
        if p.opq:
            text = f"OPQ{p.m}," + text
        return text + (",Refine" if p.keep_vectors else "")

    @classmethod
    def suggested_params(cls, n: int, dim: int) -> dict[str, Any]:
        # keep_vectors: the search grid re-ranks (faiss IndexRefineFlat's role), which needs them.
        return {"nlist": suggested_nlist(n), "m": suggested_m(dim), "nbits": 8, "keep_vectors": True}

    @classmethod
    def search_grid(cls) -> dict[str, list[Any]]:
        return {"nprobe": list(NPROBE_GRID), "rerank": [4, 10, 20]}

    @classmethod
    def _from_factory(cls, dim: int, metric: str, groups: dict[str, Any], params: dict[str, Any]) -> IVFPQIndex:
        if groups["opq_m"] is not None and int(groups["opq_m"]) != int(groups["m"]):
            raise ValueError(
                f"description: OPQ{groups['opq_m']} must match PQ{groups['m']} (the rotation is learned for the same m)"
            )
        return cls(dim, metric, nlist=int(groups["nlist"]), m=int(groups["m"]),
                   nbits=int(groups["nbits"]) if groups["nbits"] else 8, opq=groups["opq_m"] is not None,
                   keep_vectors=groups["refine"] is not None, **params)

    @property
    def pq(self) -> ProductQuantizer:
        """The residual product quantizer (trained by :meth:`train`)."""
        return self._pq

    @property
    def centroids(self) -> np.ndarray:
        """Coarse centroids, float32 ``(nlist, dim)`` (in the OPQ-rotated space when ``opq``)."""
        self._check_trained("centroids")
        return self._centroids

    def list_sizes(self) -> np.ndarray:
        """Number of vectors in each inverted list, int64 ``(nlist,)``."""
        return self._sizes.copy()

    @property
    def code_size(self) -> int:
        """Bytes per vector in the inverted lists: the PQ code plus the int32 slot."""
        return self.params.m + 4

    # ---- training ------------------------------------------------------------------------------
    def train(self, x: Any) -> IVFPQIndex:
        """Learn the coarse centroids, the optional OPQ rotation and the residual PQ from ``x`` (n, dim)."""
        if self.is_trained:
            raise ValueError(
                "IVFPQIndex.train: the index is already trained; build a new index to retrain"
            )
        x = self.prepare_vectors(x, "x")
        p = self.params
        needed = max(p.nlist, self._pq.ksub)
        if x.shape[0] < needed:
            raise ValueError(
                f"x: training IVFPQIndex(nlist={p.nlist}, nbits={p.nbits}) needs at least {needed} training points "
                f"(max(nlist, 2**nbits)), got {x.shape[0]}"
            )
        if p.opq:
            self._rotation = train_opq_rotation(x, p.m, p.nbits, seed=p.seed)
            x = self._rotate(x)
        kmetric = "l2" if self.metric == "l2" else "ip"
        centroids, _ = kmeans(
            x,
            p.nlist,
            metric=kmetric,
            niter=p.kmeans_iters,
            seed=p.seed,
            max_points_per_centroid=p.max_train_points_per_centroid,
            spherical=kmetric == "ip",
        )
        rows = sample_training_rows(
            x.shape[0],
            self._pq.ksub,
            p.max_train_points_per_centroid,
            np.random.default_rng(p.seed + 2),
        )
        sample = x[rows]
        labels, _ = assign(sample, centroids, kmetric)
        self._pq.fit(sample - centroids[labels])
        self._set_centroids(centroids)
        return self

    def _set_centroids(self, centroids: np.ndarray) -> None:
        self._centroids = centroids
        self._centroids_t = np.ascontiguousarray(np.asarray(centroids).T)
        self._c_sq_norms = np.einsum("ij,ij->i", centroids, centroids).astype(np.float32)
        self._build_l2_table()

    def _build_l2_table(self) -> None:
        p = self.params
        nbytes = p.nlist * p.m * self._pq.ksub * 4
        if self.metric == "l2" and nbytes <= L2_TABLE_MAX_BYTES:
            table = np.empty((p.nlist, p.m, self._pq.ksub), np.float32)
            l2_list_tables(self._centroids, self._pq.codebooks_t, self._pq.cb_sq_norms, table)
            self._l2_table = table
        else:
            self._l2_table = np.empty((0, p.m, self._pq.ksub), np.float32)

    def _rotate(self, x: np.ndarray) -> np.ndarray:
        if self._rotation is None:
            return x
        with single_threaded_blas():
            return np.ascontiguousarray(x @ self._rotation)

    # ---- add / remove ----------------------------------------------------------------------------
    def _add(self, vectors: np.ndarray, ids: np.ndarray, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"IVFPQIndex.add: unexpected parameters {sorted(kwargs)}")
        x = self._rotate(vectors)
        kmetric = "l2" if self.metric == "l2" else "ip"
        labels, _ = assign(x, self._centroids, kmetric)
        codes = self._pq.encode(x - self._centroids[labels])
        start = self._ids.n_slots
        self._reserve(labels)
        if self.params.keep_vectors:
            self._store_vectors(start, x)
        new_slots = np.arange(start, start + x.shape[0], dtype=np.int32)
        append_to_lists(
            self._codes, self._slots, self._offsets, self._sizes, codes, new_slots, labels
        )
        self._ids.append(ids)

    def _reserve(self, new_lists: np.ndarray) -> None:
        """Make room for one new row in each of ``new_lists`` (relayout with 25% spare if needed)."""
        need = self._sizes + np.bincount(new_lists, minlength=self.params.nlist)
        capacity = np.diff(self._offsets)
        if (need <= capacity).all() and self._codes.flags.writeable and self._slots.flags.writeable:
            return
        new_capacity = np.maximum(capacity, need + need // 4)
        total = int(new_capacity.sum())
        codes = np.empty((total, self.params.m), np.uint8)
        slots = np.empty(total, np.int32)
        offsets = np.empty(self.params.nlist + 1, np.int64)
        relayout_lists(
            self._codes,
            self._slots,
            self._offsets,
            self._sizes,
            new_capacity,
            codes,
            slots,
            offsets,
        )
        self._codes, self._slots, self._offsets = codes, slots, offsets
        self._sizes = self._sizes.copy()

    def _store_vectors(self, start: int, x: np.ndarray) -> None:
        needed = start + x.shape[0]
        if needed > self._vectors.shape[0] or not self._vectors.flags.writeable:
            capacity = max(needed, int(self._vectors.shape[0] * 1.5), 1024)
            grown = np.empty((capacity, self.dim), np.float32)
            grown[:start] = self._vectors[:start]
            self._vectors = grown
        self._vectors[start:needed] = x

    def _remove_slots(self, slots: np.ndarray) -> None:
        n_slots = self._ids.n_slots
        keep_mask = np.ones(n_slots, np.bool_)
        keep_mask[slots] = False
        keep = np.flatnonzero(keep_mask)
        slot_map = np.full(n_slots, -1, np.int64)
        slot_map[keep] = np.arange(keep.shape[0], dtype=np.int64)
        if not (self._codes.flags.writeable and self._slots.flags.writeable):
            self._codes, self._slots = self._codes.copy(), self._slots.copy()
        self._sizes = self._sizes.copy()
        compact_lists(self._codes, self._slots, self._offsets, self._sizes, slot_map)
        if self.params.keep_vectors:
            self._vectors = np.ascontiguousarray(self._vectors[keep])
        self._ids.compact(keep)

    # ---- search ----------------------------------------------------------------------------------
    def _parse_search_params(self, params: dict[str, Any]) -> IVFPQSearchParams:
        parsed = parse_params(IVFPQSearchParams, params, "IVFPQIndex.search")
        if parsed.rerank is not None and not self.params.keep_vectors:
            raise ValueError(
                "rerank: re-ranking needs the raw vectors; build the index with keep_vectors=True "
                f"(factory 'IVF{self.params.nlist},PQ{self.params.m},Refine'), got rerank={parsed.rerank} on an index without them"
            )
        return parsed

    def _probe(self, queries: np.ndarray, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``nprobe`` nearest lists of prepared (rotated) ``queries``: ``(lists int64, scores f32)`` (nq, nprobe).

        Large batches: one-thread BLAS product + numba selection (multi-threaded OpenBLAS fights
        numba's threads for the cores: 10x slower on a busy 2-core box). Otherwise a numba kernel.
        """
        nq = queries.shape[0]
        if nq < BLAS_PROBE_MIN_QUERIES or not blas_limit_available():
            return probes_per_query(queries, self._centroids_t, self._c_sq_norms, self._metric_code, nprobe)
        lists = np.full((nq, nprobe), -1, np.int64)
        scores = np.full((nq, nprobe), np.inf, np.float32)
        for start in range(0, nq, COARSE_BLOCK):
            qb = queries[start : start + COARSE_BLOCK]
            with single_threaded_blas():
                coarse = qb @ self._centroids_t
            if self._metric_code == METRIC_L2:
                coarse *= np.float32(-2.0)
                coarse += self._c_sq_norms
                coarse += np.einsum("ij,ij->i", qb, qb)[:, None]
                np.maximum(coarse, np.float32(0.0), out=coarse)
            else:
                np.negative(coarse, out=coarse)
            select_probes(
                coarse, lists[start : start + COARSE_BLOCK], scores[start : start + COARSE_BLOCK]
            )
        return lists, scores

    def _search(
        self, queries: np.ndarray, k: int, params: IVFPQSearchParams
    ) -> tuple[np.ndarray, np.ndarray]:
        nprobe = min(params.nprobe or self.params.nprobe, self.params.nlist)
        q = self._rotate(queries)
        lists, coarse = self._probe(q, nprobe)
        rerank = params.rerank
        n_cand = k * rerank if rerank else k
        vectors = (
            self._vectors[: self._ids.n_slots] if rerank else np.empty((0, self.dim), np.float32)
        )
        out_scores = np.full((q.shape[0], k), np.inf, np.float32)
        out_slots = np.full((q.shape[0], k), -1, np.int64)
        centroids, codebooks_t, cb_sq_norms = self._centroids, self._pq.codebooks_t, self._pq.cb_sq_norms

        def scan(start: int, stop: int, _worker: int) -> None:
            ivfpq_search(q, lists, coarse, centroids, codebooks_t, cb_sq_norms, self._l2_table, self._codes,
                         self._slots, self._offsets, self._sizes, self._metric_code, n_cand, vectors, out_scores,
                         out_slots, start, stop)

        run_shared(scan, q.shape[0], workers_for(q.shape[0]), grain=SEARCH_GRAIN)
        if self._metric_code == METRIC_L2:
            np.maximum(out_scores, np.float32(0.0), out=out_scores)
        return out_slots, out_scores

    # ---- filtered search ------------------------------------------------------------------------
    def filter_capabilities(self) -> FilterCapabilities:
        # Without stored vectors the scan of the allowed rows is an ADC scan of their codes.
        keep = self.params.keep_vectors
        return FilterCapabilities(exact_scan=keep, code_scan=not keep, list_scan=True)

    def _exact_vectors(self) -> np.ndarray | None:
        return self._vectors if self.params.keep_vectors else None

    def _run_filtered(self, strategy: str, queries: np.ndarray, k: int, params: Any,
                      allowed: AllowedSlots) -> tuple[np.ndarray, np.ndarray]:
        if strategy == "ivf_masked":
            return self._masked_scan(queries, k, params, allowed)
        if strategy == "prefilter" and not self.params.keep_vectors:  # ADC over every allowed row
            return self._masked_run(queries, k, params, allowed, self.params.nlist, allowed.count)[:2]
        return super()._run_filtered(strategy, queries, k, params, allowed)

    def _prefilter(self, queries: np.ndarray, k: int, params: Any, allowed: AllowedSlots) -> tuple[np.ndarray, np.ndarray]:
        """Exact scan of the allowed rows over the stored (rotated) vectors."""
        return exact_topk(self._metric_code, self._rotate(queries), self._vectors, k, allowed=allowed)

    def _masked_scan(self, queries: np.ndarray, k: int, params: Any, allowed: AllowedSlots) -> tuple[np.ndarray, np.ndarray]:
        """The ``nprobe`` nearest lists scanned checking the mask, more lists until
        ``ivf_target_per_k * k`` allowed rows (and the share nprobe lists hold on average) were seen;
        rows whose nearest lists barely pass (anti-correlated) probe and re-rank more."""
        nlist = self.params.nlist
        nprobe = min(params.nprobe or self.params.nprobe, nlist)
        target = max(self.filter_tuning.ivf_target_per_k * k, math.ceil(nprobe * allowed.count / nlist))
        widen_max = self.filter_tuning.ivf_widen_max if nprobe < nlist else 1.0
        return self._masked_run(queries, k, params, allowed, nprobe, min(target, allowed.count), widen_max)[:2]

    def _masked_run(self, queries: np.ndarray, k: int, params: Any, allowed: AllowedSlots, min_probe: int,
                    target: int, widen_max: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masked IVF-PQ scan; returns ``(slots, scores, factors)``: ``factors`` f32 (nq,) is each
        query's widening factor (1.0: not doubtful; ``widen_max`` 1.0 judges no query), see
        :func:`vecsearch.kernels.ivf_masked.ivfpq_search_masked`."""
        tuning = self.filter_tuning
        nlist = self.params.nlist
        per_list = max(allowed.count / nlist, 1e-9)
        n_probe_max = int(min(nlist, max(4 * min_probe, math.ceil(4 * target / per_list))))
        q = self._rotate(queries)
        rerank = params.rerank
        n_cand = k * rerank if rerank else k
        vectors = self._vectors[: self._ids.n_slots] if rerank else np.empty((0, self.dim), np.float32)
        out_scores, out_slots = empty_heaps(q.shape[0], k)
        factors = np.empty(q.shape[0], np.float32)
        thresholds = (float(allowed.selectivity), float(tuning.ivf_min_near_ratio), float(tuning.ivf_near_min_expected),
                      float(widen_max), int(tuning.ivf_doubtful_rerank_factor))

        def scan(start: int, stop: int, _worker: int) -> None:
            ivfpq_search_masked(q, self._centroids_t, self._c_sq_norms, n_probe_max, min_probe, target, *thresholds,
                                self._centroids, self._pq.codebooks_t, self._pq.cb_sq_norms, self._l2_table, self._codes,
                                self._slots, self._offsets, self._sizes, self._metric_code, allowed.mask, n_cand,
                                vectors, out_scores, out_slots, factors, start, stop)

        run_shared(scan, q.shape[0], workers_for(q.shape[0]), grain=SEARCH_GRAIN)
        if self._metric_code == METRIC_L2:
            np.maximum(out_scores, np.float32(0.0), out=out_scores)
        return out_slots, out_scores, factors

    # ---- persistence -----------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        self._check_trained("save")
        nlist = self.params.nlist
        total = int(self._sizes.sum())
        codes = np.empty((total, self.params.m), np.uint8)
        slots = np.empty(total, np.int32)
        offsets = np.empty(nlist + 1, np.int64)
        relayout_lists(
            self._codes, self._slots, self._offsets, self._sizes, self._sizes, codes, slots, offsets
        )
        arrays = {
            "centroids": self._centroids,
            "codebooks": self._pq.codebooks,
            "list_codes": codes,
            "list_slots": slots,
            "list_offsets": offsets,
        }
        if self.params.keep_vectors:
            arrays["vectors"] = self._vectors[: self._ids.n_slots]
        if self._rotation is not None:
            arrays["rotation"] = self._rotation
        return self.params.model_dump(), arrays

    @classmethod
    def _from_state(cls, dim: int, metric: str, params: dict[str, Any], arrays: dict[str, np.ndarray],
                    n_slots: int) -> IVFPQIndex:
        index = cls(dim, metric, **params)
        p = index.params
        expected = {
            "centroids": ((p.nlist, dim), np.float32),
            "codebooks": ((p.m, index._pq.ksub, dim // p.m), np.float32),
            "list_offsets": ((p.nlist + 1,), np.int64),
        }
        if p.keep_vectors:
            expected["vectors"] = ((n_slots, dim), np.float32)
        if p.opq:
            expected["rotation"] = ((dim, dim), np.float32)
        for name, (shape, dtype) in expected.items():
            arr = arrays.get(name)
            if arr is None or arr.shape != shape or arr.dtype != dtype:
                got = "missing" if arr is None else f"{arr.dtype} {arr.shape}"
                raise ValueError(f"{name}: expected {np.dtype(dtype)} {shape}, got {got}")
        for name in ("rotation", "vectors"):
            if name in arrays and name not in expected:
                raise ValueError(f"{name}: present, but the params say the index keeps none (opq / keep_vectors)")
        codes, slots, offsets = (copy_on_write(arrays[name]) for name in ("list_codes", "list_slots", "list_offsets"))
        total = int(offsets[-1])
        if codes.shape != (total, p.m) or codes.dtype != np.uint8 or slots.shape != (total,) or slots.dtype != np.int32:
            raise ValueError(
                f"list_codes/list_slots: expected uint8 ({total}, {p.m}) and int32 ({total},), got {codes.dtype} "
                f"{codes.shape} and {slots.dtype} {slots.shape}"
            )
        problem = check_ivf_lists(slots, offsets, n_slots)
        if problem:
            raise ValueError(problem)
        if total != n_slots:  # remove() compacts: every slot sits in exactly one list
            raise ValueError(f"list_slots: expected each of the {n_slots} slots once, the lists hold {total} entries")
        if p.nbits < 8 and codes.size and int(codes.max()) >= index._pq.ksub:
            raise ValueError(f"list_codes: a code exceeds the {index._pq.ksub} codewords of nbits={p.nbits}")
        check_stored_vectors(np.asarray(arrays["centroids"]), "centroids", "l2")
        check_stored_vectors(np.asarray(arrays["codebooks"]).reshape(-1, dim // p.m), "codebooks", "l2")
        if p.opq:
            rotation = np.asarray(arrays["rotation"], np.float64)
            if not np.isfinite(rotation).all() or np.abs(rotation.T @ rotation - np.eye(dim)).max() > 1e-3:
                raise ValueError("rotation: expected an orthonormal (dim, dim) matrix")
        if p.keep_vectors:
            check_stored_vectors(np.asarray(arrays["vectors"]), "vectors", metric)
        index._pq.set_codebooks(np.array(arrays["codebooks"]))
        index._codes, index._slots, index._offsets = codes, slots, np.array(offsets)
        index._sizes = np.diff(index._offsets)
        if p.keep_vectors:
            index._vectors = copy_on_write(arrays["vectors"])
        if p.opq:
            index._rotation = np.ascontiguousarray(arrays["rotation"], np.float32)
        index._set_centroids(copy_on_write(arrays["centroids"]))
        return index

    # ---- warm-up ---------------------------------------------------------------------------------
    @classmethod
    def warmup_kernels(cls, data: np.ndarray) -> None:
        """Compile every IVF-PQ kernel on a tiny index (nlist=4, m=2, nbits=4) for every metric,
        filtered search (both strategies) included."""
        data = np.ascontiguousarray(data, np.float32)
        n = data.shape[0]
        half = {"rank": {"$lt": n // 2}}
        for metric in ("l2", "ip", "cosine"):
            index = cls(data.shape[1], metric, nlist=4, m=2, nbits=4, keep_vectors=True, nprobe=2)
            index.train(data)
            index.add(data, attributes={"rank": np.arange(n, dtype=np.int64)})
            for batch in (data[:1], data[:32]):
                index.search(batch, 5)
                index.search(batch, 5, rerank=2)
                for strategy in ("ivf_masked", "prefilter"):
                    index.search(batch, 5, where=half, strategy=strategy, rerank=2)
                    index.search(batch, 5, where=half, strategy=strategy)
            index.remove([0])
