"""The shard: a plain class holding one vecsearch index, run as a Ray actor by ``ShardedIndex``.

It has no Ray import: ``ShardedIndex`` wraps it with ``ray.remote`` at first use, so this module
(and ``import vecsearch``) never needs Ray. Every method takes and returns plain numpy arrays,
dicts and strings, which Ray ships zero-copy through its object store.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import numpy as np

from ..base import Index
from ..factory import index_factory
from ..loader import load


def resolve_spec(spec: Any) -> Any:
    """A spec as shipped between processes: a factory string, or ``"class:module:qualname"``."""
    if isinstance(spec, str) and spec.startswith("class:"):
        _, module, qualname = spec.split(":", 2)
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj
    return spec


def build_index(spec: Any, dim: int, metric: str, params: dict[str, Any]) -> Any:
    """An empty index of ``spec`` (factory string or index class)."""
    spec = resolve_spec(spec)
    if isinstance(spec, str):
        return index_factory(dim, spec, metric, **params)
    return spec(dim, metric, **params)


class Shard:
    """One shard: an index plus the calls ``ShardedIndex`` makes on it."""

    def __init__(
        self,
        spec: Any,
        dim: int,
        metric: str,
        params: dict[str, Any],
        load_path: str | None = None,
        mmap: bool = False,
        threads: int | None = None,
    ):
        self._threads = threads
        self._blas_limits = None
        self._limit_threads()
        if load_path is not None:
            self.index = load(load_path, mmap=mmap)
        else:
            self.index = build_index(spec, dim, metric, params)

    def _limit_threads(self) -> None:
        """Cap numba's and BLAS's threads at ``threads`` (so co-located shards do not oversubscribe).

        ``numba.set_num_threads`` is per calling thread, so it is re-applied at every call.
        BLAS threads are set once through threadpoolctl when it is installed.
        """
        if self._threads is None:
            return
        import numba

        numba.set_num_threads(max(1, min(self._threads, numba.config.NUMBA_NUM_THREADS)))
        if self._blas_limits is None:
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:
                self._blas_limits = False
            else:
                self._blas_limits = threadpool_limits(limits=self._threads, user_api="blas")

    def info(self) -> dict[str, Any]:
        """Type, dim, metric, ntotal, is_trained, has_train (IVF-PQ, LeanVec: yes; Flat, HNSW: no), pid."""
        index = self.index
        return {
            "type": type(index).__name__,
            "dim": index.dim,
            "metric": index.metric,
            "ntotal": int(index.ntotal),
            "is_trained": bool(index.is_trained),
            "has_train": callable(getattr(index, "train", None)),
            "pid": os.getpid(),
        }

    def memory(self) -> dict[str, int]:
        """Bytes of the index's persisted arrays (vectors, graph, codes, ids) and the actor's RSS now and at peak."""
        import resource

        _, arrays = self.index.get_state()
        index_bytes = sum(int(np.asarray(a).nbytes) for a in arrays.values())
        rss = -1
        try:
            with open("/proc/self/statm") as fh:
                rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            pass
        peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
        return {"index_bytes": index_bytes, "rss_bytes": rss, "peak_rss_bytes": peak}

    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def new_ids_conflict(self, ids: np.ndarray) -> int:
        """The first of ``ids`` already stored here, or -1: checked before a multi-shard add writes anything."""
        for value in ids.tolist():
            if value in self.index:
                return int(value)
        return -1

    def add(
        self, vectors: np.ndarray, ids: np.ndarray, attributes: Any, kwargs: dict[str, Any]
    ) -> int:
        self._limit_threads()
        if attributes is None:
            self.index.add(vectors, ids=ids, **kwargs)
        else:
            self.index.add(vectors, ids=ids, attributes=attributes, **kwargs)
        return int(self.index.ntotal)

    def search(
        self, queries: np.ndarray, k: int, where: Any, params: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray]:
        self._limit_threads()
        if where is None:
            result = self.index.search(queries, k, **params)
        else:
            result = self.index.search(queries, k, where=where, **params)
        return np.asarray(result.ids, np.int64), np.asarray(result.distances, np.float32)

    def remove(self, ids: np.ndarray) -> int:
        self._limit_threads()
        return int(self.index.remove(ids))

    def train(self, x: np.ndarray, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Train this shard's index on ``x``; return its trained (still empty) state for every actor."""
        self._limit_threads()
        self.index.train(x, **kwargs)
        return self.trained_state()

    def trained_state(self) -> dict[str, Any]:
        """The index's state (:meth:`vecsearch.base.Index.get_state`): ``{"header": ..., "arrays": ...}``."""
        header, arrays = self.index.get_state()
        return {"header": header, "arrays": {name: np.asarray(arr) for name, arr in arrays.items()}}

    def set_trained_state(self, state: dict[str, Any]) -> bool:
        """Replace the (empty) index by one restored from another shard's trained state."""
        if self.index.ntotal:
            raise ValueError(
                f"train: shard already holds {self.index.ntotal} vectors; train before adding"
            )
        # Arrays arrive read-only from the object store; the index will grow them, so copy.
        arrays = {name: np.array(arr) for name, arr in state["arrays"].items()}
        self.index = Index.from_state(state["header"], arrays)
        return bool(self.index.is_trained)

    def save(self, path: str) -> int:
        self.index.save(path)
        return int(self.index.ntotal)
