"""Kernels of the IVF fast-scan index besides the scan: growable packed lists and blocked coarse probes.

Lists
-----

The layout is :mod:`vecsearch.kernels.fastscan`'s: ``packed`` uint8 ``(n_blocks, m_pad, 16)``,
``slots`` int32 ``(n_blocks * 32,)`` (-1 = no vector), ``block_offsets`` int64 ``(nlist + 1,)``,
``sizes`` int64 ``(nlist,)``. List ``l`` owns blocks ``block_offsets[l] .. block_offsets[l + 1]``
and uses their first ``sizes[l]`` positions; the blocks past ``ceil(sizes[l] / 32)`` are spare
room for appends (IVF-PQ's lists grow the same way, :mod:`vecsearch.kernels.ivf`). When a list
has no free position left the caller builds a new layout with more blocks for it
(:func:`relayout_blocks`: amortized O(1) per vector).

Invariant kept by every list kernel here: positions past a list's size have code 0 and slot -1,
so a list's blocks can be copied, saved and compared as a whole.

Coarse probes of a batch
------------------------
:func:`coarse_probes_blocked` scores ``QUERY_BLOCK`` queries per pass over the centroids (row-major),
eight dot products sharing each centroid load: at nlist 4096 x 384 dims the centroids (6 MB) no
longer fit in L2 and the per-query pass of :func:`vecsearch.kernels.ivf.coarse_probes` streams them
from L3 for every query (measured, 1 thread, 1,000 queries: 264 -> 98 us per query; nlist 1024:
32 -> 23 us). Large batches take the inner products from one BLAS product instead and
:func:`finish_probes` selects the lists (the index decides, ``PROBE_BLAS_MIN_QUERIES``).
"""

from __future__ import annotations

import numpy as np

from ._jit import jit
from .distances import METRIC_L2
from .fastscan import read_codes, write_codes
from .fastscan_simd import BLOCK
from .ivf import take_best_lists

QUERY_BLOCK = 8  # queries scored per pass over the centroids (8 accumulators)


@jit
def append_codes(codes, new_slots, new_lists, packed, slots, block_offsets, sizes):
    """Append ``codes`` uint8 ``(n, m)`` (values < 16) with their row numbers ``new_slots`` int32
    ``(n,)`` to lists ``new_lists`` int64 ``(n,)``, in order; ``sizes`` is updated.

    The caller guarantees each list has room (``sizes + counts <= 32 * blocks``).
    """
    for i in range(codes.shape[0]):
        lst = new_lists[i]
        pos = block_offsets[lst] * BLOCK + sizes[lst]
        write_codes(codes[i:i + 1], packed, pos)
        slots[pos] = new_slots[i]
        sizes[lst] += 1


@jit
def relayout_blocks(packed, slots, block_offsets, sizes, new_block_offsets, out_packed, out_slots):
    """Copy the used blocks of every list into a layout with ``new_block_offsets`` int64 ``(nlist + 1,)``.

    ``out_packed`` uint8 ``(new_block_offsets[-1], m_pad, 16)`` must be zeroed and ``out_slots``
    int32 ``(new_block_offsets[-1] * 32,)`` filled with -1 by the caller; every list needs at
    least ``ceil(sizes[l] / 32)`` new blocks. ``sizes`` is unchanged.
    """
    for lst in range(sizes.shape[0]):
        used = (sizes[lst] + BLOCK - 1) // BLOCK
        src = block_offsets[lst]
        dst = new_block_offsets[lst]
        for b in range(used):
            out_packed[dst + b] = packed[src + b]
        for t in range(used * BLOCK):
            out_slots[dst * BLOCK + t] = slots[src * BLOCK + t]


@jit
def remove_from_lists(packed, slots, block_offsets, sizes, removed):
    """Drop the positions whose slot is flagged in ``removed`` bool ``(n_slots,)``, in place.

    The other positions of a list keep their order and move up; freed positions get code 0 and
    slot -1; ``sizes`` is updated. Lists are read up to their first removed position only.
    Returns the number of positions dropped.
    """
    row = np.zeros((1, packed.shape[1]), np.uint8)
    zero = np.zeros((1, packed.shape[1]), np.uint8)
    n_dropped = 0
    for lst in range(sizes.shape[0]):
        first = block_offsets[lst] * BLOCK
        size = sizes[lst]
        kept = 0
        while kept < size and not removed[slots[first + kept]]:
            kept += 1
        if kept == size:
            continue
        for i in range(kept + 1, size):
            slot = slots[first + i]
            if removed[slot]:
                continue
            read_codes(packed, first + i, row)
            write_codes(row, packed, first + kept)
            slots[first + kept] = slot
            kept += 1
        for i in range(kept, size):
            write_codes(zero, packed, first + i)
            slots[first + i] = -1
        n_dropped += size - kept
        sizes[lst] = kept
    return n_dropped


