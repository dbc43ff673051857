"""vecsearch as an ann-benchmarks algorithm module (https://github.com/erikbern/ann-benchmarks).

To run vecsearch inside an ann-benchmarks checkout::

    pip install vecsearch                       # in the algorithm's Docker image or --local env
    mkdir ann_benchmarks/algorithms/vecsearch
    echo "from vecsearch.integrations.ann_benchmarks import *" > ann_benchmarks/algorithms/vecsearch/module.py
    cp bench/config.yml ann_benchmarks/algorithms/vecsearch/config.yml   # from the vecsearch repo
    python run.py --local --algorithm vecsearch-hnsw --dataset glove-100-angular

Each class follows ann-benchmarks' ``BaseANN`` protocol: ``fit(X)``, ``set_query_arguments(...)``,
``query(v, n)``, ``batch_query(X, n)`` + ``get_batch_results()``, ``get_memory_usage()`` (kB),
``done()`` and ``__str__``. ann-benchmarks metrics map as ``angular`` -> ``cosine`` and
``euclidean`` -> ``l2``. When ann-benchmarks is importable its ``BaseANN`` is the base class.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..datasets import metric_from_ann

try:  # inside an ann-benchmarks checkout, be a real BaseANN subclass
    from ann_benchmarks.algorithms.base.module import BaseANN as _Base
except Exception:  # noqa: BLE001 - any failure means "not inside ann-benchmarks"
    _Base = object

__all__ = ["VecsearchFlat", "VecsearchHNSW", "VecsearchIVFPQ", "VecsearchLeanVec"]


def _rss_kb() -> float | None:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 1024
    except ImportError:
        try:
            import resource

            return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # kB on Linux (peak)
        except ImportError:  # pragma: no cover - non-POSIX without psutil
            return None


class _VecsearchANN(_Base):
    """Shared plumbing: build in ``fit``, search with the current query arguments."""

    kind = "?"

    def __init__(self, metric: str, method_param: dict[str, Any] | None = None):
        self._metric = metric_from_ann(metric)
        self._build_params = dict(method_param or {})
        self._search_params: dict[str, Any] = {}
        self._index = None
        self._res: np.ndarray | None = None
        self.name = self._describe()

    # ---- hooks ----------------------------------------------------------------------------------
    def _make(self, dim: int):
        raise NotImplementedError

    def _describe(self) -> str:
        parts = {**self._build_params, **self._search_params}
        inner = ", ".join(f"{k}={v}" for k, v in parts.items())
        return f"vecsearch-{self.kind}({inner})"

    # ---- BaseANN protocol -----------------------------------------------------------------------
    def fit(self, X: np.ndarray) -> None:
        x = np.ascontiguousarray(X, dtype=np.float32)
        index = self._make(x.shape[1])
        if getattr(index, "train", None) is not None and not index.is_trained:
            index.train(x)
        index.add(x)
        self._index = index

    def set_query_arguments(self, *args: Any) -> None:
        raise NotImplementedError

    def query(self, v: np.ndarray, n: int) -> np.ndarray:
        ids = self._index.search(
            np.asarray(v, np.float32).reshape(1, -1), n, **self._search_params
        ).ids[0]
        return ids[ids >= 0]

    def batch_query(self, X: np.ndarray, n: int) -> None:
        self._res = self._index.search(np.asarray(X, np.float32), n, **self._search_params).ids

    def get_batch_results(self) -> list[np.ndarray]:
        if self._res is None:
            raise ValueError("get_batch_results: call batch_query(X, n) first")
        return [row[row >= 0] for row in self._res]

    def get_memory_usage(self) -> float | None:
        """Resident memory of this process in kilobytes (ann-benchmarks subtracts the value before fit)."""
        return _rss_kb()

    def get_additional(self) -> dict[str, Any]:
        return {}

    def done(self) -> None:
        self._index = None

    def freeIndex(self) -> None:
        self.done()

    def __str__(self) -> str:
        return self.name


class VecsearchFlat(_VecsearchANN):
    """Exact search (``vecsearch.FlatIndex``); no query arguments."""

    kind = "flat"

    def _make(self, dim):
        from ..indexes.flat import FlatIndex

        return FlatIndex(dim, self._metric)

    def set_query_arguments(self, *args: Any) -> None:
        self.name = self._describe()


class VecsearchHNSW(_VecsearchANN):
    """``vecsearch.HNSWIndex``; ``method_param``: ``M``, ``efConstruction``, ``walkCodes`` (walk
    LVQ8 codes, re-rank with float32); query argument: ``ef``."""

    kind = "hnsw"

    def _make(self, dim):
        from ..indexes.hnsw import HNSWIndex

        p = self._build_params
        return HNSWIndex(
            dim,
            self._metric,
            M=int(p.get("M", 16)),
            ef_construction=int(p.get("efConstruction", 200)),
            walk_codes=bool(p.get("walkCodes", False)),
        )

    def fit(self, X: np.ndarray) -> None:
        super().fit(X)
        if self._index.params.walk_codes:  # build the codes now: fit's memory figure includes them
            self._index.search(np.asarray(X[:1], np.float32), 1)

    def set_query_arguments(self, ef: int) -> None:
        self._search_params = {"ef": int(ef)}
        self.name = self._describe()


class VecsearchIVFPQ(_VecsearchANN):
    """``vecsearch.IVFPQIndex``; ``method_param``: ``nlist``, ``m``, ``nbits``, ``rerank``;
    query arguments: ``nprobe`` (and optionally ``rerank``)."""

    kind = "ivfpq"

    def _make(self, dim):
        from ..indexes.ivfpq import IVFPQIndex

        p = dict(self._build_params)
        rerank = p.pop("rerank", None)
        kwargs = {"nlist": int(p.pop("nlist")), "m": int(p.pop("m")), **p}
        if rerank:
            kwargs.setdefault("keep_vectors", True)
            self._search_params["rerank"] = int(rerank)
        return IVFPQIndex(dim, self._metric, **kwargs)

    def set_query_arguments(self, nprobe: int, rerank: int | None = None) -> None:
        self._search_params = {"nprobe": int(nprobe)}
        rerank = rerank if rerank is not None else self._build_params.get("rerank")
        if rerank:
            self._search_params["rerank"] = int(rerank)
        self.name = self._describe()


class VecsearchLeanVec(_VecsearchANN):
    """``vecsearch.LeanVecIndex``; ``method_param``: ``reduced_dim``, ``primary``, ``M``,
    ``efConstruction``; query argument: ``ef``."""

    kind = "leanvec"

    def _make(self, dim):
        from ..indexes.leanvec import LeanVecIndex

        p = dict(self._build_params)
        if "efConstruction" in p:
            p["ef_construction"] = p.pop("efConstruction")
        return LeanVecIndex(dim, self._metric, **p)

    def set_query_arguments(self, ef: int) -> None:
        self._search_params = {"ef": int(ef)}
        self.name = self._describe()
