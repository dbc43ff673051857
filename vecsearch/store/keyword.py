"""Keyword leg of hybrid retrieval: a BM25 inverted index with cheap incremental updates.

::

    index = KeywordIndex()                       # k1=1.2, b=0.75, Tokenizer() (vecsearch.store.tokenizer)
    index.add(np.array([7, 8]), ["Hot dog: a frankfurter", "dog: a domestic canine"])
    ids, scores = index.search("dog", k=10)      # int64 (r,), float32 (r,), best first, r <= k
    ids, scores = index.search("dog", k=10, allowed=np.array([8]))
    index.remove(np.array([7]))
    header, arrays = index.get_state()           # JSON-able dict + numpy arrays
    index = KeywordIndex.from_state(header, arrays)

Scoring (Robertson & Zaragoza 2009): ``sum over query terms t of idf(t) * tf * (k1 + 1) / (tf + k1
* (1 - b + b * |d| / avgdl))``, ``idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))``; a term repeated in
the query counts once per occurrence. ``N``, ``df`` and ``avgdl`` cover the live documents with at
least one term (as Lucene's ``docCount``: a document without terms never matches and does not
dilute them), so after removals scores equal those of an index built from the live documents.
Only documents containing a query term are returned (their score is > 0).

Layout and costs. Documents sit at dense *slots* in insertion order. The forward index (slot ->
distinct term ids and frequencies, CSR) is append-only and the source of truth: it gives the
postings a removal subtracts from ``df``, and it is what a snapshot stores. The inverted index is
derived from it in three levels, a small log-structured merge tree (kernels in
:mod:`vecsearch.kernels.bm25`): *main*, a CSR (term -> slots) of the oldest slots; *recent*, the
same for the slots after them; a *tail* of the newest postings linked per term. ``add`` is
O(its tokens) plus amortized array growth (forward index + tail). Chain walks are random access,
so past ``TAIL_POSTINGS`` the tail is folded into *recent* (a transpose of the slots after main,
a few ms at 116k documents). ``remove`` marks slots dead (tombstones, masked at search) and
updates ``df`` at once. When recent + tail, or the dead postings, pass ``REBUILD_FRACTION`` of the
index (and ``MIN_REBUILD_POSTINGS``), :meth:`compact` rebuilds main from the live documents,
O(total postings), ~0.05 s at 116k documents; as the triggers are fractions, each posting is
copied O(1 / REBUILD_FRACTION) times amortized, and an occasional write pays one rebuild
(figures: ``bench/bench_keyword.py``). Memory: 16 bytes per posting (forward + inverted) plus the
term dict (~100 bytes per term). Ids are the caller's int64 (the Collection's internal ids); while
they increase (the Collection's case) lookups are binary searches, otherwise a dict is kept.

Thread safety: none of its own. Any number of :meth:`search`, :meth:`get_state` and other reads
may run concurrently (they never mutate); :meth:`add`, :meth:`remove` and :meth:`compact` must
run alone. The Collection's reader-writer lock provides exactly that.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any

import numpy as np

from ..kernels.bm25 import (
    append_documents,
    bm25_top_k,
    check_forward,
    mark_allowed,
    row_sums,
    transpose_forward,
)
from ..validation import check_k
from .tokenizer import Tokenizer

FORMAT_NAME = "vecsearch-keyword"
FORMAT_VERSION = 1
REBUILD_FRACTION = 0.25  # compact when recent + tail or dead postings pass this share of main...
MIN_REBUILD_POSTINGS = 1 << 16  # ... and this many (small indexes are cheap to scan as they are)
TAIL_POSTINGS = 1 << 14  # fold the tail into recent past this (chains: random access, ~5-10x slower)
# Documents tokenized at a time by one add (bounds the token strings alive at once).
ADD_CHUNK = 4096


class _Buffer:
    """A growable 1-D numpy array (capacity doubles), so appends cost amortized O(appended)."""

    __slots__ = ("data", "size")

    def __init__(self, dtype: Any, values: np.ndarray | None = None):
        self.data = np.empty(0, dtype) if values is None else np.ascontiguousarray(values, dtype)
        self.size = int(self.data.shape[0])

    def reserve(self, extra: int) -> None:
        need = self.size + extra
        if need > self.data.shape[0]:
            grown = np.empty(max(need, 2 * self.data.shape[0], 16), self.data.dtype)
            grown[: self.size] = self.data[: self.size]
            self.data = grown

    def extend(self, values: Any) -> None:
        values = np.asarray(values)
        self.reserve(values.shape[0])
        self.data[self.size : self.size + values.shape[0]] = values
        self.size += values.shape[0]

    @property
    def view(self) -> np.ndarray:
        return self.data[: self.size]


def _check_doc_ids(doc_ids: Any, name: str, unique: bool) -> np.ndarray:
    arr = np.asarray(doc_ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of int64 ids, got shape {arr.shape}")
    if arr.size == 0:
        return np.empty(0, np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name}: expected integer ids, got dtype {arr.dtype}")
    if arr.dtype == np.uint64 and int(arr.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: id {int(arr.max())} does not fit in int64")
    arr = arr.astype(np.int64)
    if (arr < 0).any():
        raise ValueError(f"{name}: expected non-negative ids, got {int(arr[arr < 0][0])}")
    if unique and arr.size > 1:
        uniq, counts = np.unique(arr, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"{name}: duplicate id {int(uniq[counts > 1][0])} within one call")
    return arr


def _row_positions(offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions of every entry of CSR ``rows`` (int64 (r,)) concatenated: int64 (sum of lengths,)."""
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, np.int64)
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return shift + np.arange(total, dtype=np.int64)


