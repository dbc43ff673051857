"""The one list of index types: an :class:`IndexType` record per class, filled when the class is defined.

An index class registers itself by naming its type in the class statement::

    class HNSWIndex(Index, type_name="hnsw"): ...

(:meth:`vecsearch.base.Index.__init_subclass__` builds the record from the class' declarations).
Everything that needs the list of index types reads it here: ``index_factory`` / ``describe``,
``vs.load``, ``vs.warmup``, the benchmark runner, the Collection, MultiVector's inner index and the
ann-benchmarks adapter. Importing :mod:`vecsearch.indexes` defines (and so registers) every
built-in type. This module imports nothing from vecsearch: it is the leaf every layer may read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FactoryForm:
    """One form of the factory grammar: ``pattern`` matches a whole description; ``example`` is a
    string the form accepts; ``build(dim, metric, groups, params)`` makes the index from the
    match's named ``groups`` and extra constructor ``params``."""

    pattern: re.Pattern[str]
    example: str
    build: Callable[[int, str, dict[str, Any], dict[str, Any]], Any]


@dataclass(frozen=True)
class IndexType:
    """What the rest of the library may know about an index type without importing its module.

    * ``name``: the type name written in saved manifests (``"hnsw"``).
    * ``cls``: the index class.
    * ``forms``: its factory grammar (``index_factory(dim, "HNSW32")``), empty when it has none.
    * ``search_knobs``: per-call search parameters (``("ef",)``), swept by benchmarks and calibration.
    * ``requires_training``: ``train(x)`` must run before ``add``.
    * ``vector_input``: ``add`` takes ``(n, dim)`` float vectors (False for multi-vector documents).
    """

    name: str
    cls: type
    forms: tuple[FactoryForm, ...]
    search_knobs: tuple[str, ...]
    requires_training: bool
    vector_input: bool


_TYPES: dict[str, IndexType] = {}


def register(record: IndexType) -> None:
    """Add ``record``; a second class claiming a registered name raises ``ValueError``."""
    known = _TYPES.get(record.name)
    if known is not None and known.cls.__qualname__ != record.cls.__qualname__:
        raise ValueError(f"type_name: {record.name!r} is already registered by {known.cls.__qualname__}")
    _TYPES[record.name] = record


def get(name: Any) -> IndexType:
    """The record of type ``name``; unknown names raise ``ValueError`` listing the known ones."""
    record = _TYPES.get(name) if isinstance(name, str) else None
    if record is None:
        raise ValueError(f"type: unknown index type {name!r} (known: {sorted(_TYPES)})")
    return record


def of_class(cls: type) -> IndexType:
    """The record of ``cls`` or of its nearest registered base class."""
    for klass in cls.__mro__:
        for record in _TYPES.values():
            if record.cls is klass:
                return record
    raise ValueError(f"index: {cls.__name__} is not a registered index type")


def all_types() -> tuple[IndexType, ...]:
    """Every registered type, in registration order."""
    return tuple(_TYPES.values())


def build_from_description(dim: int, metric: str, description: str, params: dict[str, Any]) -> Any:
    """The index a factory description names (the first registered form that matches the whole
    string, spaces ignored); ``ValueError`` listing the known forms when none does."""
    text = description.replace(" ", "")
    for record in _TYPES.values():
        for form in record.forms:
            match = form.pattern.match(text)
            if match:
                return form.build(dim, metric, match.groupdict(), params)
    known = ", ".join(repr(form.example) for record in _TYPES.values() for form in record.forms)
    raise ValueError(f"description: {description!r} matches no known form (known forms: {known})")
