"""Predicate kernels: one-pass bool masks for numeric range filters.

A wide range (a large share of the rows) is answered faster by comparing every value than by
scattering the matched rows of the column's sorted index into a mask.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit


@jit
def range_mask(values, valid, live, lo, hi, out):
    """``out[i] = valid[i] and live[i] and lo <= values[i] <= hi``; returns the match count.

    ``values`` (n,) int64 or float64; ``valid``, ``live``, ``out`` (n,) bool; ``lo``/``hi``
    inclusive bounds of the values' own type: int64 for int64 values (exact above 2**53, where
    float64 is not), float64 (``-inf``/``+inf`` when open) for float64 values; the caller turns
    exclusive bounds into inclusive ones. NaN values never match. Branch-free, so the loop vectorizes.
    """
    count = 0
    for i in range(values.shape[0]):
        v = values[i]
        hit = (v >= lo) & (v <= hi) & valid[i] & live[i]
        out[i] = hit
        count += np.int64(hit)
    return count


@jit
def mask_to_slots(mask, count):
    """Sorted positions (int64 ``(count,)``) of the True entries of ``mask`` bool (n,) holding ``count``.

    Branch-free within 8-byte words (a random mask defeats the branch predictor that
    ``np.flatnonzero`` relies on) and skipping all-False words (a sparse mask costs ~n/8 reads).
    """
    out = np.empty(max(count, 1) + 8, np.int64)  # + 8: the branch-free store may run one word past
    n = mask.shape[0]
    n_words = n // 8
    words = mask[: n_words * 8].view(np.uint64)
    j = 0
    for w in range(n_words):
        v = words[w]
        if v == 0:
            continue
        base = w * 8
        for b in range(8):
            out[j] = base + b
            j += np.int64((v >> np.uint64(8 * b)) & np.uint64(1))
    for i in range(n_words * 8, n):
        out[j] = i
        j += np.int64(mask[i])
    return out[:j]
