"""LVQ kernels: encode, decode and distances computed directly on LVQ codes.

Row layout (one ``uint8`` row per vector, no padding)::

    LVQ8    [ D code bytes                          | delta f16 | low f16 ]   D + 4 bytes
    LVQ4    [ ceil(D/2) bytes, two 4-bit codes/byte | delta f16 | low f16 ]   ceil(D/2) + 4 bytes
    LVQ4x8  [ ceil(D/2) 4-bit codes | D 8-bit residual codes | delta | low ] ceil(D/2) + D + 4

4-bit packing: dimension ``2i`` sits in the low nibble of byte ``i``, ``2i+1`` in the high nibble.
The float16 scale/bias are little-endian and decoded arithmetically (:func:`half_to_float`; numba
has no float16 type on the CPU). ``f16_table`` (65536,) float32 maps float16 bits to values for
bulk float16 data (the float16 secondary vectors); the ``f16`` argument of the kernels is that table.

Decoding (``mu`` is the codec's global mean, float32 ``(D,)``):

* one level: ``x = delta * c + low + mu``
* two levels: ``x = delta * c1 + low + (delta2 * c2 - delta / 2) + mu``, ``delta2 = delta / 255``

Distances on codes (no decode into a float buffer):

* ``<q, x> = delta * <q, c> + low * sum(q) + <q, mu>``       (``q_sum``, ``q_mu`` once per query)
* ``||q - x||^2 = ||(q - mu) - (delta * c + low)||^2``          (``q - mu`` once per query)
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import jit, jit_parallel

KIND_LVQ8 = 0
KIND_LVQ4 = 1
KIND_LVQ4X8 = 2


def f16_table() -> np.ndarray:
    """float32 ``(65536,)``: the value of every float16 bit pattern (index = the uint16 bits)."""
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)


# 2^(e - 25) for every float16 exponent field e: value = (1024 + mantissa) * _POW2[e] (normal numbers).
_POW2 = np.array([2.0 ** (e - 25) for e in range(32)], dtype=np.float32)


@jit(inline="always")
def query_terms(q, mu, qm):
    """Per-query terms of the code kernels: ``qm`` (d,) f32 <- ``q - mu``; returns ``(sum(q), <q, mu>)``."""
    q_sum = np.float32(0.0)
    q_mu = np.float32(0.0)
    for j in range(q.shape[0]):
        qm[j] = q[j] - mu[j]
        q_sum += q[j]
        q_mu += q[j] * mu[j]
    return q_sum, q_mu


@jit(inline="always")
def half_to_float(bits):
    """float32 value of float16 ``bits`` (int); finite values only (the encoder never stores inf/NaN).

    Arithmetic decode: a 256 KB lookup table costs a cache miss per vector in the graph walk.
    """
    e = (bits >> 10) & 31
    m = bits & 1023
    if e == 0:
        v = np.float32(m) * np.float32(2.0**-24)
    else:
        v = np.float32(m + 1024) * _POW2[e]
    return -v if bits & 0x8000 else v


@jit(inline="always")
def row_scales(row, f16, nb):
    """``(delta, low)`` float32 of an LVQ ``row`` whose codes occupy the first ``nb`` bytes."""
    delta = half_to_float(np.int64(row[nb]) | (np.int64(row[nb + 1]) << 8))
    low = half_to_float(np.int64(row[nb + 2]) | (np.int64(row[nb + 3]) << 8))
    return delta, low


# ---- inner products <q, c> over the integer codes -----------------------------------------------
@jit(inline="always")
def dot_codes8(q, row, start):
    """``sum_j q[j] * row[start + j]`` for ``q`` (d,) float32 and 8-bit codes."""
    acc = np.float32(0.0)
    for j in range(q.shape[0]):
        acc += q[j] * np.float32(row[start + j])
    return acc


@jit(inline="always")
def dot_codes4(q, row):
    """``sum_j q[j] * c[j]`` for packed 4-bit codes in ``row[:ceil(d/2)]``."""
    d = q.shape[0]
    half = d // 2
    acc0 = np.float32(0.0)
    acc1 = np.float32(0.0)
    for i in range(half):
        b = row[i]
        acc0 += q[2 * i] * np.float32(b & 15)
        acc1 += q[2 * i + 1] * np.float32(b >> 4)
    if d & 1:
        acc0 += q[d - 1] * np.float32(row[half] & 15)
    return acc0 + acc1


@jit(inline="always")
def l2_codes8(qm, row, start, delta, low):
    """``||qm - (delta * c + low)||^2`` for 8-bit codes ``row[start:start+d]``; ``qm`` = q - mu."""
    acc = np.float32(0.0)
    for j in range(qm.shape[0]):
        t = qm[j] - low - delta * np.float32(row[start + j])
        acc += t * t
    return acc


@jit(inline="always")
def l2_codes4(qm, row, delta, low):
    """``||qm - (delta * c + low)||^2`` for packed 4-bit codes."""
    d = qm.shape[0]
    half = d // 2
    acc0 = np.float32(0.0)
    acc1 = np.float32(0.0)
    for i in range(half):
        b = row[i]
        t0 = qm[2 * i] - low - delta * np.float32(b & 15)
        t1 = qm[2 * i + 1] - low - delta * np.float32(b >> 4)
        acc0 += t0 * t0
        acc1 += t1 * t1
    if d & 1:
        t = qm[d - 1] - low - delta * np.float32(row[half] & 15)
        acc0 += t * t
    return acc0 + acc1


@jit(inline="always")
def l2_codes4x8(qm, row, delta, low):
    """``||qm - x_hat||^2`` for two-level codes (4-bit level one, 8-bit residual)."""
    d = qm.shape[0]
    nb1 = (d + 1) // 2
    delta2 = delta / np.float32(255.0)
    base = low - np.float32(0.5) * delta
    acc = np.float32(0.0)
    for j in range(d):
        b = row[j >> 1]
        c1 = (b >> 4) if (j & 1) else (b & 15)
        t = qm[j] - base - delta * np.float32(c1) - delta2 * np.float32(row[nb1 + j])
        acc += t * t
    return acc


@jit(inline="always")
def code_bytes(kind, d):
    """Bytes of codes (without the 4 scale/bias bytes) for ``kind`` and dimension ``d``."""
    if kind == 0:
        return d
    if kind == 1:
        return (d + 1) // 2
    return (d + 1) // 2 + d


@jit(inline="always")
def lvq_ip(kind, q, q_sum, q_mu, row, f16):
    """``<q, x_hat>`` for an LVQ ``row`` of ``kind``; ``q_sum = sum(q)``, ``q_mu = <q, mu>``."""
    d = q.shape[0]
    nb = code_bytes(kind, d)
    delta, low = row_scales(row, f16, nb)
    if kind == 0:
        return delta * dot_codes8(q, row, 0) + low * q_sum + q_mu
    if kind == 1:
        return delta * dot_codes4(q, row) + low * q_sum + q_mu
    delta2 = delta / np.float32(255.0)
    return (
        delta * dot_codes4(q, row)
        + delta2 * dot_codes8(q, row, (d + 1) // 2)
        + (low - np.float32(0.5) * delta) * q_sum
        + q_mu
    )


@jit(inline="always")
def lvq_l2(kind, qm, row, f16):
    """``||q - x_hat||^2`` for an LVQ ``row`` of ``kind``; ``qm = q - mu`` float32 (d,)."""
    d = qm.shape[0]
    nb = code_bytes(kind, d)
    delta, low = row_scales(row, f16, nb)
    if kind == 0:
        return l2_codes8(qm, row, 0, delta, low)
    if kind == 1:
        return l2_codes4(qm, row, delta, low)
    return l2_codes4x8(qm, row, delta, low)


@jit(inline="always")
def lvq8_ip(q, q_sum, q_mu, row, f16):
    """:func:`lvq_ip` of an LVQ8 row alone: the graph walk's hot path inlines this, not the
    three-kind function (inlined, every kind's branch is compiled at every call site)."""
    delta, low = row_scales(row, f16, q.shape[0])
    return delta * dot_codes8(q, row, 0) + low * q_sum + q_mu


@jit(inline="always")
def lvq8_l2(qm, row, f16):
    """:func:`lvq_l2` of an LVQ8 row alone (see :func:`lvq8_ip`)."""
    delta, low = row_scales(row, f16, qm.shape[0])
    return l2_codes8(qm, row, 0, delta, low)


# ---- encode / decode ---------------------------------------------------------------------------
@jit
def lvq_encode(kind, x, mu, deltas, lows, rows, start, stop):
    """Encode rows ``start .. stop - 1`` of ``x`` (n, d) float32 into ``rows`` (n, row_bytes) uint8.

    ``deltas``/``lows`` (n,) float32 hold the float16-rounded level-one step and minimum of each
    ``x - mu`` (the values the codes are computed with); their float16 bits are written by the
    caller into the last 4 bytes of each row. Serial: the caller hands chunks to threads
    (a ``prange`` kernel measured ~0.6 s more compilation on a first ``add``).
    """
    d = x.shape[1]
    levels = 255 if kind == 0 else 15
    for i in range(start, stop):
        delta = deltas[i]
        low = lows[i]
        inv = np.float32(1.0) / delta if delta > 0 else np.float32(0.0)
        row = rows[i]
        nb1 = (d + 1) // 2
        for j in range(d):
            v = x[i, j] - mu[j] - low
            c = np.int64(np.floor(v * inv + np.float32(0.5)))
            c = min(max(c, 0), levels)
            if kind == 0:
                row[j] = c
            else:
                if j & 1:
                    row[j >> 1] |= np.uint8(c << 4)
                else:
                    row[j >> 1] = np.uint8(c)
                if kind == 2:
                    # Residual in [-delta/2, delta/2], step delta / 255.
                    r = v - delta * np.float32(c) + np.float32(0.5) * delta
                    inv2 = np.float32(255.0) * inv
                    c2 = np.int64(np.floor(r * inv2 + np.float32(0.5)))
                    row[nb1 + j] = min(max(c2, 0), 255)


@jit
def lvq_decode_row(kind, row, mu, f16, out):
    """Decode one code ``row`` (row_bytes,) uint8 into ``out`` (d,) float32: ``x_hat``, mean included."""
    d = mu.shape[0]
    nb = code_bytes(kind, d)
    nb1 = (d + 1) // 2
    delta, low = row_scales(row, f16, nb)
    delta2 = delta / np.float32(255.0)
    for j in range(d):
        if kind == 0:
            c = np.float32(row[j])
        else:
            b = row[j >> 1]
            c = np.float32((b >> 4) if (j & 1) else (b & 15))
        v = delta * c + low + mu[j]
        if kind == 2:
            v += delta2 * np.float32(row[nb1 + j]) - np.float32(0.5) * delta
        out[j] = v


@jit(inline="always")
def lvq8_decode_row(row, mu, f16, out):
    """:func:`lvq_decode_row` of an LVQ8 row alone (the common encoding, without the 4-bit branches)."""
    d = mu.shape[0]
    delta, low = row_scales(row, f16, d)
    for j in range(d):
        out[j] = delta * np.float32(row[j]) + low + mu[j]


@jit_parallel
def lvq_decode(kind, rows, mu, f16, out):
    """Decode ``rows`` (n, row_bytes) uint8 into ``out`` (n, d) float32 (``d = mu.shape[0]``)."""
    for i in prange(rows.shape[0]):
        lvq_decode_row(kind, rows[i], mu, f16, out[i])


@jit_parallel
def lvq_scores(kind, metric, queries, rows, mu, f16, out):
    """Scores (smaller is better) of ``queries`` (nq, d) f32 vs every LVQ row, into ``out`` (nq, n) f32.

    ``metric`` 0 = squared L2, 1 = negative inner product; computed on the codes.
    """
    nq, d = queries.shape
    for qi in prange(nq):
        q = queries[qi]
        qm = np.empty(d, np.float32)
        q_sum, q_mu = query_terms(q, mu, qm)
        for i in range(rows.shape[0]):
            if metric == 0:
                out[qi, i] = lvq_l2(kind, qm, rows[i], f16)
            else:
                out[qi, i] = -lvq_ip(kind, q, q_sum, q_mu, rows[i], f16)
