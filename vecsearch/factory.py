"""``index_factory(dim, "HNSW32", metric=...)`` and its inverse ``describe(index)``: one small grammar.

Grammar: comma-separated components, each a name followed by an optional integer, e.g.
``"Flat"``, ``"HNSW32"``, ``"IVF1024,PQ48"``, ``"IVF1024,PQ48x4"``, ``"LeanVec128,LVQ8,HNSW32"``.
Each index type registers one parser (a regular expression over the whole string plus a builder)
and one describer. A string matching no parser raises ``ValueError`` listing the known forms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from .base import Index, check_dim, check_metric


@dataclass(frozen=True)
class FactoryForm:
    pattern: re.Pattern[str]
    example: str
    build: Callable[[int, str, re.Match[str], dict[str, Any]], Index]


_FORMS: list[FactoryForm] = []
_DESCRIBERS: dict[type, Callable[[Any], str]] = {}


def register_factory(pattern: str, example: str, describe_fn: Callable[[Any], str], index_cls: type):
    """Decorator for a builder ``(dim, metric, match, extra_kwargs) -> Index`` of one grammar form."""

    def wrap(build):
        _FORMS.append(FactoryForm(re.compile(pattern + r"\Z"), example, build))
        _DESCRIBERS[index_cls] = describe_fn
        return build

    return wrap


def index_factory(dim: int, description: str, metric: str = "l2", **params: Any) -> Index:
    """Build an empty index from a factory string; extra keyword params go to the index constructor."""
    from .io import _import_all_index_modules

    _import_all_index_modules()
    dim = check_dim(dim)
    metric = check_metric(metric)
    if not isinstance(description, str):
        raise TypeError(f"description: expected a string such as 'HNSW32', got {type(description).__name__}")
    text = description.replace(" ", "")
    for form in _FORMS:
        match = form.pattern.match(text)
        if match:
            return form.build(dim, metric, match, params)
    known = ", ".join(repr(f.example) for f in _FORMS)
    raise ValueError(f"description: {description!r} matches no known form (known forms: {known})")


def describe(index: Index) -> str:
    """The factory string of ``index`` (``index_factory(index.dim, describe(index), index.metric)`` rebuilds its kind)."""
    for cls in type(index).__mro__:
        if cls in _DESCRIBERS:
            return _DESCRIBERS[cls](index)
    raise ValueError(f"index: no factory description registered for {type(index).__name__}")
