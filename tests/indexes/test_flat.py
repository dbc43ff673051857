"""FlatIndex against the faiss IndexFlat oracle, on real vectors and odd dimensions."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

import vecsearch as vs


def _faiss_search(database, queries, k, metric):
    db, q = database.astype(np.float32), queries.astype(np.float32)
    if metric == "cosine":
        db = db / np.linalg.norm(db, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    index = faiss.IndexFlatL2(db.shape[1]) if metric == "l2" else faiss.IndexFlatIP(db.shape[1])
    index.add(db)
    return index.search(q, k)


def _assert_same_neighbors(ours: vs.SearchResult, faiss_d, faiss_i, metric, rtol=1e-4):
    """Ids equal faiss ids except where distances tie (then the distances must agree)."""
    expected = faiss_d if metric == "l2" else (-faiss_d if metric == "ip" else 1.0 - faiss_d)
    np.testing.assert_allclose(ours.distances, expected, rtol=rtol, atol=1e-4)
    mismatch = ours.ids != faiss_i
    if mismatch.any():
        # A different id is only acceptable when its distance ties with faiss' distance there.
        gaps = np.abs(ours.distances[mismatch] - expected[mismatch])
        assert gaps.max() < 1e-4, f"{mismatch.sum()} ids differ beyond ties"


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("n_queries", [1, 7, 200])  # single-query scan, small batch, BLAS batch
def test_flat_matches_faiss_on_real_vectors(metric, n_queries, wordnet_train, wordnet_queries_id):
    index = vs.FlatIndex(384, metric)
    index.add(wordnet_train)
    queries = wordnet_queries_id[:n_queries]
    res = index.search(queries, 10)
    assert res.ids.dtype == np.int64 and res.distances.dtype == np.float32
    assert res.ids.shape == (n_queries, 10)
    faiss_d, faiss_i = _faiss_search(wordnet_train, queries, 10, metric)
    _assert_same_neighbors(res, faiss_d, faiss_i, metric)


@pytest.mark.parametrize("dim", [1, 3, 97, 384])
@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_flat_matches_faiss_on_odd_dimensions(dim, metric):
    rng = np.random.default_rng(dim)
    # low-intrinsic-dimension data: random 2-D latent mapped linearly plus small noise
    latent = rng.standard_normal((1500, min(dim, 8)))
    mixing = rng.standard_normal((latent.shape[1], dim))
    data = (latent @ mixing + 0.05 * rng.standard_normal((1500, dim))).astype(np.float32)
    queries = data[:40] + 0.01 * rng.standard_normal((40, dim)).astype(np.float32)
    index = vs.FlatIndex(dim, metric)
    index.add(data)
    for batch in (queries[:3], queries):  # numba scan path and BLAS path
        res = index.search(batch, 5)
        faiss_d, faiss_i = _faiss_search(data, batch, 5, metric)
        _assert_same_neighbors(res, faiss_d, faiss_i, metric, rtol=1e-3)


def test_single_vector_query_returns_one_row(wordnet_train):
    index = vs.FlatIndex(384, "cosine")
    index.add(wordnet_train[:100])
    res = index.search(wordnet_train[5], 3)
    assert res.ids.shape == (1, 3) and res.distances.shape == (1, 3)
    assert res.ids[0, 0] == 5


def test_k_larger_than_ntotal_pads_with_minus_one_and_inf():
    index = vs.FlatIndex(4, "l2")
    index.add(np.eye(4, dtype=np.float32)[:3])
    res = index.search(np.ones((2, 4), np.float32), 5)
    assert (res.ids[:, 3:] == -1).all() and np.isinf(res.distances[:, 3:]).all()
    assert sorted(res.ids[0, :3].tolist()) == [0, 1, 2]


def test_empty_index_returns_padding_not_error():
    res = vs.FlatIndex(4, "ip").search(np.ones(4, np.float32), 3)
    assert (res.ids == -1).all() and np.isposinf(res.distances).all()


def test_user_ids_are_returned_and_removed_ids_never_come_back(wordnet_train):
    index = vs.FlatIndex(384, "cosine")
    ids = np.arange(1000, 1000 + 500, dtype=np.int64) * 3
    index.add(wordnet_train[:500], ids=ids)
    res = index.search(wordnet_train[:20], 1)
    np.testing.assert_array_equal(res.ids[:, 0], ids[:20])
    removed = ids[:250]
    assert index.remove(np.concatenate([removed, [-5, 10**12]])) == 250
    assert index.ntotal == 250
    res = index.search(wordnet_train[:50], 300)
    assert not np.isin(res.ids, removed).any()
    assert (res.ids[:, 250:] == -1).all()
    assert index.remove(removed) == 0


def test_duplicate_ids_are_rejected_and_nothing_changes(wordnet_train):
    index = vs.FlatIndex(384, "l2")
    index.add(wordnet_train[:10], ids=np.arange(10))
    with pytest.raises(ValueError, match="already in the index"):
        index.add(wordnet_train[10:20], ids=np.arange(5, 15))
    with pytest.raises(ValueError, match="duplicate id 103"):
        index.add(wordnet_train[10:12], ids=[3 + 100, 3 + 100])
    assert index.ntotal == 10
    np.testing.assert_array_equal(index.search(wordnet_train[:10], 1).ids[:, 0], np.arange(10))


def test_sequential_ids_continue_after_user_ids():
    index = vs.FlatIndex(2, "l2")
    index.add(np.ones((2, 2), np.float32), ids=[10, 11])
    assert index.add(np.zeros((2, 2), np.float32)).tolist() == [12, 13]
