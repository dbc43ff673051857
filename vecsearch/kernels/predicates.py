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
    float64 inclusive bounds (``-inf``/``+inf`` when open; the caller turns an exclusive bound
    into the next float64). NaN values never match. Branch-free, so the loop vectorizes.
    """
    count = 0
    for i in range(values.shape[0]):
        v = values[i]
        hit = (v >= lo) & (v <= hi) & valid[i] & live[i]
        out[i] = hit
        count += np.int64(hit)
    return count
