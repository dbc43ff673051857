"""Chroma's ``where_document`` filters: parse the dict form once, evaluate it over document texts.

::

    flt = parse_where_document({"$and": [{"$contains": "dog"}, {"$not_contains": "hot dog"}]})
    flt.matches("a dog barked")                  # True
    flt.evaluate(["a dog", None, "hot dog"])     # bool (3,): [True, False, False]

Semantics follow Chroma (checked against its source, chroma-core/chroma, 2026-08: the Rust SQLite
segment uses ``LIKE '%pattern%'`` with ``PRAGMA case_sensitive_like = ON``, and its reference model
in ``rust/segment/src/test.rs`` is ``document.is_some_and(|doc| doc.contains(pattern))``):

* ``{"$contains": s}``: the document contains ``s`` as a substring, **case-sensitive**, no
  tokenization or normalization ("Dog" does not match "dog"; "cat" matches "concatenate").
* ``{"$not_contains": s}``: the negation; a record without a document (None) matches it and never
  matches ``$contains``.
* ``{"$regex": p}`` / ``{"$not_regex": p}``: ``p`` found anywhere in the document (search, not full
  match); None documents as above. Chroma evaluates these with Rust's ``regex`` crate; here it is
  Python's ``re``, which agrees on ordinary patterns (classes, anchors, quantifiers, groups) but
  adds look-around and back-references and lacks ``\\p{...}`` classes.
* ``{"$and": [f, g, ...]}``, ``{"$or": [f, g, ...]}``: at least two sub-filters.

Validation matches Chroma's ``validate_where_document``: a dict with exactly one operator, string
operands non-empty, ``$and``/``$or`` lists of two or more filters. Errors are ``ValueError`` naming
the offending part, e.g. ``where_document['$and'][1]['$contains']``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

OPERATORS = ("$contains", "$not_contains", "$regex", "$not_regex", "$and", "$or")


class DocumentFilter:
    """A parsed ``where_document`` filter (build with :func:`parse_where_document`)."""

    def matches(self, document: str | None) -> bool:
        """Whether one document (None: a record without a document) passes."""
        return bool(self.evaluate([document])[0])

    def evaluate(self, documents: Sequence[str | None]) -> np.ndarray:
        """bool (n,): which of ``documents`` pass."""
        raise NotImplementedError

    def select(self, doc_ids: Any, documents: Sequence[str | None]) -> np.ndarray:
        """The ``doc_ids`` (int64, order kept) whose aligned ``documents`` pass."""
        ids = np.asarray(doc_ids, np.int64)
        if ids.ndim != 1 or ids.shape[0] != len(documents):
            raise ValueError(f"doc_ids: expected {len(documents)} ids aligned with documents, got shape {ids.shape}")
        return ids[self.evaluate(documents)]


@dataclass(frozen=True)
class Contains(DocumentFilter):
    """``$contains`` (``negate=False``) or ``$not_contains`` (``negate=True``): case-sensitive substring."""

    text: str
    negate: bool = False

    def evaluate(self, documents: Sequence[str | None]) -> np.ndarray:
        text = self.text
        hit = np.fromiter((d is not None and text in d for d in documents), np.bool_, len(documents))
        return ~hit if self.negate else hit


@dataclass(frozen=True)
class Regex(DocumentFilter):
    """``$regex`` / ``$not_regex``: ``re.search`` of ``pattern`` in the document."""

    pattern: str
    negate: bool = False
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled", re.compile(self.pattern))

    def evaluate(self, documents: Sequence[str | None]) -> np.ndarray:
        search = self.compiled.search
        hit = np.fromiter((d is not None and search(d) is not None for d in documents), np.bool_, len(documents))
        return ~hit if self.negate else hit


@dataclass(frozen=True)
class And(DocumentFilter):
    children: tuple[DocumentFilter, ...]

    def evaluate(self, documents: Sequence[str | None]) -> np.ndarray:
        out = self.children[0].evaluate(documents)
        for child in self.children[1:]:
            rows = np.flatnonzero(out)
            if rows.size == 0:
                break
            # Later children only look at the documents still in (cheap when the first is selective).
            out[rows] = child.evaluate([documents[i] for i in rows.tolist()])
        return out


@dataclass(frozen=True)
class Or(DocumentFilter):
    children: tuple[DocumentFilter, ...]

    def evaluate(self, documents: Sequence[str | None]) -> np.ndarray:
        out = self.children[0].evaluate(documents)
        for child in self.children[1:]:
            rows = np.flatnonzero(~out)
            if rows.size == 0:
                break
            out[rows] = child.evaluate([documents[i] for i in rows.tolist()])
        return out


def parse_where_document(where_document: Any, name: str = "where_document") -> DocumentFilter:
    """Parse Chroma's ``where_document`` dict form; ``ValueError`` naming the bad part if malformed."""
    if isinstance(where_document, DocumentFilter):
        return where_document
    if not isinstance(where_document, dict):
        # ValueError for every malformed filter, wrong types included, as Chroma's validate_where_document.
        raise ValueError(f"{name}: expected a dict such as {{'$contains': 'text'}}, got {type(where_document).__name__}")  # noqa: TRY004
    if len(where_document) != 1:
        raise ValueError(f"{name}: expected exactly one operator from {OPERATORS}, got {sorted(map(str, where_document))}")
    ((op, operand),) = where_document.items()
    path = f"{name}[{op!r}]"
    if op in ("$and", "$or"):
        if not isinstance(operand, list):
            raise ValueError(f"{path}: expected a list of where_document filters, got {type(operand).__name__}")
        if len(operand) < 2:
            raise ValueError(f"{path}: expected at least two filters, got {len(operand)}")
        children = tuple(parse_where_document(sub, f"{path}[{i}]") for i, sub in enumerate(operand))
        return And(children) if op == "$and" else Or(children)
    if op not in OPERATORS:
        raise ValueError(f"{name}: unknown operator {op!r}; expected one of {OPERATORS}")
    if not isinstance(operand, str):
        raise ValueError(f"{path}: expected a string, got {type(operand).__name__}")  # noqa: TRY004
    if not operand:
        raise ValueError(f"{path}: expected a non-empty string")
    if op in ("$contains", "$not_contains"):
        return Contains(operand, negate=op == "$not_contains")
    try:
        return Regex(operand, negate=op == "$not_regex")
    except re.error as exc:
        raise ValueError(f"{path}: not a valid regular expression ({exc})") from None
