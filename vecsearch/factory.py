"""``index_factory(dim, "HNSW32", metric=...)`` and its inverse ``describe(index)``: one small grammar.

Grammar: comma-separated components, each a name followed by an optional integer, e.g.
``"Flat"``, ``"HNSW32"``, ``"IVF1024,PQ48"``, ``"IVF1024,PQ48x4"``, ``"LeanVec128,LVQ8,HNSW32"``.
Each index class declares its forms (``factory_forms``: a regular expression over the whole string
and an example) and how a match builds it (``_from_factory``); the registry
(:mod:`vecsearch.registry`) lists them. A string matching no form raises ``ValueError`` listing
the known forms.
"""

from __future__ import annotations

from typing import Any

from . import (
    indexes,  # noqa: F401  (defines, and so registers, every index type)
    registry,
)
from .base import Index
from .validation import check_dim, check_metric


def index_factory(dim: int, description: str, metric: str = "l2", **params: Any) -> Index:
    """Build an empty index from a factory string; extra keyword params go to the index constructor."""
    dim = check_dim(dim)
    metric = check_metric(metric)
    if not isinstance(description, str):
        raise TypeError(f"description: expected a string such as 'HNSW32', got {type(description).__name__}")
    return registry.build_from_description(dim, metric, description, params)


def describe(index: Index) -> str:
    """The factory string of ``index`` (``index_factory(index.dim, describe(index), index.metric)`` rebuilds its kind)."""
    if not isinstance(index, Index):
        raise TypeError(f"index: expected a vecsearch index, got {type(index).__name__}")
    return index.describe()