@jit
def coarse_probes_blocked(queries, q0, q1, centroids, c_sq_norms, metric, out_lists, out_scores):
    """The ``nprobe`` nearest centroids of queries ``q0 .. q1 - 1``, ``QUERY_BLOCK`` at a time.

    ``queries`` f32 ``(nq, d)``, ``centroids`` f32 ``(nlist, d)`` (row-major), ``c_sq_norms`` f32
    ``(nlist,)``. Writes ``out_lists`` int64 / ``out_scores`` f32 ``(nq, nprobe)`` rows ``q0 .. q1 - 1``
    (``||q - c||^2`` or ``-<q, c>``, best first, -1 / +inf when nlist < nprobe), as
    :func:`vecsearch.kernels.ivf.coarse_probes` does.
    """
    nlist, d = centroids.shape
    block = np.zeros((QUERY_BLOCK, d), np.float32)  # the block's queries, zero rows past q1
    dots = np.empty((QUERY_BLOCK, nlist), np.float32)
    for b0 in range(q0, q1, QUERY_BLOCK):
        n_here = min(QUERY_BLOCK, q1 - b0)
        for j in range(QUERY_BLOCK):
            for t in range(d):
                block[j, t] = queries[b0 + j, t] if j < n_here else np.float32(0.0)
        for c in range(nlist):
            dot8(block, centroids[c], dots, c)
        for j in range(n_here):
            row = dots[j]
            if metric == METRIC_L2:
                q_sq = np.float32(0.0)
                for t in range(d):
                    q_sq += block[j, t] * block[j, t]
                for c in range(nlist):
                    row[c] = max(q_sq + c_sq_norms[c] - np.float32(2.0) * row[c], np.float32(0.0))
            else:
                for c in range(nlist):
                    row[c] = -row[c]
            take_best_lists(row, out_lists[b0 + j], out_scores[b0 + j])


@jit
def finish_probes(dots, q0, q1, queries, c_sq_norms, metric, out_lists, out_scores):
    """Rows ``q0 .. q1 - 1`` of ``dots`` f32 ``(nq, nlist)`` (query-centroid inner products, e.g. a
    BLAS product) into the ``nprobe`` nearest lists, as :func:`coarse_probes_blocked` writes them:
    ``||q - c||^2`` (``queries`` f32 ``(nq, d)``, ``c_sq_norms`` f32 ``(nlist,)``) or ``-<q, c>``.
    Overwrites those rows of ``dots``."""
    nlist = dots.shape[1]
    for j in range(q0, q1):
        row = dots[j]
        if metric == METRIC_L2:
            q_sq = np.float32(0.0)
            for t in range(queries.shape[1]):
                q_sq += queries[j, t] * queries[j, t]
            for c in range(nlist):
                row[c] = max(q_sq + c_sq_norms[c] - np.float32(2.0) * row[c], np.float32(0.0))
        else:
            for c in range(nlist):
                row[c] = -row[c]
        take_best_lists(row, out_lists[j], out_scores[j])


@jit(inline="always")
def dot8(block, row, dots, c):
    """``dots[j, c] = <block[j], row>`` for the 8 rows of ``block`` f32 ``(8, d)``: one load of
    ``row`` feeds eight accumulators (LLVM vectorizes the eight reductions)."""
    b0, b1, b2, b3, b4, b5, b6, b7 = block[0], block[1], block[2], block[3], block[4], block[5], block[6], block[7]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = np.float32(0.0)
    for t in range(row.shape[0]):
        x = row[t]
        s0 += b0[t] * x
        s1 += b1[t] * x
        s2 += b2[t] * x
        s3 += b3[t] * x
        s4 += b4[t] * x
        s5 += b5[t] * x
        s6 += b6[t] * x
        s7 += b7[t] * x
    dots[0, c], dots[1, c], dots[2, c], dots[3, c] = s0, s1, s2, s3
    dots[4, c], dots[5, c], dots[6, c], dots[7, c] = s4, s5, s6, s7
