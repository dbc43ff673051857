"""vecsearch as an ann-benchmarks algorithm module (https://github.com/erikbern/ann-benchmarks).

To run vecsearch inside an ann-benchmarks checkout (the files are in ``bench/ann_benchmarks/`` of
the vecsearch repository, in ann-benchmarks' layout; ``bench/ann_benchmarks/README.md``)::

    bench/ann_benchmarks/install.sh /path/to/ann-benchmarks   # Dockerfile, config.yml, module.py, wheel
    cd /path/to/ann-benchmarks
    python install.py --algorithm vecsearch                   # Docker image ann-benchmarks-vecsearch
    python run.py --dataset glove-100-angular --algorithm vecsearch-hnsw
    # or without Docker: pip install /path/to/vecsearch && python run.py --local ...

One class, :class:`Vecsearch`, serves every registered index type (:mod:`vecsearch.registry`):
``method_param`` names the type (``{"index": "hnsw", "M": 16, "ef_construction": 200}``) and its
build parameters (defaults: the type's ``suggested_params`` for the data, so IVF-PQ's ``m`` fits
any dimension); the query arguments are the type's search knobs in order (``ef``; ``nprobe``,
``rerank``). It follows ann-benchmarks' ``BaseANN`` protocol: ``fit(X)``,
``set_query_arguments(...)``, ``query(v, n)``, ``batch_query(X, n)`` + ``get_batch_results()``,
``get_memory_usage()`` (kB), ``done()`` and ``__str__``. ann-benchmarks metrics map as
``angular`` -> ``cosine`` and ``euclidean`` -> ``l2``.

``fit`` compiles (or loads from numba's cache) the search kernels before it returns, so no timed
query pays for compilation, and then pins numba to one thread for the queries, as ann-benchmarks'
hnswlib wrapper does. ``get_memory_usage`` reports the index's own bytes (not the process' RSS,
which would count numba's compiler too).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from .. import (
    indexes,  # noqa: F401  (defines, and so registers, every index type)
    registry,
)
from ..benchmark.datasets import metric_from_ann

try:  # inside an ann-benchmarks checkout, be a real BaseANN subclass
    from ann_benchmarks.algorithms.base.module import BaseANN as _Base
except Exception:  # noqa: BLE001 - any failure means "not inside ann-benchmarks"
    _Base = object

__all__ = ["Vecsearch"]


class Vecsearch(_Base):
    """Any vecsearch index type under ann-benchmarks (see the module docstring)."""

    def __init__(self, metric: str, method_param: dict[str, Any]):
        params = dict(method_param)
        if "index" not in params:
            raise ValueError(f"method_param: expected an 'index' entry naming the type, got {sorted(params)}")
        self._record = registry.get(params.pop("index"))
        if not self._record.vector_input:
            raise ValueError(f"method_param: index {self._record.name!r} does not take single vectors")
        self._metric = metric_from_ann(metric)
        self._build_params = params
        self._fitted_params: dict[str, Any] = {}  # build parameters in effect (suggested ones filled in)
        self._search_params: dict[str, Any] = {}
        self._index: Any = None
        self._res: np.ndarray | None = None
        self.name = self._describe()

    def _describe(self) -> str:
        parts = {**(self._fitted_params or self._build_params), **self._search_params}
        inner = ", ".join(f"{k}={v}" for k, v in parts.items())
        return f"vecsearch-{self._record.name}({inner})"

    # ---- BaseANN protocol -----------------------------------------------------------------------
    def fit(self, X: np.ndarray) -> None:
        x = np.ascontiguousarray(X, dtype=np.float32)
        cls = self._record.cls
        params = {**cls.suggested_params(x.shape[0], x.shape[1]), **self._build_params}
        index = cls(x.shape[1], self._metric, **params)
        if index.requires_training:
            index.train(x)
        index.add(x)
        for batch in (x[:1], x[:32]):  # compile the search kernels now, not in the first timed query
            index.search(batch, 10, **self._search_params)
        self._index = index
        self._fitted_params = params  # the name now shows derived ones too (IVF-PQ's nlist and m)
        self.name = self._describe()
        numba.set_num_threads(1)

    def set_query_arguments(self, *args: Any) -> None:
        knobs = self._record.search_knobs
        if len(args) > len(knobs):
            raise ValueError(f"query_args: {self._record.name} takes {list(knobs)}, got {len(args)} values")
        self._search_params = {name: value for name, value in zip(knobs, args) if value is not None}
        self.name = self._describe()

    def query(self, v: np.ndarray, n: int) -> np.ndarray:
        ids = self._index.search(np.asarray(v, np.float32).reshape(1, -1), n, **self._search_params).ids[0]
        return ids[ids >= 0]

    def batch_query(self, X: np.ndarray, n: int) -> None:
        self._res = self._index.search(np.asarray(X, np.float32), n, **self._search_params).ids

    def get_batch_results(self) -> list[np.ndarray]:
        if self._res is None:
            raise ValueError("get_batch_results: call batch_query(X, n) first")
        return [row[row >= 0] for row in self._res]

    def get_memory_usage(self) -> float:
        """The index's own bytes in kilobytes (0 before ``fit``): ann-benchmarks reports the increase."""
        return 0.0 if self._index is None else self._index.memory_bytes() / 1024

    def get_additional(self) -> dict[str, Any]:
        return {}

    def done(self) -> None:
        self._index = None

    def freeIndex(self) -> None:
        self.done()

    def __str__(self) -> str:
        return self.name
