"""vecsearch: approximate nearest-neighbor vector search in Python with numba kernels.

Nothing is compiled at import; call :func:`warmup` in services to compile (or load from the
on-disk cache) every kernel before the first request.
"""

from __future__ import annotations

from .base import SearchResult, Index
from .factory import describe, index_factory
from .indexes.flat import FlatIndex
from .io import IndexFileError, load
from .warmup import warmup

__all__ = [
    "FlatIndex",
    "Index",
    "IndexFileError",
    "SearchResult",
    "describe",
    "index_factory",
    "load",
    "warmup",
]
__version__ = "0.1.0"
