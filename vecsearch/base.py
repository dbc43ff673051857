"""The contract shared by every index: SearchResult, metrics, argument validation and the Index base.

Distance convention (the same for every index, documented in the README):

* ``"l2"``     -> squared Euclidean distance.
* ``"ip"``     -> negative inner product, ``-<q, x>``.
* ``"cosine"`` -> cosine distance, ``1 - cos(q, x)`` (vectors are normalized once at add/search).

Smaller is better everywhere; results are sorted best first; missing results are padded with id
``-1`` and distance ``+inf``.
"""

from __future__ import annotations

import collections
import itertools
import threading
from abc import ABC, abstractmethod
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .kernels.distances import METRIC_IP, METRIC_L2
from .kernels.rows import ROWS_NOT_FINITE, ROWS_OK, check_rows, slots_to_results
from .planner import check_strategy, choose_strategy, run_strategy
from .predicates import compile_where, parse_where

METRICS = ("l2", "ip", "cosine")


class SearchResult(NamedTuple):
    """Search output: ``ids`` int64 ``(nq, k)`` padded with -1; ``distances`` float32 ``(nq, k)`` padded with +inf."""

    ids: np.ndarray
    distances: np.ndarray


def check_metric(metric: Any) -> str:
    """Return ``metric`` if it is one of :data:`METRICS`, else raise ``ValueError``."""
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
    return metric


def metric_code(metric: str) -> int:
    """Kernel metric code: METRIC_L2 for ``l2``, METRIC_IP for ``ip`` and ``cosine``."""
    return METRIC_L2 if metric == "l2" else METRIC_IP


def check_dim(dim: Any) -> int:
    """Validate a vector dimension (positive int)."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim: expected a positive integer, got {dim!r}")
    return int(dim)


def check_k(k: Any) -> int:
    """Validate the number of neighbors ``k`` (positive int)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k: expected a positive integer, got {type(k).__name__} {k!r}")
    if k <= 0:
        raise ValueError(f"k: expected a positive integer, got {k}")
    return int(k)


def as_vectors(x: Any, dim: int, name: str, *, allow_single: bool = False, check_finite: bool = True) -> np.ndarray:
    """Validate and convert ``x`` to a C-contiguous float32 ``(n, dim)`` array.

    A 1-D ``(dim,)`` input is accepted as one row when ``allow_single`` (queries). Raises
    ``TypeError`` for non-numeric input and ``ValueError`` for wrong rank or dimension and
    for NaN/inf values (unless ``check_finite=False``: the caller checks), naming ``name``, what
    was expected and what was received.
    """
    arr = x if type(x) is np.ndarray else np.asarray(x)
    if arr.dtype != np.float32:
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
        if np.issubdtype(arr.dtype, np.complexfloating) or arr.dtype == np.bool_:
            raise TypeError(f"{name}: expected a real-valued float or integer array, got dtype {arr.dtype}")
    if arr.ndim == 1 and allow_single:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        expected = f"(n, {dim})" + (f" or ({dim},)" if allow_single else "")
        raise ValueError(f"{name}: expected shape {expected}, got {arr.ndim}-D shape {arr.shape}")
    if arr.shape[1] != dim:
        raise ValueError(f"{name}: expected dimension {dim}, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if check_finite and arr.size and not np.isfinite(arr).all():
        raise _not_finite_error(name, int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0]))
    return arr


def _not_finite_error(name: str, row: int) -> ValueError:
    return ValueError(f"{name}: expected finite values, got NaN or inf in row {row}")


def _zero_row_error(name: str, row: int) -> ValueError:
    return ValueError(f"{name}: cosine metric needs non-zero vectors, got a zero vector in row {row}")