class KeywordIndex:
    """BM25 inverted index over documents keyed by int64 ids (see the module docstring).

    ``k1`` >= 0 (term-frequency saturation, default 1.2), ``b`` in [0, 1] (length normalization,
    default 0.75). ``tokenizer``: a :class:`Tokenizer` (default ``Tokenizer()``) or any callable
    ``str -> sequence of str`` (then :meth:`from_state` needs it passed again: code is never saved).
    """

    def __init__(self, *, k1: float = 1.2, b: float = 0.75,
                 tokenizer: Tokenizer | Callable[[str], Sequence[str]] | None = None):
        for name, value, lo, hi in (("k1", k1, 0.0, math.inf), ("b", b, 0.0, 1.0)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise TypeError(f"{name}: expected a float, got {type(value).__name__}")
            if not (lo <= float(value) <= hi) or not math.isfinite(float(value)):
                raise ValueError(f"{name}: expected a finite value in [{lo}, {hi}], got {value}")
        if tokenizer is not None and not callable(tokenizer):
            raise TypeError(f"tokenizer: expected a Tokenizer or a callable str -> list of str, got {type(tokenizer).__name__}")
        self.k1 = float(k1)
        self.b = float(b)
        self.tokenizer: Tokenizer | Callable[[str], Sequence[str]] = tokenizer if tokenizer is not None else Tokenizer()
        self._vocab: dict[str, int] = {}  # term -> id; ids are insertion positions (0, 1, 2, ...)
        self._df = _Buffer(np.int64)  # live documents containing each term
        self._tail_head = _Buffer(np.int64)  # newest tail posting of each term, -1 if none
        self._slot_ids = _Buffer(np.int64)
        self._doc_len = _Buffer(np.int32)
        self._live = _Buffer(np.bool_)
        self._fwd_offsets = _Buffer(np.int64, np.zeros(1, np.int64))
        self._fwd_terms = _Buffer(np.int32)
        self._fwd_tf = _Buffer(np.int32)
        self._tail_next = _Buffer(np.int64)
        self._tail_slot = _Buffer(np.int32)
        self._tail_tf = _Buffer(np.int32)
        self._inv_offsets = np.zeros(1, np.int64)  # main level: slots [0, _main_end)
        self._inv_slots = np.empty(0, np.int32)
        self._inv_tf = np.empty(0, np.int32)
        self._main_end = 0
        self._recent_offsets = np.zeros(1, np.int64)  # recent level: slots [_main_end, first tail slot)
        self._recent_slots = np.empty(0, np.int32)
        self._recent_tf = np.empty(0, np.int32)
        self._n_live = 0  # live documents
        self._n_scored = 0  # live documents with at least one term: BM25's N
        self._total_len = 0  # tokens in live documents
        self._dead_postings = 0
        self._dead_slots = 0
        self._id_to_slot: dict[int, int] | None = None  # None while slot ids are increasing

    # ---- sizes -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Number of live documents."""
        return self._n_live

    def __contains__(self, doc_id: object) -> bool:
        if isinstance(doc_id, bool) or not isinstance(doc_id, (int, np.integer)):
            return False
        return int(self._lookup(np.array([doc_id], np.int64))[0]) >= 0

    @property
    def n_terms(self) -> int:
        """Terms in the vocabulary (including terms of removed documents until the next rebuild)."""
        return len(self._vocab)

    @property
    def n_postings(self) -> int:
        """(document, term) pairs stored, dead ones included until the next rebuild."""
        return self._fwd_terms.size

    def nbytes(self) -> int:
        """Bytes held: array capacities plus an estimate of the Python term and id dictionaries."""
        arrays = [self._df, self._tail_head, self._slot_ids, self._doc_len, self._live, self._fwd_offsets,
                  self._fwd_terms, self._fwd_tf, self._tail_next, self._tail_slot, self._tail_tf]
        total = sum(buf.data.nbytes for buf in arrays)
        total += sum(a.nbytes for a in (self._inv_offsets, self._inv_slots, self._inv_tf, self._recent_offsets,
                                        self._recent_slots, self._recent_tf))
        # The vocabulary: its table, the term strings and the int objects of the ids (28 bytes each).
        total += sys.getsizeof(self._vocab) + sum(sys.getsizeof(t) for t in self._vocab) + 28 * len(self._vocab)
        if self._id_to_slot is not None:
            total += sys.getsizeof(self._id_to_slot) + 2 * 32 * len(self._id_to_slot)  # two ints per entry
        return int(total)

    # ---- id lookup -------------------------------------------------------------------------------
    def _lookup(self, ids: np.ndarray) -> np.ndarray:
        """Live slots of ``ids`` int64 (n,), aligned: -1 where an id is unknown or removed."""
        n = self._slot_ids.size
        if ids.size == 0 or n == 0:
            return np.full(ids.shape[0], -1, np.int64)
        if self._id_to_slot is None:
            slot_ids = self._slot_ids.view
            pos = np.searchsorted(slot_ids, ids)
            pos_c = np.minimum(pos, n - 1)
            found = (pos < n) & (slot_ids[pos_c] == ids) & self._live.view[pos_c]
            return np.where(found, pos_c, -1).astype(np.int64)
        table = self._id_to_slot
        return np.fromiter((table.get(i, -1) for i in ids.tolist()), np.int64, ids.shape[0])

    def _index_ids(self, first_slot: int, ids: np.ndarray) -> None:
        """Register the ids just appended at slots ``first_slot..`` in the lookup structure."""
        if self._id_to_slot is None:
            before = self._slot_ids.data[first_slot - 1] if first_slot > 0 else -1
            if ids[0] > before and (ids.size == 1 or bool((np.diff(ids) > 0).all())):
                return
            live = self._live.view[:first_slot]
            slots = np.flatnonzero(live)
            self._id_to_slot = dict(zip(self._slot_ids.view[slots].tolist(), slots.tolist()))
        self._id_to_slot.update(zip(ids.tolist(), range(first_slot, first_slot + ids.shape[0])))

    # ---- writes ----------------------------------------------------------------------------------
    def _tokenize(self, text: Any, name: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"{name}: expected str or None, got {type(text).__name__}")
        tokens = self.tokenizer(text)
        if isinstance(self.tokenizer, Tokenizer):
            return tokens  # type: ignore[return-value]
        if isinstance(tokens, str) or not isinstance(tokens, Sequence):
            raise TypeError(f"tokenizer: expected a sequence of str from the tokenizer for {name}, got {type(tokens).__name__}")
        for tok in tokens:
            if not isinstance(tok, str):
                raise TypeError(f"tokenizer: expected str terms for {name}, got {type(tok).__name__} {tok!r}")
        return list(tokens)

    def add(self, doc_ids: Any, texts: Sequence[str | None]) -> None:
        """Index new documents. ``doc_ids``: int64 ``(n,)`` distinct, none already live;
        ``texts``: n str (None: a document without terms). Validation and tokenization happen
        before any document is added, so a call that raises adds nothing."""
        ids = _check_doc_ids(doc_ids, "doc_ids", unique=True)
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError(f"texts: expected a sequence of str or None, got {type(texts).__name__}")
        n = ids.shape[0]
        if len(texts) != n:
            raise ValueError(f"texts: expected {n} entries (one per id), got {len(texts)}")
        if n == 0:
            return
        first_slot = self._slot_ids.size
        # Increasing ids past the last slot (the Collection's case) cannot be present: skip the lookup.
        if self._id_to_slot is not None or (first_slot and ids.min() <= self._slot_ids.data[first_slot - 1]):
            present = self._lookup(ids) >= 0
            if present.any():
                raise ValueError(f"doc_ids: id {int(ids[present][0])} is already in the index (remove it first)")
        # Tokenize in chunks and keep only term ids, so a large batch never holds all its token
        # strings at once. A chunk that raises leaves no document change; terms first seen in the
        # chunks before it may stay in the vocabulary, unused (df 0, not in get_state) until a rebuild.
        vocab = self._vocab
        id_parts, length_parts = [], []
        for start in range(0, n, ADD_CHUNK):
            token_lists = [[] if t is None else self._tokenize(t, f"texts[{i}]")
                           for i, t in enumerate(texts[start : start + ADD_CHUNK], start)]
            for term in dict.fromkeys(chain.from_iterable(token_lists)):  # distinct, first-seen order
                if term not in vocab:
                    vocab[term] = len(vocab)  # a term's id is its insertion position
            new_terms = len(vocab) - self._df.size  # per-term arrays always match the vocabulary
            if new_terms:
                self._df.extend(np.zeros(new_terms, np.int64))
                self._tail_head.extend(np.full(new_terms, -1, np.int64))
            lengths = np.fromiter(map(len, token_lists), np.int64, len(token_lists))
            length_parts.append(lengths)
            id_parts.append(np.fromiter(map(vocab.__getitem__, chain.from_iterable(token_lists)), np.int32,
                                        int(lengths.sum())))
        # Nothing below can fail on user input.
        lengths = length_parts[0] if len(length_parts) == 1 else np.concatenate(length_parts)
        token_ids = id_parts[0] if len(id_parts) == 1 else np.concatenate(id_parts)
        token_offsets = np.zeros(n + 1, np.int64)
        np.cumsum(lengths, out=token_offsets[1:])
        n_tokens = int(token_offsets[-1])
        for buf in (self._slot_ids, self._doc_len, self._live, self._fwd_offsets):
            buf.reserve(n)
        for buf in (self._fwd_terms, self._fwd_tf, self._tail_next, self._tail_slot, self._tail_tf):
            buf.reserve(n_tokens)  # a document has at most as many distinct terms as tokens
        added = append_documents(
            token_ids, token_offsets, ids, first_slot, self._tail_next.size, self._slot_ids.data,
            self._doc_len.data, self._live.data, self._fwd_offsets.data, self._fwd_terms.data, self._fwd_tf.data,
            self._df.data, self._tail_head.data, self._tail_next.data, self._tail_slot.data, self._tail_tf.data,
        )
        for buf in (self._slot_ids, self._doc_len, self._live, self._fwd_offsets):
            buf.size += n
        for buf in (self._fwd_terms, self._fwd_tf, self._tail_next, self._tail_slot, self._tail_tf):
            buf.size += added
        self._n_live += n
        self._n_scored += int(np.count_nonzero(lengths))
        self._total_len += n_tokens
        self._index_ids(first_slot, ids)
        self._maybe_compact()

    def remove(self, doc_ids: Any) -> int:
        """Remove documents by id (unknown or already removed ids are ignored); returns how many were removed."""
        ids = _check_doc_ids(doc_ids, "doc_ids", unique=False)
        slots = self._lookup(ids)
        slots = np.unique(slots[slots >= 0])
        if slots.size == 0:
            return 0
        offsets = self._fwd_offsets.view
        positions = _row_positions(offsets, slots)
        np.subtract.at(self._df.data, self._fwd_terms.data[positions], 1)
        self._live.data[slots] = False
        lengths = self._doc_len.data[slots].astype(np.int64)
        self._n_live -= slots.size
        self._n_scored -= int(np.count_nonzero(lengths))
        self._total_len -= int(lengths.sum())
        self._dead_postings += positions.shape[0]
        self._dead_slots += slots.size
        if self._id_to_slot is not None:
            for i in self._slot_ids.data[slots].tolist():
                self._id_to_slot.pop(i, None)
        self._maybe_compact()
        return int(slots.size)

    def _maybe_compact(self) -> None:
        main = self._inv_slots.shape[0]
        tail = self._tail_next.size
        pending = self._recent_slots.shape[0] + tail
        dead = self._dead_postings + self._dead_slots
        whole = self._fwd_terms.size + self._slot_ids.size
        floor = MIN_REBUILD_POSTINGS
        if pending > max(floor, REBUILD_FRACTION * main) or dead > max(floor, REBUILD_FRACTION * whole):
            self.compact()
        elif tail > TAIL_POSTINGS:
            self._fold_tail()

    def _fold_tail(self) -> None:
        """Re-transpose the slots after the main level into the recent level and empty the tail.

        O(recent postings + terms); at most every ``TAIL_POSTINGS`` postings, so chains stay short.
        """
        n_terms = len(self._vocab)
        rows = self._fwd_offsets.view[self._main_end :]
        self._recent_offsets, self._recent_slots, self._recent_tf = transpose_forward(
            rows, self._fwd_terms.data, self._fwd_tf.data, n_terms, self._main_end
        )
        self._tail_head.view[:] = -1
        for buf in (self._tail_next, self._tail_slot, self._tail_tf):
            buf.size = 0

    def compact(self) -> None:
        """Rebuild: drop removed documents and unused terms, merge the recent level and the tail into main.

        O(total postings); runs by itself when recent + tail, or the dead postings, grow past
        ``REBUILD_FRACTION`` of the index (see the module docstring). Results do not change.
        """
        keep, offsets, terms, tf, used = self._live_forward()
        if not used.all():
            self._vocab = {t: i for i, t in enumerate(t for t, u in zip(self._vocab, used.tolist()) if u)}
        self._install(slot_ids=self._slot_ids.view[keep], doc_len=self._doc_len.view[keep], offsets=offsets,
                      terms=terms, tf=tf, df=self._df.view[used], n_terms=len(self._vocab))

    def _live_forward(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The forward index without removed documents, terms renumbered without unused ones (no
        mutation): ``(kept slots int64 (n,), offsets int64 (n + 1,), terms int32 (P,), tf int32 (P,),
        used bool (n_terms,))``; the arrays are fresh copies."""
        live = self._live.view
        widths = np.diff(self._fwd_offsets.view)
        keep = np.flatnonzero(live)
        if keep.size == live.shape[0]:
            terms, tf = self._fwd_terms.view.copy(), self._fwd_tf.view.copy()
        else:
            post_keep = np.repeat(live, widths)
            terms, tf = self._fwd_terms.view[post_keep], self._fwd_tf.view[post_keep]
        used = self._df.view > 0
        if not used.all():
            terms = (np.cumsum(used) - 1).astype(np.int32)[terms]
        offsets = np.zeros(keep.size + 1, np.int64)
        np.cumsum(widths[keep], out=offsets[1:])
        return keep, offsets, terms, tf, used

    def _install(self, slot_ids: np.ndarray, doc_len: np.ndarray, offsets: np.ndarray, terms: np.ndarray,
                 tf: np.ndarray, df: np.ndarray, n_terms: int) -> None:
        """Take these arrays (owned from now on) as a compact state, no dead slots and no tail, and
        derive the main lists."""
        n = slot_ids.shape[0]
        self._slot_ids = _Buffer(np.int64, slot_ids)
        self._doc_len = _Buffer(np.int32, doc_len)
        self._live = _Buffer(np.bool_, np.ones(n, np.bool_))
        self._fwd_offsets = _Buffer(np.int64, offsets)
        self._fwd_terms = _Buffer(np.int32, terms)
        self._fwd_tf = _Buffer(np.int32, tf)
        self._df = _Buffer(np.int64, df)
        self._tail_head = _Buffer(np.int64, np.full(n_terms, -1, np.int64))
        self._tail_next = _Buffer(np.int64)
        self._tail_slot = _Buffer(np.int32)
        self._tail_tf = _Buffer(np.int32)
        self._inv_offsets, self._inv_slots, self._inv_tf = transpose_forward(
            self._fwd_offsets.view, self._fwd_terms.view, self._fwd_tf.view, n_terms, 0
        )
        self._main_end = n
        self._recent_offsets = np.zeros(1, np.int64)
        self._recent_slots = np.empty(0, np.int32)
        self._recent_tf = np.empty(0, np.int32)
        self._dead_postings = 0
        self._dead_slots = 0
        if n > 1 and not bool((np.diff(slot_ids) > 0).all()):
            self._id_to_slot = dict(zip(slot_ids.tolist(), range(n)))
        else:
            self._id_to_slot = None

    # ---- reads -----------------------------------------------------------------------------------
    def search(self, text: str, k: int, allowed: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best documents for query ``text`` by BM25, best first.

        Returns ``(doc_ids int64 (r,), scores float32 (r,))``, ``r = min(k, documents containing a
        query term)`` (fewer than k is normal, empty when nothing matches); ties are ordered by id.
        ``allowed``: None, or the doc ids (array-like of int64) results are restricted to (e.g. a
        metadata filter's matches); unknown ids in it are ignored.
        """
        k = check_k(k)
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        allowed_ids = None if allowed is None else _check_doc_ids(
            np.fromiter(allowed, np.int64) if isinstance(allowed, (set, frozenset)) else allowed, "allowed", unique=False
        )
        empty = (np.empty(0, np.int64), np.empty(0, np.float32))
        if self._n_scored == 0:
            return empty
        counts = Counter(self._tokenize(text, "text"))
        vocab, df_all = self._vocab, self._df.view
        pairs = [(vocab[t], c) for t, c in counts.items() if t in vocab]
        pairs = [(tid, c) for tid, c in pairs if df_all[tid] > 0]
        if not pairs:
            return empty
        q_terms = np.array([p[0] for p in pairs], np.int32)
        qtf = np.array([p[1] for p in pairs], np.float64)
        df = df_all[q_terms].astype(np.float64)
        n_docs = float(self._n_scored)
        idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
        weights = (idf * qtf).astype(np.float32)
        avgdl = self._total_len / n_docs
        mask = self._live.view
        if allowed_ids is not None:
            allowed_mask = np.zeros(mask.shape[0], np.bool_)
            if self._id_to_slot is None:
                mark_allowed(self._slot_ids.view, mask, allowed_ids, allowed_mask)
            else:
                slots = self._lookup(allowed_ids)  # live slots only
                allowed_mask[slots[slots >= 0]] = True
            mask = allowed_mask
        return bm25_top_k(
            q_terms, weights, self._inv_offsets, self._inv_slots, self._inv_tf, self._recent_offsets,
            self._recent_slots, self._recent_tf, self._tail_head.data,
            self._tail_next.data, self._tail_slot.data, self._tail_tf.data, self._doc_len.view, mask,
            self._slot_ids.view, self.k1, self.b, avgdl, k,
        )

    def doc_ids(self) -> np.ndarray:
        """Ids of the live documents in insertion order, int64 ``(len(self),)``."""
        return self._slot_ids.view[self._live.view].copy()

    def document_terms(self, doc_id: int) -> dict[str, int]:
        """``{term: frequency}`` of one live document (``KeyError`` if it is not in the index)."""
        slot = int(self._lookup(np.array([doc_id], np.int64))[0])
        if slot < 0:
            raise KeyError(doc_id)
        a, z = self._fwd_offsets.data[slot], self._fwd_offsets.data[slot + 1]
        terms = list(self._vocab)
        return {terms[t]: int(f) for t, f in zip(self._fwd_terms.data[a:z].tolist(), self._fwd_tf.data[a:z].tolist())}

    # ---- state -----------------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(header, arrays)`` of the live documents; never mutates (safe beside concurrent searches).

        Arrays (the forward index, insertion order, unused terms dropped): ``doc_ids`` int64 (n,),
        ``doc_offsets`` int64 (n + 1,), ``doc_terms`` int32 (P,), ``doc_tf`` int32 (P,),
        ``term_bytes`` uint8 (UTF-8 of the terms, concatenated), ``term_offsets`` int64 (V + 1,).
        Derived data (df, lengths, inverted lists) is rebuilt by :meth:`from_state`.
        """
        keep, doc_offsets, terms, tf, used = self._live_forward()
        kept = [t for t, u in zip(self._vocab, used.tolist()) if u]
        encoded = [t.encode("utf-8", "surrogatepass") for t in kept]
        term_offsets = np.zeros(len(encoded) + 1, np.int64)
        np.cumsum([len(e) for e in encoded], out=term_offsets[1:])
        tokenizer = self.tokenizer.config() if isinstance(self.tokenizer, Tokenizer) else {"kind": "custom"}
        header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "k1": self.k1, "b": self.b,
                  "tokenizer": tokenizer, "n_documents": int(keep.size), "n_terms": len(kept),
                  "n_postings": int(terms.shape[0])}
        arrays = {
            "doc_ids": self._slot_ids.view[keep].copy(), "doc_offsets": doc_offsets,
            "doc_terms": terms, "doc_tf": tf,
            "term_bytes": np.frombuffer(b"".join(encoded), np.uint8).copy(), "term_offsets": term_offsets,
        }
        return header, arrays

    @classmethod
    def from_state(cls, header: Any, arrays: Any,
                   tokenizer: Callable[[str], Sequence[str]] | None = None) -> KeywordIndex:
        """Rebuild an index from :meth:`get_state` output, validating everything first.

        ``tokenizer``: required when the state was made with a custom callable, not allowed
        otherwise (the built-in tokenizer's settings are in the header). Raises ``ValueError``
        naming the field for any inconsistency (bad offsets, ids, term ids, duplicates, ...).
        """
        if not isinstance(header, dict):
            raise ValueError(f"header: expected a dict, got {type(header).__name__}")  # noqa: TRY004 - bad state: ValueError like any corrupt file
        if header.get("format") != FORMAT_NAME:
            raise ValueError(f"header['format']: expected {FORMAT_NAME!r}, got {header.get('format')!r}")
        version = header.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
            raise ValueError(f"header['format_version']: expected 1..{FORMAT_VERSION}, got {version!r}")
        tok_config = header.get("tokenizer")
        if isinstance(tok_config, dict) and tok_config.get("kind") == "custom":
            if tokenizer is None:
                raise ValueError("tokenizer: this state was built with a custom tokenizer callable; pass it again")
            tok: Any = tokenizer
        else:
            if tokenizer is not None:
                raise ValueError("tokenizer: this state uses the built-in tokenizer (settings in the header); do not pass one")
            tok = Tokenizer.from_config(tok_config, "header['tokenizer']")
        try:
            index = cls(k1=header.get("k1"), b=header.get("b"), tokenizer=tok)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"header: {exc}") from None
        if not isinstance(arrays, dict):
            raise ValueError(f"arrays: expected a dict of numpy arrays, got {type(arrays).__name__}")  # noqa: TRY004
        a = {}
        for name, dtype in (("doc_ids", np.int64), ("doc_offsets", np.int64), ("doc_terms", np.int32),
                            ("doc_tf", np.int32), ("term_bytes", np.uint8), ("term_offsets", np.int64)):
            arr = arrays.get(name)
            if not isinstance(arr, np.ndarray):
                raise ValueError(f"arrays['{name}']: missing or not a numpy array")  # noqa: TRY004
            if arr.dtype != dtype or arr.ndim != 1:
                raise ValueError(f"arrays['{name}']: expected 1-D {np.dtype(dtype)}, got {arr.ndim}-D {arr.dtype}")
            a[name] = arr.copy()  # the index owns its arrays
        n, n_post = a["doc_ids"].shape[0], a["doc_terms"].shape[0]
        _check_offsets(a["doc_offsets"], n, n_post, "doc_offsets")
        if a["doc_tf"].shape[0] != n_post:
            raise ValueError(f"arrays['doc_tf']: expected {n_post} entries like doc_terms, got {a['doc_tf'].shape[0]}")
        n_terms = a["term_offsets"].shape[0] - 1
        if n_terms < 0:
            raise ValueError("arrays['term_offsets']: expected at least one entry")
        _check_offsets(a["term_offsets"], n_terms, a["term_bytes"].shape[0], "term_offsets")
        for key, value in (("n_documents", n), ("n_terms", n_terms), ("n_postings", n_post)):
            if header.get(key) != value:
                raise ValueError(f"header['{key}']: {header.get(key)!r} does not match the arrays ({value})")
        ids = a["doc_ids"]
        if n and int(ids.min()) < 0:
            raise ValueError(f"arrays['doc_ids']: expected non-negative ids, got {int(ids.min())}")
        if np.unique(ids).shape[0] != n:
            raise ValueError("arrays['doc_ids']: duplicate ids")
        blob = a["term_bytes"].tobytes()
        bounds = a["term_offsets"].tolist()
        try:
            terms = [blob[bounds[i] : bounds[i + 1]].decode("utf-8", "surrogatepass") for i in range(n_terms)]
        except UnicodeDecodeError as exc:
            raise ValueError(f"arrays['term_bytes']: not valid UTF-8 ({exc})") from None
        vocab = {t: i for i, t in enumerate(terms)}
        if len(vocab) != n_terms:
            raise ValueError("arrays['term_bytes']: duplicate terms")
        code, row = check_forward(a["doc_offsets"], a["doc_terms"], a["doc_tf"], n_terms)
        if code:
            problem = {1: "a term id out of range", 2: "a repeated term", 3: "a frequency < 1"}[int(code)]
            raise ValueError(f"arrays['doc_terms'/'doc_tf']: document {int(row)} (id {int(ids[row])}) has {problem}")
        lengths = row_sums(a["doc_offsets"], a["doc_tf"])
        if n and int(lengths.max()) > np.iinfo(np.int32).max:
            raise ValueError("arrays['doc_tf']: a document length exceeds int32")
        index._vocab = vocab
        df = np.bincount(a["doc_terms"], minlength=n_terms).astype(np.int64)
        index._install(slot_ids=ids, doc_len=lengths.astype(np.int32), offsets=a["doc_offsets"],
                       terms=a["doc_terms"], tf=a["doc_tf"], df=df, n_terms=n_terms)
        index._n_live = n
        index._n_scored = int(np.count_nonzero(lengths))
        index._total_len = int(lengths.sum())
        return index


def _check_offsets(offsets: np.ndarray, n_rows: int, n_entries: int, name: str) -> None:
    if offsets.shape[0] != n_rows + 1:
        raise ValueError(f"arrays['{name}']: expected {n_rows + 1} entries, got {offsets.shape[0]}")
    if offsets[0] != 0 or offsets[-1] != n_entries:
        raise ValueError(f"arrays['{name}']: expected to run from 0 to {n_entries}, got {int(offsets[0])}..{int(offsets[-1])}")
    if n_rows and (np.diff(offsets) < 0).any():
        raise ValueError(f"arrays['{name}']: expected non-decreasing offsets")
