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

ENCODE_BLOCK = 256


@jit
def pq_encode_rows(x, codebooks_t, cb_sq_norms, codes):
    """Nearest codeword per sub-space (squared L2) for ``x`` (n, m*dsub) f32 -> ``codes`` (n, m) u8."""
    m, dsub, ksub = codebooks_t.shape
    buf = np.empty(ksub, np.float32)
    for i in range(x.shape[0]):
        for j in range(m):
            for c in range(ksub):
                buf[c] = np.float32(0.0)
            base = j * dsub
            for t in range(dsub):
                xv = x[i, base + t]
                for c in range(ksub):
                    buf[c] += xv * codebooks_t[j, t, c]
            best = 0
            best_s = np.float32(np.inf)
            for c in range(ksub):
                s = cb_sq_norms[j, c] - np.float32(2.0) * buf[c]
                if s < best_s:
                    best_s = s
                    best = c
            codes[i, j] = best


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
def inner_table_row(q, codebooks_t, lut):
    """``lut`` (m, ksub) f32 <- inner products of the sub-vectors of ``q`` (m*dsub,) with every codeword."""
    m, dsub, ksub = codebooks_t.shape
    for j in range(m):
        for c in range(ksub):
            lut[j, c] = np.float32(0.0)
        for t in range(dsub):
            qv = q[j * dsub + t]
            for c in range(ksub):
                lut[j, c] += qv * codebooks_t[j, t, c]


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
