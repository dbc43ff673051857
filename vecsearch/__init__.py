"""vecsearch: approximate nearest-neighbor vector search in Python with numba kernels.

Nothing is compiled at import; call :func:`warmup` in services to compile (or load from the
on-disk cache) every kernel before the first request.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Index, SearchResult
from .factory import describe, index_factory
from .indexes.flat import FlatIndex
from .io import IndexFileError, load
from .warmup import warmup

# Public names imported on first use, so ``import vecsearch`` stays light (no optional modules).
_LAZY = {
    "HNSWIndex": "vecsearch.indexes.hnsw",
    "IVFPQIndex": "vecsearch.indexes.ivfpq",
    "ProductQuantizer": "vecsearch.quantizers",
    "LeanVecIndex": "vecsearch.indexes.leanvec",
    "MultiVectorIndex": "vecsearch.multivector",
    "FDEConfig": "vecsearch.multivector",
    "F": "vecsearch.predicates",
    "Collection": "vecsearch.collection",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vecsearch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [  # noqa: PLE0604 (the lazy names are strings too)
    "FlatIndex",
    "Index",
    "IndexFileError",
    "SearchResult",
    "describe",
    "index_factory",
    "load",
    "warmup",
    *_LAZY,
]
__version__ = "0.1.0"
