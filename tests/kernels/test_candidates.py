"""Packed candidates: one int64 orders as (key, then slot), negative keys too; the heap keeps the best n of any arrival order."""

from __future__ import annotations

import numpy as np
import pytest

from vecsearch.kernels import candidates as cd
from vecsearch.kernels._jit import jit


@jit
def _pack_all(keys, slots, out):
    for i in range(keys.shape[0]):
        out[i] = cd.pack_candidate(keys[i], slots[i])


@jit
def _unpack_all(packed, keys, slots):
    for i in range(packed.shape[0]):
        keys[i] = cd.candidate_key(packed[i])
        slots[i] = cd.candidate_slot(packed[i])


@jit
def _push_all(keys, slots, heap):
    for i in range(keys.shape[0]):
        cand = cd.pack_candidate(keys[i], slots[i])
        if cand < heap[0]:
            cd.heap_replace_top(heap, heap.shape[0], cand)


def test_packed_candidates_order_by_key_then_slot_and_unpack_exactly():
    rng = np.random.default_rng(0)
    keys = np.concatenate([(rng.random(500) - 0.5) * 70000, [0.0, 0.0, 1.5, 1.5, -1.5, -1.5, 65535.0, -3e38]]
                          ).astype(np.float32)  # negative scores too (the exact re-rank's inner products)
    slots = rng.integers(0, 2**31 - 1, keys.shape[0]).astype(np.int64)
    packed = np.empty(keys.shape[0], np.int64)
    _pack_all(keys, slots, packed)
    np.testing.assert_array_equal(np.argsort(packed, kind="stable"), np.lexsort((slots, keys)))
    back_keys, back_slots = np.empty_like(keys), np.empty_like(slots)
    _unpack_all(packed, back_keys, back_slots)
    np.testing.assert_array_equal(back_keys, keys)
    np.testing.assert_array_equal(back_slots, slots)
    assert (packed < cd.EMPTY).all()
    _unpack_all(np.array([cd.EMPTY]), back_keys[:1], back_slots[:1])
    assert back_keys[0] == np.inf


@pytest.mark.parametrize("n_keep", [1, 7, 40])
def test_heap_keeps_the_best_by_key_then_slot_in_any_arrival_order(n_keep):
    rng = np.random.default_rng(n_keep)
    keys = rng.integers(0, 50, 3000).astype(np.float32)  # many ties
    slots = rng.permutation(3000).astype(np.int64)
    expected = sorted(slots[np.lexsort((slots, keys))[:n_keep]].tolist())
    for seed in range(3):
        perm = np.random.default_rng(seed).permutation(3000)
        heap = np.full(n_keep, cd.EMPTY, np.int64)
        _push_all(keys[perm], slots[perm], heap)
        got_keys, got_slots = np.empty(n_keep, np.float32), np.empty(n_keep, np.int64)
        _unpack_all(heap, got_keys, got_slots)
        assert sorted(got_slots.tolist()) == expected
        assert heap[0] == heap.max()  # the worst kept at the root
