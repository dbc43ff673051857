"""LeanVec dimension reduction (Tepper et al., TMLR 2024): LeanVec-ID (PCA) and LeanVec-OOD (Frank-Wolfe).

A :class:`LeanVecProjection` maps database vectors to ``(x - mu) @ B`` and queries to
``(q - mu) @ A`` (L2) or ``q @ A`` (inner product), float32 ``(n, d)``. It is trained once and
reusable: ``to_arrays()`` / ``from_arrays()`` give its plain-array form for persistence.

* ``train_leanvec_id(x, d)``: ``mu`` = mean of the database, ``A = B = P`` = the top-``d`` right
  singular vectors of a sample (<= 100k rows) of ``x - mu``.
* ``train_leanvec_ood(x, queries, d)``: ``KQ = QᵀQ``, ``KX = XᵀX`` (means over the samples; the
  scale does not move the minimizer) and Frank-Wolfe block-coordinate descent on
  ``f(A, B) = tr(B Aᵀ KQ A Bᵀ KX) - 2 tr(KQ A Bᵀ KX) + tr(KQ KX)`` over D x d matrices of
  spectral norm <= 1, starting from ``A = B = 0``, ``γ = 1/(t+1)^0.999``, stopping when the
  relative loss change is below ``tol``. No centering (``mu = 0``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .pq import single_threaded_blas

MAX_SAMPLE = 100_000


# Query batches of at least this many rows are projected on one BLAS thread (entering the limit costs
# ~10-20 us: more than a single query's product, nothing next to a batch's walk). OpenBLAS's threads,
# left spinning after a batch's product, took cores from the graph walk.
ONE_THREAD_MIN_ROWS = 32


@dataclass
class LeanVecProjection:
    """A trained LeanVec projection. ``kind`` is ``"id"`` or ``"ood"``.

    ``mu`` float32 (D,) (zeros for OOD); ``database_matrix`` (B) and ``query_matrix`` (A) float32 (D, d).
    """

    kind: str
    mu: np.ndarray
    database_matrix: np.ndarray
    query_matrix: np.ndarray
    loss_history: list[float] = field(default_factory=list)

    @property
    def dim(self) -> int:
        return int(self.database_matrix.shape[0])

    @property
    def reduced_dim(self) -> int:
        return int(self.database_matrix.shape[1])

    def transform_database(self, x: np.ndarray) -> np.ndarray:
        """``(x - mu) @ B`` float32 (n, d) for ``x`` (n, D) float32."""
        x = np.asarray(x, np.float32)
        if self.kind == "id":
            x = x - self.mu
        return np.ascontiguousarray(x @ self.database_matrix, dtype=np.float32)

    def transform_queries(self, q: np.ndarray, metric: str) -> np.ndarray:
        """Queries in the reduced space: ``(q - mu) @ A`` for ``l2`` (ID), else ``q @ A``."""
        q = np.asarray(q, np.float32)
        if self.kind == "id" and metric == "l2":
            q = q - self.mu
        if q.ndim == 2 and q.shape[0] >= ONE_THREAD_MIN_ROWS:
            with single_threaded_blas():
                return np.ascontiguousarray(q @ self.query_matrix, dtype=np.float32)
        return np.ascontiguousarray(q @ self.query_matrix, dtype=np.float32)

    def approx_inner_products(self, q: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The projection's estimate of ``q @ x.T`` (nq, n): ``qA (x-mu)B ᵀ + <q, mu>``."""
        est = self.transform_queries(q, "ip") @ self.transform_database(x).T
        if self.kind == "id":
            est += (np.asarray(q, np.float32) @ self.mu)[:, None]
        return est

    def to_arrays(self, prefix: str = "leanvec_") -> dict[str, np.ndarray]:
        return {
            f"{prefix}mu": self.mu,
            f"{prefix}database_matrix": self.database_matrix,
            f"{prefix}query_matrix": self.query_matrix,
        }

    @classmethod
    def from_arrays(
        cls, kind: str, arrays: dict[str, np.ndarray], prefix: str = "leanvec_"
    ) -> LeanVecProjection:
        if kind not in ("id", "ood"):
            raise ValueError(f"kind: expected 'id' or 'ood', got {kind!r}")
        mu = np.asarray(arrays[f"{prefix}mu"], np.float32)
        b = np.asarray(arrays[f"{prefix}database_matrix"], np.float32)
        a = np.asarray(arrays[f"{prefix}query_matrix"], np.float32)
        if b.ndim != 2 or a.shape != b.shape or mu.shape != (b.shape[0],):
            raise ValueError(
                f"leanvec arrays: inconsistent shapes mu {mu.shape}, A {a.shape}, B {b.shape}"
            )
        return cls(kind, mu, b, a)


def _check_inputs(x: Any, d: int, name: str = "x") -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty (n, D) array, got shape {arr.shape}")
    D = arr.shape[1]
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 1 <= d < D:
        raise ValueError(
            f"reduced_dim: expected an integer in [1, {D - 1}] (below the dimension {D}), got {d!r}"
        )
    return arr


