"""LVQ codecs (Aguerrebere et al., VLDB 2023): ``LVQ8``, ``LVQ4`` and the two-level ``LVQ4x8``.

A codec holds one global mean ``mu``; each vector stores integer codes of ``x - mu`` on a
per-vector uniform grid ``low + delta * c`` with ``delta`` and ``low`` kept as float16 (the codes
are computed with the rounded values, so the stored grid is the one used for encoding). The
float16 values are rounded outward (``low`` down, ``delta`` up) so the grid always covers
``[min(x - mu), max(x - mu)]`` and every coordinate is within half a step of its code.

>>> codec = LVQ8().fit(x)                     # x: (n, d) float32
>>> rows = codec.encode(x)                    # (n, d + 4) uint8
>>> codec.decode(rows)                        # (n, d) float32
>>> codec.scores(queries, rows, "ip")         # (nq, n) -<q, x_hat>, computed on the codes
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kernels.lvq_codes import (
    KIND_LVQ4,
    KIND_LVQ4X8,
    KIND_LVQ8,
    f16_table,
    lvq_decode,
    lvq_encode,
    lvq_scores,
)
from ..parallel import run_shared, workers_for

ENCODE_GRAIN = 4096  # vectors per chunk handed to a thread by encode()
_F16 = None


def f16_values() -> np.ndarray:
    """The cached float16 -> float32 lookup table passed to the LVQ kernels."""
    global _F16
    if _F16 is None:
        _F16 = f16_table()
    return _F16


def _f16_down(v: np.ndarray) -> np.ndarray:
    """Largest float16 <= v (float32 in, float16 out)."""
    h = v.astype(np.float16)
    above = h.astype(np.float32) > v
    h[above] = np.nextafter(h[above], np.float16(-np.inf))
    return h


def _f16_up(v: np.ndarray) -> np.ndarray:
    """Smallest float16 >= v."""
    h = v.astype(np.float16)
    below = h.astype(np.float32) < v
    h[below] = np.nextafter(h[below], np.float16(np.inf))
    return h


class LVQCodec:
    """Base of the LVQ codecs; subclasses set ``kind``, ``bits`` and ``name``."""

    kind: int = KIND_LVQ8
    bits: int = 8
    name: str = "lvq8"

    def __init__(self, mu: np.ndarray | None = None):
        self.mu = None if mu is None else np.ascontiguousarray(mu, dtype=np.float32)

    # ---- sizes ---------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        if self.mu is None:
            raise ValueError(f"{type(self).__name__}: not fitted; call fit(x) first")
        return int(self.mu.shape[0])

    def code_bytes(self, d: int | None = None) -> int:
        d = self.dim if d is None else d
        if self.kind == KIND_LVQ8:
            return d
        if self.kind == KIND_LVQ4:
            return (d + 1) // 2
        return (d + 1) // 2 + d

    @property
    def row_bytes(self) -> int:
        """Bytes per encoded vector: codes plus 4 bytes of float16 delta and low."""
        return self.code_bytes() + 4

    @property
    def levels(self) -> int:
        """Number of grid points of the first level (2^B)."""
        return 256 if self.kind == KIND_LVQ8 else 16

    # ---- fit / encode / decode -----------------------------------------------------------------
    def fit(self, x: Any) -> LVQCodec:
        """Set the global mean from ``x`` (n, d); returns self."""
        x = self._vectors(x, None)
        if x.shape[0] == 0:
            raise ValueError("x: expected at least one vector to fit the LVQ mean, got 0 rows")
        self.mu = x.mean(axis=0, dtype=np.float64).astype(np.float32)
        return self

    def _vectors(self, x: Any, d: int | None, name: str = "x") -> np.ndarray:
        arr = np.asarray(x)
        if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
            raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
        if arr.ndim != 2 or (d is not None and arr.shape[1] != d):
            raise ValueError(
                f"{name}: expected shape (n, {d if d is not None else 'd'}), got {arr.shape}"
            )
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if arr.size and not np.isfinite(arr).all():
            raise ValueError(f"{name}: expected finite values, got NaN or inf")
        return arr

    def scales(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-vector ``(delta, low)`` as float16 (n,) for ``x`` (n, d) float32."""
        centered_min = (x - self.mu).min(axis=1)
        centered_max = (x - self.mu).max(axis=1)
        low = _f16_down(centered_min)
        span = centered_max - low.astype(np.float32)
        delta = _f16_up(np.maximum(span, 0) / np.float32(self.levels - 1))
        return delta, low

    def encode(self, x: Any) -> np.ndarray:
        """Encode ``x`` (n, d) into uint8 rows (n, row_bytes)."""
        x = self._vectors(x, self.dim)
        n = x.shape[0]
        rows = np.zeros((n, self.row_bytes), np.uint8)
        if n == 0:
            return rows
        delta, low = self.scales(x)
        deltas, lows = delta.astype(np.float32), low.astype(np.float32)

        def encode_chunk(start: int, stop: int, _worker: int) -> None:
            lvq_encode(self.kind, x, self.mu, deltas, lows, rows, start, stop)

        run_shared(encode_chunk, n, workers_for(n), grain=ENCODE_GRAIN)
        nb = self.code_bytes()
        rows[:, nb : nb + 2] = delta.view(np.uint8).reshape(n, 2)
        rows[:, nb + 2 : nb + 4] = low.view(np.uint8).reshape(n, 2)
        return rows

    def _rows(self, rows: Any) -> np.ndarray:
        arr = np.asarray(rows)
        if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != self.row_bytes:
            raise ValueError(
                f"rows: expected uint8 (n, {self.row_bytes}), got {arr.dtype} {arr.shape}"
            )
        return np.ascontiguousarray(arr)

    def row_scales(self, rows: Any) -> tuple[np.ndarray, np.ndarray]:
        """Stored ``(delta, low)`` float16 (n,) of encoded ``rows``."""
        rows = self._rows(rows)
        nb = self.code_bytes()
        delta = np.ascontiguousarray(rows[:, nb : nb + 2]).view(np.float16)[:, 0]
        low = np.ascontiguousarray(rows[:, nb + 2 : nb + 4]).view(np.float16)[:, 0]
        return delta, low

    def decode(self, rows: Any) -> np.ndarray:
        """Decode uint8 ``rows`` (n, row_bytes) into float32 (n, d)."""
        rows = self._rows(rows)
        out = np.empty((rows.shape[0], self.dim), np.float32)
        if rows.shape[0]:
            lvq_decode(self.kind, rows, self.mu, f16_values(), out)
        return out

    def scores(self, queries: Any, rows: Any, metric: str = "l2") -> np.ndarray:
        """Smaller-is-better scores (nq, n) computed on the codes: squared L2 or ``-<q, x_hat>``."""
        if metric not in ("l2", "ip"):
            raise ValueError(f"metric: expected 'l2' or 'ip', got {metric!r}")
        q = self._vectors(queries, self.dim, "queries")
        rows = self._rows(rows)
        out = np.empty((q.shape[0], rows.shape[0]), np.float32)
        if out.size:
            lvq_scores(self.kind, 0 if metric == "l2" else 1, q, rows, self.mu, f16_values(), out)
        return out

    # ---- persistence ---------------------------------------------------------------------------
    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}mu": self.mu}

    def __repr__(self) -> str:
        d = "unfitted" if self.mu is None else f"dim={self.dim}"
        return f"{type(self).__name__}({d})"


class LVQ8(LVQCodec):
    """One-level 8-bit LVQ: D + 4 bytes per vector."""

    kind, bits, name = KIND_LVQ8, 8, "lvq8"


class LVQ4(LVQCodec):
    """One-level 4-bit LVQ, two codes per byte: ceil(D/2) + 4 bytes per vector."""

    kind, bits, name = KIND_LVQ4, 4, "lvq4"


class LVQ4x8(LVQCodec):
    """Two-level LVQ: 4-bit codes plus an 8-bit residual in [-delta/2, delta/2] (step delta/255)."""

    kind, bits, name = KIND_LVQ4X8, 12, "lvq4x8"


CODECS: dict[str, type[LVQCodec]] = {"lvq8": LVQ8, "lvq4": LVQ4, "lvq4x8": LVQ4x8}


def make_codec(name: str, mu: np.ndarray | None = None) -> LVQCodec:
    """Codec instance for ``name`` in ``CODECS``."""
    if name not in CODECS:
        raise ValueError(f"codec: expected one of {sorted(CODECS)}, got {name!r}")
    return CODECS[name](mu)
