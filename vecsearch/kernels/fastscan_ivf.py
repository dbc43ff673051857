"""Kernels of the IVF fast-scan index besides the scan: growable packed lists.

Lists
-----

The layout is :mod:`vecsearch.kernels.fastscan`'s: ``packed`` uint8 ``(n_blocks, m_pad, 16)``,
``slots`` int32 ``(slot_offsets[-1],)`` (-1 = no vector), ``block_offsets`` and ``slot_offsets``
int64 ``(nlist + 1,)``, ``sizes`` int64 ``(nlist,)``. List ``l`` has room for
``capacity = slot_offsets[l + 1] - slot_offsets[l]`` vectors, in its slots and in its blocks
``block_offsets[l] .. block_offsets[l + 1]`` (``ceil(capacity / 32)`` of them), and uses the first
``sizes[l]``; the rest is spare room for appends (IVF-PQ's lists grow the same way,
:mod:`vecsearch.kernels.ivf`). When a list is full the caller builds a new layout with more room
for it (:func:`relayout_blocks`: amortized O(1) per vector). A list built by one ``add`` is
tight: its capacity is its size, so the slots take 4 bytes per vector and only the code blocks
are padded to 32 vectors (as faiss').

Invariant kept by every list kernel here: positions past a list's size have code 0 and slot -1,
so a list's blocks can be copied, saved and compared as a whole.

Coarse probes of a batch: :mod:`vecsearch.kernels.fastscan_coarse`.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit
from .fastscan import read_codes, write_codes
from .fastscan_simd import BLOCK


@jit
def append_codes(codes, new_slots, new_lists, packed, slots, block_offsets, slot_offsets, sizes):
    """Append ``codes`` uint8 ``(n, m)`` (values < 16) with their row numbers ``new_slots`` int32
    ``(n,)`` to lists ``new_lists`` int64 ``(n,)``, in order; ``sizes`` is updated.

    The caller guarantees each list has room (``sizes + counts <= capacity``).
    """
    for i in range(codes.shape[0]):
        lst = new_lists[i]
        write_codes(codes[i:i + 1], packed, block_offsets[lst] * BLOCK + sizes[lst])
        slots[slot_offsets[lst] + sizes[lst]] = new_slots[i]
        sizes[lst] += 1


@jit
def relayout_blocks(packed, slots, block_offsets, slot_offsets, sizes, new_block_offsets, new_slot_offsets,
                    out_packed, out_slots):
    """Copy the used blocks and slots of every list into a layout with ``new_block_offsets`` and
    ``new_slot_offsets`` int64 ``(nlist + 1,)``.

    ``out_packed`` uint8 ``(new_block_offsets[-1], m_pad, 16)`` must be zeroed and ``out_slots``
    int32 ``(new_slot_offsets[-1],)`` filled with -1 by the caller; every list needs room for
    ``sizes[l]`` vectors in both. ``sizes`` is unchanged.
    """
    for lst in range(sizes.shape[0]):
        used = (sizes[lst] + BLOCK - 1) // BLOCK
        src = block_offsets[lst]
        dst = new_block_offsets[lst]
        for b in range(used):
            out_packed[dst + b] = packed[src + b]
        for i in range(sizes[lst]):
            out_slots[new_slot_offsets[lst] + i] = slots[slot_offsets[lst] + i]


@jit
def remove_from_lists(packed, slots, block_offsets, slot_offsets, sizes, removed):
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
        first_slot = slot_offsets[lst]
        size = sizes[lst]
        kept = 0
        while kept < size and not removed[slots[first_slot + kept]]:
            kept += 1
        if kept == size:
            continue
        for i in range(kept + 1, size):
            slot = slots[first_slot + i]
            if removed[slot]:
                continue
            read_codes(packed, first + i, row)
            write_codes(row, packed, first + kept)
            slots[first_slot + kept] = slot
            kept += 1
        for i in range(kept, size):
            write_codes(zero, packed, first + i)
            slots[first_slot + i] = -1
        n_dropped += size - kept
        sizes[lst] = kept
    return n_dropped
