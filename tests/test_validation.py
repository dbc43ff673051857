"""Bad input raises ValueError/TypeError naming the argument; a rejected add stores nothing."""

from __future__ import annotations

import numpy as np
import pytest

import vecsearch as vs


@pytest.fixture
def index():
    idx = vs.FlatIndex(8, "l2")
    idx.add(np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32))
    return idx


def test_unknown_metric_names_the_argument():
    with pytest.raises(ValueError, match="metric"):
        vs.FlatIndex(8, "hamming")


@pytest.mark.parametrize("dim", [0, -3, 2.5, "8", True])
def test_bad_dimension_is_rejected(dim):
    with pytest.raises(ValueError, match="dim"):
        vs.FlatIndex(dim, "l2")


@pytest.mark.parametrize(
    "vectors, error, pattern",
    [
        (np.ones((3, 7), np.float32), ValueError, r"vectors: expected dimension 8, got shape \(3, 7\)"),
        (np.ones(8, np.float32), ValueError, "vectors: expected shape"),
        (np.ones((2, 2, 8), np.float32), ValueError, "3-D"),
        (np.array([["a"] * 8]), TypeError, "vectors: expected a numeric array"),
        (np.ones((2, 8), np.complex64), TypeError, "vectors"),
        (np.full((2, 8), np.nan, np.float32), ValueError, "NaN or inf in row 0"),
        (np.concatenate([np.ones((2, 8)), [[np.inf] * 8]]), ValueError, "row 2"),
    ],
)
def test_bad_vectors_are_rejected_and_nothing_is_stored(index, vectors, error, pattern):
    before = index.search(np.zeros(8, np.float32), 5)
    with pytest.raises(error, match=pattern):
        index.add(vectors)
    assert index.ntotal == 20
    after = index.search(np.zeros(8, np.float32), 5)
    np.testing.assert_array_equal(before.ids, after.ids)


@pytest.mark.parametrize("k, error", [(0, ValueError), (-1, ValueError), (2.0, TypeError), ("3", TypeError)])
def test_bad_k_is_rejected(index, k, error):
    with pytest.raises(error, match="k"):
        index.search(np.zeros(8, np.float32), k)


def test_query_with_wrong_dimension_names_queries(index):
    with pytest.raises(ValueError, match=r"queries: expected dimension 8"):
        index.search(np.zeros((2, 9), np.float32), 3)


def test_nan_query_is_rejected(index):
    with pytest.raises(ValueError, match="queries"):
        index.search(np.full(8, np.nan, np.float32), 3)


def test_unknown_search_parameter_is_rejected(index):
    with pytest.raises(TypeError, match="unexpected"):
        index.search(np.zeros(8, np.float32), 3, ef=10)


def test_cosine_rejects_zero_vectors():
    idx = vs.FlatIndex(4, "cosine")
    with pytest.raises(ValueError, match="zero vector in row 1"):
        idx.add(np.array([[1, 0, 0, 0], [0, 0, 0, 0]], np.float32))
    assert idx.ntotal == 0


def test_ids_of_wrong_length_or_type_are_rejected(index):
    with pytest.raises(ValueError, match=r"ids: expected shape \(2,\)"):
        index.add(np.ones((2, 8), np.float32), ids=[100, 101, 102])
    with pytest.raises(TypeError, match="ids: expected integer ids"):
        index.add(np.ones((2, 8), np.float32), ids=[1.5, 2.5])
    with pytest.raises(ValueError, match="ids: expected non-negative"):
        index.add(np.ones((2, 8), np.float32), ids=[-1, 200])
    assert index.ntotal == 20


def test_integer_vectors_are_accepted_as_float(index):
    idx = vs.FlatIndex(3, "l2")
    idx.add(np.array([[1, 2, 3], [4, 5, 6]], np.int64))
    assert idx.search(np.array([4, 5, 6]), 1).ids[0, 0] == 1


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("n_queries", [1, 3, 100])
def test_read_only_queries_are_searched_like_writable_ones(metric, n_queries):
    """Queries may be read-only views (memory maps, Ray object-store arrays); both query paths take them."""
    rng = np.random.default_rng(1)
    idx = vs.HNSWIndex(8, metric, M=8, ef_construction=40, seed=0)
    idx.add(rng.standard_normal((200, 8)).astype(np.float32))
    q = rng.standard_normal((n_queries, 8)).astype(np.float32)
    frozen = q.copy()
    frozen.setflags(write=False)
    want = idx.search(q, 5)
    got = idx.search(frozen, 5)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.distances, want.distances)
    np.testing.assert_array_equal(frozen, q)  # never normalized in place


@pytest.mark.parametrize("bad, pattern", [(np.inf, "finite"), (np.nan, "finite"), (0.0, "non-zero")])
def test_single_query_kernel_path_names_the_bad_row(bad, pattern):
    idx = vs.FlatIndex(4, "cosine")
    idx.add(np.eye(4, dtype=np.float32))
    q = np.ones((3, 4), np.float32)
    q[2] = bad
    with pytest.raises(ValueError, match=f"queries: .*{pattern}.*row 2"):
        idx.search(q, 2)
