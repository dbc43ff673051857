"""Collection: a Chroma-like document store (string ids, documents, metadata) over a vecsearch index.

::

    col = vs.Collection("my_docs/", dim=384, metric="cosine", index="hnsw", M=16)
    col.add(ids=["a", "b"], embeddings=vectors, documents=["...", "..."],
            metadatas=[{"lang": "en", "year": 2021}, {"lang": "de", "year": 2019}])
    res = col.query(query_vectors, n_results=5, where={"year": {"$gte": 2020}})
    res["ids"][0], res["distances"][0], res["documents"][0]      # one list per query

Storage. Vectors live in the index (``index="flat"``, ``"hnsw"``, ``"muvera"`` or any factory
string such as ``"HNSW32"``), keyed by internal int64 ids that are never reused (an upsert gives
the record a new internal id). Documents and metadata live beside it. Metadata values that are
scalars (str, int, float, bool) or lists of str are also given to the index as typed attributes, so
``where`` (the dict form or ``vs.F`` expressions, :mod:`vecsearch.filtering.predicates`) is evaluated by the
predicate layer and the filtered-search planner; ints are stored as float attributes so a field may
mix ints and floats, but one field must keep one kind (number, bool, str or list of str) across the
collection. Other values (nested dicts, ``None``) are returned but not filterable. Filtering on a
field no record has raises ``ValueError`` (typos are loud). ``index="muvera"`` takes no attributes
in its own search, so there the collection post-filters with a growing over-fetch. Embeddings
returned by ``include=["embeddings"]`` are the stored ones (unit-normalized for cosine).

Durability contract (with a ``path``). Every mutating call (``add``, ``upsert``, ``delete``) is
durable when it returns: the change is appended to a write-ahead log as one checksummed record and
fsynced before it is applied in memory. A call that raised (bad input) changed nothing; a call
interrupted by a crash is either wholly present after reopening or wholly absent (its record is
the torn tail of the log, detected by its checksum and discarded). When the log outgrows both
``checkpoint_bytes`` and half the size of the last snapshot (and on :meth:`close`), the state is
written as a snapshot (index saved atomically by :mod:`vecsearch.io` plus the records), renamed
into place, and the log restarted; reopening loads the latest complete snapshot and replays its
log. (Replaying means re-inserting into the index, e.g. ~1-2k vectors/s for HNSW on 2 cores, so the
log is kept small relative to the data; the half-snapshot rule bounds the rewrite cost of
snapshots to a few times the data written.) One process at a time may open a path
(advisory lock). Without a ``path`` the collection lives in memory only.

Thread safety. A reader-writer lock: any number of ``query``/``get``/``count`` calls run
concurrently; ``add``/``upsert``/``delete`` run alone. A query therefore sees every change whose
call returned before it started and none that is half applied.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import registry
from ..base import SearchResult
from ..factory import index_factory
from ..filtering.predicates import parse_where
from ..indexes.multivector import MultiVectorIndex
from ..validation import as_vectors, check_dim, check_k, check_metric
from .storage import (
    CollectionDir,
    RWLock,
    check_column,
    check_embeddings,
    check_ids,
    check_include,
    check_metadatas,
    decode_json_array,
    encode_json_array,
    filterable,
)
from .wal import WriteAheadLog, encode_record

INCLUDE_FIELDS = ("documents", "metadatas", "distances", "embeddings")
_MULTI = "muvera"
# Compact an index that keeps tombstones (HNSW) once this many and this fraction of slots are dead.
COMPACT_MIN_DELETED = 1024
COMPACT_FRACTION = 0.25


class Collection:
    """A persistent, thread-safe collection of (string id, embedding, document, metadata) records.

    ``path``: directory for persistence (created if missing; reopened if it holds a collection),
    ``None`` for memory only. ``dim``: vector dimension (inferred from the first ``add`` when None).
    ``metric``: ``"cosine"`` (default for a new collection), ``"l2"`` or ``"ip"``; distances follow
    :mod:`vecsearch.base` (cosine ``1 - cos``, squared L2, negative inner product). ``index``:
    ``"hnsw"`` (default), ``"flat"``, ``"muvera"`` (multi-vector documents: each embedding is a
    ``(tokens, dim)`` matrix) or a factory string; ``index_params`` go to the index constructor.
    When reopening, ``dim``/``metric``/``index``/``index_params`` may be omitted; given values must
    match the stored ones. ``checkpoint_bytes``: minimum log size that triggers a snapshot. See the module
    docstring for the durability and thread-safety contract.
    """

    def __init__(self, path: str | None = None, *, dim: int | None = None, metric: str | None = None,
                 index: str | None = None, checkpoint_bytes: int = 16 << 20, **index_params: Any):
        if isinstance(checkpoint_bytes, bool) or not isinstance(checkpoint_bytes, int) or checkpoint_bytes < 1:
            raise ValueError(f"checkpoint_bytes: expected a positive integer, got {checkpoint_bytes!r}")
        self._lock = RWLock()
        self._checkpoint_mutex = threading.Lock()
        self._checkpoint_bytes = checkpoint_bytes
        self._snapshot_bytes = 0  # size of the last snapshot written or loaded
        self._index: Any = None
        self._sid_to_iid: dict[str, int] = {}
        self._records: dict[int, tuple[str, str | None, dict[str, Any] | None]] = {}
        self._next_iid = 0
        self._dir: CollectionDir | None = None
        self._wal: WriteAheadLog | None = None
        self._gen = 0
        self._closed = False
        self._broken = False
        requested = self._check_config(dim, metric, index, index_params)
        if path is None:
            self._configure(requested, defaults=True)
            return
        self._dir = CollectionDir(path)
        self._dir.lock()
        try:
            self._open(self._dir, requested)
        except BaseException:
            self._dir.unlock()
            raise

    # ---- configuration ---------------------------------------------------------------------------
    @staticmethod
    def _check_config(dim: Any, metric: Any, index: Any, params: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if dim is not None:
            out["dim"] = check_dim(dim)
        if metric is not None:
            out["metric"] = check_metric(metric)
        if index is not None:
            if not isinstance(index, str):
                raise TypeError(f"index: expected 'hnsw', 'flat', 'muvera' or a factory string, got {type(index).__name__}")
            out["index"] = index
        if params:
            try:
                json.dumps(params, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"index_params: expected JSON-serializable values, got {params!r} ({exc})") from None
            out["index_params"] = dict(params)
        return out

    def _configure(self, config: dict[str, Any], defaults: bool) -> None:
        self.dim: int | None = config.get("dim")
        self.index_spec: str = config.get("index", "hnsw")
        self.multivector = self.index_spec == _MULTI
        # Multi-vector documents score by Chamfer similarity (sums of inner products): metric ip.
        self.metric: str = config.get("metric", "ip" if self.multivector else "cosine")
        if self.multivector and self.metric != "ip":
            raise ValueError(f"metric: index='muvera' scores by Chamfer similarity of inner products; expected 'ip', got {self.metric!r}")
        self.index_params: dict[str, Any] = dict(config.get("index_params", {}))
        if self.dim is not None and defaults:
            self._make_index(self.dim)  # validates index name and params now, not at the first add

    def _make_index(self, dim: int) -> Any:
        """A registered index type by name (``"muvera"`` names the multi-vector one) or a factory string."""
        spec, params = self.index_spec, self.index_params
        if spec == _MULTI:
            return MultiVectorIndex(dim, **params)
        try:
            record = registry.get(spec)
        except ValueError:
            return index_factory(dim, spec, self.metric, **params)
        return record.cls(dim, self.metric, **params)

    def _ensure_index(self, dim: int) -> None:
        if self._index is None:
            self._index = self._make_index(dim)
            self.dim = dim

    # ---- public API ------------------------------------------------------------------------------
    def count(self) -> int:
        """Number of records."""
        with self._lock.read():
            return len(self._records)

    def __len__(self) -> int:
        return self.count()

    def add(self, ids: Any, embeddings: Any, documents: Sequence[str | None] | None = None,
            metadatas: Sequence[dict[str, Any] | None] | None = None) -> None:
        """Add new records; an id already in the collection raises ``ValueError`` (use :meth:`upsert`).

        ``ids``: list of n distinct str; ``embeddings``: ``(n, dim)`` (``"muvera"``: n matrices
        ``(t_i, dim)``); ``documents``: n str or None; ``metadatas``: n dicts or None.
        """
        self._write("add", ids, embeddings, documents, metadatas)

    def upsert(self, ids: Any, embeddings: Any, documents: Sequence[str | None] | None = None,
               metadatas: Sequence[dict[str, Any] | None] | None = None) -> None:
        """Insert records, replacing existing ones with the same id entirely (embedding, document, metadata)."""
        self._write("upsert", ids, embeddings, documents, metadatas)

    def delete(self, ids: Any = None, where: Any = None) -> int:
        """Delete the records with these ids and/or matching ``where`` (both: the intersection).

        Unknown ids are ignored. Returns how many records were deleted. Calling with neither
        raises ``ValueError`` (no accidental wipe).
        """
        if ids is None and where is None:
            raise ValueError("delete: expected ids=... and/or where=..., got neither")
        self._check_open()
        sids = None if ids is None else check_ids(ids, unique=False)
        with self._lock.write():
            iids = self._select(sids, where)
            if not iids:
                return 0
            self._log({"op": "delete"}, {"iids": np.asarray(iids, np.int64)})
            self._applying(self._apply_delete, np.asarray(iids, np.int64))
        self._maybe_checkpoint()
        return len(iids)

    def get(self, ids: Any = None, where: Any = None, *, limit: int | None = None, offset: int = 0,
            include: Sequence[str] = ("documents", "metadatas")) -> dict[str, Any]:
        """Records by ``ids`` (in the given order; unknown ids skipped) and/or ``where``, or all.

        Returns ``{"ids": [...], "documents": [...], "metadatas": [...], "embeddings": ...,
        "included": [...]}``; fields not in ``include`` are ``None``.
        """
        include = check_include(include, allowed=("documents", "metadatas", "embeddings"))
        sids = None if ids is None else check_ids(ids, unique=False)
        for name, value in (("offset", offset), ("limit", limit)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
        with self._lock.read():
            iids = self._select(sids, where)
            iids = iids[offset:] if limit is None else iids[offset : offset + limit]
            return self._rows(iids, include)

    def query(self, query_embeddings: Any, n_results: int = 10, where: Any = None,
              include: Sequence[str] = ("documents", "metadatas", "distances"), **search_params: Any) -> dict[str, Any]:
        """The ``n_results`` nearest records of each query, best first (fewer if fewer match).

        ``query_embeddings``: ``(nq, dim)`` or ``(dim,)`` (``"muvera"``: a list of ``(t, dim)``
        matrices, or one matrix). Returns a dict of lists with one inner list per query:
        ``ids``, and ``documents``/``metadatas``/``distances``/``embeddings`` as requested by
        ``include`` (others ``None``). ``search_params`` go to the index (e.g. ``ef=128``).
        """
        n_results = check_k(n_results)
        include = check_include(include, allowed=INCLUDE_FIELDS)
        with self._lock.read():
            queries = self._prepare_queries(query_embeddings)
            nq = len(queries) if self.multivector else queries.shape[0]
            if self._index is None or not self._records:
                if where is not None:
                    parse_where(where)  # still reject malformed filters
                return self._empty_query(nq, include)
            if where is None:
                res = self._index.search(queries, n_results, **search_params)
            elif self.multivector:
                res = self._multivector_filtered(queries, n_results, where, search_params)
            else:
                res = self._index.search(queries, n_results, where=where, **search_params)
            out: dict[str, Any] = {"ids": [], "included": list(include)}
            for field in INCLUDE_FIELDS:
                out[field] = [] if field in include else None
            for row_ids, row_dist in zip(res.ids, res.distances):
                keep = row_ids >= 0
                rows = self._rows(row_ids[keep].tolist(), include)
                out["ids"].append(rows["ids"])
                for field in ("documents", "metadatas", "embeddings"):
                    if field in include:
                        out[field].append(rows[field])
                if "distances" in include:
                    out["distances"].append(row_dist[keep].astype(float).tolist())
            return out

    def checkpoint(self) -> None:
        """Write a snapshot now and restart the log (no-op without a path)."""
        self._check_open()
        if self._dir is None:
            return
        with self._checkpoint_mutex, self._lock.read():
            self._write_snapshot()

    def close(self) -> None:
        """Snapshot if the log is not empty, close the log and release the directory lock."""
        if self._closed:
            return
        if self._dir is not None:
            with self._checkpoint_mutex, self._lock.write():
                if self._wal is not None and self._wal.size and not self._broken:
                    self._write_snapshot()
                if self._wal is not None:
                    self._wal.close()
                self._dir.unlock()
        self._closed = True

    def __del__(self) -> None:
        # Dropped without close(): release the file descriptors (the log already holds every
        # change, so nothing is lost; the next open replays it).
        try:
            if not getattr(self, "_closed", True):
                if self._wal is not None:
                    self._wal.close()
                if self._dir is not None:
                    self._dir.unlock()
        except Exception:  # noqa: BLE001, S110 - never raise from a finalizer
            pass

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f"{str(self._dir.path)!r}" if self._dir is not None else "memory"
        return f"Collection({where}, dim={self.dim}, metric={self.metric!r}, index={self.index_spec!r}, count={len(self._records)})"

    @property
    def index(self) -> Any:
        """The underlying vecsearch index (None until the dimension is known). Do not mutate it."""
        return self._index

    # ---- validation ------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("collection: the collection is closed")
        if self._broken:
            raise ValueError("collection: a logged change failed to apply in memory; close() and reopen to replay the log")

    # ---- writes ----------------------------------------------------------------------------------
    def _write(self, op: str, ids: Any, embeddings: Any, documents: Any, metadatas: Any) -> None:
        self._check_open()
        sids = check_ids(ids, unique=True)
        n = len(sids)
        docs = check_column(documents, n, "documents", str)
        metas = check_metadatas(metadatas, n)
        arrays, dim = check_embeddings(embeddings, n, self.dim, self.metric, self.multivector)
        if n == 0:
            return
        with self._lock.write():
            if op == "add":
                present = [s for s in sids if s in self._sid_to_iid]
                if present:
                    raise ValueError(f"ids: {present[:3]} already in the collection (use upsert to replace)")
            self._ensure_index(dim)
            if dim != self.dim:  # another thread's first add fixed a different dimension meanwhile
                raise ValueError(f"embeddings: expected dimension {self.dim}, got {dim}")
            self._check_attributes(metas)
            self._log({"op": op, "ids": sids, "documents": docs, "metadatas": metas}, arrays)
            self._applying(self._apply_insert, op, sids, docs, metas, arrays)
        self._maybe_checkpoint()

    def _check_attributes(self, metas: list[dict[str, Any] | None]) -> None:
        """Type-check the filterable metadata against the index's attribute columns (no state change)."""
        self._index.check_attributes([filterable(m) for m in metas], len(metas), "metadatas")

    def _log(self, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        if self._wal is not None:
            self._wal.append(encode_record(header, arrays))

    def _applying(self, fn: Any, *args: Any) -> None:
        """Apply a change already in the log; if that fails (not a validation error: those come
        before logging) memory and log disagree, so the object refuses further use."""
        try:
            fn(*args)
        except BaseException:
            self._broken = True
            raise

    def _apply_insert(self, op: str, sids: list[str], docs: list[Any], metas: list[Any], arrays: dict[str, np.ndarray]) -> None:
        """Apply a logged add/upsert (live or during replay); the same inputs give the same state."""
        if self._index is None:
            dim = arrays["tokens" if self.multivector else "vectors"].shape[1]
            self._ensure_index(dim)
        if op == "upsert":
            old = [self._sid_to_iid[s] for s in sids if s in self._sid_to_iid]
            if old:
                self._apply_delete(np.asarray(old, np.int64))
        n = len(sids)
        iids = np.arange(self._next_iid, self._next_iid + n, dtype=np.int64)
        attributes = [filterable(m) for m in metas]
        if self.multivector:
            self._index.add(arrays["tokens"], ids=iids, attributes=attributes, offsets=arrays["offsets"])
        else:
            self._index.add(arrays["vectors"], ids=iids, attributes=attributes)
        self._next_iid += n
        for iid, sid, doc, meta in zip(iids.tolist(), sids, docs, metas):
            self._sid_to_iid[sid] = iid
            self._records[iid] = (sid, doc, meta)

    def _apply_delete(self, iids: np.ndarray) -> None:
        index = self._index
        index.remove(iids)
        dead = index.n_slots - index.ntotal
        compact = getattr(index, "compact", None)
        if callable(compact) and dead >= COMPACT_MIN_DELETED and dead >= COMPACT_FRACTION * index.n_slots:
            compact()  # graph indexes keep removed nodes as tombstones; upserts would pile them up
        for iid in iids.tolist():
            record = self._records.pop(int(iid), None)
            if record is not None:
                self._sid_to_iid.pop(record[0], None)

    # ---- reads -----------------------------------------------------------------------------------
    def _select(self, sids: list[str] | None, where: Any) -> list[int]:
        """Internal ids of the records named by ``sids`` (order kept) and/or matching ``where``."""
        if sids is not None:
            iids = [self._sid_to_iid[s] for s in sids if s in self._sid_to_iid]
        else:
            iids = list(self._records)
        if where is None:
            return iids
        matched = self._match(where)
        return [i for i in iids if i in matched]

    def _match(self, where: Any) -> set[int]:
        """Internal ids of the live records matching ``where`` (through :mod:`vecsearch.filtering.predicates`)."""
        if self._index is None:
            parse_where(where)
            return set()
        return set(self._index.match(where).tolist())

    def _multivector_filtered(self, queries: list[Any], k: int, where: Any, params: dict[str, Any]) -> Any:
        """Filtered multi-vector search: post-filter with growing over-fetch (MultiVectorIndex has no
        ``where``); once the fetch covers every document the candidates are all documents and the
        Chamfer re-rank is exact, so rows never come back short of the matches that exist."""
        index = self._index
        allowed_ids = index.match(where)
        nq, n_live = len(queries), index.ntotal
        out_ids = np.full((nq, k), -1, np.int64)
        out_dist = np.full((nq, k), np.inf, np.float32)
        if allowed_ids.size == 0:
            return SearchResult(out_ids, out_dist)
        need = min(k, allowed_ids.size)
        fetch = min(n_live, max(2 * k, math.ceil(k * n_live / allowed_ids.size * 1.5) + 8))
        base_candidates = int(params.get("candidates", 100))
        pending = np.arange(nq)
        while pending.size:
            res = index.search([queries[i] for i in pending], fetch, **{**params, "candidates": max(base_candidates, fetch)})
            keep = np.isin(res.ids, allowed_ids) & (res.ids >= 0)
            for row, qi in enumerate(pending.tolist()):
                cols = np.flatnonzero(keep[row])[:k]
                out_ids[qi, : cols.size] = res.ids[row, cols]
                out_dist[qi, : cols.size] = res.distances[row, cols]
            done = (keep.sum(axis=1) >= need) | (fetch >= n_live)
            pending = pending[~done]
            fetch = min(n_live, fetch * 4)
        return SearchResult(out_ids, out_dist)

    def _rows(self, iids: list[int], include: list[str]) -> dict[str, Any]:
        records = [self._records[i] for i in iids]
        out: dict[str, Any] = {"ids": [r[0] for r in records], "included": list(include)}
        out["documents"] = [r[1] for r in records] if "documents" in include else None
        out["metadatas"] = [r[2] for r in records] if "metadatas" in include else None
        out["embeddings"] = self._embeddings_of(iids) if "embeddings" in include else None
        return out

    def _embeddings_of(self, iids: list[int]) -> list[Any]:
        """Stored vectors (normalized for cosine) of ``iids``: float32 ``(dim,)`` or ``(t, dim)`` each."""
        index = self._index
        if not iids:
            return []
        if self.multivector:
            return [index.document_tokens(i) for i in iids]
        try:
            return list(index.reconstruct(np.asarray(iids, np.int64)))
        except ValueError:
            raise ValueError(f"include: index {self.index_spec!r} does not keep full vectors; 'embeddings' is unavailable") from None

    def _prepare_queries(self, queries: Any) -> Any:
        if self.multivector:
            if isinstance(queries, np.ndarray) and queries.ndim == 2:
                return [queries]
            if not isinstance(queries, (list, tuple)) and not (isinstance(queries, np.ndarray) and queries.ndim == 3):
                raise TypeError(f"query_embeddings: expected a list of (tokens, dim) matrices, got {type(queries).__name__}")
            return list(queries)
        arr = np.asarray(queries)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2:
            raise ValueError(f"query_embeddings: expected shape (nq, dim) or (dim,), got {arr.ndim}-D shape {arr.shape}")
        if self.dim is not None:
            arr = as_vectors(arr, self.dim, "query_embeddings")
        return arr

    @staticmethod
    def _empty_query(nq: int, include: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"ids": [[] for _ in range(nq)], "included": list(include)}
        for field in INCLUDE_FIELDS:
            out[field] = [[] for _ in range(nq)] if field in include else None
        return out

    # ---- persistence -----------------------------------------------------------------------------
    def _open(self, directory: CollectionDir, requested: dict[str, Any]) -> None:
        stored = directory.read_config()
        if stored is None:
            config = {"index": "hnsw", "index_params": {}, **requested}
            self._configure(config, defaults=True)
            directory.write_config({"dim": self.dim, "metric": self.metric, "index": self.index_spec,
                                    "index_params": self.index_params})
        else:
            for key, value in requested.items():
                if stored.get(key) is not None and stored.get(key) != value:
                    raise ValueError(f"{key}: the collection at this path has {key}={stored[key]!r}, got {value!r}")
            self._configure({**{k: v for k, v in stored.items() if v is not None}, **requested}, defaults=False)
        gen = directory.latest_generation()
        if gen > 0:
            index, header, arrays = directory.read_snapshot(gen)
            self._restore(index, header, arrays)
            self._snapshot_bytes = directory.snapshot_bytes(gen)
        self._gen = gen
        directory.remove_stale(gen)
        wal = WriteAheadLog(directory.wal_path(gen))
        for header, arrays in wal.replay():
            if header["op"] == "delete":
                self._apply_delete(arrays["iids"])
            else:
                self._apply_insert(header["op"], header["ids"], header["documents"], header["metadatas"], arrays)
        wal.open()
        self._wal = wal

    def _restore(self, index: Any, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self._index = index
        if index is not None:
            self.dim = index.dim
        payload = decode_json_array(arrays["payload"])
        for iid, sid, doc, meta in zip(arrays["iids"].tolist(), payload["ids"], payload["documents"], payload["metadatas"]):
            self._sid_to_iid[sid] = iid
            self._records[iid] = (sid, doc, meta)
        self._next_iid = int(header["next_iid"])

    def _write_snapshot(self) -> None:
        """Snapshot the current state as generation ``gen + 1`` and switch to its log (writes excluded)."""
        directory = self._dir
        if directory is None:
            return
        gen = self._gen + 1
        iids = np.fromiter(self._records, np.int64, len(self._records))
        records = list(self._records.values())
        payload = {"ids": [r[0] for r in records], "documents": [r[1] for r in records],
                   "metadatas": [r[2] for r in records]}
        header = {"next_iid": self._next_iid, "generation": gen}
        directory.write_snapshot(gen, self._index, header, {"iids": iids, "payload": encode_json_array(payload)})
        wal = WriteAheadLog(directory.wal_path(gen))
        try:
            wal.open()
        except BaseException:
            # Without its log the new snapshot must not win on reopen (later writes go to the old log).
            directory.discard_snapshot(gen)
            raise
        old, self._wal, self._gen = self._wal, wal, gen
        self._snapshot_bytes = directory.snapshot_bytes(gen)
        if old is not None:
            old.close()
        directory.remove_stale(gen)

    def _checkpoint_threshold(self) -> int:
        return max(self._checkpoint_bytes, self._snapshot_bytes // 2)

    def _maybe_checkpoint(self) -> None:
        if self._wal is None or self._wal.size < self._checkpoint_threshold():
            return
        if not self._checkpoint_mutex.acquire(blocking=False):
            return  # another thread is writing a snapshot
        try:
            with self._lock.read():
                if self._wal.size >= self._checkpoint_threshold():
                    self._write_snapshot()
        finally:
            self._checkpoint_mutex.release()
