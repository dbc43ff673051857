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

Record = tuple[str, "str | None", "dict[str, Any] | None"]  # (string id, document, metadata)


class RecordTable:
    """String id <-> internal id, documents and metadata, and the BM25 index of the documents."""

    def __init__(self) -> None:
        self._iid_of: dict[str, int] = {}
        self._records: dict[int, Record] = {}  # insertion order = internal id order
        self._keyword = KeywordIndex()
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
    def from_state(cls, header: dict[str, Any], arrays: dict[str, np.ndarray], keyword: Any) -> RecordTable:
        """Rebuild from :meth:`get_state` output. ``keyword`` None (a snapshot from before the
        keyword index) re-indexes the documents; a keyword state that does not hold exactly the
        records' documents raises :class:`~vecsearch.io.IndexFileError`."""
        table = cls()
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
        return table
