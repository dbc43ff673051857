"""ShardedIndex: one vecsearch index split over Ray actors, routed by a stable hash of the id.

Each shard is a group of Ray actors (:class:`~vecsearch.distributed.shard.Shard`), ``replicas``
of them, each holding one ordinary vecsearch index of the requested type (any registered type,
MultiVector included).

* ``add`` assigns sequential ids in the driver (or takes the caller's), routes every row to shard
  ``splitmix64(id) % n_shards``, puts each shard's slice in the object store once and writes it to
  every replica of that shard, in the shard's write order (:mod:`.replication`).
* ``search`` puts the queries in the object store once, asks every shard for its own top-k in
  parallel and merges them: distances ascending, equal distances by ascending id, padding
  (-1, +inf) last -- the :class:`~vecsearch.SearchResult` contract of every index. Reads are
  balanced over a shard's replicas, large batches split across them, slow replicas hedged
  (:mod:`.reads`); each shard's answer comes from one state of that shard.
* ``train`` trains one replica's index type on the caller's sample and ships the trained (empty)
  state to every actor as a write, so all shards share one codebook / projection.
* Faults: every wait is bounded by ``timeout_s`` (:class:`ShardTimeoutError`); a dead replica is
  dropped and replaced by a copy of a live one (``replicas`` is a target); a shard with no live
  replica raises :class:`ShardUnavailableError` naming it.

Concurrency: any number of threads may call ``search`` while others ``add`` or ``remove``. A
search sees each shard in one state, which includes every write acknowledged before the search
began; a write still in flight may be visible on some shards and not yet on others.

Ray is imported lazily (:mod:`.remote`): ``import vecsearch`` never needs it.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import numpy as np

from ..base import Index, SearchResult
from ..filtering.attributes import AttributeStore
from ..io import IndexFileError
from ..validation import as_external_ids, check_dim, check_k, check_metric
from .batches import as_batch, batch_dim, batch_rows, query_count, share, take_rows
from .persist import read_sharded, write_sharded
from .reads import ReadRouter
from .remote import connect, get_answer, raise_if_init_failed, ray_module, remote_shard_class
from .replicas import ReplicaGroup
from .replication import Replication
from .routing import attribute_rows, merge_topk, shard_of, split_rows, take_attributes
from .shard import build_index, spec_takes_vectors

__all__ = ["ShardedIndex", "connect"]


def _encode_spec(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    return f"class:{spec.__module__}:{spec.__qualname__}"


def _check_spec(spec: Any) -> Any:
    if isinstance(spec, str):
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


class ShardedIndex:
    """An index of type ``spec`` split into ``n_shards`` shards of ``replicas`` Ray actors each.

    Parameters
    ----------
    spec : factory string (``"Flat"``, ``"HNSW32"``, ``"IVF1024,PQ48"``, ``"MultiVectorFDE,HNSW16"``)
        or an ``Index`` subclass.
    n_shards : number of shards; ids are routed by ``splitmix64(id) % n_shards``.
    address : Ray cluster address; ``None`` starts (or reuses) a local Ray instance.
    replicas : actors per shard, a target: a dead replica is replaced by a copy of a live one.
    timeout_s : longest wait for any shard's answer; past it :class:`ShardTimeoutError`.
    start_timeout_s : longest wait for actors to start (and load, in :meth:`load`).
    dim : vector (token) dimension; ``None`` takes it from the first ``add`` / ``train``.
    metric : ``"l2"``, ``"ip"`` or ``"cosine"``; ``None``: ``"l2"``, or ``"ip"`` for MultiVector.
    threads_per_shard : numba/BLAS threads in each actor; ``None`` takes ``actor_options["num_cpus"]``
        when given, else ``cpu_count // n_shards`` on a local instance, else the node's defaults.
    actor_options : extra Ray actor options (``num_cpus``, ``resources``, ...) for every shard actor.
    auto_heal : heal in a background thread as soon as a dead replica is noticed, and probe every
        replica every ``health_check_s`` seconds (with ``replicas >= 2``); else only :meth:`heal`.
    hedge_after_s : send a read still unanswered after this long to another replica too; ``None``
        adapts it to the shard's recent answer times (:mod:`vecsearch.distributed.reads`).
    min_split_rows : query batches of at least twice this many rows are split over the replicas.
    slow_cooldown_s : a replica overtaken by a hedged read gets no reads this long (others serving).
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
        metric: str | None = None,
        threads_per_shard: int | None = None,
        actor_options: dict[str, Any] | None = None,
        auto_heal: bool = True,
        health_check_s: float = 10.0,
        hedge_after_s: float | None = None,
        min_split_rows: int = 128,
        slow_cooldown_s: float = 5.0,
        **index_params: Any,
    ):
        self.spec = _check_spec(spec)
        self.n_shards = _check_positive("n_shards", n_shards)
        self.replicas = _check_positive("replicas", replicas)
        self.timeout_s = _check_seconds("timeout_s", timeout_s)
        self.start_timeout_s = _check_seconds("start_timeout_s", start_timeout_s)
        self.health_check_s = _check_seconds("health_check_s", health_check_s)
        self.slow_cooldown_s = _check_seconds("slow_cooldown_s", slow_cooldown_s)
        self.hedge_after_s = (
            None if hedge_after_s is None else _check_seconds("hedge_after_s", hedge_after_s)
        )
        self.min_split_rows = _check_positive("min_split_rows", min_split_rows)
        if not isinstance(auto_heal, bool):
            raise TypeError(f"auto_heal: expected True or False, got {auto_heal!r}")
        self.auto_heal = auto_heal
        self.takes_vectors = spec_takes_vectors(self.spec)
        self.metric = check_metric(
            metric if metric is not None else ("l2" if self.takes_vectors else "ip")
        )
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
        for option in ("max_restarts", "max_task_retries"):
            # A restarted actor would come back empty; a retried write could run out of order.
            if self._actor_options.get(option, 0) != 0:
                raise ValueError(
                    f"actor_options: {option} must be 0 (dead replicas are replaced by copies of "
                    f"live ones, see replicas=), got {self._actor_options[option]!r}"
                )
        if threads_per_shard is None:
            cpus = self._actor_options.get("num_cpus")
            if isinstance(cpus, (int, float)) and cpus >= 1:
                threads_per_shard = int(cpus)
            elif self._local:
                threads_per_shard = max(1, (os.cpu_count() or 1) // self.n_shards)
        self.threads_per_shard = threads_per_shard
        self._lock = threading.Lock()  # dim, starting the shards, id assignment
        self._next_id = 0
        self._replication: Replication | None = None
        self._router: ReadRouter | None = None
        if self.dim is not None:
            self._start_shards()

    # ---- actors ------------------------------------------------------------------------------------
    def _start_actor(self, shard: int, load_path: str | None = None, mmap: bool = False) -> Any:
        """One new shard actor (not waited for): empty, or loading ``load_path``."""
        options = {**self._actor_options, "max_restarts": 0, "max_task_retries": 0}
        return (
            remote_shard_class()
            .options(**options)
            .remote(
                self.spec,
                self.dim,
                self.metric,
                self.index_params,
                load_path,
                mmap,
                self.threads_per_shard,
            )
        )

    def _start_shards(self, load_dirs: list[str] | None = None, mmap: bool = False) -> None:
        """Create ``n_shards * replicas`` actors and wait (bounded) until each answers."""
        if load_dirs is None:
            # Build one empty index here first: a bad spec or parameter raises now, clearly.
            build_index(self.spec, self.dim, self.metric, self.index_params)
        groups = []
        for s in range(self.n_shards):
            path = None if load_dirs is None else load_dirs[s]
            actors = [self._start_actor(s, path, mmap) for _ in range(self.replicas)]
            groups.append(ReplicaGroup(s, self.n_shards, self.replicas, actors))
        self._replication = Replication(
            groups,
            self._start_actor,
            timeout_s=self.timeout_s,
            start_timeout_s=self.start_timeout_s,
            auto_heal=self.auto_heal,
            health_check_s=self.health_check_s,
        )
        self._router = ReadRouter(
            self._replication,
            timeout_s=self.timeout_s,
            hedge_after_s=self.hedge_after_s,
            min_split_rows=self.min_split_rows,
            slow_cooldown_s=self.slow_cooldown_s,
        )
        try:
            self._check_started()
        except BaseException:
            self.close()  # never leave half a set of actors running
            raise

    def _check_started(self) -> None:
        """Every actor answers ``info`` with the expected dim and metric, within ``start_timeout_s``."""
        ray = ray_module()
        deadline = time.monotonic() + self.start_timeout_s
        limit = f"start_timeout_s={self.start_timeout_s:g}"
        pending = [
            (g.shard, r.actor.info.remote()) for g in self._replication.groups for r in g.live()
        ]
        for s, ref in pending:
            try:
                info = get_answer(s, self.n_shards, ref, deadline, limit)
            except ray.exceptions.RayActorError as exc:
                raise_if_init_failed(s, self.n_shards, exc)
                raise self._replication.groups[s].unavailable() from None
            if info["dim"] != self.dim or info["metric"] != self.metric:
                raise ValueError(
                    f"shard {s}: expected dim {self.dim} metric {self.metric!r}, "
                    f"got dim {info['dim']} metric {info['metric']!r}"
                )

    @property
    def shard_actors(self) -> list[list[Any]]:
        """The Ray actor handles of the current replicas, ``[shard][replica]`` (monitoring, fault drills)."""
        if self._replication is None:
            return []
        return [[r.actor for r in g.live()] for g in self._replication.groups]

    def replica_counts(self) -> list[int]:
        """Replicas of each shard that serve reads now (the target is ``replicas``)."""
        if self._replication is None:
            return [0] * self.n_shards
        return [g.readable_count() for g in self._replication.groups]

    def replica_status(self) -> list[dict[str, Any]]:
        """Per shard: replica target, last write sequence number, whether a heal is copying, and per
        replica its name, whether it serves reads, reads in flight and sent, and a slow mark."""
        return [] if self._replication is None else self._replication.status()

    @property
    def dropped_replicas(self) -> list[dict[str, Any]]:
        """Every replica dropped so far: shard, replica name and why (died, missed a write, ...)."""
        return [] if self._replication is None else list(self._replication.lost)

    @property
    def heal_events(self) -> list[dict[str, Any]]:
        """Every heal so far: shard, new and source replica, state bytes, seconds of each step, load."""
        return [] if self._replication is None else [e.as_dict() for e in self._replication.events]

    @property
    def read_stats(self) -> dict[str, int]:
        """Hedged reads sent, and those a hedge won (the first replica was overtaken)."""
        if self._router is None:
            return {"hedges_sent": 0, "hedges_won": 0}
        return {"hedges_sent": self._router.hedges_sent, "hedges_won": self._router.hedges_won}

    def heal(self, timeout_s: float | None = None) -> list[dict[str, Any]]:
        """Probe every replica now and bring every shard back to ``replicas`` live replicas; wait for it.

        Returns the heals done (see :attr:`heal_events`). Raises :class:`ShardUnavailableError` for a
        shard with no replica left to copy from, :class:`HealError` if a new replica cannot be brought
        up, :class:`ShardTimeoutError` after ``timeout_s``.
        """
        if timeout_s is not None:
            timeout_s = _check_seconds("timeout_s", timeout_s)
        if self._replication is None:
            return []
        return [e.as_dict() for e in self._replication.heal(timeout_s)]

    def close(self) -> None:
        """Stop healing and kill every shard actor (their in-memory data is gone; ``save`` first)."""
        if self._replication is not None:
            self._replication.close()

    def __enter__(self) -> ShardedIndex:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the index contract ------------------------------------------------------------------------
    def _call_all(self, method: str) -> list[Any]:
        answers = self._router.call(method, {s: () for s in range(self.n_shards)})
        return [answers[s] for s in range(self.n_shards)]

    @property
    def ntotal(self) -> int:
        """Number of live vectors (documents) over all shards."""
        return 0 if self._router is None else int(sum(self._call_all("ntotal")))

    def __len__(self) -> int:
        return self.ntotal

    def shard_sizes(self) -> list[int]:
        """Live vectors per shard."""
        return (
            [0] * self.n_shards
            if self._router is None
            else [int(n) for n in self._call_all("ntotal")]
        )

    def memory(self) -> list[dict[str, int]]:
        """Per shard (one replica): bytes of the index arrays, the actor's RSS and peak RSS."""
        return [] if self._router is None else self._call_all("memory")

    def _as_batch(
        self, x: Any, name: str, offsets: Any = None, *, allow_single: bool = False
    ) -> Any:
        """Validate a batch (vectors, or token sets for MultiVector); the first one sets ``dim`` and
        starts the shards."""
        if self.dim is None or self._replication is None:
            dim = batch_dim(x, self.takes_vectors, name, offsets) if self.dim is None else self.dim
            with self._lock:
                if self.dim is None:
                    self.dim = check_dim(dim)
                if self._replication is None:
                    self._start_shards()
        return as_batch(x, self.dim, self.takes_vectors, name, offsets, allow_single=allow_single)

    def train(self, x: Any, *, max_points: int | None = None, seed: int = 0, **kwargs: Any) -> None:
        """Train the index type on the sample ``x`` (n, dim) once and ship the trained state to every actor.

        ``max_points`` ships a uniform sample of that many rows (seeded by ``seed``) instead of all of
        ``x``; the index type may sample further (IVF-PQ: ``max_train_points_per_centroid``).
        For index types that need no training (Flat, HNSW) this only validates ``x``. ``kwargs``
        go to the index's ``train`` (e.g. an OOD query sample for LeanVec).
        """
        if not self.takes_vectors:
            raise TypeError(f"train: {self.spec!r} takes token sets and has no train step")
        vectors = self._as_batch(x, "x")
        if max_points is not None:
            max_points = _check_positive("max_points", max_points)
            if vectors.shape[0] > max_points:
                rows = np.sort(
                    np.random.default_rng(seed).choice(vectors.shape[0], max_points, replace=False)
                )
                vectors = vectors[rows]
        info = self._router.call("info", {0: ()})[0]
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
        ray = ray_module()
        state = self._router.call("train", {0: (ray.put(vectors), kwargs)})[0]
        # Every actor loads the trained state as a write, so all shards and replicas quantize with
        # one set of centroids / codebooks / projections.
        state_ref = ray.put(state)
        self._replication.write(
            "set_trained_state", {s: (state_ref,) for s in range(self.n_shards)}
        )

    @property
    def is_trained(self) -> bool:
        return (
            False
            if self._router is None
            else bool(self._router.call("info", {0: ()})[0]["is_trained"])
        )

    def add(
        self,
        vectors: Any,
        ids: Any = None,
        attributes: Any = None,
        *,
        offsets: Any = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Add ``vectors`` (n, dim) -- or, for MultiVector, n token sets -- with optional int64 ``ids``
        and ``attributes``; returns the ids used.

        Everything is validated in the driver (and ids checked against every shard) before any
        shard stores a row, so a rejected call leaves the index unchanged. Token sets are a list of
        ``(n_i, dim)`` arrays or CSR ``(vectors, offsets)``. ``kwargs`` go to each shard's
        ``index.add`` (e.g. ``progress=False`` for HNSW).
        """
        batch = self._as_batch(vectors, "vectors" if self.takes_vectors else "docs", offsets)
        n = batch_rows(batch)
        if ids is not None:
            new_ids = as_external_ids(ids, n)
        if attributes is not None:
            attribute_rows(attributes, n)
            # Full validation (kinds, values) here, so that no shard rejects its slice after another stored its own.
            AttributeStore().prepare(attributes, n, "attributes")
        if ids is None:
            with self._lock:  # concurrent adds get disjoint ids
                new_ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
                self._next_id += n
        if n == 0:
            return new_ids
        rows = split_rows(shard_of(new_ids, self.n_shards), self.n_shards)
        targets = [s for s in range(self.n_shards) if rows[s].size]
        if ids is not None:
            conflicts = self._router.call(
                "new_ids_conflict", {s: (new_ids[rows[s]],) for s in targets}
            )
            for s in targets:
                if conflicts[s] >= 0:
                    raise ValueError(
                        f"ids: id {conflicts[s]} is already in the index (shard {s}; remove it first)"
                    )
        args = {}
        for s in targets:
            part_attrs = None if attributes is None else take_attributes(attributes, rows[s])
            args[s] = (share(take_rows(batch, rows[s])), new_ids[rows[s]], part_attrs, kwargs)
        self._replication.write("add", args)
        if ids is not None:
            with self._lock:
                self._next_id = max(self._next_id, int(new_ids.max()) + 1)
        return new_ids

    def search(
        self, queries: Any, k: int, where: Any = None, *, offsets: Any = None, **params: Any
    ) -> SearchResult:
        """The ``k`` nearest neighbors over all shards of ``queries`` (nq, dim) or (dim,) -- or, for
        MultiVector, of token sets (a list of ``(n_i, dim)`` arrays or CSR ``(vectors, offsets)``).

        ``where`` and per-call ``params`` (``ef``, ``nprobe``, ``candidates``, ...) go to every
        shard's index. Returns ``SearchResult(ids int64 (nq, k), distances float32 (nq, k))``:
        ascending distances, equal distances by ascending id, padded with -1 / +inf.
        """
        k = check_k(k)
        if self.dim is None:  # before the first add: no shards (and no dimension) yet
            nq = query_count(queries, self.takes_vectors, offsets)
            return SearchResult(
                np.full((nq, k), -1, np.int64), np.full((nq, k), np.inf, np.float32)
            )
        batch = self._as_batch(queries, "queries", offsets, allow_single=True)
        answers = self._router.search(batch, batch_rows(batch), take_rows, share, k, where, params)
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
        if not arr.size or self._replication is None:
            return 0
        rows = split_rows(shard_of(arr, self.n_shards), self.n_shards)
        removed = self._replication.write(
            "remove", {s: (arr[rows[s]],) for s in range(self.n_shards) if rows[s].size}
        )
        return int(sum(removed.values()))

    def __repr__(self) -> str:
        return (
            f"ShardedIndex(spec={_encode_spec(self.spec)!r}, n_shards={self.n_shards}, replicas={self.replicas}, "
            f"dim={self.dim}, metric={self.metric!r})"
        )

    # ---- persistence -------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Save to directory ``path``: ``shard_00000/`` ... (each written by one replica of its shard
        with ``index.save``) plus ``manifest.json``. The whole directory is assembled beside ``path``
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
            return self._router.call("save", {s: (dirs[s],) for s in range(self.n_shards)})

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
        **options: Any,
    ) -> ShardedIndex:
        """Restore a sharded index saved with :meth:`save`; each actor loads its own shard directory.

        ``replicas`` defaults to the saved count; ``mmap`` maps each shard's arrays read-only
        (replicas started later by a heal hold copies). ``options``: the other constructor
        settings (``auto_heal``, ``hedge_after_s``, ...). A shard whose files are damaged raises
        :class:`ShardUnavailableError` naming it and the cause.
        """
        manifest, dirs = read_sharded(path)
        unknown = sorted(
            set(options)
            - {"auto_heal", "health_check_s", "hedge_after_s", "min_split_rows", "slow_cooldown_s"}
        )
        if unknown:
            raise TypeError(f"ShardedIndex.load: unexpected keyword arguments {unknown}")
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
            **options,
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
