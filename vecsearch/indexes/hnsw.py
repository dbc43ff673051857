"""HNSWIndex: the graph (:mod:`vecsearch.indexes.graph`) over the vectors themselves.

Storage (``storage=``):

* ``"lvq8"`` (default): the walk scores LVQ8 codes of the vectors (``d + 4`` bytes each, a quarter
  of float32) and re-scores its best ``max(2 k, 20)`` candidates with the float32 vectors, so
  returned distances are exact; ``d + 4`` bytes per vector more memory than ``"float32"``
  (1,924 instead of 1,536 bytes of vector data at 384-d), fewer bytes read per distance.
* ``"float32"``: the walk scores the float32 vectors; no codes kept.

The graph is built on the storage the walk reads (LVQ8 codes or float32 vectors); both link equally
well (recall at every ``ef`` within noise) and the code build is faster.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..codecs.lvq import LVQ8, f16_values
from ..io import copy_on_write
from ..kernels.storage import NO_STORAGE, STORE_F32, STORE_LVQ8, Storage, make_storage
from ..params import HNSWBuildParams, HNSWSearchParams, parse_params
from .graph import EF_GRID, GraphIndex, code_walk_rerank

_DEFAULT_SEARCH_PARAMS = HNSWSearchParams()
_EF_PARAMS: dict[int, HNSWSearchParams] = {}  # parsed ef=... of recent calls (immutable models)
# The LVQ mean is refitted (and every code re-encoded) when the index has doubled since the last
# fit, until it was fitted on this many vectors: early adds may be few and unrepresentative.
LVQ_REFIT_UNTIL = 65_536
# Rows encoded per call when (re-)encoding: bounds the LVQ encoder's float32 temporaries (2 x chunk x dim).
ENCODE_CHUNK = 65_536


class HNSWIndex(GraphIndex, type_name="hnsw"):
    """HNSW graph index for ``l2``, ``ip`` and ``cosine``.

    Parameters (defaults in :class:`vecsearch.params.HNSWBuildParams`): ``M`` links per node on
    upper levels (2M on level 0), ``ef_construction`` beam width when inserting, ``ef_search``
    default beam width when searching (per call: ``search(q, k, ef=...)``, always at least k),
    ``seed`` for the level draws, ``allow_replace_deleted`` to reuse removed slots on ``add``,
    ``storage`` ``"lvq8"`` (walk LVQ8 codes, re-rank with float32) or ``"float32"`` (see the
    module docstring).

    Concurrency: ``search`` may be called from several Python threads at once (kernels release
    the GIL; each call takes its own scratch buffers from the index's pool).
    """

    factory_forms = ((r"HNSW(?P<M>\d+)", "HNSW32"),)

    def __init__(self, dim: int, metric: str = "l2", *, M: int = 16, ef_construction: int = 200,
                 ef_search: int = 64, seed: int = 0, allow_replace_deleted: bool = False, storage: str = "lvq8"):
        super().__init__(dim, metric)
        self.params = parse_params(
            HNSWBuildParams,
            {"M": M, "ef_construction": ef_construction, "ef_search": ef_search, "seed": seed,
             "allow_replace_deleted": allow_replace_deleted, "storage": storage},
            "HNSWIndex",
        )
        p = self.params
        self._init_graph(p.M, p.ef_construction, p.seed, p.allow_replace_deleted)
        self._vectors = np.empty((0, self.dim), np.float32)
        self._codes = np.empty((0, self.dim + 4), np.uint8)
        self._codec: LVQ8 | None = None
        self._codec_fit_n = 0

    @property
    def ef_search(self) -> int:
        """Default beam width of ``search`` (per call: ``ef=``); saved with the index."""
        return self.params.ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self.params = parse_params(HNSWBuildParams, {**self.params.model_dump(), "ef_search": value}, "HNSWIndex")

    @property
    def storage(self) -> str:
        return self.params.storage

    def describe(self) -> str:
        return f"HNSW{self.M}"

    @classmethod
    def suggested_params(cls, n: int, dim: int) -> dict[str, Any]:
        return {"M": 16, "ef_construction": 200}

    @classmethod
    def search_grid(cls) -> dict[str, list[Any]]:
        return {"ef": list(EF_GRID)}

    @classmethod
    def _from_factory(cls, dim: int, metric: str, groups: dict[str, Any], params: dict[str, Any]) -> HNSWIndex:
        return cls(dim, metric, M=int(groups["M"]), **params)

    # ---- storage --------------------------------------------------------------------------------
    def _codes_kept(self) -> bool:
        return self.params.storage == "lvq8"

    def _reserve_rows(self, capacity: int) -> None:
        def grow(arr: np.ndarray) -> np.ndarray:
            if capacity <= arr.shape[0] and arr.flags.writeable:
                return arr
            out = np.zeros((max(capacity, arr.shape[0]),) + arr.shape[1:], arr.dtype)
            out[: arr.shape[0]] = arr
            return out

        self._vectors = grow(self._vectors)
        if self._codes_kept():
            self._codes = grow(self._codes)

    def _write_rows(self, slots: np.ndarray, vectors: np.ndarray) -> None:
        self._vectors[slots] = vectors
        if not self._codes_kept():
            return
        n_after = max(self._n, int(slots.max()) + 1)
        if self._codec is None or (n_after >= 2 * self._codec_fit_n and self._codec_fit_n < LVQ_REFIT_UNTIL):
            self._codec = LVQ8().fit(self._vectors[:n_after])
            self._codec_fit_n = n_after
            for start in range(0, n_after, ENCODE_CHUNK):  # chunks bound the encoder's float temporaries
                stop = min(n_after, start + ENCODE_CHUNK)
                self._codes[start:stop] = self._codec.encode(self._vectors[start:stop])
        else:
            for start in range(0, slots.shape[0], ENCODE_CHUNK):
                self._codes[slots[start:start + ENCODE_CHUNK]] = self._codec.encode(vectors[start:start + ENCODE_CHUNK])

    def _keep_rows(self, keep: np.ndarray) -> None:
        self._vectors = np.ascontiguousarray(self._vectors[keep])
        if self._codes_kept():
            self._codes = np.ascontiguousarray(self._codes[keep])

    def _float_storage(self) -> Storage:
        return make_storage(STORE_F32, self._metric_code, f32=self._vectors)

    def _build_storage(self) -> Storage:
        # The graph is built on what the walk reads: on LVQ8 codes it links as well as on float32
        # (recall at every ef within 0.005, bench/results/graph_tuning_defaults.json: LeanVec's
        # full-dimension LVQ8 build) and builds faster.
        return self._walk_storage()

    def _walk_storage(self) -> Storage:
        if not self._codes_kept() or self._codec is None:
            return self._float_storage()
        return make_storage(STORE_LVQ8, self._metric_code, codes=self._codes, mu=self._codec.mu, f16=f16_values())

    def _rerank_storage(self) -> Storage:
        return self._float_storage() if self._codes_kept() else NO_STORAGE

    def _n_rerank(self, k: int, ef: int, params: Any) -> int:
        return code_walk_rerank(k, ef) if self._codes_kept() else 0

    def _exact_vectors(self) -> np.ndarray:
        return self._vectors

    def _parse_search_params(self, params: dict[str, Any]) -> HNSWSearchParams:
        # Fast path for the common calls (no knob, or a plain positive int ef): pydantic costs
        # ~10 us per call, a noticeable share of single-query latency. Anything else is validated.
        if not params:
            return _DEFAULT_SEARCH_PARAMS
        ef = params.get("ef")
        if len(params) == 1 and type(ef) is int and ef >= 1:
            parsed = _EF_PARAMS.get(ef)
            if parsed is None:
                parsed = HNSWSearchParams.model_construct(ef=ef)
                if len(_EF_PARAMS) < 1024:
                    _EF_PARAMS[ef] = parsed
            return parsed
        return parse_params(HNSWSearchParams, params, "HNSWIndex.search")

    # ---- persistence ------------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        graph_params, arrays = self._graph_state()
        arrays["vectors"] = self._vectors[: self._n]
        if self._codes_kept() and self._codec is not None:
            arrays["codes"] = self._codes[: self._n]
            arrays["lvq_mu"] = self._codec.mu
        return {**self.params.model_dump(), **graph_params, "lvq_fit_n": self._codec_fit_n}, arrays

    @classmethod
    def _restore_rows(cls, dim: int, metric: str, params: dict[str, Any], arrays: dict[str, np.ndarray],
                      n_slots: int) -> HNSWIndex:
        if "walk_codes" in params:  # files written before the storage parameter: keep their walk
            params["storage"] = "lvq8" if params.pop("walk_codes") else "float32"
        fit_n = params.pop("lvq_fit_n", 0)
        index = cls(dim, metric, **params)
        vectors = arrays.get("vectors")
        if vectors is None or vectors.dtype != np.float32 or vectors.shape != (n_slots, dim):
            got = "missing" if vectors is None else f"{vectors.dtype} {vectors.shape}"
            raise ValueError(f"vectors: expected float32 ({n_slots}, {dim}), got {got}")
        index._vectors = copy_on_write(vectors)
        if index._codes_kept():
            codes, mu = arrays.get("codes"), arrays.get("lvq_mu")
            if codes is None and n_slots:  # written before codes were saved: encode them now
                index._reserve_rows(n_slots)
                index._write_rows(np.arange(n_slots, dtype=np.int64), index._vectors)
            elif codes is not None:
                if codes.dtype != np.uint8 or codes.shape != (n_slots, dim + 4) or mu is None \
                        or mu.dtype != np.float32 or mu.shape != (dim,) or not np.isfinite(mu).all():
                    raise ValueError(f"codes / lvq_mu: expected uint8 ({n_slots}, {dim + 4}) and float32 ({dim},)")
                index._codes, index._codec = copy_on_write(codes), LVQ8(copy_on_write(mu))
                index._codec_fit_n = int(fit_n) if isinstance(fit_n, int) else n_slots
        return index

    # ---- warmup -------------------------------------------------------------------------------
    @classmethod
    def warmup_kernels(cls, data: np.ndarray) -> None:
        """Compile (or load from cache) the add, search, filtered search (every strategy), remove and
        compact paths: one compiled kernel per entry point serves every storage and metric."""
        data = np.ascontiguousarray(data[:200], np.float32)
        n = data.shape[0]
        index = cls(data.shape[1], "l2", M=4, ef_construction=16, ef_search=16)
        index.add(data, attributes={"rank": np.arange(n, dtype=np.int64)}, progress=False)
        for batch in (data[:1], data[:32]):
            index.search(batch, 5)
            for strategy in ("prefilter", "beam_collect", "filtered_walk", "postfilter"):
                index.search(batch, 5, where={"rank": {"$lt": n // 2}}, strategy=strategy)
        index.remove(np.arange(0, n, 3))
        index.search(data[:32], 5)
        index.compact()