def normalize_rows(x: np.ndarray, name: str = "vectors") -> np.ndarray:
    """Return a row-normalized float32 copy of ``x`` (n, d); zero rows are rejected for cosine."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if x.shape[0] and (norms == 0).any():
        raise _zero_row_error(name, int(np.flatnonzero(norms[:, 0] == 0)[0]))
    return np.ascontiguousarray(x / norms, dtype=np.float32)


_NO_OUTPUT = np.empty((0, 0), np.float32)


def _writable_queries(arr: np.ndarray) -> np.ndarray:
    """``arr``, copied when read-only (a memory map, a Ray object-store view): numba would compile
    every search kernel again for read-only arrays, and a query batch is cheap to copy."""
    return arr if arr.flags.writeable else arr.copy()


def prepare_query_rows(x: Any, dim: int, name: str, normalize: bool) -> np.ndarray:
    """:func:`as_vectors` (single rows allowed) plus, for cosine, :func:`normalize_rows`, in one kernel pass.

    The latency path of ``search``: numpy's finite check, norms and division cost several
    microseconds of call overhead per query. Same errors as the numpy path.
    """
    arr = _writable_queries(as_vectors(x, dim, name, allow_single=True, check_finite=False))
    out = np.empty_like(arr) if normalize else _NO_OUTPUT  # only written when normalizing
    status, row = check_rows(arr, normalize, out)
    if status == ROWS_OK:
        return out if normalize else arr
    raise _not_finite_error(name, row) if status == ROWS_NOT_FINITE else _zero_row_error(name, row)


def as_external_ids(ids: Any, n: int, name: str = "ids") -> np.ndarray:
    """Validate user ids: int64 ``(n,)``, integer dtype, no duplicates within the batch."""
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name}: expected integer ids, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n},) to match the vectors, got {arr.shape}")
    arr = arr.astype(np.int64, copy=False)
    if n and (arr < 0).any():
        raise ValueError(f"{name}: expected non-negative ids (-1 marks padding), got {int(arr[arr < 0][0])}")
    if n > 1:
        uniq, counts = np.unique(arr, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"{name}: duplicate id {int(uniq[counts > 1][0])} within the batch")
    return arr


def scores_to_distances(scores: np.ndarray, metric: str) -> np.ndarray:
    """Convert kernel scores (smaller is better) to user distances in place; +inf padding stays."""
    if metric == "cosine":
        scores += np.float32(1.0)
    return scores


# Query batches up to this many rows are checked and normalized by one kernel call.
QUERY_KERNEL_MAX_ROWS = 64

# Compiled-filter cache per index: at most this many entries, and at most this many bytes of
# masks (one byte per slot each; an index of 32M slots caches none).
WHERE_CACHE_MAX_ENTRIES = 16
WHERE_CACHE_BYTES = 32 << 20
_WHERE_CACHE_LOCK = threading.Lock()

# Versions of IdMap states, unique across all IdMap objects of the process (a cache keyed by a
# version can never mistake one index's ids for another's).
_IDMAP_VERSIONS = itertools.count(1)


class IdMap:
    """External int64 ids <-> internal slots (int32 row numbers of the index's storage).

    ``slot_to_id[s]`` is the external id stored at slot ``s``; a removed slot keeps its row but is
    flagged in ``deleted`` so graph indexes can still route through it.
    """

    def __init__(self, slot_to_id: np.ndarray | None = None, deleted: np.ndarray | None = None):
        self._touch()
        self.slot_to_id = np.empty(0, np.int64) if slot_to_id is None else np.asarray(slot_to_id, np.int64)
        self.deleted = (
            np.zeros(self.slot_to_id.shape[0], np.bool_) if deleted is None else np.asarray(deleted, np.bool_)
        )
        live = ~self.deleted
        self._id_to_slot: dict[int, int] = dict(
            zip(self.slot_to_id[live].tolist(), np.flatnonzero(live).tolist())
        )
        self.next_id = int(self.slot_to_id.max()) + 1 if self.slot_to_id.size else 0

    @property
    def n_live(self) -> int:
        return len(self._id_to_slot)

    def _touch(self) -> None:
        """Record a change of ``slot_to_id``/``deleted``: a new, process-unique ``version``."""
        self.version = next(_IDMAP_VERSIONS)
        self._live: tuple[int, np.ndarray, int] | None = None

    def live(self) -> tuple[np.ndarray, int]:
        """``(mask bool (n_slots,), count)`` of the live slots; cached until the next change.

        The mask is shared: callers must not write to it.
        """
        if self._live is None or self._live[0] != self.version:
            mask = ~self.deleted
            self._live = (self.version, mask, int(np.count_nonzero(mask)))
        return self._live[1], self._live[2]

    @property
    def n_slots(self) -> int:
        return int(self.slot_to_id.shape[0])

    def new_ids(self, ids: Any, n: int) -> np.ndarray:
        """Validate ids for ``n`` new vectors (sequential when None); reject ids already stored."""
        if ids is None:
            return np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        arr = as_external_ids(ids, n)
        for value in arr.tolist():
            if value in self._id_to_slot:
                raise ValueError(f"ids: id {value} is already in the index (remove it first)")
        return arr

    def append(self, ids: np.ndarray) -> np.ndarray:
        """Append ids at new slots; returns the slots (int64)."""
        start = self.n_slots
        slots = np.arange(start, start + ids.shape[0], dtype=np.int64)
        self.slot_to_id = np.concatenate([self.slot_to_id, ids])
        self.deleted = np.concatenate([self.deleted, np.zeros(ids.shape[0], np.bool_)])
        self._touch()
        self._id_to_slot.update(zip(ids.tolist(), slots.tolist()))
        if ids.size:
            self.next_id = max(self.next_id, int(ids.max()) + 1)
        return slots

    def assign(self, slots: np.ndarray, ids: np.ndarray) -> None:
        """Store ``ids`` at existing (deleted) ``slots``, e.g. when a graph reuses removed slots."""
        self.slot_to_id[slots] = ids
        self.deleted[slots] = False
        self._touch()
        self._id_to_slot.update(zip(ids.tolist(), slots.tolist()))
        if ids.size:
            self.next_id = max(self.next_id, int(ids.max()) + 1)

    def slots_of(self, ids: Any, name: str = "ids") -> np.ndarray:
        """Slots of the live ids among ``ids`` (unknown or removed ids are skipped), int64."""
        arr = np.asarray(ids)
        if arr.ndim == 0:
            arr = arr.reshape(1)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name}: expected integer ids, got dtype {arr.dtype}")
        found = [self._id_to_slot[i] for i in arr.astype(np.int64).tolist() if i in self._id_to_slot]
        return np.unique(np.asarray(found, dtype=np.int64))

    def mark_deleted(self, slots: np.ndarray) -> None:
        """Flag ``slots`` deleted and forget their ids."""
        for s in slots.tolist():
            self._id_to_slot.pop(int(self.slot_to_id[s]), None)
        self.deleted[slots] = True
        self._touch()

    def compact(self, keep: np.ndarray) -> None:
        """Keep only the slots in ``keep`` (sorted int64), renumbering them 0..len(keep)-1."""
        self.__init__(self.slot_to_id[keep].copy(), self.deleted[keep].copy())

    def to_external(self, slots: np.ndarray) -> np.ndarray:
        """Map internal slots (any shape, -1 = padding) to external ids (-1 stays -1)."""
        out = np.full(slots.shape, -1, dtype=np.int64)
        valid = slots >= 0
        out[valid] = self.slot_to_id[slots[valid]]
        return out

    def contains(self, external_id: int) -> bool:
        return int(external_id) in self._id_to_slot


INDEX_TYPES: dict[str, type[Index]] = {}


def register_index(type_name: str):
    """Class decorator: make an index type restorable by :func:`vecsearch.load` under ``type_name``."""

    def wrap(cls):
        cls.type_name = type_name
        INDEX_TYPES[type_name] = cls
        return cls

    return wrap


class Index(ABC):
    """Base of every index: shared validation, id bookkeeping, metric handling and persistence hooks.

    Subclasses implement ``_add(vectors, ids, attributes)``, ``_search(queries, k, params)``,
    ``_remove_slots(slots)``, ``_state()`` and ``_from_state(...)``; vectors reaching them are
    float32, validated, and already normalized for cosine.
    """

    type_name: ClassVar[str] = "index"
    requires_training: ClassVar[bool] = False

    def __init__(self, dim: int, metric: str = "l2"):
        self.dim = check_dim(dim)
        self.metric = check_metric(metric)
        self._metric_code = metric_code(self.metric)
        self._ids = IdMap()

    # ---- public contract -------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        """Number of live (not removed) vectors."""
        return self._ids.n_live

    @property
    def is_trained(self) -> bool:
        return True

    def __len__(self) -> int:
        return self.ntotal

    def prepare_vectors(self, vectors: Any, name: str = "vectors", *, allow_single: bool = False) -> np.ndarray:
        """Validate ``vectors`` and normalize them for cosine; float32 ``(n, dim)``.

        Query batches (``allow_single``) of at most ``QUERY_KERNEL_MAX_ROWS`` rows take the one-pass
        kernel path (:func:`prepare_query_rows`).
        """
        ndim = np.ndim(vectors)
        if allow_single and (ndim == 1 or (ndim == 2 and len(vectors) <= QUERY_KERNEL_MAX_ROWS)):
            return prepare_query_rows(vectors, self.dim, name, self.metric == "cosine")
        arr = as_vectors(vectors, self.dim, name, allow_single=allow_single)
        if self.metric == "cosine":
            arr = normalize_rows(arr, name)
        return _writable_queries(arr) if allow_single else arr

    def add(self, vectors: Any, ids: Any = None, attributes: Any = None, **kwargs: Any) -> np.ndarray:
        """Add ``vectors`` (n, dim) with optional int64 ``ids`` (n,); returns the ids used.

        ``attributes``: per-vector typed fields for filtered search (:mod:`vecsearch.attributes`),
        a dict of columns ``{"year": [...], "lang": [...]}`` or a list of per-row dicts.
        Validation happens before anything is stored: a rejected call leaves the index unchanged.
        """
        self._check_trained("add")
        x = self.prepare_vectors(vectors, "vectors")
        new_ids = self._ids.new_ids(ids, x.shape[0])
        prepared = self._prepare_attributes(attributes, x.shape[0])
        if x.shape[0] == 0:
            return new_ids
        self._add(x, new_ids, **kwargs)
        self._store_attributes(new_ids, prepared)
        return new_ids

    def _prepare_attributes(self, attributes: Any, n: int) -> dict[str, Any] | None:
        """Validate ``attributes`` for ``n`` new rows before anything is stored (None when not given)."""
        if attributes is None:
            return None
        return self._attribute_store(create=True).prepare(attributes, n, "attributes")

    def _store_attributes(self, new_ids: np.ndarray, prepared: dict[str, Any] | None) -> None:
        """Write the attributes of just-added ``new_ids`` (rows without attributes get none)."""
        store = self._attribute_store()
        if store is None:
            return
        store.sync(self._ids.slot_to_id, self._ids.deleted)
        slots = np.fromiter((self._ids._id_to_slot[i] for i in new_ids.tolist()), np.int64, new_ids.shape[0])
        store.write(slots, prepared or {}, clear_others=True)

    def update_attributes(self, ids: Any, attributes: Any) -> None:
        """Set attribute values of existing ``ids`` (n,); fields not given keep their values, ``None`` clears one.

        ``attributes`` has the same forms as in :meth:`add`. Unknown ids raise ``KeyError``.
        """
        arr = np.atleast_1d(np.asarray(ids))
        if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(f"ids: expected a 1-D array of integer ids, got dtype {arr.dtype} shape {arr.shape}")
        id_list = arr.astype(np.int64).tolist()
        missing = [i for i in id_list if i not in self._ids._id_to_slot]
        if missing:
            raise KeyError(f"ids: not in the index: {missing[:5]}")
        if len(set(id_list)) != len(id_list):
            raise ValueError("ids: duplicate ids in one update_attributes call")
        store = self._attribute_store(create=True)
        prepared = store.prepare(attributes, len(id_list), "attributes")
        store.sync(self._ids.slot_to_id, self._ids.deleted)
        slots = np.array([self._ids._id_to_slot[i] for i in id_list], np.int64)
        store.write(slots, prepared, clear_others=False)

    def get_attributes(self, external_id: int) -> dict[str, Any]:
        """The attributes stored for one id as a dict (fields without a value are left out)."""
        slot = self._ids._id_to_slot.get(int(external_id))
        if slot is None:
            raise KeyError(f"id: {external_id} is not in the index")
        store = self._attribute_store()
        if store is None:
            return {}
        store.sync(self._ids.slot_to_id, self._ids.deleted)
        return store.get(slot)

    def _attribute_store(self, create: bool = False):
        """The index's :class:`~vecsearch.attributes.AttributeStore` (``None`` until attributes are given)."""
        store = getattr(self, "_attributes", None)
        if store is None and create:
            from .attributes import AttributeStore

            store = AttributeStore()
            store.sync(self._ids.slot_to_id, self._ids.deleted)
            self._attributes = store
        return store

    def search(self, queries: Any, k: int, *, where: Any = None, strategy: str | None = None, **params: Any) -> SearchResult:
        """Search the ``k`` nearest neighbors of ``queries`` (nq, dim) or (dim,).

        Returns :class:`SearchResult` with ``(nq, k)`` arrays, best first, padded with -1 / +inf.
        Per-call parameters (``ef``, ``nprobe``, ``rerank``, ...) depend on the index type.
        ``where``: a predicate (``vs.F.year >= 2020``) or its dict form; only matching vectors are
        returned. ``strategy`` overrides the planner's choice (:mod:`vecsearch.planner`).
        """
        k = check_k(k)
        self._check_trained("search")
        q = self.prepare_vectors(queries, "queries", allow_single=True)
        parsed = self._parse_search_params(params)
        allowed = None
        if where is not None:
            check_strategy(self, strategy)
            allowed = self._compile_where(where)
        elif strategy is not None:
            raise ValueError(f"strategy: only meaningful together with where=..., got strategy={strategy!r}")
        if self.ntotal == 0 or q.shape[0] == 0 or (allowed is not None and allowed.count == 0):
            ids = np.full((q.shape[0], k), -1, np.int64)
            return SearchResult(ids, np.full((q.shape[0], k), np.inf, np.float32))
        if allowed is None:
            slots, scores = self._search(q, k, parsed)
        else:
            chosen = choose_strategy(self, allowed, k, q.shape[0], strategy)
            slots, scores = self._search_filtered(q, k, parsed, allowed, chosen)
        return self._results(slots, scores)

    def _results(self, slots: np.ndarray, scores: np.ndarray) -> SearchResult:
        """:class:`SearchResult` from kernel output ``slots`` int64 / ``scores`` f32 (nq, k), padded -1."""
        if slots.dtype != np.int64 or not slots.flags.c_contiguous:
            slots = np.ascontiguousarray(slots, np.int64)
        if scores.dtype != np.float32 or not scores.flags.c_contiguous or not scores.flags.writeable:
            scores = np.array(scores, np.float32)
        ids = np.empty(slots.shape, np.int64)
        slots_to_results(slots, scores, self._ids.slot_to_id, np.float32(1.0 if self.metric == "cosine" else 0.0), ids)
        return SearchResult(ids, scores)

    def remove(self, ids: Any) -> int:
        """Remove the vectors with these external ids; unknown ids are ignored. Returns how many were removed."""
        slots = self._ids.slots_of(ids)
        if slots.size:
            self._remove_slots(slots)
        return int(slots.size)

    def __contains__(self, external_id: int) -> bool:
        return self._ids.contains(external_id)

    def save(self, path: str) -> None:
        """Save to directory ``path`` atomically (see :mod:`vecsearch.io`)."""
        from .io import save_index

        save_index(self, path)

    def describe(self) -> str:
        """The factory string that rebuilds an index of this kind (inverse of ``index_factory``)."""
        from .factory import describe

        return describe(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, metric={self.metric!r}, ntotal={self.ntotal})"

    # ---- hooks ---------------------------------------------------------------------------------
    def _check_trained(self, action: str) -> None:
        if not self.is_trained:
            raise ValueError(f"{type(self).__name__}.{action}: the index is not trained; call train(x) first")

    def _compile_where(self, where: Any) -> Any:
        """Compile a predicate to the allowed live slots (:class:`vecsearch.predicates.AllowedSlots`).

        Compiled filters are cached per index (see :data:`WHERE_CACHE_BYTES`), keyed by the
        predicate's canonical text and the versions of the ids and the attributes, so a filter
        repeated across calls (a tenant, a language) is compiled once until the index changes.
        """
        expr = parse_where(where)
        ids = self._ids
        store = self._attribute_store()
        if store is not None and store.synced_version != ids.version:
            store.sync(ids.slot_to_id, ids.deleted)
            store.synced_version = ids.version
        key = (expr.key, ids.version, 0 if store is None else store.version)
        cache = self.__dict__.get("_where_cache")
        if cache is None:
            cache = self._where_cache = collections.OrderedDict()
        with _WHERE_CACHE_LOCK:
            allowed = cache.get(key)
            if allowed is not None:
                cache.move_to_end(key)
                return allowed
        live, n_live = ids.live()
        allowed = compile_where(expr, store, ids.deleted, live=live, n_live=n_live)
        max_entries = min(WHERE_CACHE_MAX_ENTRIES, WHERE_CACHE_BYTES // max(ids.n_slots, 1))
        with _WHERE_CACHE_LOCK:
            stale = [k for k in cache if k[1:] != key[1:]]
            for k in stale:
                del cache[k]
            if max_entries > 0:
                cache[key] = allowed
                while len(cache) > max_entries:
                    cache.popitem(last=False)
        return allowed

    def _search_filtered(self, queries: np.ndarray, k: int, params: Any, allowed: Any, strategy: str) -> tuple[np.ndarray, np.ndarray]:
        """Filtered search: like ``_search`` but only over ``allowed`` slots.

        ``allowed`` is a :class:`vecsearch.predicates.AllowedSlots` (``mask`` bool (n_slots,),
        ``count``, sorted ``slots`` int64); ``strategy`` is the planner's choice. The default runs
        the generic strategies of :mod:`vecsearch.planner` (exact scan over the allowed slots,
        post-filter with over-fetch) and any registered for this index type; index types may override.
        """
        return run_strategy(self, queries, k, params, allowed, strategy)

    def _exact_vectors(self) -> np.ndarray | None:
        """Stored float32 vectors indexed by slot ``(>= n_slots, dim)`` for exact filtered scans, or None."""
        vectors = getattr(self, "_vectors", None)
        if (
            isinstance(vectors, np.ndarray) and vectors.ndim == 2 and vectors.dtype == np.float32
            and vectors.shape[0] >= self._ids.n_slots and vectors.shape[1] == self.dim
        ):
            return vectors
        return None

    def _parse_search_params(self, params: dict[str, Any]) -> Any:
        if params:
            raise TypeError(f"{type(self).__name__}.search: unexpected parameters {sorted(params)}")
        return None

    @abstractmethod
    def _add(self, vectors: np.ndarray, ids: np.ndarray, **kwargs: Any) -> None: ...

    @abstractmethod
    def _search(self, queries: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(slots int64 (nq, k), scores float32 (nq, k))``, best first, -1/+inf padded."""

    @abstractmethod
    def _remove_slots(self, slots: np.ndarray) -> None: ...

    @abstractmethod
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(params, arrays)`` to persist; params are JSON-serializable build parameters."""

    @classmethod
    @abstractmethod
    def _from_state(cls, dim: int, metric: str, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Index: ...
