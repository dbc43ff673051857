"""The text side of a :class:`~vecsearch.store.collection.Collection`: ids, documents, metadata, BM25 index.

A :class:`RecordTable` maps the records' string ids to the internal int64 ids the vector index
uses (never reused: an upsert gives the record a new one), keeps each record's document and
metadata, and indexes every document for keyword search (:class:`~vecsearch.store.keyword.KeywordIndex`,
keyed by the same internal ids). Inserts and removals change all three together, so a keyword
hit is always a live record with that document.

Thread safety: none of its own; the Collection's reader-writer lock runs writes alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..io import IndexFileError
from .document_filter import DocumentFilter
from .keyword import KeywordIndex
from .storage import decode_records, encode_records
from .tokenizer import Tokenizer

Record = tuple[str, "str | None", "dict[str, Any] | None"]  # (string id, document, metadata)


def keyword_config(keyword: Any) -> dict[str, Any]:
    """The collection's BM25 settings, validated and JSON-able: ``{"k1", "b", "tokenizer": config}``.

    ``keyword``: None (defaults: k1 1.2, b 0.75, ``Tokenizer()``) or a dict with any of ``k1``,
    ``b`` and ``tokenizer`` (a built-in :class:`Tokenizer` or its ``config()`` dict; a custom
    callable cannot be saved with the collection, so it is refused here).
    """
    if keyword is None:
        keyword = {}
    if not isinstance(keyword, dict):
        raise TypeError(f"keyword: expected a dict with k1, b and/or tokenizer, got {type(keyword).__name__}")
    extra = set(keyword) - {"k1", "b", "tokenizer"}
    if extra:
        raise ValueError(f"keyword: unknown settings {sorted(extra)} (expected k1, b, tokenizer)")
    tok = keyword.get("tokenizer")
    if tok is None:
        tok = Tokenizer()
    elif isinstance(tok, dict):
        tok = Tokenizer.from_config(tok, name="keyword['tokenizer']")
    elif not isinstance(tok, Tokenizer):
        raise TypeError(f"keyword['tokenizer']: expected a Tokenizer or its config() dict, got {type(tok).__name__}")
    index = KeywordIndex(k1=keyword.get("k1", 1.2), b=keyword.get("b", 0.75), tokenizer=tok)  # validates k1, b
    return {"k1": index.k1, "b": index.b, "tokenizer": tok.config()}


def _keyword_index(config: dict[str, Any] | None) -> KeywordIndex:
    config = keyword_config(None) if config is None else config
    return KeywordIndex(k1=config["k1"], b=config["b"], tokenizer=Tokenizer.from_config(config["tokenizer"]))


class RecordTable:
    """String id <-> internal id, documents and metadata, and the BM25 index of the documents
    (``keyword``: its settings as :func:`keyword_config` returns them; None for the defaults)."""

    def __init__(self, keyword: dict[str, Any] | None = None) -> None:
        self._iid_of: dict[str, int] = {}
        self._records: dict[int, Record] = {}  # insertion order = internal id order
        self._keyword = _keyword_index(keyword)
        self.next_iid = 0  # the next internal id to hand out

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, sid: object) -> bool:
        return sid in self._iid_of

    # ---- lookups ---------------------------------------------------------------------------------
    def iid(self, sid: str) -> int:
        """Internal id of a live record (``KeyError`` if absent)."""
        return self._iid_of[sid]

    def iids(self, sids: Sequence[str] | None = None) -> list[int]:
        """Internal ids of ``sids`` in the given order, unknown ones skipped; all live ones when None."""
        if sids is None:
            return list(self._records)
        return [self._iid_of[s] for s in sids if s in self._iid_of]

    def record(self, iid: int) -> Record:
        return self._records[iid]

    def documents(self, iids: Sequence[int]) -> list[str | None]:
        return [self._records[i][1] for i in iids]

    def rows(self, iids: Sequence[int], include: Sequence[str]) -> dict[str, Any]:
        """``{"ids", "documents", "metadatas"}`` of ``iids`` (a field not in ``include`` is None)."""
        records = [self._records[i] for i in iids]
        return {"ids": [r[0] for r in records],
                "documents": [r[1] for r in records] if "documents" in include else None,
                "metadatas": [r[2] for r in records] if "metadatas" in include else None}

    def matching_documents(self, doc_filter: DocumentFilter, iids: Sequence[int] | None = None) -> np.ndarray:
        """The ``iids`` (all live records when None; int64, order kept) whose document passes
        ``doc_filter`` (a ``where_document`` filter): one substring or regex scan per document."""
        chosen = list(self._records) if iids is None else list(iids)
        return doc_filter.select(np.asarray(chosen, np.int64), self.documents(chosen))

    def keyword_search(self, text: str, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """BM25 top ``k`` for ``text`` among ``allowed`` internal ids (all when None): ``(iids int64
        (r,), scores float32 (r,))``, best first, only documents containing a query term."""
        return self._keyword.search(text, k, allowed=allowed)

    # ---- writes ----------------------------------------------------------------------------------
    def insert(self, iids: np.ndarray, sids: Sequence[str], docs: Sequence[str | None],
               metas: Sequence[dict[str, Any] | None]) -> None:
        """Register new records at internal ids ``iids`` (int64 (n,), all >= ``next_iid``)."""
        with_text = [i for i, doc in enumerate(docs) if doc is not None]
        self._keyword.add(iids[with_text], [docs[i] for i in with_text])  # validates before changing
        for iid, sid, doc, meta in zip(iids.tolist(), sids, docs, metas):
            self._iid_of[sid] = iid
            self._records[iid] = (sid, doc, meta)
        if iids.shape[0]:
            self.next_iid = max(self.next_iid, int(iids.max()) + 1)

    def remove(self, iids: np.ndarray) -> None:
        """Drop the records at internal ids ``iids`` (int64; unknown ones ignored)."""
        self._keyword.remove(iids)
        for iid in iids.tolist():
            record = self._records.pop(int(iid), None)
            if record is not None:
                self._iid_of.pop(record[0], None)

    # ---- state -----------------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray], tuple[dict[str, Any], dict[str, np.ndarray]]]:
        """``(records header, records arrays, keyword state)`` for a snapshot; never mutates."""
        return {"next_iid": self.next_iid}, encode_records(self._records), self._keyword.get_state()

    @classmethod
    def from_state(cls, header: dict[str, Any], arrays: dict[str, np.ndarray], keyword: Any,
                   config: dict[str, Any] | None = None) -> RecordTable:
        """Rebuild from :meth:`get_state` output with the BM25 settings ``config`` (as ``__init__``).
        ``keyword`` None (a snapshot from before the keyword index) re-indexes the documents; a
        keyword state that does not hold exactly the records' documents, or was made with other
        settings, raises :class:`~vecsearch.io.IndexFileError`."""
        table = cls(config)
        for iid, sid, doc, meta in decode_records(arrays):
            table._iid_of[sid] = iid
            table._records[iid] = (sid, doc, meta)
        table.next_iid = int(header["next_iid"])
        with_text = np.asarray([i for i, r in table._records.items() if r[1] is not None], np.int64)
        if keyword is None:
            table._keyword.add(with_text, table.documents(with_text.tolist()))
            return table
        try:
            table._keyword = KeywordIndex.from_state(*keyword)
        except ValueError as exc:
            raise IndexFileError(f"snapshot keyword index: {exc}") from None
        if not np.array_equal(np.sort(table._keyword.doc_ids()), np.sort(with_text)):
            raise IndexFileError("snapshot keyword index: its documents do not match the records")
        saved = table._keyword
        if config is not None and [saved.k1, saved.b, saved.tokenizer] != [config["k1"], config["b"],
                                                                           Tokenizer.from_config(config["tokenizer"])]:
            raise IndexFileError("snapshot keyword index: made with other k1, b or tokenizer than the collection's")
        return table
