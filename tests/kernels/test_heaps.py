"""Top-k selection kernels against numpy sorting."""

from __future__ import annotations

import numpy as np
import pytest

from vecsearch.kernels.heaps import empty_heaps, sort_heaps, topk_merge_block


@pytest.mark.parametrize("k", [1, 5, 64])
def test_blocked_topk_merge_equals_full_sort(k):
    rng = np.random.default_rng(k)
    scores = rng.standard_normal((7, 1000)).astype(np.float32)
    heap_scores, heap_ids = empty_heaps(7, k)
    for start in range(0, 1000, 300):  # merged in uneven blocks
        topk_merge_block(np.ascontiguousarray(scores[:, start : start + 300]), start, heap_scores, heap_ids)
    sort_heaps(heap_scores, heap_ids)
    expected = np.argsort(scores, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(heap_ids, expected)
    np.testing.assert_array_equal(heap_scores, np.take_along_axis(scores, expected, axis=1))


def test_topk_pads_when_fewer_candidates_than_k():
    heap_scores, heap_ids = empty_heaps(1, 5)
    topk_merge_block(np.array([[3.0, 1.0]], np.float32), 10, heap_scores, heap_ids)
    sort_heaps(heap_scores, heap_ids)
    assert heap_ids.tolist() == [[11, 10, -1, -1, -1]]
    assert np.isinf(heap_scores[0, 2:]).all()


def test_nan_scores_never_enter_the_heap():
    heap_scores, heap_ids = empty_heaps(1, 2)
    topk_merge_block(np.array([[np.nan, 2.0, np.nan]], np.float32), 0, heap_scores, heap_ids)
    sort_heaps(heap_scores, heap_ids)
    assert heap_ids.tolist() == [[1, -1]]
