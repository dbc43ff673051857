"""The algorithms a benchmark compares: vecsearch indexes and the faiss / hnswlib peers behind one API.

Each :class:`Algorithm` is one build configuration with a list of search-parameter settings to
sweep: ``build(train, metric)``, ``set_search(params)``, ``search(queries, k) -> ids (nq, k)``,
``index_bytes()``. Peer libraries and vecsearch index modules are imported lazily; a missing one
raises :class:`Unavailable` with a message saying what to install.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import itertools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .. import (
    indexes,  # noqa: F401  (defines, and so registers, every index type)
    registry,
)
from ..indexes.hnsw import EF_GRID
from ..indexes.ivfpq import NPROBE_GRID


class Unavailable(RuntimeError):
    """An algorithm cannot run here (peer library not installed, index module not present)."""


def default_params(kind: str, n: int, dim: int) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Default (build params, search grid) of a registered vecsearch index type for ``n`` vectors of ``dim``."""
    cls = registry.get(kind).cls
    return cls.suggested_params(n, dim), cls.search_grid()


def benchmark_kinds() -> tuple[str, ...]:
    """The registered index types a single-vector benchmark can build."""
    return tuple(record.name for record in registry.all_types() if record.vector_input)


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Cartesian product of a search grid, in order (``{}`` -> one empty setting)."""
    if not grid:
        return [{}]
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def _dir_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _chunks(n: int, target: int = 10, minimum: int = 1000):
    step = max(minimum, -(-n // target))
    for start in range(0, n, step):
        yield start, min(n, start + step)


# Abbreviations of build-parameter names in labels (tables, plot legend).
_SHORT = {"ef_construction": "efC", "reduced_dim": "dim", "primary": "", "keep_vectors": "keep"}


class Algorithm:
    """One build configuration of one library; subclasses fill in the hooks."""

    library = "?"
    kind = "?"

    def __init__(self, build_params: dict[str, Any], search_grid: dict[str, list[Any]]):
        self.build_params = dict(build_params)
        self.search_grid = dict(search_grid)
        self.search_params: dict[str, Any] = {}
        self.warmup_s = 0.0

    @property
    def name(self) -> str:
        return f"{self.library}-{self.kind}"

    def label(self) -> str:
        bp = ",".join(
            f"{_SHORT.get(k, k)}={v}" if _SHORT.get(k, k) else str(v)
            for k, v in self.build_params.items()
        )
        return f"{self.name}({bp})" if bp else self.name

    def check_available(self) -> None:
        """Raise :class:`Unavailable` when the library or index module is missing."""

    def warmup(self, train: np.ndarray, metric: str) -> None:
        """Untimed work before the timed build (e.g. numba compilation)."""

    def build(
        self, train: np.ndarray, metric: str, progress: Callable[[int], None] | None = None
    ) -> None:
        raise NotImplementedError

    def set_search(self, params: dict[str, Any]) -> None:
        self.search_params = dict(params)

    def set_search_threads(self, threads: int) -> None:
        """Threads of later searches, for libraries with per-index threads (numba and faiss follow
        the process-wide setting: :func:`set_threads`, :func:`limit_threads`)."""

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError

    def index_bytes(self) -> int:
        raise NotImplementedError


# ---- vecsearch -------------------------------------------------------------------------------------
class VecsearchAlgorithm(Algorithm):
    """A vecsearch index (flat / hnsw / ivfpq / leanvec) built with ``build_params``."""

    library = "vecsearch"

    def __init__(self, kind: str, build_params: dict[str, Any], search_grid: dict[str, list[Any]]):
        if kind not in benchmark_kinds():
            raise ValueError(f"index: expected one of {sorted(benchmark_kinds())}, got {kind!r}")
        super().__init__(build_params, search_grid)
        self.kind = kind
        self.index = None

    def _cls(self):
        return registry.get(self.kind).cls

    def _constructor_params(self, n_train: int) -> dict[str, Any]:
        params = dict(self.build_params)
        # Re-ranking needs the raw vectors kept at build time (IVF-PQ option).
        wants_rerank = any(r for r in self.search_grid.get("rerank", []) if r)
        accepted = inspect.signature(self._cls().__init__).parameters
        if wants_rerank and "keep_vectors" in accepted and "keep_vectors" not in params:
            params["keep_vectors"] = True
        return params

    def _make(self, dim: int, metric: str, params: dict[str, Any]):
        return self._cls()(dim, metric, **params)

    def _train(self, index, x: np.ndarray) -> None:
        if index.requires_training and not index.is_trained:
            index.train(x)

    def warmup(self, train: np.ndarray, metric: str) -> None:
        """Build and search a small index of the same kind so the timed build excludes compilation."""
        n = min(train.shape[0], 2000)
        params = self._constructor_params(n)
        if "nlist" in params:
            params["nlist"] = max(1, min(int(params["nlist"]), n // 64))
        index = self._make(train.shape[1], metric, params)
        self._train(index, train[:n])
        _add_quiet(index, train[:n])
        first = grid_points(self.search_grid)[0]
        index.search(train[:32], 10, **first)
        index.search(train[:1], 10, **first)

    def build(self, train, metric, progress=None):
        index = self._make(train.shape[1], metric, self._constructor_params(train.shape[0]))
        self._train(index, train)
        for start, stop in _chunks(train.shape[0]):
            _add_quiet(index, train[start:stop])
            if progress:
                progress(stop)
        self.index = index

    def search(self, queries, k):
        return self.index.search(queries, k, **self.search_params).ids

    def index_bytes(self) -> int:
        tmp = Path(tempfile.mkdtemp(prefix="vecsearch-bench-"))
        try:
            self.index.save(str(tmp / "index"))
            return _dir_bytes(tmp / "index")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _add_quiet(index, x: np.ndarray) -> None:
    """``index.add(x)`` without the index's own progress bar (the benchmark shows its own)."""
    accepted: dict[str, Any] = {}
    for fn in (getattr(index, "add", None), getattr(index, "_add", None)):
        try:
            accepted.update(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            pass
    if "progress" in accepted:
        index.add(x, progress=False)
    else:
        index.add(x)


# ---- faiss -----------------------------------------------------------------------------------------
def _import(name: str, pip_name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        raise Unavailable(f"{name} is not installed (pip install {pip_name}); skipping") from None


def _prepare(x: np.ndarray, metric: str) -> np.ndarray:
    x = np.ascontiguousarray(x, np.float32)
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
    return np.ascontiguousarray(x, np.float32)


class FaissAlgorithm(Algorithm):
    """faiss ``IndexFlat``, ``IndexHNSWFlat`` or ``IndexIVFPQ`` (+ ``IndexRefineFlat`` for re-rank)."""

    library = "faiss"

    def __init__(self, kind: str, build_params: dict[str, Any], search_grid: dict[str, list[Any]]):
        super().__init__(build_params, search_grid)
        self.kind = kind
        self.index = None
        self.metric = "l2"

    def check_available(self) -> None:
        _import("faiss", "faiss-cpu")

    def build(self, train, metric, progress=None):
        faiss = _import("faiss", "faiss-cpu")
        self.metric = metric
        x = _prepare(train, metric)
        d = x.shape[1]
        fmetric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        bp = self.build_params
        if self.kind == "flat":
            index = faiss.IndexFlat(d, fmetric)
        elif self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, int(bp.get("M", 16)), fmetric)
            index.hnsw.efConstruction = int(bp.get("ef_construction", 200))
        elif self.kind == "ivfpq":
            quantizer = faiss.IndexFlat(d, fmetric)
            ivf = faiss.IndexIVFPQ(
                quantizer, d, int(bp["nlist"]), int(bp["m"]), int(bp.get("nbits", 8)), fmetric
            )
            ivf.cp.seed = int(bp.get("seed", 0))
            ivf.train(x)
            self._ivf = ivf
            self._quantizer = quantizer
            index = (
                faiss.IndexRefineFlat(ivf)
                if any(r for r in self.search_grid.get("rerank", []) if r)
                else ivf
            )
        else:
            raise ValueError(f"faiss peer: unknown kind {self.kind!r}")
        for start, stop in _chunks(x.shape[0]):
            index.add(x[start:stop])
            if progress:
                progress(stop)
        self.index = index

    def search(self, queries, k):
        faiss = _import("faiss", "faiss-cpu")
        q = _prepare(queries, self.metric)
        sp = self.search_params
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(int(sp.get("ef", 64)), k))
            return self.index.search(q, k, params=params)[1]
        if self.kind == "ivfpq":
            ivf_params = faiss.SearchParametersIVF(nprobe=int(sp.get("nprobe", 8)))
            rerank = sp.get("rerank")
            if not rerank:  # the plain IVF-PQ ranking, as vecsearch without rerank
                return self._ivf.search(q, k, params=ivf_params)[1]
            if isinstance(self.index, faiss.IndexRefineFlat):
                params = faiss.IndexRefineSearchParameters(
                    k_factor=float(rerank or 1), base_index_params=ivf_params
                )
                return self.index.search(q, k, params=params)[1]
            return self.index.search(q, k, params=ivf_params)[1]
        return self.index.search(q, k)[1]

    def index_bytes(self) -> int:
        faiss = _import("faiss", "faiss-cpu")
        return int(faiss.serialize_index(self.index).size)


