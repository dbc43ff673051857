"""Vector codecs usable on their own: :class:`ProductQuantizer` and the OPQ rotation trainer.

>>> pq = ProductQuantizer(dim=384, m=48, nbits=8, seed=0).fit(x)   # x (n, 384) float32
>>> codes = pq.encode(x)                                           # (n, 48) uint8
>>> x_hat = pq.decode(codes)                                       # (n, 384) float32
>>> tables = pq.compute_distance_tables(queries, metric="l2")      # (nq, 48, 256) float32
>>> scores = pq.adc(tables, codes)                                 # (nq, n) float32, smaller is better
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from ..kernels.clustering import train_subspaces
from ..kernels.pq_tables import adc_scores, pq_decode, pq_encode, pq_tables
from ..parallel import run_shared, workers_for
from .kmeans import sample_training_rows


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name}: expected an integer {bound}, got {value!r}")
    return int(value)


class ProductQuantizer:
    """Product quantizer: ``m`` sub-spaces of ``dim // m`` dims, ``2**nbits`` codewords each.

    Codes are ``uint8 (n, m)`` (one byte per sub-quantizer, also when ``nbits < 8``). Training is
    squared-L2 k-means per sub-space (``niter`` Lloyd iterations from ``2**nbits`` random training
    rows, at most ``max_points_per_centroid * 2**nbits`` training rows), all sub-spaces in parallel.
    """

    def __init__(
        self,
        dim: int,
        m: int,
        nbits: int = 8,
        *,
        niter: int = 25,
        max_points_per_centroid: int = 256,
        seed: int = 0,
    ):
        self.dim = _check_int("dim", dim, 1)
        self.m = _check_int("m", m, 1)
        self.nbits = _check_int("nbits", nbits, 1, 8)
        self.niter = _check_int("niter", niter, 1)
        self.max_points_per_centroid = _check_int(
            "max_points_per_centroid", max_points_per_centroid, 1
        )
        self.seed = int(seed)
        if self.dim % self.m != 0:
            raise ValueError(
                f"m: the dimension {self.dim} must be divisible by m, got m={self.m} (dim % m = {self.dim % self.m})"
            )
        self.dsub = self.dim // self.m
        self.ksub = 1 << self.nbits
        self._codebooks: np.ndarray | None = None

    # ---- state ------------------------------------------------------------------------------
    @property
    def is_trained(self) -> bool:
        return self._codebooks is not None

    @property
    def codebooks(self) -> np.ndarray:
        """Codewords, float32 ``(m, ksub, dsub)``."""
        self._require_trained("codebooks")
        return self._codebooks

    @property
    def codebooks_t(self) -> np.ndarray:
        """Codebooks transposed for the kernels, float32 ``(m, dsub, ksub)``."""
        self._require_trained("codebooks_t")
        return self._codebooks_t

    @property
    def cb_sq_norms(self) -> np.ndarray:
        """Squared norms of the codewords, float32 ``(m, ksub)``."""
        self._require_trained("cb_sq_norms")
        return self._cb_sq_norms

    @property
    def code_size(self) -> int:
        """Bytes per encoded vector."""
        return self.m

    def set_codebooks(self, codebooks: Any) -> ProductQuantizer:
        """Install trained codewords ``(m, ksub, dsub)`` (e.g. loaded from disk); returns ``self``."""
        cb = np.asarray(codebooks)
        expected = (self.m, self.ksub, self.dsub)
        if cb.shape != expected or cb.dtype != np.float32:
            raise ValueError(f"codebooks: expected float32 {expected}, got {cb.dtype} {cb.shape}")
        self._codebooks = np.ascontiguousarray(cb)
        self._codebooks_t = np.ascontiguousarray(self._codebooks.transpose(0, 2, 1))
        self._cb_sq_norms = np.einsum("jcd,jcd->jc", self._codebooks, self._codebooks).astype(
            np.float32
        )
        return self

    def _require_trained(self, what: str) -> None:
        if self._codebooks is None:
            raise ValueError(
                f"ProductQuantizer.{what}: the quantizer is not trained; call fit(x) first"
            )

    def _vectors(self, x: Any, name: str) -> np.ndarray:
        arr = np.asarray(x)
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ValueError(f"{name}: expected shape (n, {self.dim}), got {arr.shape}")
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            raise TypeError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr, np.float32)
        if arr.size and not np.isfinite(arr).all():
            raise ValueError(f"{name}: expected finite values, got NaN or inf")
        return arr

    # ---- codec ------------------------------------------------------------------------------
    def fit(self, x: Any, *, init_codebooks: np.ndarray | None = None) -> ProductQuantizer:
        """Train the codebooks on ``x`` (n, dim); needs ``n >= 2**nbits``. Returns ``self``.

        ``init_codebooks`` (m, ksub, dsub) f32 warm-starts the Lloyd iterations (used by OPQ).
        """
        x = self._vectors(x, "x")
        if x.shape[0] < self.ksub:
            raise ValueError(
                f"x: training a product quantizer with nbits={self.nbits} needs at least 2**nbits = {self.ksub} "
                f"training points, got {x.shape[0]}"
            )
        rng = np.random.default_rng(self.seed)
        rows = sample_training_rows(x.shape[0], self.ksub, self.max_points_per_centroid, rng)
        if init_codebooks is not None:
            centroids = np.array(init_codebooks, np.float32, copy=True)
        else:
            init_rows = rows[rng.choice(rows.shape[0], self.ksub, replace=False)]
            centroids = np.ascontiguousarray(
                x[init_rows].reshape(self.ksub, self.m, self.dsub).transpose(1, 0, 2), np.float32
            )

        def train(start: int, stop: int, _worker: int) -> None:
            train_subspaces(x, rows, centroids, self.niter, start, stop)

        run_shared(train, self.m, workers_for(self.m), grain=1)
        return self.set_codebooks(centroids)

    def encode(self, x: Any) -> np.ndarray:
        """Codes ``uint8 (n, m)`` of ``x`` (n, dim): the nearest codeword per sub-space."""
        self._require_trained("encode")
        x = self._vectors(x, "x")
        codes = np.empty((x.shape[0], self.m), np.uint8)
        if x.shape[0]:
            pq_encode(x, self._codebooks_t, self._cb_sq_norms, codes)
        return codes

    def decode(self, codes: Any) -> np.ndarray:
        """Reconstructions ``float32 (n, dim)`` of ``codes`` ``uint8 (n, m)``."""
        self._require_trained("decode")
        codes = self._codes(codes)
        out = np.empty((codes.shape[0], self.dim), np.float32)
        if codes.shape[0]:
            pq_decode(codes, self._codebooks, out)
        return out

    def _codes(self, codes: Any) -> np.ndarray:
        arr = np.asarray(codes)
        if arr.dtype != np.uint8:
            raise TypeError(f"codes: expected dtype uint8, got {arr.dtype}")
        if arr.ndim != 2 or arr.shape[1] != self.m:
            raise ValueError(f"codes: expected shape (n, {self.m}), got {arr.shape}")
        if self.nbits < 8 and arr.size and int(arr.max()) >= self.ksub:
            raise ValueError(
                f"codes: expected values < {self.ksub} for nbits={self.nbits}, got {int(arr.max())}"
            )
        return np.ascontiguousarray(arr)

    def compute_distance_tables(self, queries: Any, metric: str = "l2") -> np.ndarray:
        """Lookup tables ``float32 (nq, m, ksub)`` of ``queries`` (nq, dim) or (dim,); smaller is better.

        ``metric="l2"``: squared L2 of each query sub-vector to each codeword (the sum over ``m``
        is the squared distance to the reconstruction); ``"ip"``: negative inner products.
        """
        self._require_trained("compute_distance_tables")
        if metric not in ("l2", "ip"):
            raise ValueError(f"metric: expected 'l2' or 'ip', got {metric!r}")
        q = np.asarray(queries)
        q = self._vectors(q.reshape(1, -1) if q.ndim == 1 else q, "queries")
        out = np.empty((q.shape[0], self.m, self.ksub), np.float32)
        if q.shape[0]:
            pq_tables(q, self._codebooks_t, self._cb_sq_norms, metric == "l2", out)
        return out

    def adc(self, tables: Any, codes: Any) -> np.ndarray:
        """Asymmetric distances ``float32 (nq, n)``: ``sum_j tables[q, j, codes[i, j]]``."""
        self._require_trained("adc")
        tables = np.asarray(tables)
        if tables.ndim != 3 or tables.shape[1:] != (self.m, self.ksub):
            raise ValueError(
                f"tables: expected shape (nq, {self.m}, {self.ksub}), got {tables.shape}"
            )
        tables = np.ascontiguousarray(tables, np.float32)
        codes = self._codes(codes)
        out = np.empty((tables.shape[0], codes.shape[0]), np.float32)
        if out.size:
            adc_scores(tables, codes, out)
        return out

    def __repr__(self) -> str:
        return f"ProductQuantizer(dim={self.dim}, m={self.m}, nbits={self.nbits}, trained={self.is_trained})"


_BLAS_CONTROLLER: Any = None


def blas_limit_available() -> bool:
    """True when threadpoolctl (an optional dependency) can limit the BLAS thread count."""
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _BLAS_CONTROLLER = False
        else:
            _BLAS_CONTROLLER = ThreadpoolController()
    return _BLAS_CONTROLLER is not False


def single_threaded_blas() -> contextlib.AbstractContextManager:
    """Limit BLAS/LAPACK to one thread while the context is open (no-op without threadpoolctl).

    On a busy 2-core box a 384 x 384 SVD is ~10x slower with 2 OpenBLAS threads than with one
    (measured 1.3 s vs 0.1 s), and small matrix products likewise; the controller is created
    once (~10 ms) and each limit costs ~20 us.
    """
    if not blas_limit_available():
        return contextlib.nullcontext()
    return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")


def train_opq_rotation(
    x: Any,
    m: int,
    nbits: int = 8,
    *,
    niter: int = 10,
    pq_niter: int = 4,
    max_train_points: int = 65536,
    seed: int = 0,
) -> np.ndarray:
    """Learn an OPQ rotation ``R`` float32 (dim, dim), orthonormal: quantize ``x @ R`` instead of ``x``.

    Alternates (Ge et al. 2013, non-parametric OPQ): train a PQ on the rotated sample (warm
    started, ``pq_niter`` Lloyd iterations), then solve the orthogonal Procrustes problem
    ``min_R ||X R - decode(encode(X R))||`` by SVD. Starts from the identity. Distances (L2 and
    inner products) are unchanged by the rotation, so queries are simply rotated the same way.
    """
    x = np.ascontiguousarray(x, np.float32)
    dim = x.shape[1]
    rng = np.random.default_rng(seed)
    if x.shape[0] > max_train_points:
        x = x[np.sort(rng.choice(x.shape[0], max_train_points, replace=False))]
    rotation = np.eye(dim, dtype=np.float32)
    codebooks = None
    x64 = x.astype(np.float64)
    for it in range(niter):
        with single_threaded_blas():
            xr = x @ rotation
        pq = ProductQuantizer(dim, m, nbits, niter=pq_niter, seed=seed + it).fit(
            xr, init_codebooks=codebooks
        )
        codebooks = pq.codebooks
        recon = pq.decode(pq.encode(xr))
        with single_threaded_blas():
            u, _, vt = np.linalg.svd(x64.T @ recon.astype(np.float64))
            rotation = (u @ vt).astype(np.float32)
    return np.ascontiguousarray(rotation)
