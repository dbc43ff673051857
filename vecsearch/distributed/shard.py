"""The shard: a plain class holding one vecsearch index, run as a Ray actor by ``ShardedIndex``.

It has no Ray import: ``ShardedIndex`` wraps it with ``ray.remote`` at first use, so this module
(and ``import vecsearch``) never needs Ray. Every method takes and returns plain numpy arrays,
dicts and strings, which Ray ships zero-copy through its object store.

The actor is synchronous and single-threaded: Ray runs the calls of one caller in the order they
were sent, one at a time, so every call sees the index between two whole writes. Writes go
through :meth:`Shard.apply` with the shard's write sequence number; a replica handed a number
out of order missed a write and raises :class:`~vecsearch.distributed.errors.WriteSequenceError`
(the driver then replaces it). :meth:`Shard.snapshot` and :meth:`Shard.restore` copy a replica
(the index state of :meth:`vecsearch.base.Index.get_state`, ids and attributes included, plus the
sequence number it reflects) into a new actor.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections import Counter
from typing import Any

import numpy as np

from .. import registry
from ..base import Index
from ..factory import index_factory
from ..loader import load
from .errors import WriteSequenceError

# Methods a test or benchmark may slow down with Shard.inject_delay.
DELAYABLE = ("search", "snapshot", "restore", "apply")


def resolve_spec(spec: Any) -> Any:
    """A spec as shipped between processes: a factory string, or ``"class:module:qualname"``."""
    if isinstance(spec, str) and spec.startswith("class:"):
        _, module, qualname = spec.split(":", 2)
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj
    return spec


def spec_takes_vectors(spec: Any) -> bool:
    """Whether the index type of ``spec`` adds one vector per id (False: token sets, MultiVector).

    Decided from the factory grammar or the class alone, before any dimension is known; a string
    no form matches counts as a vector type (building it raises the factory's error).
    """
    spec = resolve_spec(spec)
    if isinstance(spec, type):
        return bool(getattr(spec, "vector_input", True))
    text = str(spec).replace(" ", "")
    for record in registry.all_types():
        if any(form.pattern.match(text) for form in record.forms):
            return record.vector_input
    return True


def build_index(spec: Any, dim: int, metric: str, params: dict[str, Any]) -> Any:
    """An empty index of ``spec`` (factory string or index class)."""
    spec = resolve_spec(spec)
    if isinstance(spec, str):
        return index_factory(dim, spec, metric, **params)
    if not getattr(spec, "vector_input", True):
        # Multi-vector types rank by Chamfer similarity and take no metric argument.
        if metric != "ip":
            raise ValueError(
                f"metric: {spec.__name__} ranks by inner product (metric 'ip'), got {metric!r}"
            )
        return spec(dim, **params)
    return spec(dim, metric, **params)


class Shard:
    """One replica of one shard: an index plus the calls ``ShardedIndex`` makes on it."""

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
        self._build_args = (spec, params)
        self._limit_threads()
        if load_path is not None:
            self.index = load(load_path, mmap=mmap)
        else:
            self.index = build_index(spec, dim, metric, params)
        self.applied_seq = (
            0  # sequence number of the last write applied (0: none since start or load)
        )
        self.calls: Counter[str] = Counter()
        self.delays: dict[str, float] = {}

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

    def _enter(self, method: str) -> None:
        """Count the call, apply an injected delay, cap the threads."""
        self.calls[method] += 1
        delay = self.delays.get(method, 0.0)
        if delay:
            time.sleep(delay)
        self._limit_threads()

    # ---- fault injection (tests and benchmarks only) ---------------------------------------------
    def inject_delay(self, method: str, seconds: float) -> None:
        """Make every later call of ``method`` (one of :data:`DELAYABLE`) sleep ``seconds`` first.

        A fault-injection hook for tests and benchmarks (a slow replica, a slow copy); ``0``
        removes the delay. The library itself never calls it.
        """
        if method not in DELAYABLE:
            raise ValueError(f"method: expected one of {DELAYABLE}, got {method!r}")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
            raise ValueError(f"seconds: expected a non-negative number, got {seconds!r}")
        self.delays[method] = float(seconds)

    def stats(self) -> dict[str, Any]:
        """Calls served per method, the last applied write sequence number, ntotal and the pid."""
        return {
            "calls": dict(self.calls),
            "applied_seq": self.applied_seq,
            "ntotal": int(self.index.ntotal),
            "pid": os.getpid(),
        }

    # ---- reads --------------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Type, dim, metric, ntotal, is_trained, has_train (IVF-PQ, LeanVec: yes; Flat, HNSW: no),
        pid, and the Ray node the actor runs on (None outside Ray)."""
        index = self.index
        ray = sys.modules.get("ray")  # loaded in every Ray worker; never imported from here
        node = (
            ray.get_runtime_context().get_node_id()
            if ray is not None and ray.is_initialized()
            else None
        )
        return {
            "type": type(index).__name__,
            "dim": index.dim,
            "metric": index.metric,
            "ntotal": int(index.ntotal),
            "is_trained": bool(index.is_trained),
            "has_train": callable(getattr(index, "train", None)),
            "vector_input": bool(index.vector_input),
            "pid": os.getpid(),
            "node": node,
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

    def search(
        self, queries: Any, k: int, where: Any, params: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Top-``k`` of ``queries`` (vectors, or token sets as a ``(vectors, offsets)`` pair).

        Returns ``(ids int64 (nq, k), distances float32 (nq, k), applied_seq)``: the sequence number
        names the state searched (the driver checks that the parts of one batch agree).
        """
        self._enter("search")
        if where is None:
            result = self.index.search(queries, k, **params)
        else:
            result = self.index.search(queries, k, where=where, **params)
        return (
            np.asarray(result.ids, np.int64),
            np.asarray(result.distances, np.float32),
            self.applied_seq,
        )

    def train(self, x: np.ndarray, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Train a new empty index of this shard's kind on ``x``; return its trained state for every actor.

        The replica's own index is left as it is: the trained state reaches every replica, this one
        included, as an ordinary write (``set_trained_state``), in write order.
        """
        self._limit_threads()
        spec, params = self._build_args
        scratch = build_index(spec, self.index.dim, self.index.metric, params)
        scratch.train(x, **kwargs)
        header, arrays = scratch.get_state()
        return {"header": header, "arrays": {name: np.asarray(arr) for name, arr in arrays.items()}}

    def trained_state(self) -> dict[str, Any]:
        """The index's state (:meth:`vecsearch.base.Index.get_state`): ``{"header": ..., "arrays": ...}``."""
        header, arrays = self.index.get_state()
        return {"header": header, "arrays": {name: np.asarray(arr) for name, arr in arrays.items()}}

    def save(self, path: str) -> int:
        self.index.save(path)
        return int(self.index.ntotal)

    # ---- writes (in sequence) -----------------------------------------------------------------------
    def apply(self, seq: int, method: str, *args: Any) -> Any:
        """Apply write number ``seq`` of this shard: ``add``, ``remove`` or ``set_trained_state``.

        ``args`` are the method's arguments, passed at the top level so that Ray resolves the
        object references among them (a batch put in the object store once for every replica).

        ``seq`` must follow the last applied number, else :class:`WriteSequenceError` (this replica
        missed a write). The number counts as applied even when the write raises: every replica
        rejects the same validated call the same way, leaving its index unchanged.
        """
        if seq != self.applied_seq + 1:
            raise WriteSequenceError(
                f"replica (pid {os.getpid()}) expected write {self.applied_seq + 1}, got {seq}: it missed a write"
            )
        if method not in ("add", "remove", "set_trained_state"):
            raise ValueError(f"method: expected add, remove or set_trained_state, got {method!r}")
        self._enter("apply")
        self.applied_seq = seq
        return getattr(self, "_" + method)(*args)

    def _add(self, vectors: Any, ids: np.ndarray, attributes: Any, kwargs: dict[str, Any]) -> int:
        if attributes is None:
            self.index.add(vectors, ids=ids, **kwargs)
        else:
            self.index.add(vectors, ids=ids, attributes=attributes, **kwargs)
        return int(self.index.ntotal)

    def _remove(self, ids: np.ndarray) -> int:
        return int(self.index.remove(ids))

    def _set_trained_state(self, state: dict[str, Any]) -> bool:
        """Replace the (empty) index by one restored from a trained state."""
        if self.index.ntotal:
            raise ValueError(
                f"train: shard already holds {self.index.ntotal} vectors; train before adding"
            )
        # Arrays arrive read-only from the object store; the index will grow them, so copy.
        arrays = {name: np.array(arr) for name, arr in state["arrays"].items()}
        self.index = Index.from_state(state["header"], arrays)
        return bool(self.index.is_trained)

    # ---- re-replication -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """This replica's whole state: ``{"header", "arrays", "seq", "nbytes"}``.

        ``seq`` is the last write applied: the state holds exactly writes ``1 .. seq`` (the actor
        runs one call at a time, so no write is half-applied when the state is taken).
        """
        self._enter("snapshot")
        header, arrays = self.index.get_state()
        arrays = {name: np.asarray(arr) for name, arr in arrays.items()}
        nbytes = sum(int(arr.nbytes) for arr in arrays.values())
        return {"header": header, "arrays": arrays, "seq": self.applied_seq, "nbytes": nbytes}

    def restore(self, snapshot: dict[str, Any]) -> dict[str, int]:
        """Replace this replica's index by ``snapshot``'s (validated by ``Index.from_state``).

        Returns ``{"seq": the snapshot's write sequence number, "nbytes": bytes of its arrays}``.

        The arrays are copied out of the object store: they arrive read-only and shared, while the
        index must own (and grow) them.
        """
        self._enter("restore")
        arrays = {name: np.array(arr) for name, arr in snapshot["arrays"].items()}
        self.index = Index.from_state(snapshot["header"], arrays)
        self.applied_seq = int(snapshot["seq"])
        return {"seq": self.applied_seq, "nbytes": int(snapshot["nbytes"])}
