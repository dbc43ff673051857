"""The IVF coarse probe: the nprobe nearest lists in order, whichever selection it uses."""

from __future__ import annotations

import numpy as np
import pytest

from vecsearch.kernels.distances import METRIC_IP, METRIC_L2
from vecsearch.kernels.ivf import PROBE_SORT_MIN_FRACTION, coarse_probes_serial


@pytest.mark.parametrize("metric", [METRIC_L2, METRIC_IP])
def test_probe_lists_are_the_nearest_in_order_by_heap_and_by_sort(metric):
    rng = np.random.default_rng(3)
    nlist, d = 256, 24
    centroids = rng.standard_normal((nlist, d)).astype(np.float32)
    queries = rng.standard_normal((5, d)).astype(np.float32)
    c_sq = np.einsum("ij,ij->i", centroids, centroids).astype(np.float32)
    if metric == METRIC_L2:
        expected_scores = ((queries[:, None, :] - centroids[None]) ** 2).sum(-1)
    else:  # negative inner products: scores of both signs
        expected_scores = -(queries @ centroids.T)
    heap_max = nlist // PROBE_SORT_MIN_FRACTION - 1
    for nprobe in (1, heap_max, heap_max + 1, nlist):  # heap selection below the switch, sort from it
        lists = np.full((5, nprobe), -1, np.int64)
        scores = np.full((5, nprobe), np.inf, np.float32)
        coarse_probes_serial(queries, np.ascontiguousarray(centroids.T), c_sq, metric, lists, scores)
        expected = np.argsort(expected_scores, axis=1, kind="stable")[:, :nprobe]
        np.testing.assert_array_equal(lists, expected)
        np.testing.assert_allclose(scores, np.take_along_axis(expected_scores, expected, 1), rtol=1e-4, atol=1e-4)
