"""Bounded heaps and top-k selection over score arrays (smaller score is better).

A "max-heap of size k" keeps the k best (smallest) scores seen so far with the worst at the
root, so a new candidate is compared against ``heap_scores[0]`` in O(1). Empty slots hold
``+inf`` scores and id ``-1``, which is also the padding convention of search results.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import jit, jit_parallel


@jit(inline="always")
def maxheap_replace_top(heap_scores, heap_ids, size, new_score, new_id):
    """Replace the root of a max-heap of ``size`` items and sift it down."""
    pos = 0
    while True:
        left = 2 * pos + 1
        if left >= size:
            break
        right = left + 1
        child = left
        if right < size and heap_scores[right] > heap_scores[left]:
            child = right
        if heap_scores[child] <= new_score:
            break
        heap_scores[pos] = heap_scores[child]
        heap_ids[pos] = heap_ids[child]
        pos = child
    heap_scores[pos] = new_score
    heap_ids[pos] = new_id


@jit(inline="always")
def maxheap_push(heap_scores, heap_ids, size, new_score, new_id):
    """Push into a max-heap holding ``size`` items (capacity > size); returns the new size."""
    pos = size
    while pos > 0:
        parent = (pos - 1) // 2
        if heap_scores[parent] >= new_score:
            break
        heap_scores[pos] = heap_scores[parent]
        heap_ids[pos] = heap_ids[parent]
        pos = parent
    heap_scores[pos] = new_score
    heap_ids[pos] = new_id
    return size + 1


@jit(inline="always")
def minheap_push(heap_scores, heap_ids, size, new_score, new_id):
    """Push into a min-heap holding ``size`` items; returns the new size."""
    pos = size
    while pos > 0:
        parent = (pos - 1) // 2
        if heap_scores[parent] <= new_score:
            break
        heap_scores[pos] = heap_scores[parent]
        heap_ids[pos] = heap_ids[parent]
        pos = parent
    heap_scores[pos] = new_score
    heap_ids[pos] = new_id
    return size + 1


@jit(inline="always")
def minheap_pop(heap_scores, heap_ids, size):
    """Remove the root of a min-heap of ``size`` items; returns the new size (root read before)."""
    size -= 1
    if size == 0:
        return 0
    last_score = heap_scores[size]
    last_id = heap_ids[size]
    pos = 0
    while True:
        left = 2 * pos + 1
        if left >= size:
            break
        right = left + 1
        child = left
        if right < size and heap_scores[right] < heap_scores[left]:
            child = right
        if heap_scores[child] >= last_score:
            break
        heap_scores[pos] = heap_scores[child]
        heap_ids[pos] = heap_ids[child]
        pos = child
    heap_scores[pos] = last_score
    heap_ids[pos] = last_id
    return size


@jit
def maxheap_sort(heap_scores, heap_ids, size):
    """Sort the first ``size`` items of a max-heap in place into ascending score order."""
    n = size
    while n > 1:
        top_score = heap_scores[0]
        top_id = heap_ids[0]
        n -= 1
        last_score = heap_scores[n]
        last_id = heap_ids[n]
        maxheap_replace_top(heap_scores, heap_ids, n, last_score, last_id)
        heap_scores[n] = top_score
        heap_ids[n] = top_id


@jit
def topk_merge_row(scores, row_offset, heap_scores, heap_ids):
    """Merge one row of ``scores`` (n,) float32 into a full max-heap ``(k,)`` (empty = +inf/-1).

    Candidate ``i`` gets id ``row_offset + i``. NaN scores never enter the heap.
    """
    k = heap_scores.shape[0]
    for i in range(scores.shape[0]):
        s = scores[i]
        if s < heap_scores[0]:
            maxheap_replace_top(heap_scores, heap_ids, k, s, row_offset + i)


@jit_parallel
def topk_merge_block(scores, row_offset, heap_scores, heap_ids):
    """Merge a block of scores ``(nq, n)`` into per-query max-heaps ``(nq, k)``, parallel over queries."""
    for qi in prange(scores.shape[0]):
        topk_merge_row(scores[qi], row_offset, heap_scores[qi], heap_ids[qi])


@jit_parallel
def sort_heaps(heap_scores, heap_ids):
    """Sort every row of ``(nq, k)`` max-heaps into ascending order (padding stays at the end)."""
    for qi in prange(heap_scores.shape[0]):
        maxheap_sort(heap_scores[qi], heap_ids[qi], heap_scores.shape[1])


def empty_heaps(nq: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(nq, k)`` float32 +inf scores and int64 -1 ids: the empty-heap / padding state."""
    return np.full((nq, k), np.inf, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64)
