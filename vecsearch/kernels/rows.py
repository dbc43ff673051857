"""Small per-call kernels of the search front end: query checks and normalization, result ids.

A single-query search spends tens of microseconds in numpy calls around the walk itself (finite
check, norms, division, id lookup, padding); these one-pass kernels do the same work in one call.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit

ROWS_OK = 0
ROWS_NOT_FINITE = 1
ROWS_ZERO = 2
ROWS_TOO_LARGE = 3


@jit
def check_rows(x, normalize, max_sq_norm, out):
    """Check ``x`` (n, d) f32 for NaN/inf and, with ``normalize``, write unit-norm rows to ``out``.

    Returns ``(status, row)``: ``ROWS_OK`` (row -1), ``ROWS_NOT_FINITE``, ``ROWS_ZERO`` (a zero
    row cannot be normalized) or ``ROWS_TOO_LARGE`` (squared norm above ``max_sq_norm`` f64, checked
    when not normalizing) with the first offending row. ``out`` (n, d) f32 is written only when
    ``normalize``. Norms and the division are float64: rows of any finite magnitude normalize
    without overflow (1e20 per component) or underflow (1e-25).
    """
    n, d = x.shape
    for i in range(n):
        acc = 0.0
        finite = True
        for t in range(d):
            v = np.float64(x[i, t])
            finite &= np.isfinite(v)
            acc += v * v
        if not finite:
            return ROWS_NOT_FINITE, i
        if normalize:
            if acc == 0:
                return ROWS_ZERO, i
            if 1e-30 <= acc <= 1e30:  # ordinary rows: float32 division, as numpy's x / ||x||
                norm = np.float32(np.sqrt(acc))
                for t in range(d):
                    out[i, t] = x[i, t] / norm
            else:
                inv = 1.0 / np.sqrt(acc)
                for t in range(d):
                    out[i, t] = np.float32(np.float64(x[i, t]) * inv)
        elif acc > max_sq_norm:
            return ROWS_TOO_LARGE, i
    return ROWS_OK, -1


@jit
def slots_to_results(slots, scores, slot_to_id, score_offset, out_ids):
    """External ids and user distances of kernel results, in place for the scores.

    ``slots`` (nq, k) int64 (-1 = padding), ``scores`` (nq, k) f32, ``slot_to_id`` (n_slots,)
    int64; writes ``out_ids`` (nq, k) int64 (-1 for padding), sets padded scores to +inf and adds
    ``score_offset`` (1.0 turns cosine's negative inner product into ``1 - cos``) to the others.
    """
    for i in range(slots.shape[0]):
        for j in range(slots.shape[1]):
            s = slots[i, j]
            if s >= 0:
                out_ids[i, j] = slot_to_id[s]
                scores[i, j] += score_offset
            else:
                out_ids[i, j] = -1
                scores[i, j] = np.inf


@jit
def compact_allowed(rows, scores, allowed, k, out_rows, out_scores):
    """Keep, per query, the first ``k`` results of ``rows``/``scores`` (nq, m) whose row passes ``allowed``.

    ``rows`` int64 (-1 = padding), ``scores`` f32, ``allowed`` bool (n_slots,); outputs (nq, k)
    pre-filled with -1 / +inf. Serial: it is O(nq * m) mask reads, cheaper than a parallel start.
    """
    for qi in range(rows.shape[0]):
        j = 0
        for c in range(rows.shape[1]):
            r = rows[qi, c]
            if r >= 0 and allowed[r]:
                out_rows[qi, j] = r
                out_scores[qi, j] = scores[qi, c]
                j += 1
                if j == k:
                    break