# ---- hnswlib ---------------------------------------------------------------------------------------
class HnswlibAlgorithm(Algorithm):
    """hnswlib ``Index`` with the same M / ef_construction as the vecsearch HNSW it stands beside."""

    library = "hnswlib"
    kind = "hnsw"

    def __init__(self, build_params, search_grid, threads: int | None = None):
        super().__init__(build_params, search_grid)
        self.threads = threads or os.cpu_count() or 1
        self.index = None

    def check_available(self) -> None:
        _import("hnswlib", "hnswlib")

    def build(self, train, metric, progress=None):
        hnswlib = _import("hnswlib", "hnswlib")
        space = {"l2": "l2", "ip": "ip", "cosine": "cosine"}[metric]
        x = np.ascontiguousarray(train, np.float32)
        index = hnswlib.Index(space=space, dim=x.shape[1])
        index.init_index(
            max_elements=x.shape[0],
            M=int(self.build_params.get("M", 16)),
            ef_construction=int(self.build_params.get("ef_construction", 200)),
            random_seed=int(self.build_params.get("seed", 100)),
        )
        index.set_num_threads(self.threads)
        for start, stop in _chunks(x.shape[0]):
            index.add_items(x[start:stop], np.arange(start, stop))
            if progress:
                progress(stop)
        self.index = index

    def set_search(self, params):
        super().set_search(params)
        self._ef = int(params.get("ef", 64))

    def set_search_threads(self, threads: int) -> None:
        self.index.set_num_threads(int(threads))

    def search(self, queries, k):
        self.index.set_ef(max(self._ef, k))
        labels, _ = self.index.knn_query(np.ascontiguousarray(queries, np.float32), k=k)
        return labels.astype(np.int64)

    def index_bytes(self) -> int:
        tmp = Path(tempfile.mkdtemp(prefix="vecsearch-bench-"))
        try:
            path = tmp / "hnswlib.bin"
            self.index.save_index(str(path))
            return path.stat().st_size
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


