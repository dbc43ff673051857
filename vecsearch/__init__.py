"""vecsearch: approximate nearest-neighbor vector search in Python with numba kernels.

Nothing is compiled at import; call :func:`warmup` in services to compile (or load from the
on-disk cache) every kernel before the first request.

Layers (imports point down only; ``tests/test_architecture.py`` checks it):
``kernels`` (numba math) < ``registry``, ``validation``, ``ids``, ``io``, ``params`` < ``codecs``,
``filtering``, ``exact`` < ``base`` (the Index contract) < ``indexes`` < ``factory``, ``loader``,
``warmup`` < ``store``, ``benchmark``, ``integrations``, ``distributed``, ``cli``.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Index, SearchResult
from .factory import describe, index_factory
from .filtering.predicates import F
from .indexes.flat import FlatIndex
from .indexes.hnsw import HNSWIndex
from .indexes.ivf_fastscan import IVFFastScanIndex
from .indexes.ivfpq import IVFPQIndex
from .indexes.leanvec import LeanVecIndex
from .indexes.multivector import FDEConfig, MultiVectorIndex
from .io import IndexFileError
from .loader import load
from .warmup import warmup

# Names imported on first use, so ``import vecsearch`` does not pull in optional layers; the last
# entries keep the modules of the old flat layout reachable as attributes (``vs.fde.MINILM_TUNED``).
_LAZY = {
    "ProductQuantizer": ("vecsearch.codecs.pq", "ProductQuantizer"),
    "CalibrationReport": ("vecsearch.calibration", "CalibrationReport"),
    "Collection": ("vecsearch.store.collection", "Collection"),
    "fde": ("vecsearch.codecs.fde", None),
    "datasets": ("vecsearch.benchmark.datasets", None),
    "evaluation": ("vecsearch.benchmark.evaluation", None),
    "predicates": ("vecsearch.filtering.predicates", None),
}


def __getattr__(name: str) -> Any:
    entry = _LAZY.get(name)
    if entry is None:
        raise AttributeError(f"module 'vecsearch' has no attribute {name!r}")
    module = importlib.import_module(entry[0])
    value = module if entry[1] is None else getattr(module, entry[1])
    globals()[name] = value
    return value


__all__ = [
    "F",
    "FDEConfig",
    "FlatIndex",
    "HNSWIndex",
    "IVFFastScanIndex",
    "IVFPQIndex",
    "Index",
    "IndexFileError",
    "LeanVecIndex",
    "MultiVectorIndex",
    "SearchResult",
    "describe",
    "index_factory",
    "load",
    "warmup",
    "ProductQuantizer",
    "Collection",
    "CalibrationReport",
]
__version__ = "0.1.0"
