"""Collection: a Chroma-like document store (string ids, documents, metadata) over a vecsearch index.

::

    col = vs.Collection("my_docs/", dim=384, metric="cosine", index="hnsw", M=16)
    col.add(ids=["a", "b"], embeddings=vectors, documents=["...", "..."],
            metadatas=[{"lang": "en", "year": 2021}, {"lang": "de", "year": 2019}])
    res = col.query(query_vectors, n_results=5, where={"year": {"$gte": 2020}})
    res["ids"][0], res["distances"][0], res["documents"][0]      # one list per query
    res = col.query(query_vectors, search_text=["hot dog"], n_results=5)   # hybrid: dense + BM25
    res = col.query(search_text=["hot dog"], where_document={"$contains": "sausage"})   # keyword only

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

Keyword and hybrid search. Every document is also indexed for BM25 (:mod:`vecsearch.store.keyword`,
built-in :class:`~vecsearch.store.tokenizer.Tokenizer`, k1=1.2, b=0.75; ``keyword={"k1": ..., "b": ...,
"tokenizer": Tokenizer(stopwords="english")}`` sets them for a new collection), kept in step by ``add``,
``upsert``, ``update`` and ``delete`` and saved in each snapshot (the log already carries the
documents), so a crash loses no more of it than of the vectors. ``query`` runs a dense leg
(``query_embeddings``), a keyword leg (``search_text``) or both, fused by reciprocal rank fusion or
relative score fusion (:mod:`vecsearch.store.query`). ``where_document`` is Chroma's filter on the
document text (:mod:`vecsearch.store.document_filter`) on ``query``, ``get`` and ``delete``: a
Python scan of every document per call (65-125 ms for the 116k WordNet documents on a busy 2-core
machine), so keep it for selective needs that BM25 terms cannot express.

Existing ids. ``add`` of an id already in the collection keeps the existing record and skips the
new one with a warning (as Chroma keeps the first); ``upsert`` replaces the whole record;
``update`` changes the given fields of existing records (metadata merged key by key, as Chroma).

Durability contract (with a ``path``). Every mutating call (``add``, ``upsert``, ``update``, ``delete``) is
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
concurrently; ``add``/``upsert``/``update``/``delete`` run alone. A query therefore sees every change whose
call returned before it started and none that is half applied.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import registry
from ..factory import index_factory
from ..filtering.predicates import parse_where
from ..indexes.multivector import MultiVectorIndex
from .document_filter import parse_where_document
from .fusion import RANK_CONSTANT
from .query import dense_search, fuse, plan_query, prepare_queries, shape_results
from .records import RecordTable, keyword_config
from .storage import (
    CollectionDir,
    RWLock,
    check_column,
    check_config,
    check_embeddings,
    check_ids,
    check_include,
    check_metadatas,
    filterable,
    merge_metadata,
    select_rows,
    warn_skipped,
)
from .wal import WriteAheadLog, encode_record

INCLUDE_FIELDS = ("documents", "metadatas", "distances", "embeddings", "scores")
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
    ``keyword``: BM25 settings ``{"k1", "b", "tokenizer"}`` (:func:`~vecsearch.store.records.keyword_config`).
    When reopening, ``dim``/``metric``/``index``/``index_params``/``keyword`` may be omitted; given values must
    match the stored ones. ``checkpoint_bytes``: minimum log size that triggers a snapshot. See the module
    docstring for the durability and thread-safety contract.
    """

    def __init__(self, path: str | None = None, *, dim: int | None = None, metric: str | None = None,
                 index: str | None = None, checkpoint_bytes: int = 16 << 20, keyword: dict[str, Any] | None = None,
                 **index_params: Any):
        if isinstance(checkpoint_bytes, bool) or not isinstance(checkpoint_bytes, int) or checkpoint_bytes < 1:
            raise ValueError(f"checkpoint_bytes: expected a positive integer, got {checkpoint_bytes!r}")
        self._lock = RWLock()
        self._checkpoint_mutex = threading.Lock()
        self._checkpoint_bytes = checkpoint_bytes
        self._snapshot_bytes = 0  # size of the last snapshot written or loaded
        self._index: Any = None
        self._records = RecordTable()  # ids, documents, metadata and their BM25 index
        self._dir: CollectionDir | None = None
        self._wal: WriteAheadLog | None = None
        self._gen = 0
        self._closed = False
        self._broken = False
        requested = check_config(dim, metric, index, index_params)
        if keyword is not None:
            requested["keyword"] = keyword_config(keyword)  # BM25 settings, saved in the config
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
    def _configure(self, config: dict[str, Any], defaults: bool) -> None:
        self.dim: int | None = config.get("dim")
        self.index_spec: str = config.get("index", "hnsw")
        self.multivector = self.index_spec == _MULTI
        # Multi-vector documents score by Chamfer similarity (sums of inner products): metric ip.
        self.metric: str = config.get("metric", "ip" if self.multivector else "cosine")
        if self.multivector and self.metric != "ip":
            raise ValueError(f"metric: index='muvera' scores by Chamfer similarity of inner products; expected 'ip', got {self.metric!r}")
        self.index_params: dict[str, Any] = dict(config.get("index_params", {}))
        self.keyword: dict[str, Any] = config.get("keyword") or keyword_config(None)
        self._records = RecordTable(self.keyword)
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
        """Add new records. An id already in the collection keeps its record: that entry of the call
        is skipped with a ``UserWarning`` (Chroma keeps the first too; use :meth:`upsert` to replace).

        ``ids``: list of n distinct str; ``embeddings``: ``(n, dim)`` (``"muvera"``: n matrices
        ``(t_i, dim)``); ``documents``: n str or None; ``metadatas``: n dicts or None.
        """
        self._write("add", ids, embeddings, documents, metadatas)

    def upsert(self, ids: Any, embeddings: Any, documents: Sequence[str | None] | None = None,
               metadatas: Sequence[dict[str, Any] | None] | None = None) -> None:
        """Insert records, replacing existing ones with the same id entirely (embedding, document, metadata)."""
        self._write("upsert", ids, embeddings, documents, metadatas)

    def update(self, ids: Any, embeddings: Any = None, documents: Sequence[str | None] | None = None,
               metadatas: Sequence[dict[str, Any] | None] | None = None) -> None:
        """Change the given fields of existing records (Chroma's ``update``); ids not in the
        collection are skipped with a ``UserWarning``.

        ``embeddings`` ``(n, dim)`` and ``documents`` (n str) replace; ``metadatas`` (n dicts) are
        merged into the stored ones: a key set to None is removed, other keys stay. A field not
        given, or a None entry, keeps its stored value (the embedding is read back from the index,
        so an index that keeps no vectors needs ``embeddings``).
        """
        self._check_open()
        sids = check_ids(ids, unique=True)
        n = len(sids)
        docs = None if documents is None else check_column(documents, n, "documents", str)
        metas = None if metadatas is None else check_metadatas(metadatas, n)
        given = None
        if embeddings is not None:
            given, _ = check_embeddings(embeddings, n, self.dim, self.metric, self.multivector)
        if n == 0:
            return
        with self._lock.write():
            rows = [i for i, s in enumerate(sids) if s in self._records]
            if len(rows) < n:
                warn_skipped("update", [s for s in sids if s not in self._records], "ids not in the collection")
            if not rows:
                return
            iids = [self._records.iid(sids[i]) for i in rows]
            old = [self._records.record(i) for i in iids]
            new_docs = [o[1] if docs is None or docs[i] is None else docs[i] for i, o in zip(rows, old)]
            new_metas = [o[2] if metas is None else merge_metadata(o[2], metas[i]) for i, o in zip(rows, old)]
            arrays = self._merged_embeddings(iids, rows, given)
            self._check_attributes(new_metas)
            new_sids = [sids[i] for i in rows]
            self._log({"op": "upsert", "ids": new_sids, "documents": new_docs, "metadatas": new_metas}, arrays)
            self._applying(self._apply_insert, "upsert", new_sids, new_docs, new_metas, arrays)
        self._maybe_checkpoint()

    def delete(self, ids: Any = None, where: Any = None, *, where_document: Any = None) -> int:
        """Delete the records with these ids and/or matching ``where`` and ``where_document`` (all
        given: the intersection).

        Unknown ids are ignored. Returns how many records were deleted. Calling with none of them
        raises ``ValueError`` (no accidental wipe).
        """
        if ids is None and where is None and where_document is None:
            raise ValueError("delete: expected ids=..., where=... and/or where_document=..., got none")
        self._check_open()
        sids = None if ids is None else check_ids(ids, unique=False)
        doc_filter = None if where_document is None else parse_where_document(where_document)
        with self._lock.write():
            iids = self._select(sids, where, doc_filter)
            if not iids:
                return 0
            self._log({"op": "delete"}, {"iids": np.asarray(iids, np.int64)})
            self._applying(self._apply_delete, np.asarray(iids, np.int64))
        self._maybe_checkpoint()
        return len(iids)

    def get(self, ids: Any = None, where: Any = None, *, where_document: Any = None, limit: int | None = None,
            offset: int = 0, include: Sequence[str] = ("documents", "metadatas")) -> dict[str, Any]:
        """Records by ``ids`` (in the given order; unknown ids skipped) and/or ``where`` and
        ``where_document`` (Chroma's document filter: ``$contains``, ``$not_contains``, ``$regex``,
        ``$not_regex``, ``$and``, ``$or``), or all.

        Returns ``{"ids": [...], "documents": [...], "metadatas": [...], "embeddings": ...,
        "included": [...]}``; fields not in ``include`` are ``None``.
        """
        include = check_include(include, allowed=("documents", "metadatas", "embeddings"))
        sids = None if ids is None else check_ids(ids, unique=False)
        doc_filter = None if where_document is None else parse_where_document(where_document)
        for name, value in (("offset", offset), ("limit", limit)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
        with self._lock.read():
            iids = self._select(sids, where, doc_filter)
            iids = iids[offset:] if limit is None else iids[offset : offset + limit]
            return self._rows(iids, include)

    def query(self, query_embeddings: Any = None, n_results: int = 10, where: Any = None,
              include: Sequence[str] = ("documents", "metadatas", "distances"), *, where_document: Any = None,
              search_text: Any = None, fusion: str = "rrf", alpha: float | None = None,
              rank_constant: float = RANK_CONSTANT, fetch_k: int | None = None, **search_params: Any) -> dict[str, Any]:
        """The ``n_results`` best records of each query, best first (fewer if fewer match).

        Legs: ``query_embeddings`` ``(nq, dim)`` or ``(dim,)`` (``"muvera"``: a list of ``(t, dim)``
        matrices, or one matrix) runs the dense leg; ``search_text`` (a str or nq str) runs the BM25
        keyword leg over the documents; with both, each leg fetches ``fetch_k`` hits (default
        ``max(n_results, 50)``) and they are fused: ``fusion="rrf"`` (default) ranks by
        ``sum w / (rank_constant + rank)`` with ``w = 1`` per leg, or ``(alpha, 1 - alpha)`` when
        ``alpha`` is given; ``fusion="relative_score"`` (Weaviate's) by ``alpha * dense + (1 - alpha)
        * keyword`` of min-max normalized scores (``alpha`` default 0.5; 1 = dense only). ``where``
        (metadata) and ``where_document`` (document text) restrict both legs.

        Returns a dict of lists with one inner list per query: ``ids``, and, as requested by
        ``include``: ``documents``, ``metadatas``, ``embeddings``, ``distances`` (the dense distance;
        None for a hit the dense leg did not return, e.g. every hit of a keyword-only query) and
        ``scores``: per hit ``{"fused": float or None (single leg), "found_by": ["vector",
        "keyword"], "vector_rank": 1-based or None, "vector_distance", "keyword_rank",
        "keyword_score": BM25 or None}``. ``search_params`` go to the index (e.g. ``ef=128``).
        """
        include = check_include(include, allowed=INCLUDE_FIELDS)
        doc_filter = None if where_document is None else parse_where_document(where_document)
        with self._lock.read():
            queries = None
            nq = None
            if query_embeddings is not None:
                queries = prepare_queries(query_embeddings, self.dim, self.multivector)
                nq = len(queries) if self.multivector else queries.shape[0]
            plan = plan_query(nq, search_text, n_results, fusion, alpha, rank_constant, fetch_k)
            if where is not None and self._index is None:
                parse_where(where)  # still reject malformed filters
            if self._index is None or not len(self._records):
                return shape_results([], plan.nq, include, self._rows)
            allowed = None if doc_filter is None else self._records.matching_documents(doc_filter)
            vec = [None] * plan.nq
            if plan.dense:
                res = dense_search(self._index, queries, plan.leg_depth(), where, allowed, search_params, self.multivector)
                vec = [(ids[ids >= 0], dist[ids >= 0]) for ids, dist in zip(res.ids, res.distances)]
            kw = [None] * plan.nq
            if plan.texts is not None:
                kw_allowed = allowed
                if where is not None:
                    matched = self._index.match(where)
                    kw_allowed = matched if allowed is None else np.intersect1d(allowed, matched, assume_unique=True)
                kw = [self._records.keyword_search(text, plan.leg_depth(), kw_allowed) for text in plan.texts]
            hits = [fuse(plan, v, t) for v, t in zip(vec, kw)]
            return shape_results(hits, plan.nq, include, self._rows)

    def calibrate(self, target_recall: float = 0.95, k: int = 10, query_embeddings: Any = None, *,
                  n_queries: int = 1000, seed: int = 0) -> Any:
        """Make the fastest search setting measured to reach ``target_recall`` (recall@``k`` against
        exact search, :meth:`vecsearch.Index.calibrate`) the default of :meth:`query` (explicit
        ``search_params`` still win) and save it: a snapshot is written before it returns. Writes wait
        while it runs. ``query_embeddings``: as :meth:`query` takes them, of the kind it will serve
        (default: ``n_queries`` stored records). Returns the :class:`~vecsearch.calibration.CalibrationReport`."""
        self._check_open()
        with self._lock.read():
            if self._index is None or not len(self._records):
                raise ValueError("collection: calibration needs a non-empty collection")
            queries = None if query_embeddings is None else prepare_queries(query_embeddings, self.dim, self.multivector)
            report = self._index.calibrate(target_recall, k, queries, n_queries=n_queries, seed=seed)
        self.checkpoint()
        return report

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

    def __enter__(self) -> Collection:  # noqa: PYI034 - typing.Self needs Python 3.11
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
                keep = [i for i, s in enumerate(sids) if s not in self._records]
                if len(keep) < n:
                    warn_skipped("add", [s for s in sids if s in self._records],
                                 "ids already in the collection keep their records (use upsert to replace)")
                    if not keep:
                        return
                    sids, docs, metas = [sids[i] for i in keep], [docs[i] for i in keep], [metas[i] for i in keep]
                    arrays = select_rows(arrays, keep, self.multivector)
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
            old = self._records.iids(sids)
            if old:
                self._apply_delete(np.asarray(old, np.int64))
        iids = np.arange(self._records.next_iid, self._records.next_iid + len(sids), dtype=np.int64)
        attributes = [filterable(m) for m in metas]
        if self.multivector:
            self._index.add(arrays["tokens"], ids=iids, attributes=attributes, offsets=arrays["offsets"])
        else:
            self._index.add(arrays["vectors"], ids=iids, attributes=attributes)
        self._records.insert(iids, sids, docs, metas)

    def _apply_delete(self, iids: np.ndarray) -> None:
        index = self._index
        index.remove(iids)
        self._records.remove(iids)
        dead = index.n_slots - index.ntotal
        compact = getattr(index, "compact", None)
        if callable(compact) and dead >= COMPACT_MIN_DELETED and dead >= COMPACT_FRACTION * index.n_slots:
            compact()  # graph indexes keep removed nodes as tombstones; upserts would pile them up

    # ---- reads -----------------------------------------------------------------------------------
    def _select(self, sids: list[str] | None, where: Any, doc_filter: Any = None) -> list[int]:
        """Internal ids of the records named by ``sids`` (order kept) and/or matching ``where`` and
        the parsed ``where_document`` filter."""
        iids = self._records.iids(sids)
        if where is not None:
            matched = self._match(where)
            iids = [i for i in iids if i in matched]
        if doc_filter is not None:
            iids = self._records.matching_documents(doc_filter, iids).tolist()
        return iids

    def _merged_embeddings(self, iids: list[int], rows: list[int], given: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        """Embedding arrays for an update of records ``iids``: rows ``rows`` of the validated
        ``given`` arrays, or the stored ones (read back unchanged) when none were given."""
        if given is not None:
            return select_rows(given, rows, self.multivector)
        try:
            stored = self._embeddings_of(iids)
        except ValueError:
            raise ValueError(f"embeddings: index {self.index_spec!r} does not keep full vectors; pass embeddings to update") from None
        if not self.multivector:
            return {"vectors": np.stack(stored).astype(np.float32, copy=False)}
        offsets = np.zeros(len(stored) + 1, np.int64)
        np.cumsum([m.shape[0] for m in stored], out=offsets[1:])
        return {"tokens": np.concatenate(stored).astype(np.float32, copy=False), "offsets": offsets}

    def _match(self, where: Any) -> set[int]:
        """Internal ids of the live records matching ``where`` (through :mod:`vecsearch.filtering.predicates`)."""
        if self._index is None:
            parse_where(where)
            return set()
        return set(self._index.match(where).tolist())

    def _rows(self, iids: list[int], include: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = self._records.rows(iids, include)
        out["embeddings"] = self._embeddings_of(iids) if "embeddings" in include else None
        out["included"] = list(include)
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

    # ---- persistence -----------------------------------------------------------------------------
    def _open(self, directory: CollectionDir, requested: dict[str, Any]) -> None:
        stored = directory.read_config()
        if stored is None:
            config = {"index": "hnsw", "index_params": {}, **requested}
            self._configure(config, defaults=True)
            directory.write_config({"dim": self.dim, "metric": self.metric, "index": self.index_spec,
                                    "index_params": self.index_params, "keyword": self.keyword})
        else:
            for key, value in requested.items():
                if stored.get(key) is not None and stored.get(key) != value:
                    raise ValueError(f"{key}: the collection at this path has {key}={stored[key]!r}, got {value!r}")
            self._configure({**{k: v for k, v in stored.items() if v is not None}, **requested}, defaults=False)
        gen = directory.latest_generation()
        if gen > 0:
            index, header, arrays, keyword = directory.read_snapshot(gen)
            self._restore(index, header, arrays, keyword)
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

    def _restore(self, index: Any, header: dict[str, Any], arrays: dict[str, np.ndarray], keyword: Any) -> None:
        self._index = index
        if index is not None:
            self.dim = index.dim
        self._records = RecordTable.from_state(header, arrays, keyword, self.keyword)

    def _write_snapshot(self) -> None:
        """Snapshot the current state as generation ``gen + 1`` and switch to its log (writes excluded)."""
        directory = self._dir
        if directory is None:
            return
        gen = self._gen + 1
        header, arrays, keyword = self._records.get_state()
        directory.write_snapshot(gen, self._index, {**header, "generation": gen}, arrays, keyword)
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