# ---- peers of a vecsearch configuration ------------------------------------------------------------
PEERS = ("faiss", "hnswlib")


def peers_for(
    kind: str, build_params: dict[str, Any], search_grid: dict[str, list[Any]], peers, threads
):
    """The peer algorithms matching one vecsearch configuration (same graph degree, lists, codes)."""
    out: list[Algorithm] = []
    if kind == "flat" and "faiss" in peers:
        out.append(FaissAlgorithm("flat", {}, {}))
    elif kind in ("hnsw", "leanvec"):
        # HNSW: peers with the same M. LeanVec (the same graph over reduced codes, M=24 by default):
        # the peers of HNSW's default M=16, as the issues judge it (their labels dedupe with HNSW's).
        m = build_params.get("M", 16) if kind == "hnsw" else 16
        bp = {"M": m, "ef_construction": build_params.get("ef_construction", 200)}
        grid = {"ef": list(search_grid.get("ef", EF_GRID))}
        if "hnswlib" in peers:
            out.append(HnswlibAlgorithm(bp, grid, threads))
        if "faiss" in peers:
            out.append(FaissAlgorithm("hnsw", bp, grid))
    elif kind == "ivfpq" and "faiss" in peers:
        bp = {key: build_params[key] for key in ("nlist", "m", "nbits") if key in build_params}
        bp.setdefault("nbits", 8)
        grid = {"nprobe": list(search_grid.get("nprobe", NPROBE_GRID))}
        if search_grid.get("rerank"):
            grid["rerank"] = list(search_grid["rerank"])
        out.append(FaissAlgorithm("ivfpq", bp, grid))
    return out


def set_threads(threads: int | None) -> int:
    """Use ``threads`` threads in numba and faiss (all cores when None); returns the count used."""
    import numba

    n = int(threads) if threads else numba.config.NUMBA_NUM_THREADS
    n = max(1, min(n, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:
        pass
    return n


@contextlib.contextmanager
def limit_threads(threads: int) -> Iterator[dict[str, Any]]:
    """Run the block with numba, faiss (when imported) and BLAS on ``threads`` threads; restore after.

    BLAS is limited through threadpoolctl when it is installed (LeanVec projects queries and
    MUVERA encodes them with a BLAS product, which must stay on one thread in single-thread
    figures). Yields ``{"threads": n, "blas_limited": bool}`` to record beside the figures.
    """
    import numba

    n = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))
    numba_before = numba.get_num_threads()
    numba.set_num_threads(n)
    faiss = sys.modules.get("faiss")
    faiss_before = faiss.omp_get_max_threads() if faiss is not None else None
    if faiss is not None:
        faiss.omp_set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        blas = None
    else:
        blas = threadpool_limits(limits=n, user_api="blas")
    try:
        yield {"threads": n, "blas_limited": blas is not None}
    finally:
        if blas is not None:
            blas.restore_original_limits()
        if faiss is not None:
            faiss.omp_set_num_threads(faiss_before)
        numba.set_num_threads(numba_before)
