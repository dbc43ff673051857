"""Product-quantization kernels: encode, decode, lookup tables (LUTs) and the ADC scan.

Shapes used throughout (``m`` sub-quantizers, ``ksub = 2**nbits`` codewords of ``dsub`` dims):

* ``codebooks``   (m, ksub, dsub) f32 — the codewords;
* ``codebooks_t`` (m, dsub, ksub) f32 — the same, transposed so that loops over codewords are
  contiguous (SIMD over the 256 codewords of a sub-space);
* ``cb_sq_norms`` (m, ksub) f32 — squared norms of the codewords;
* ``codes``       (n, m) uint8 — one byte per sub-quantizer (also for nbits < 8);
* a LUT           (m, ksub) f32 — per-query score of every codeword; the ADC score of a code is
  ``sum_j lut[j, code[j]]``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import jit, jit_parallel
from .clustering import ARGMIN_LANES, TILE_ROWS, argmin_of_row, tile_scores

ENCODE_BLOCK = 256


@jit
def pq_encode_rows(x, codebooks_t, cb_sq_norms, codes):
    """Nearest codeword per sub-space (squared L2) for ``x`` (n, m*dsub) f32 -> ``codes`` (n, m) u8."""
    m, dsub, ksub = codebooks_t.shape
    n = x.shape[0]
    offsets = np.empty((m, ksub), np.float32)
    for j in range(m):
        for c in range(ksub):
            offsets[j, c] = np.float32(0.5) * cb_sq_norms[j, c]
    buf = np.empty((TILE_ROWS, ksub), np.float32)
    lanes = np.empty(ARGMIN_LANES, np.float32)
    for row0 in range(0, n, TILE_ROWS):
        n_rows = min(TILE_ROWS, n - row0)
        for j in range(m):
            tile_scores(x, row0, n_rows, j * dsub, codebooks_t[j], offsets[j], buf)
            for a in range(n_rows):
                codes[row0 + a, j] = argmin_of_row(buf[a], lanes)[0]


@jit_parallel
def pq_encode(x, codebooks_t, cb_sq_norms, codes):
    """Parallel :func:`pq_encode_rows` over blocks of rows."""
    n = x.shape[0]
    n_blocks = (n + ENCODE_BLOCK - 1) // ENCODE_BLOCK
    for b in prange(n_blocks):
        start = b * ENCODE_BLOCK
        stop = min(n, start + ENCODE_BLOCK)
        pq_encode_rows(x[start:stop], codebooks_t, cb_sq_norms, codes[start:stop])


@jit_parallel
def pq_decode(codes, codebooks, out):
    """Reconstruct ``out`` (n, m*dsub) f32 from ``codes`` (n, m) u8 and ``codebooks`` (m, ksub, dsub)."""
    m, _, dsub = codebooks.shape
    for i in prange(codes.shape[0]):
        for j in range(m):
            c = codes[i, j]
            for t in range(dsub):
                out[i, j * dsub + t] = codebooks[j, c, t]


@jit(inline="always")
def scaled_table_row(q, codebooks_t, sign, lut):
    """``lut`` (m, ksub) f32 <- ``sign`` * inner products of the sub-vectors of ``q`` (m*dsub,) with every codeword.

    Four dimensions per pass over a table row (one load/store of ``lut`` per four multiply-adds:
    5.3 -> 3.5 us per 48 x 256 x 8 table); ``sign = -1`` gives the inner-product ADC table directly.
    """
    m, dsub, ksub = codebooks_t.shape
    for j in range(m):
        base = j * dsub
        for c in range(ksub):
            lut[j, c] = np.float32(0.0)
        t = 0
        while t + 4 <= dsub:
            q0 = q[base + t] * sign
            q1 = q[base + t + 1] * sign
            q2 = q[base + t + 2] * sign
            q3 = q[base + t + 3] * sign
            for c in range(ksub):
                lut[j, c] += (q0 * codebooks_t[j, t, c] + q1 * codebooks_t[j, t + 1, c]) + (
                    q2 * codebooks_t[j, t + 2, c] + q3 * codebooks_t[j, t + 3, c]
                )
            t += 4
        while t < dsub:
            qv = q[base + t] * sign
            for c in range(ksub):
                lut[j, c] += qv * codebooks_t[j, t, c]
            t += 1


@jit(inline="always")
def inner_table_row(q, codebooks_t, lut):
    """``lut`` (m, ksub) f32 <- inner products of the sub-vectors of ``q`` (m*dsub,) with every codeword."""
    scaled_table_row(q, codebooks_t, np.float32(1.0), lut)


@jit_parallel
def pq_tables(queries, codebooks_t, cb_sq_norms, metric_l2, out):
    """Per-query LUTs ``out`` (nq, m, ksub) f32, smaller is better.

    ``metric_l2`` true: ``||q_j - c||^2``; false: ``-<q_j, c>`` (negative inner product).
    """
    m, dsub, ksub = codebooks_t.shape
    for qi in prange(queries.shape[0]):
        lut = out[qi]
        inner_table_row(queries[qi], codebooks_t, lut)
        for j in range(m):
            if metric_l2:
                q_sq = np.float32(0.0)
                for t in range(dsub):
                    v = queries[qi, j * dsub + t]
                    q_sq += v * v
                for c in range(ksub):
                    lut[j, c] = max(
                        q_sq - np.float32(2.0) * lut[j, c] + cb_sq_norms[j, c], np.float32(0.0)
                    )
            else:
                for c in range(ksub):
                    lut[j, c] = -lut[j, c]


@jit(inline="always")
def adc_one(lut, codes, i):
    """ADC score of code row ``i`` of ``codes`` (n, m) u8 under ``lut`` (m, ksub) f32."""
    acc = np.float32(0.0)
    for j in range(codes.shape[1]):
        acc += lut[j, codes[i, j]]
    return acc


@jit_parallel
def adc_scores(tables, codes, out):
    """ADC scores ``out`` (nq, n) f32 of every code ``codes`` (n, m) u8 under ``tables`` (nq, m, ksub)."""
    for qi in prange(tables.shape[0]):
        lut = tables[qi]
        for i in range(codes.shape[0]):
            out[qi, i] = adc_one(lut, codes, i)
