"""Distance kernels against numpy, including tail dimensions."""

from __future__ import annotations

import numpy as np
import pytest

from vecsearch.kernels.distances import METRIC_IP, METRIC_L2, score_many_to_many, score_one_to_many


@pytest.mark.parametrize("dim", [1, 3, 97, 384])
def test_one_to_many_and_many_to_many_match_numpy(dim):
    rng = np.random.default_rng(dim)
    x = rng.standard_normal((50, dim)).astype(np.float32)
    q = rng.standard_normal((4, dim)).astype(np.float32)
    l2 = ((q[:, None, :] - x[None]) ** 2).sum(-1)
    ip = q @ x.T
    out = np.empty((4, 50), np.float32)
    score_many_to_many(METRIC_L2, q, x, out)
    np.testing.assert_allclose(out, l2, rtol=1e-4, atol=1e-4)
    score_many_to_many(METRIC_IP, q, x, out)
    np.testing.assert_allclose(out, -ip, rtol=1e-4, atol=1e-4)
    row = np.empty(50, np.float32)
    score_one_to_many(METRIC_L2, q[0], x, row)
    np.testing.assert_allclose(row, l2[0], rtol=1e-4, atol=1e-4)
