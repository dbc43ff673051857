"""The contract shared by every index: :class:`SearchResult` and the :class:`Index` base.

Distances (every index, README): ``"l2"`` squared Euclidean, ``"ip"`` ``-<q, x>``, ``"cosine"``
``1 - cos(q, x)`` (vectors normalized once at add/search). Smaller is better, sorted best first;
missing results are padded with id ``-1`` and distance ``+inf``.

An index subclass names its type in the class statement (``class HNSWIndex(Index,
type_name="hnsw")``) and is then known to the registry (:mod:`vecsearch.registry`): factory,
load, warmup, benchmarks and the Collection find it there. It implements the hooks listed on
:class:`Index`; the base does validation, ids, attributes, filtered-search dispatch and the state
contract (:meth:`Index.get_state` / :meth:`Index.from_state`) around them.

Concurrency (every index, :mod:`vecsearch.concurrency`): any number of threads may call the
readers (``search``, ``match``, ``get_state``, ``save``, ...) at once, alongside one writer
(``add``, ``remove``, ``update_attributes``, ``train``, ``compact``) at a time; a search never sees
a half-applied write. The methods of those names are locked in every subclass that defines them.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from typing import Any, ClassVar, NamedTuple

import numpy as np

from . import registry
from .calibration import CalibrationReport, calibrate
from .concurrency import ReadWriteLock, lock_methods, reader, writer
from .exact import exact_topk
from .filtering.attributes import AttributeStore, is_attribute_array
from .filtering.cache import CompiledFilterCache
from .filtering.compile import AllowedSlots
from .filtering.planner import STRATEGIES, FilterCapabilities, available_strategies, choose_strategy
from .filtering.tuning import DEFAULT_TUNING, FilterTuning
from .ids import IdMap
from .io import write_directory
from .kernels.heaps import empty_heaps
from .kernels.rows import compact_allowed, slots_to_results
from .params import clamp_search_params
from .validation import (
    QUERY_KERNEL_MAX_ROWS,
    as_array,
    as_ids,
    as_vectors,
    check_dim,
    check_k,
    check_magnitude,
    check_metric,
    metric_code,
    normalize_rows,
    padded_results,
    prepare_query_rows,
    result_width,
    writable_queries,
)

# Keys of a state header (Index.get_state); anything else is an edit or a newer format.
_HEADER_KEYS = frozenset({"type", "dim", "metric", "params", "next_id", "attributes", "search_defaults"})


class SearchResult(NamedTuple):
    """Search output: ``ids`` int64 ``(nq, k)`` padded with -1; ``distances`` float32 ``(nq, k)`` padded with +inf."""

    ids: np.ndarray
    distances: np.ndarray


class Index(ABC):
    """Base of every index: validation, id bookkeeping, attributes, filtered search and state.

    Subclass hooks (vectors reaching them are float32, validated, normalized for cosine):

    * ``_add(vectors, ids, **kwargs)``, ``_search(queries, k, params) -> (slots, scores)``,
      ``_remove_slots(slots)``;
    * ``_get_state() -> (params, arrays)`` and ``_from_state(dim, metric, params, arrays, n_slots)``
      (which must check the arrays' contents against every invariant its kernels assume and raise
      ``ValueError`` naming the array);
    * ``describe()`` and, for a factory grammar, ``factory_forms`` + ``_from_factory``;
    * optionally ``filter_capabilities()`` and ``_run_filtered`` for index-specific filtered
      strategies (:mod:`vecsearch.filtering.planner` chooses among what an index declares).
    """

    type_name: ClassVar[str] = "index"
    requires_training: ClassVar[bool] = False
    vector_input: ClassVar[bool] = True
    search_knobs: ClassVar[tuple[str, ...]] = ()
    # False for types whose remove() compacts storage: a restored state then has no removed slot.
    keeps_removed_slots: ClassVar[bool] = True
    reports_progress: ClassVar[bool] = False  # its _add takes progress= (long builds)
    # (pattern with named groups, example) per form of the factory grammar; see _from_factory.
    factory_forms: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init_subclass__(cls, type_name: str | None = None, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        lock_methods(cls)
        if type_name is None:
            return
        cls.type_name = type_name
        forms = tuple(registry.FactoryForm(re.compile(p + r"\Z"), ex, cls._from_factory) for p, ex in cls.factory_forms)
        registry.register(registry.IndexType(type_name, cls, forms, tuple(cls.search_knobs),
                                             bool(cls.requires_training), bool(cls.vector_input)))

    def __init__(self, dim: int, metric: str = "l2"):
        self.dim = check_dim(dim)
        self.metric = check_metric(metric)
        self._metric_code = metric_code(self.metric)
        self.rwlock = ReadWriteLock()  # readers share it, writers hold it alone (vecsearch.concurrency)
        self._ids = IdMap()
        self._attributes: AttributeStore | None = None
        self._filter_cache = CompiledFilterCache()
        self.filter_tuning: FilterTuning = DEFAULT_TUNING
        # Search parameters used when a call does not give them (set by calibrate; saved).
        self.search_defaults: dict[str, Any] = {}

    # ---- public contract -------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        """Number of live (not removed) vectors."""
        return self._ids.n_live

    @property
    def n_slots(self) -> int:
        """Rows of the index's storage: live vectors plus removed ones not yet compacted away."""
        return self._ids.n_slots

    @property
    def is_trained(self) -> bool:
        return True

    @property
    def metric_code(self) -> int:
        """Kernel metric code (:data:`vecsearch.kernels.distances.METRIC_L2` or ``METRIC_IP``)."""
        return self._metric_code

    def __len__(self) -> int:
        return self.ntotal

    def prepare_vectors(self, vectors: Any, name: str = "vectors", *, allow_single: bool = False) -> np.ndarray:
        """Validate ``vectors`` and normalize them for cosine; float32 ``(n, dim)``.

        Query batches (``allow_single``) of at most ``QUERY_KERNEL_MAX_ROWS`` rows take the one-pass
        kernel path (:func:`vecsearch.validation.prepare_query_rows`).
        """
        vectors = as_array(vectors, name)
        if allow_single and (vectors.ndim == 1 or (vectors.ndim == 2 and len(vectors) <= QUERY_KERNEL_MAX_ROWS)):
            return prepare_query_rows(vectors, self.dim, name, self.metric)
        arr = as_vectors(vectors, self.dim, name, allow_single=allow_single)
        if self.metric == "cosine":
            arr = normalize_rows(arr, name)
        else:
            check_magnitude(arr, name, self.metric)
        return writable_queries(arr) if allow_single else arr

    @writer
    def add(self, vectors: Any, ids: Any = None, attributes: Any = None, progress: bool | None = None,
            **kwargs: Any) -> np.ndarray:
        """Add ``vectors`` (n, dim) with optional int64 ``ids`` (n,); returns the ids used.

        ``attributes``: per-vector typed fields for filtered search (:mod:`vecsearch.filtering.attributes`),
        a dict of columns ``{"year": [...], "lang": [...]}`` or a list of per-row dicts. ``progress``: a
        progress bar (graph builds; None = on for long ones; other indexes add fast and draw none).
        Validation happens before anything is stored: a rejected call leaves the index unchanged.
        """
        if progress is not None and not isinstance(progress, bool):
            raise TypeError(f"progress: expected a bool or None, got {type(progress).__name__}")
        if progress is not None and self.reports_progress:
            kwargs["progress"] = progress
        self._check_trained("add")
        x = self.prepare_vectors(vectors, "vectors")
        new_ids = self._ids.new_ids(ids, x.shape[0])
        prepared = self._prepare_attributes(attributes, x.shape[0])
        if x.shape[0] == 0:
            return new_ids
        self._add(x, new_ids, **kwargs)
        self._store_attributes(new_ids, prepared)
        return new_ids

    @reader
    def search(self, queries: Any, k: int, *, where: Any = None, strategy: str | None = None, **params: Any) -> SearchResult:
        """Search the ``k`` nearest neighbors of ``queries`` (nq, dim) or (dim,).

        Returns :class:`SearchResult` with ``(nq, k)`` arrays, best first, padded with -1 / +inf
        (``k`` beyond both the live count and :data:`vecsearch.validation.MAX_PADDED_K` is capped
        at the larger of the two: there are no more results to pad for).
        Per-call parameters (``ef``, ``nprobe``, ``rerank``, ...) depend on the index type; widths
        beyond the index's size are clamped to it.
        ``where``: a predicate (``vs.F.year >= 2020``) or its dict form; only matching vectors are
        returned. ``strategy`` overrides the planner's choice (:mod:`vecsearch.filtering.planner`).
        """
        k = check_k(k)
        self._check_trained("search")
        q = self.prepare_vectors(queries, "queries", allow_single=True)
        if self.search_defaults:
            params = {**self.search_defaults, **params}  # explicit per-call parameters win
        parsed = self._parse_search_params(params)
        allowed = None
        if where is not None:
            self._check_strategy(strategy)
            allowed = self.compile_where(where)
        elif strategy is not None:
            raise ValueError(f"strategy: only meaningful together with where=..., got strategy={strategy!r}")
        n_live = self.ntotal
        width = result_width(k, n_live)
        found = n_live if allowed is None else allowed.count
        if found == 0 or q.shape[0] == 0:
            return SearchResult(*padded_results(q.shape[0], width))
        k_run = min(width, found)  # the kernels never hold more than can be found
        parsed = clamp_search_params(parsed, k_run, self.n_slots)
        if allowed is None:
            slots, scores = self._search(q, k_run, parsed)
        else:
            chosen = strategy or choose_strategy(self.filter_capabilities(), allowed, self.filter_tuning)
            slots, scores = self._run_filtered(chosen, q, k_run, parsed, allowed)
        return self._results(slots, scores, width)

    @writer
    def remove(self, ids: Any) -> int:
        """Remove the vectors with these external ids; unknown ids are ignored. Returns how many were removed."""
        slots = self._ids.slots_of(as_ids(ids, "ids"))
        if slots.size:
            self._remove_slots(slots)
            self._attributes_changed()
        return int(slots.size)

    def calibrate(self, target_recall: float = 0.95, k: int = 10, queries: Any = None, *, vectors: Any = None,
                  vector_ids: Any = None, n_queries: int = 1000, seed: int = 0) -> CalibrationReport:
        """Make the fastest setting measured to reach ``target_recall`` (recall@``k`` vs exact
        search) this index's :attr:`search_defaults` (saved; per-call parameters still win).
        ``queries``: of the kind the index will serve (default: stored vectors); ``vectors``/
        ``vector_ids``: the truth for an index without its vectors. See :mod:`vecsearch.calibration`.
        """
        report = calibrate(self, target_recall, k, queries, vectors=vectors, vector_ids=vector_ids,
                           n_queries=n_queries, seed=seed)
        self.set_search_defaults(report.params)
        return report

    @writer
    def set_search_defaults(self, params: dict[str, Any]) -> None:
        """Search parameters used when a call does not give them (validated like a call's)."""
        if not isinstance(params, dict):
            raise TypeError(f"params: expected a dict of search parameters, got {type(params).__name__}")
        self._parse_search_params(dict(params))
        self.search_defaults = dict(params)

    @reader
    def __contains__(self, external_id: int) -> bool:
        return self._ids.contains(external_id)

    @reader
    def ids(self) -> np.ndarray:
        """The live external ids, int64 ``(ntotal,)``, in slot order."""
        return self._ids.slot_to_id[~self._ids.deleted].copy()

    @reader
    def reconstruct(self, ids: Any) -> np.ndarray:
        """Stored vectors of external ``ids`` (n,), float32 ``(n, dim)`` (normalized for cosine).

        Unknown ids raise ``KeyError``; an index that keeps no float32 vectors raises ``ValueError``.
        """
        vectors = self._exact_vectors()
        if vectors is None:
            raise ValueError(f"ids: {type(self).__name__} does not keep its vectors (nothing to reconstruct)")
        ids_arr = as_ids(ids, "ids")
        slots = self._ids.lookup(ids_arr)
        if (slots < 0).any():
            raise KeyError(f"ids: not in the index: {ids_arr[slots < 0][:5].tolist()}")
        return vectors[slots].copy()

    @reader
    def memory_bytes(self) -> int:
        """Bytes of the index's own arrays (vectors, graph, codes, attributes, as saved) and of its id map."""
        _, arrays = self.get_state()
        own = sum(np.asarray(arr).nbytes for name, arr in arrays.items() if name not in ("slot_to_id", "deleted"))
        return int(own + self._ids.nbytes())

    @reader
    def save(self, path: str) -> None:
        """Save to directory ``path`` atomically (manifest + arrays, see :mod:`vecsearch.io`)."""
        write_directory(path, *self.get_state())

    def describe(self) -> str:
        """The factory string that rebuilds an index of this kind (inverse of ``vs.index_factory``)."""
        raise ValueError(f"index: {type(self).__name__} has no factory description")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, metric={self.metric!r}, ntotal={self.ntotal})"

    # ---- attributes --------------------------------------------------------------------------
    @writer
    def update_attributes(self, ids: Any, attributes: Any) -> None:
        """Set attribute values of existing ``ids`` (n,); fields not given keep their values, ``None`` clears one.

        ``attributes`` has the same forms as in :meth:`add`. Unknown ids raise ``KeyError``.
        """
        id_arr = as_ids(ids, "ids")
        slots = self._ids.lookup(id_arr)
        if (slots < 0).any():
            raise KeyError(f"ids: not in the index: {id_arr[slots < 0][:5].tolist()}")
        if np.unique(id_arr).shape[0] != id_arr.shape[0]:
            raise ValueError("ids: duplicate ids in one update_attributes call")
        store = self._attribute_store(create=True)
        prepared = store.prepare(attributes, id_arr.shape[0], "attributes")
        self._sync_attributes(store)
        store.write(slots, prepared, clear_others=False)

    @reader
    def get_attributes(self, external_id: int) -> dict[str, Any]:
        """The attributes stored for one id as a dict (fields without a value are left out)."""
        slot = self._ids.slot_of(external_id)
        if slot < 0:
            raise KeyError(f"id: {external_id} is not in the index")
        store = self._attribute_store()
        if store is None:
            return {}
        self._sync_attributes(store)
        return store.get(slot)

    @reader
    def match(self, where: Any) -> np.ndarray:
        """External ids (int64, slot order) of the live vectors whose attributes satisfy ``where``."""
        return self._ids.to_external(self.compile_where(where).slots)

    @reader
    def compile_where(self, where: Any) -> AllowedSlots:
        """Compile a predicate to the allowed live slots (:class:`vecsearch.filtering.compile.AllowedSlots`).

        Cached per index (:class:`vecsearch.filtering.cache.CompiledFilterCache`), keyed by the
        predicate's structure and the versions of the ids and the attributes, so a filter repeated
        across calls (a tenant, a language) is compiled once until the index changes.
        """
        store = self._attribute_store()
        if store is not None:
            self._sync_attributes(store)
        return self._filter_cache.compile(where, self._ids, store)

    def _attribute_store(self, create: bool = False) -> AttributeStore | None:
        """The index's attribute store (``None`` until attributes are given, unless ``create``)."""
        if self._attributes is None and create:
            store = AttributeStore()
            self._sync_attributes(store)
            self._attributes = store
        return self._attributes

    def _sync_attributes(self, store: AttributeStore) -> None:
        store.sync(self._ids.slot_to_id, self._ids.deleted, self._ids.version)

    def _attributes_changed(self) -> None:
        """Realign the attribute rows after the slots changed (remove, compact, slot reuse), inside the
        writer, so that concurrent searches never find them stale and realign them themselves."""
        if self._attributes is not None:
            self._sync_attributes(self._attributes)

    def check_attributes(self, attributes: Any, n: int, name: str = "attributes") -> None:
        """Raise ``ValueError``/``TypeError`` (naming ``name``) unless ``attributes`` fit ``n`` new rows
        and the types of the fields already stored; changes nothing."""
        self._prepare_attributes(attributes, n, name)

    def _prepare_attributes(self, attributes: Any, n: int, name: str = "attributes") -> dict[str, Any] | None:
        """Validate ``attributes`` for ``n`` new rows before anything is stored (None when not given)."""
        if attributes is None:
            return None
        store = self._attributes if self._attributes is not None else AttributeStore()
        return store.prepare(attributes, n, name)

    def _store_attributes(self, new_ids: np.ndarray, prepared: dict[str, Any] | None) -> None:
        """Write the attributes of just-added ``new_ids`` (rows without attributes get none)."""
        store = self._attribute_store(create=prepared is not None)
        if store is None:
            return
        self._sync_attributes(store)
        store.write(self._ids.lookup(new_ids), prepared or {}, clear_others=True)

    # ---- filtered search -----------------------------------------------------------------------
    def filter_capabilities(self) -> FilterCapabilities:
        """What this index can do for a filtered search (the planner chooses among these).

        The base offers the exact scan of the allowed rows when :meth:`_exact_vectors` gives
        vectors, and post-filtering; index types with their own strategies extend it.
        """
        return FilterCapabilities(exact_scan=self._exact_vectors() is not None)

    def _check_strategy(self, strategy: str | None) -> None:
        if strategy is None:
            return
        if not isinstance(strategy, str) or strategy not in STRATEGIES:
            raise ValueError(f"strategy: expected one of {STRATEGIES} or None, got {strategy!r}")
        available = available_strategies(self.filter_capabilities())
        if strategy not in available:
            raise ValueError(f"strategy: {strategy!r} is not available for {type(self).__name__} (available: {available})")

    def _run_filtered(self, strategy: str, queries: np.ndarray, k: int, params: Any,
                      allowed: AllowedSlots) -> tuple[np.ndarray, np.ndarray]:
        """Run ``strategy`` (one of :meth:`filter_capabilities`); ``(slots int64 (nq, k), scores f32 (nq, k))``.

        Index types with their own strategies override this and defer to it for the generic ones.
        """
        if strategy == "prefilter":
            return self._prefilter(queries, k, params, allowed)
        if strategy == "postfilter":
            return self._postfilter(queries, k, params, allowed)
        raise ValueError(f"strategy: {strategy!r} is not available for {type(self).__name__}")

    def _prefilter(self, queries: np.ndarray, k: int, params: Any, allowed: AllowedSlots) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the allowed slots of the stored float32 vectors."""
        vectors = self._exact_vectors()
        if vectors is None:
            raise ValueError(f"strategy: 'prefilter' needs stored vectors, which {type(self).__name__} does not keep")
        return exact_topk(self._metric_code, queries, vectors, k, allowed=allowed)

    def _postfilter(self, queries: np.ndarray, k: int, params: Any, allowed: AllowedSlots) -> tuple[np.ndarray, np.ndarray]:
        """Unfiltered ``_search`` with over-fetch, failures dropped; short rows retry with 4x the
        fetch, then go to :meth:`_postfilter_fallback` (on a graph index: the first retry already)."""
        tuning = self.filter_tuning
        nq = queries.shape[0]
        out_scores, out_rows = empty_heaps(nq, k)
        need = min(k, allowed.count)
        n_live = self.ntotal
        fetch = min(n_live, max(2 * k, math.ceil(k / max(allowed.selectivity, 1e-9) * tuning.postfilter_overfetch) + 8))
        caps = self.filter_capabilities()
        pending = np.arange(nq)
        first = True
        while pending.size:
            exhausted = fetch > tuning.postfilter_max_fetch or fetch >= n_live
            if (not first and caps.graph_walk) or (caps.prefilter and exhausted):
                rows, scores = self._postfilter_fallback(queries[pending], k, params, allowed)
                out_rows[pending], out_scores[pending] = rows, scores
                break
            first = False
            rows, scores = self._search(queries[pending], fetch, params)
            part_scores, part_rows = empty_heaps(pending.shape[0], k)
            compact_allowed(np.ascontiguousarray(rows, np.int64), np.ascontiguousarray(scores, np.float32),
                            allowed.mask, k, part_rows, part_scores)
            done = ((part_rows >= 0).sum(axis=1) >= need) | (fetch >= n_live)
            out_rows[pending[done]] = part_rows[done]
            out_scores[pending[done]] = part_scores[done]
            pending = pending[~done]
            fetch = min(n_live, fetch * 4)
        return out_rows, out_scores

    def _postfilter_fallback(self, queries: np.ndarray, k: int, params: Any,
                             allowed: AllowedSlots) -> tuple[np.ndarray, np.ndarray]:
        """Rows post-filtering could not fill: the scan of the allowed rows (graph indexes
        override this to walk the graph when the scan is too large)."""
        return self._run_filtered("prefilter", queries, k, params, allowed)

    def _exact_vectors(self) -> np.ndarray | None:
        """Stored float32 vectors indexed by slot ``(>= n_slots, dim)`` for exact filtered scans, or None."""
        return None

    # ---- state -----------------------------------------------------------------------------------
    @reader
    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(header, arrays)``: everything needed to rebuild this index, ids and attributes included.

        ``header`` is JSON-serializable (``type``, ``dim``, ``metric``, ``params`` and, when the
        index has attributes, their schema); ``arrays`` are numpy arrays by plain identifier names.
        :meth:`from_state` is its inverse; :mod:`vecsearch.io` writes it to disk.
        """
        params, arrays = self._get_state()
        header: dict[str, Any] = {"type": self.type_name, "dim": self.dim, "metric": self.metric, "params": params,
                                  "next_id": self._ids.next_id}
        if self.search_defaults:
            header["search_defaults"] = dict(self.search_defaults)
        arrays = {**arrays, "slot_to_id": self._ids.slot_to_id, "deleted": self._ids.deleted}
        store = self._attributes
        if store is not None:
            self._sync_attributes(store)
            header["attributes"], attr_arrays = store.state()
            arrays.update(attr_arrays)
        return header, arrays

    @classmethod
    def from_state(cls, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> Index:
        """Rebuild an index from :meth:`get_state`'s output, checking every value and array content
        its kernels will trust; problems raise ``ValueError`` naming the field or array.

        ``Index.from_state`` restores any registered type; ``HNSWIndex.from_state`` only that one.
        """
        if not isinstance(header, dict):
            raise ValueError(f"header: expected a dict, got {type(header).__name__}")
        unknown = sorted(set(header) - _HEADER_KEYS)
        if unknown:
            raise ValueError(f"header: unknown keys {unknown} (known: {sorted(_HEADER_KEYS)})")
        record = registry.get(header.get("type"))
        if not issubclass(record.cls, cls):
            raise ValueError(f"type: expected a {cls.__name__} state, got type {header.get('type')!r}")
        dim = check_dim(header.get("dim"))
        metric = check_metric(header.get("metric"))
        params = header.get("params")
        if not isinstance(params, dict):
            raise ValueError(f"params: expected a dict, got {type(params).__name__}")
        if not isinstance(arrays, dict) or not all(isinstance(a, np.ndarray) for a in arrays.values()):
            raise ValueError("arrays: expected a dict of numpy arrays")
        for name in ("slot_to_id", "deleted"):
            if name not in arrays:
                raise ValueError(f"{name}: array is missing")
        ids = IdMap(np.array(arrays["slot_to_id"]), np.array(arrays["deleted"]))
        if not record.cls.keeps_removed_slots and ids.n_live != ids.n_slots:
            raise ValueError(f"deleted: {record.cls.__name__} compacts removed vectors away, yet "
                             f"{ids.n_slots - ids.n_live} slots are flagged removed")
        own = {name: arr for name, arr in arrays.items()
               if name not in ("slot_to_id", "deleted") and not is_attribute_array(name)}
        index = record.cls._from_state(dim, metric, dict(params), own, ids.n_slots)
        next_id = header.get("next_id", 0)  # ids handed out before, even if since removed and compacted away
        if isinstance(next_id, bool) or not isinstance(next_id, int) or not 0 <= next_id <= 2**63:
            raise ValueError(f"next_id: expected a non-negative int64, got {next_id!r}")
        ids.next_id = max(ids.next_id, next_id)
        defaults = header.get("search_defaults", {})
        if not isinstance(defaults, dict):
            raise ValueError(f"search_defaults: expected a dict, got {type(defaults).__name__}")
        try:
            index._parse_search_params(dict(defaults))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"search_defaults: {exc}") from None
        index.search_defaults = dict(defaults)
        index._ids = ids
        index._check_restored()
        if "attributes" in header:
            attr_arrays = {name: arr for name, arr in arrays.items() if is_attribute_array(name)}
            store = AttributeStore.from_state(header["attributes"], attr_arrays, ids.slot_to_id, ids.deleted)
            index._sync_attributes(store)  # aligned here, so that concurrent searches never realign it
            index._attributes = store
        elif any(is_attribute_array(name) for name in arrays):
            raise ValueError("attributes: attribute arrays are present but the header has no attribute schema")
        return index

    # ---- hooks ---------------------------------------------------------------------------------
    def _check_restored(self) -> None:
        """After :meth:`from_state` set the id map: check invariants between the index's arrays and
        its ids (``ValueError`` naming the array). Nothing to check by default."""

    def _check_trained(self, action: str) -> None:
        if not self.is_trained:
            raise ValueError(f"{type(self).__name__}.{action}: the index is not trained; call train(x) first")

    def _results(self, slots: np.ndarray, scores: np.ndarray, width: int | None = None) -> SearchResult:
        """:class:`SearchResult` from kernel output ``slots`` int64 / ``scores`` f32 (nq, k), padded
        with -1 / +inf to ``width`` columns (at least k)."""
        if slots.dtype != np.int64 or not slots.flags.c_contiguous:
            slots = np.ascontiguousarray(slots, np.int64)
        if scores.dtype != np.float32 or not scores.flags.c_contiguous or not scores.flags.writeable:
            scores = np.array(scores, np.float32)
        ids = np.empty(slots.shape, np.int64)
        slots_to_results(slots, scores, self._ids.slot_to_id, np.float32(1.0 if self.metric == "cosine" else 0.0), ids)
        if width is not None and width > slots.shape[-1]:
            ids, scores = padded_results(slots.shape[0], width, ids, scores)
        return SearchResult(ids, scores)

    def _parse_search_params(self, params: dict[str, Any]) -> Any:
        if params:
            raise TypeError(f"{type(self).__name__}.search: unexpected parameters {sorted(params)}")
        return None

    @classmethod
    def suggested_params(cls, n: int, dim: int) -> dict[str, Any]:
        """Build parameters for ``n`` vectors of ``dim`` that benchmarks and adapters start from."""
        return {}

    @classmethod
    def search_grid(cls) -> dict[str, list[Any]]:
        """Values of the per-call search knobs (:attr:`search_knobs`) a recall/speed sweep tries."""
        return {}

    @classmethod
    def warmup_kernels(cls, data: np.ndarray) -> None:
        """Compile (or load from the cache) this type's kernels on tiny ``data`` (n, d) f32: add and
        search, single query and batch, every metric. Types with more paths override it."""
        for metric in ("l2", "ip", "cosine"):
            index = cls(data.shape[1], metric)
            index.add(data)
            index.search(data[:1], 5)
            index.search(data[:32], 5)

    @classmethod
    def _from_factory(cls, dim: int, metric: str, groups: dict[str, str | None], params: dict[str, Any]) -> Index:
        """Build from a match of one of ``factory_forms`` (``groups``: its named groups)."""
        return cls(dim, metric, **params)

    @abstractmethod
    def _add(self, vectors: np.ndarray, ids: np.ndarray, **kwargs: Any) -> None: ...

    @abstractmethod
    def _search(self, queries: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(slots int64 (nq, k), scores float32 (nq, k))``, best first, -1/+inf padded."""

    @abstractmethod
    def _remove_slots(self, slots: np.ndarray) -> None: ...

    @abstractmethod
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(params, arrays)`` to persist; params are JSON-serializable build parameters."""

    @classmethod
    @abstractmethod
    def _from_state(cls, dim: int, metric: str, params: dict[str, Any], arrays: dict[str, np.ndarray],
                    n_slots: int) -> Index:
        """Rebuild from ``_get_state``'s output; ``n_slots`` is the length of the id map the arrays
        must agree with. Check contents, not only shapes; raise ``ValueError`` naming the array."""
