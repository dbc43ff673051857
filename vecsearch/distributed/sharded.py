"""ShardedIndex: one vecsearch index split over Ray actors, routed by a stable hash of the id.

Each shard is a Ray actor (:class:`~vecsearch.distributed.shard.Shard`) holding one ordinary
vecsearch index of the requested type; with ``replicas=r`` each shard has ``r`` identical actors.

* ``add`` assigns sequential ids in the driver (or takes the caller's), routes every row to shard
  ``splitmix64(id) % n_shards``, puts each shard's slice in the object store once and sends it to
  all replicas of that shard in parallel.
* ``search`` puts the queries in the object store once, asks every shard (its first live replica)
  for its own top-k in parallel and merges them: distances ascending, equal distances by ascending
  id, padding (-1, +inf) last -- the :class:`~vecsearch.SearchResult` contract of every index.
* ``train`` trains one shard's index on the caller's sample and ships its trained (empty) state to
  every actor (itself included), so all shards share one codebook / projection.
* Faults: every wait on a shard is bounded by ``timeout_s`` (:class:`ShardTimeoutError`); a dead
  actor is skipped for its replica, and a shard with no live replica raises
  :class:`ShardUnavailableError` naming it. Writes go to every live replica; reads to the first.

Ray is imported here only, lazily: ``import vecsearch`` never needs it.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

import numpy as np

from ..base import Index, SearchResult
from ..filtering.attributes import AttributeStore
from ..io import IndexFileError
from ..validation import as_external_ids, as_vectors, check_dim, check_k, check_metric
from .errors import ShardTimeoutError, ShardUnavailableError
from .persist import read_sharded, write_sharded
from .routing import attribute_rows, merge_topk, shard_of, split_rows, take_attributes
from .shard import Shard, build_index

_REMOTE_SHARD: Any = None
# Arrays smaller than this travel inline with each call (no object-store round trip: the one-query
# latency); larger ones are put in the object store once and shared by every shard / replica.
INLINE_BYTES = 64 * 1024


def _ray() -> Any:
    try:
        import ray
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "vecsearch.distributed needs Ray: pip install 'vecsearch[distributed]' (or 'ray>=2.9')"
        ) from None
    return ray


def _remote_shard_class() -> Any:
    global _REMOTE_SHARD
    if _REMOTE_SHARD is None:
        _REMOTE_SHARD = _ray().remote(Shard)
    return _REMOTE_SHARD


def connect(address: str | None = None) -> bool:
    """Join the Ray cluster at ``address``, or start a local instance sized to the machine.

    An already initialized Ray session is reused as is. Returns True when Ray runs locally
    (no ``address``), which lets :class:`ShardedIndex` size each shard's thread pool.
    """
    ray = _ray()
    if not ray.is_initialized():
        if address is None:
            ray.init(
                num_cpus=os.cpu_count(),
                include_dashboard=False,
                ignore_reinit_error=True,
                log_to_driver=False,
            )
        else:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    return address is None


def _share(arr: np.ndarray) -> Any:
    """``arr`` itself when small, else an ObjectRef from one ``ray.put`` shared by all receivers."""
    return arr if arr.nbytes < INLINE_BYTES else _ray().put(arr)


def _encode_spec(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    return f"class:{spec.__module__}:{spec.__qualname__}"


def _check_spec(spec: Any) -> Any:
    if isinstance(spec, str):
        if spec.startswith("class:"):
            return spec
        if not spec.strip():
            raise ValueError(
                "spec: expected a factory string such as 'HNSW32' or an index class, got ''"
            )
        return spec
    if isinstance(spec, type) and issubclass(spec, Index):
        return spec
    raise TypeError(f"spec: expected a factory string or an Index subclass, got {spec!r}")


def _check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def _check_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name}: expected a positive number of seconds, got {value!r}")
    return float(value)


def _init_failure(exc: BaseException) -> str | None:
    """The error of a shard actor whose constructor raised (bad params, unreadable files), else None."""
    if not (getattr(exc, "actor_init_failed", False) or getattr(exc, "_actor_init_failed", False)):
        return None
    lines = [
        line.strip() for line in str(getattr(exc, "error_msg", exc)).splitlines() if line.strip()
    ]
    return lines[-1] if lines else "unknown error"


class ShardedIndex:
    """An index of type ``spec`` split into ``n_shards`` Ray actors (each replicated ``replicas`` times).

    Parameters
    ----------
    spec : factory string (``"Flat"``, ``"HNSW32"``, ``"IVF1024,PQ48"``) or an ``Index`` subclass.
    n_shards : number of shards; ids are routed by ``splitmix64(id) % n_shards``.
    address : Ray cluster address; ``None`` starts (or reuses) a local Ray instance.
    replicas : actors per shard; writes go to all live replicas, reads to the first live one.
    timeout_s : longest wait for any shard's answer; past it :class:`ShardTimeoutError`.
    start_timeout_s : longest wait for the actors to start (and load, in :meth:`load`): actor
        start-up and placement on a busy cluster take longer than a query.
    dim : vector dimension; ``None`` takes it from the first ``add`` / ``train``.
    metric : ``"l2"``, ``"ip"`` or ``"cosine"``.
    threads_per_shard : numba/BLAS threads in each actor; ``None`` takes ``actor_options["num_cpus"]``
        when given, else ``cpu_count // n_shards`` on a local instance, else the node's defaults
        (Ray sets one BLAS thread per actor; numba uses every core of the node).
    actor_options : extra Ray actor options (``num_cpus``, ``resources``, ...) for every shard actor.
    **index_params : build parameters of each shard's index (``M``, ``ef_construction``, ...).
    """

    def __init__(
        self,
        spec: Any,
        *,
        n_shards: int,
        address: str | None = None,
        replicas: int = 1,
        timeout_s: float = 60.0,
        start_timeout_s: float = 120.0,
        dim: int | None = None,
        metric: str = "l2",
        threads_per_shard: int | None = None,
        actor_options: dict[str, Any] | None = None,
        **index_params: Any,
    ):
        self.spec = _check_spec(spec)
        self.n_shards = _check_positive("n_shards", n_shards)
        self.replicas = _check_positive("replicas", replicas)
        self.timeout_s = _check_seconds("timeout_s", timeout_s)
        self.start_timeout_s = _check_seconds("start_timeout_s", start_timeout_s)
        self.metric = check_metric(metric)
        self.dim = None if dim is None else check_dim(dim)
        if threads_per_shard is not None:
            threads_per_shard = _check_positive("threads_per_shard", threads_per_shard)
        if actor_options is not None and not isinstance(actor_options, dict):
            raise TypeError(
                f"actor_options: expected a dict of Ray actor options, got {type(actor_options).__name__}"
            )
        self.index_params = dict(index_params)
        self.address = address
        self._local = connect(address)
        self._actor_options = dict(actor_options or {})
        if threads_per_shard is None:
            cpus = self._actor_options.get("num_cpus")
            if isinstance(cpus, (int, float)) and cpus >= 1:
                threads_per_shard = int(cpus)
            elif self._local:
                threads_per_shard = max(1, (os.cpu_count() or 1) // self.n_shards)
        self.threads_per_shard = threads_per_shard
        self._next_id = 0
        self._actors: list[list[Any]] = []
        self._alive: list[list[bool]] = []
        if self.dim is not None:
            self._start_shards()

    # ---- actors ------------------------------------------------------------------------------
    def _options(self) -> dict[str, Any]:
        return {"max_restarts": 0, **self._actor_options}

    def _start_shards(self, load_dirs: list[str] | None = None, mmap: bool = False) -> None:
        """Create ``n_shards * replicas`` actors and wait (bounded) until each answers."""
        if load_dirs is None:
            # Build one empty index here first: a bad spec or parameter raises now, clearly.
            build_index(self.spec, self.dim, self.metric, self.index_params)
        remote = _remote_shard_class().options(**self._options())
        self._actors = []
        for s in range(self.n_shards):
            load_path = None if load_dirs is None else load_dirs[s]
            self._actors.append(
                [
                    remote.remote(
                        self.spec,
                        self.dim,
                        self.metric,
                        self.index_params,
                        load_path,
                        mmap,
                        self.threads_per_shard,
                    )
                    for _ in range(self.replicas)
                ]
            )
        self._alive = [[True] * self.replicas for _ in range(self.n_shards)]
        try:
            infos = self._write(
                "info", {s: () for s in range(self.n_shards)}, timeout_s=self.start_timeout_s
            )
            for s, info in infos.items():
                if info["dim"] != self.dim or info["metric"] != self.metric:
                    raise ValueError(
                        f"shard {s}: expected dim {self.dim} metric {self.metric!r}, "
                        f"got dim {info['dim']} metric {info['metric']!r}"
                    )
        except BaseException:
            self.close()  # never leave half a set of actors running
            raise

    @property
    def shard_actors(self) -> list[list[Any]]:
        """The Ray actor handles, ``[shard][replica]`` (for monitoring and fault drills)."""
        return [list(row) for row in self._actors]

    def close(self) -> None:
        """Kill every shard actor (their in-memory data is gone; ``save`` first to keep it)."""
        ray = _ray()
        for row in self._actors:
            for actor in row:
                # Already dead or disconnected: nothing left to free.
                with contextlib.suppress(Exception):
                    ray.kill(actor)
        self._alive = [[False] * len(row) for row in self._actors]

    def __enter__(self) -> ShardedIndex:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- calls with fault handling -----------------------------------------------------------
    def _unavailable(self, shard: int) -> ShardUnavailableError:
        return ShardUnavailableError(
            shard,
            f"shard {shard} of {self.n_shards} is unavailable: all {self.replicas} replica actor(s) are dead",
        )

    def _raise_if_init_failed(self, shard: int, exc: BaseException) -> None:
        message = _init_failure(exc)
        if message is not None:
            raise ShardUnavailableError(
                shard, f"shard {shard} of {self.n_shards}: its actor failed to start: {message}"
            ) from None

    def _wait(self, shard: int, ref: Any, deadline: float, limit: str = "") -> Any:
        """``ray.get`` of one shard's answer, bounded by ``deadline``; remote exceptions re-raised as themselves."""
        ray = _ray()
        try:
            return ray.get(ref, timeout=max(0.0, deadline - time.monotonic()))
        except ray.exceptions.GetTimeoutError:
            with contextlib.suppress(Exception):  # cancellation is best effort
                ray.cancel(ref)
            raise ShardTimeoutError(
                shard,
                f"shard {shard} of {self.n_shards} did not answer within {limit or f'timeout_s={self.timeout_s:g}'} s",
            ) from None
        except ray.exceptions.RayActorError:
            raise
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause
            if isinstance(cause, Exception):
                cause.add_note(f"(raised by shard {shard} of the ShardedIndex)")
                raise cause from None
            raise

    def _read(self, method: str, args: dict[int, tuple]) -> dict[int, Any]:
        """Call ``method`` on the first live replica of each shard in ``args``, in parallel; fail over on death."""
        ray = _ray()

        def submit(s: int) -> tuple[int, Any, float]:
            for r, alive in enumerate(self._alive[s]):
                if alive:
                    ref = getattr(self._actors[s][r], method).remote(*args[s])
                    return r, ref, time.monotonic() + self.timeout_s
            raise self._unavailable(s)

        pending = {s: submit(s) for s in args}
        results = {}
        for s in args:
            while True:
                r, ref, deadline = pending[s]
                try:
                    results[s] = self._wait(s, ref, deadline)
                    break
                except ray.exceptions.RayActorError as exc:
                    self._raise_if_init_failed(s, exc)
                    self._alive[s][r] = False
                    pending[s] = submit(s)
        return results

    def _write(
        self, method: str, args: dict[int, tuple], timeout_s: float | None = None
    ) -> dict[int, Any]:
        """Call ``method`` on every live replica of each shard in ``args``, in parallel.

        A replica that dies is marked dead (it missed the write, so it never serves again);
        a shard left with no live replica raises :class:`ShardUnavailableError`.
        """
        ray = _ray()
        pending = []
        for s, shard_args in args.items():
            live = [r for r, alive in enumerate(self._alive[s]) if alive]
            if not live:
                raise self._unavailable(s)
            deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
            for r in live:
                pending.append(
                    (s, r, getattr(self._actors[s][r], method).remote(*shard_args), deadline)
                )
        limit = "" if timeout_s is None else f"start_timeout_s={timeout_s:g}"
        results: dict[int, Any] = {}
        first_error: BaseException | None = None
        for s, r, ref, deadline in pending:
            try:
                value = self._wait(s, ref, deadline, limit)
            except ray.exceptions.RayActorError as exc:
                self._raise_if_init_failed(s, exc)
                self._alive[s][r] = False
                continue
            except Exception as exc:  # noqa: BLE001 - keep waiting for the others, re-raise after
                if first_error is None:
                    first_error = exc
                continue
            results.setdefault(s, value)
        if first_error is not None:
            raise first_error
        for s in args:
            if s not in results:
                raise self._unavailable(s)
        return results

    # ---- the index contract ------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        """Number of live vectors over all shards."""
        if not self._actors:
            return 0
        return int(sum(self._read("ntotal", {s: () for s in range(self.n_shards)}).values()))

    def __len__(self) -> int:
        return self.ntotal

    def shard_sizes(self) -> list[int]:
        """Live vectors per shard."""
        if not self._actors:
            return [0] * self.n_shards
        sizes = self._read("ntotal", {s: () for s in range(self.n_shards)})
        return [int(sizes[s]) for s in range(self.n_shards)]

    def memory(self) -> list[dict[str, int]]:
        """Per shard (first live replica): bytes of the index arrays, the actor's RSS and peak RSS."""
        if not self._actors:
            return []
        found = self._read("memory", {s: () for s in range(self.n_shards)})
        return [found[s] for s in range(self.n_shards)]

    def _ensure_dim(self, x: Any, name: str) -> np.ndarray:
        if self.dim is None:
            arr = np.asarray(x)
            if arr.ndim != 2:
                raise ValueError(
                    f"{name}: expected shape (n, dim), got {arr.ndim}-D shape {arr.shape}"
                )
            self.dim = check_dim(arr.shape[1])
        if not self._actors:
            self._start_shards()
        return as_vectors(x, self.dim, name)

    def train(self, x: Any, *, max_points: int | None = None, seed: int = 0, **kwargs: Any) -> None:
        """Train shard 0's index on the sample ``x`` (n, dim) and ship its trained state to every actor.

        ``max_points`` ships a uniform sample of that many rows (seeded by ``seed``) instead of all of
        ``x``; the index type may sample further (IVF-PQ: ``max_train_points_per_centroid``).
        For index types that need no training (Flat, HNSW) this only validates ``x``. ``kwargs``
        go to the index's ``train`` (e.g. an OOD query sample for LeanVec).
        """
        vectors = self._ensure_dim(x, "x")
        if max_points is not None:
            max_points = _check_positive("max_points", max_points)
            if vectors.shape[0] > max_points:
                rows = np.sort(
                    np.random.default_rng(seed).choice(vectors.shape[0], max_points, replace=False)
                )
                vectors = vectors[rows]
        info = self._read("info", {0: ()})[0]
        if not info["has_train"]:
            if kwargs:
                raise TypeError(
                    f"ShardedIndex.train: {info['type']} takes no training parameters, got {sorted(kwargs)}"
                )
            return
        stored = sum(self.shard_sizes())
        if stored:
            raise ValueError(
                f"train: the index already holds {stored} vectors; train before adding"
            )
        ray = _ray()
        state = self._read("train", {0: (ray.put(vectors), kwargs)})[0]
        # Every actor (the trained one included: it restores the same state) loads the trained state,
        # so all shards and replicas quantize with one set of centroids / codebooks / projections.
        state_ref = ray.put(state)
        self._write("set_trained_state", {s: (state_ref,) for s in range(self.n_shards)})

    @property
    def is_trained(self) -> bool:
        if not self._actors:
            return False
        return bool(self._read("info", {0: ()})[0]["is_trained"])

    def add(
        self, vectors: Any, ids: Any = None, attributes: Any = None, **kwargs: Any
    ) -> np.ndarray:
        """Add ``vectors`` (n, dim) with optional int64 ``ids`` and ``attributes``; returns the ids used.

        Everything is validated in the driver (and ids checked against every shard) before any
        shard stores a row, so a rejected call leaves the index unchanged. ``kwargs`` go to each
        shard's ``index.add`` (e.g. ``progress=False`` for HNSW).
        """
        x = self._ensure_dim(vectors, "vectors")
        n = x.shape[0]
        if ids is None:
            new_ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        else:
            new_ids = as_external_ids(ids, n)
        if attributes is not None:
            attribute_rows(attributes, n)
            # Full validation (kinds, values) here, so that no shard rejects its slice after another stored its own.
            AttributeStore().prepare(attributes, n, "attributes")
        if n == 0:
            return new_ids
        rows = split_rows(shard_of(new_ids, self.n_shards), self.n_shards)
        targets = [s for s in range(self.n_shards) if rows[s].size]
        if ids is not None:
            conflicts = self._read("new_ids_conflict", {s: (new_ids[rows[s]],) for s in targets})
            for s in targets:
                if conflicts[s] >= 0:
                    raise ValueError(
                        f"ids: id {conflicts[s]} is already in the index (shard {s}; remove it first)"
                    )
        args = {}
        for s in targets:
            part_attrs = None if attributes is None else take_attributes(attributes, rows[s])
            args[s] = (_share(x[rows[s]]), new_ids[rows[s]], part_attrs, kwargs)
        self._write("add", args)
        self._next_id = max(self._next_id, int(new_ids.max()) + 1)
        return new_ids

    def search(self, queries: Any, k: int, where: Any = None, **params: Any) -> SearchResult:
        """The ``k`` nearest neighbors over all shards of ``queries`` (nq, dim) or (dim,).

        ``where`` and per-call ``params`` (``ef``, ``nprobe``, ...) go to every shard's index.
        Returns ``SearchResult(ids int64 (nq, k), distances float32 (nq, k))``: ascending distances,
        equal distances by ascending id, padded with -1 / +inf.
        """
        k = check_k(k)
        if self.dim is None:
            arr = np.asarray(queries)
            nq = 1 if arr.ndim == 1 else (arr.shape[0] if arr.ndim == 2 else -1)
            if nq < 0:
                raise ValueError(
                    f"queries: expected shape (nq, dim) or (dim,), got {arr.ndim}-D shape {arr.shape}"
                )
            return SearchResult(
                np.full((nq, k), -1, np.int64), np.full((nq, k), np.inf, np.float32)
            )
        q = as_vectors(queries, self.dim, "queries", allow_single=True)
        q_ref = _share(q)
        answers = self._read("search", {s: (q_ref, k, where, params) for s in range(self.n_shards)})
        ids, dists = merge_topk(
            [answers[s][0] for s in range(self.n_shards)],
            [answers[s][1] for s in range(self.n_shards)],
            k,
        )
        return SearchResult(ids, dists)

    def remove(self, ids: Any) -> int:
        """Remove the vectors with these ids (unknown ids ignored); returns how many were removed."""
        arr = np.asarray(ids)
        if arr.ndim == 0:
            arr = arr.reshape(1)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"ids: expected integer ids, got dtype {arr.dtype}")
        arr = np.unique(arr.astype(np.int64).reshape(-1))
        arr = arr[arr >= 0]
        if not arr.size or not self._actors:
            return 0
        rows = split_rows(shard_of(arr, self.n_shards), self.n_shards)
        removed = self._write(
            "remove", {s: (arr[rows[s]],) for s in range(self.n_shards) if rows[s].size}
        )
        return int(sum(removed.values()))

    def __repr__(self) -> str:
        return (
            f"ShardedIndex(spec={_encode_spec(self.spec)!r}, n_shards={self.n_shards}, replicas={self.replicas}, "
            f"dim={self.dim}, metric={self.metric!r})"
        )

    # ---- persistence -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Save to directory ``path``: ``shard_00000/`` ... (each written by its shard actor with
        ``index.save``) plus ``manifest.json``. The whole directory is assembled beside ``path``
        and renamed into place, so a crash never leaves a half-written index under ``path``.
        The actors write the shard directories themselves: on a cluster ``path`` must be on a
        file system every node sees.
        """
        if self.dim is None:
            raise ValueError(
                "save: the index has no dimension yet (add or train first, or pass dim=)"
            )
        header = {
            "spec": _encode_spec(self.spec),
            "dim": self.dim,
            "metric": self.metric,
            "index_params": self.index_params,
            "replicas": self.replicas,
            "next_id": self._next_id,
        }

        def write_shards(dirs: list[str]) -> dict[int, int]:
            return self._read("save", {s: (dirs[s],) for s in range(self.n_shards)})

        write_sharded(path, self.n_shards, write_shards, header)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        address: str | None = None,
        replicas: int | None = None,
        timeout_s: float = 60.0,
        start_timeout_s: float = 120.0,
        mmap: bool = False,
        threads_per_shard: int | None = None,
        actor_options: dict[str, Any] | None = None,
    ) -> ShardedIndex:
        """Restore a sharded index saved with :meth:`save`; each actor loads its own shard directory.

        ``replicas`` defaults to the saved count; ``mmap`` maps each shard's arrays read-only.
        A shard whose files are damaged raises :class:`ShardUnavailableError` naming it and the cause.
        """
        manifest, dirs = read_sharded(path)
        self = cls(
            manifest["spec"],
            n_shards=len(dirs),
            address=address,
            replicas=int(manifest.get("replicas", 1)) if replicas is None else replicas,
            timeout_s=timeout_s,
            start_timeout_s=start_timeout_s,
            dim=None,
            metric=manifest["metric"],
            threads_per_shard=threads_per_shard,
            actor_options=actor_options,
            **manifest.get("index_params", {}),
        )
        self.dim = check_dim(manifest["dim"])
        self._next_id = int(manifest["next_id"])
        self._start_shards(load_dirs=dirs, mmap=mmap)
        sizes = self.shard_sizes()
        for s, entry in enumerate(manifest["shards"]):
            if sizes[s] != int(entry["ntotal"]):
                self.close()
                raise IndexFileError(
                    f"{dirs[s]}: shard {s} holds {sizes[s]} vectors, the manifest says {entry['ntotal']}"
                )
        return self