def _sample(x: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """At most ``max_rows`` rows of ``x`` (seeded), float32 (the D x D products are then taken in float64)."""
    if x.shape[0] <= max_rows:
        return np.asarray(x, np.float32)
    rows = np.sort(np.random.default_rng(seed).choice(x.shape[0], max_rows, replace=False))
    return np.asarray(x[rows], np.float32)


def _gram(s: np.ndarray) -> np.ndarray:
    """``sᵀ s / n`` as float64 (D, D), accumulated in float32 blocks and summed in float64."""
    out = np.zeros((s.shape[1], s.shape[1]))
    for start in range(0, s.shape[0], 8192):
        block = s[start : start + 8192]
        out += (block.T @ block).astype(np.float64)
    return out / s.shape[0]


def train_leanvec_id(
    x: Any, reduced_dim: int, *, max_sample: int = MAX_SAMPLE, seed: int = 0
) -> LeanVecProjection:
    """LeanVec-ID: PCA of ``x - mu`` on a sample of at most ``max_sample`` rows."""
    x = _check_inputs(x, reduced_dim)
    with single_threaded_blas():
        return _train_id(x, reduced_dim, max_sample, seed)


def _train_id(x: np.ndarray, reduced_dim: int, max_sample: int, seed: int) -> LeanVecProjection:
    sample = _sample(x, max_sample, seed)
    mu = np.asarray(x).mean(axis=0, dtype=np.float64)
    # Right singular vectors = eigenvectors of the D x D covariance (cheaper than an n x D SVD).
    cov = _gram(sample - mu.astype(np.float32))
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1][:reduced_dim]
    p = np.ascontiguousarray(evecs[:, order], dtype=np.float32)
    return LeanVecProjection("id", mu.astype(np.float32), p, p.copy())


def _lmo(grad: np.ndarray) -> np.ndarray:
    """Linear minimization oracle over the spectral-norm ball: ``U Vᵀ`` of the thin SVD of ``-grad``."""
    u, _, vt = np.linalg.svd(-grad, full_matrices=False)
    return u @ vt


def ood_loss(a: np.ndarray, b: np.ndarray, kq: np.ndarray, kx: np.ndarray) -> float:
    """``tr(B Aᵀ KQ A Bᵀ KX) - 2 tr(KQ A Bᵀ KX) + tr(KQ KX)`` (float64)."""
    aq = kq @ a  # D x d
    bx = kx @ b  # D x d
    term1 = np.trace((a.T @ aq) @ (b.T @ bx))
    term2 = np.trace(aq.T @ bx)  # tr(Aᵀ KQ KX B) = tr(KQ A Bᵀ KX)
    term3 = np.sum(kq * kx)  # tr(KQ KX), both symmetric
    return float(term1 - 2.0 * term2 + term3)


def train_leanvec_ood(
    x: Any,
    queries: Any,
    reduced_dim: int,
    *,
    max_iter: int = 500,
    tol: float = 1e-3,
    max_sample: int = MAX_SAMPLE,
    seed: int = 0,
) -> LeanVecProjection:
    """LeanVec-OOD by Frank-Wolfe block-coordinate descent (database ``x B``, query ``q A``)."""
    x = _check_inputs(x, reduced_dim)
    q = np.asarray(queries)
    if q.dtype == object or not np.issubdtype(q.dtype, np.number):
        raise TypeError(f"queries: expected a numeric array, got dtype {q.dtype}")
    if q.ndim != 2 or q.shape[1] != x.shape[1] or q.shape[0] == 0:
        raise ValueError(
            f"queries: expected a non-empty (m, {x.shape[1]}) query sample, got shape {q.shape}"
        )
    with single_threaded_blas():
        return _train_ood(x, q, reduced_dim, max_iter, tol, max_sample, seed)


def _train_ood(x, q, reduced_dim, max_iter, tol, max_sample, seed) -> LeanVecProjection:
    xs = _sample(x, max_sample, seed)
    qs = _sample(q, max_sample, seed + 1)
    kx = _gram(xs)
    kq = _gram(qs)
    kqkx = kq @ kx
    D = x.shape[1]
    a = np.zeros((D, reduced_dim))
    b = np.zeros((D, reduced_dim))
    loss = ood_loss(a, b, kq, kx)
    history = [loss]
    for t in range(max_iter):
        gamma = 1.0 / (t + 1) ** 0.999
        # gradA = 2 KQ A Bᵀ KX B - 2 KQ KX B
        grad_a = 2.0 * (kq @ (a @ (b.T @ (kx @ b)))) - 2.0 * (kqkx @ b)
        a = (1.0 - gamma) * a + gamma * _lmo(grad_a)
        # gradB = 2 KX B Aᵀ KQ A - 2 KX KQ A
        grad_b = 2.0 * (kx @ (b @ (a.T @ (kq @ a)))) - 2.0 * (kqkx.T @ a)
        b = (1.0 - gamma) * b + gamma * _lmo(grad_b)
        new_loss = ood_loss(a, b, kq, kx)
        history.append(new_loss)
        change = abs(loss - new_loss) / max(abs(loss), 1e-30)
        loss = new_loss
        if t > 0 and change < tol:
            break
    zeros = np.zeros(D, np.float32)
    return LeanVecProjection(
        "ood",
        zeros,
        np.ascontiguousarray(b, np.float32),
        np.ascontiguousarray(a, np.float32),
        history,
    )
