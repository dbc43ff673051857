"""HNSWIndex: recall against hnswlib, deletes, compaction, persistence, reproducibility, validation."""

from __future__ import annotations

import hnswlib
import numba
import numpy as np
import pytest
from conftest import exact_knn

import vecsearch as vs
from vecsearch.benchmark.evaluation import recall_at_k
from vecsearch.indexes.hnsw import HNSWIndex

M, EF_C, EF = 16, 100, 32


@pytest.fixture(scope="module")
def cosine_index(wordnet_train) -> HNSWIndex:
    index = HNSWIndex(384, "cosine", M=M, ef_construction=EF_C, seed=0)
    index.add(wordnet_train, progress=False)
    return index


def _hnswlib_recall(space, db, queries, truth, ef=EF, ef_c=EF_C, m=M):
    ref = hnswlib.Index(space=space, dim=db.shape[1])
    ref.init_index(max_elements=db.shape[0], M=m, ef_construction=ef_c, random_seed=0)
    ref.add_items(db, np.arange(db.shape[0]), num_threads=1)  # deterministic oracle
    ref.set_ef(ef)
    return recall_at_k(ref.knn_query(queries, k=10)[0].astype(np.int64), truth)


@pytest.mark.parametrize("which", ["id", "ood"])
def test_recall_at_10_within_001_of_hnswlib_on_wordnet(
    cosine_index, wordnet_train, wordnet_queries_id, wordnet_queries_ood, which
):
    queries = wordnet_queries_id if which == "id" else wordnet_queries_ood
    truth = exact_knn(wordnet_train, queries, 10, "cosine")
    ours = recall_at_k(cosine_index.search(queries, 10, ef=EF).ids, truth)
    ref = _hnswlib_recall("cosine", wordnet_train, queries, truth)
    assert ours >= ref - 0.01, (ours, ref)
    assert ours > 0.85


@pytest.mark.parametrize("metric,space", [("l2", "l2"), ("ip", "ip")])
def test_l2_and_ip_recall_within_001_of_hnswlib(wordnet_train, wordnet_queries_ood, metric, space):
    # Scale rows differently so that ip and l2 rankings differ from cosine.
    rng = np.random.default_rng(1)
    db = wordnet_train[:2000] * rng.uniform(0.5, 2.0, (2000, 1)).astype(np.float32)
    queries = wordnet_queries_ood[:100]
    truth = exact_knn(db, queries, 10, metric)
    index = HNSWIndex(384, metric, M=8, ef_construction=64, seed=3)
    index.add(db, progress=False)
    ours = recall_at_k(index.search(queries, 10, ef=24).ids, truth)
    ref = _hnswlib_recall(space, db, queries, truth, ef=24, ef_c=64, m=8)
    assert ours >= ref - 0.01, (ours, ref)


def test_search_returns_scores_sorted_and_matching_exact_distances(
    cosine_index, wordnet_train, wordnet_queries_id
):
    res = cosine_index.search(wordnet_queries_id[:20], 10)
    assert np.all(np.diff(res.distances, axis=1) >= 0)
    q = wordnet_queries_id[:20] / np.linalg.norm(wordnet_queries_id[:20], axis=1, keepdims=True)
    db = wordnet_train / np.linalg.norm(wordnet_train, axis=1, keepdims=True)
    expected = 1 - np.einsum("qd,qkd->qk", q, db[res.ids])
    np.testing.assert_allclose(res.distances, expected, atol=1e-5)


def test_single_query_matches_batch(cosine_index, wordnet_queries_ood):
    batch = cosine_index.search(wordnet_queries_ood[:5], 10, ef=40)
    for i in range(5):
        one = cosine_index.search(wordnet_queries_ood[i], 10, ef=40)
        np.testing.assert_array_equal(one.ids[0], batch.ids[i])


def test_results_unchanged_across_visited_table_wraps(cosine_index, wordnet_queries_ood):
    # The uint8 visited table is reset every 254 walks: 600 single searches cross it twice.
    first = cosine_index.search(wordnet_queries_ood[:3], 10, ef=32).ids
    for i in range(600):
        again = cosine_index.search(wordnet_queries_ood[i % 3], 10, ef=32).ids[0]
        np.testing.assert_array_equal(again, first[i % 3])


def test_removed_ids_never_returned_even_when_most_are_removed(wordnet_train, wordnet_queries_id):
    db = wordnet_train[:1500]
    index = HNSWIndex(384, "cosine", M=8, ef_construction=48, seed=0)
    index.add(db, progress=False)
    rng = np.random.default_rng(0)
    removed = rng.choice(1500, 1400, replace=False)
    assert index.remove(removed) == 1400
    live = np.setdiff1d(np.arange(1500), removed)
    res = index.search(wordnet_queries_id[:50], 10, ef=10)
    assert not np.isin(res.ids, removed).any()
    assert (res.ids >= 0).all()  # 100 live vectors remain: every query gets 10 results
    truth = live[exact_knn(db[live], wordnet_queries_id[:50], 10, "cosine")]
    assert recall_at_k(res.ids, truth) > 0.9


def test_k_larger_than_live_count_pads_with_minus_one(wordnet_train):
    index = HNSWIndex(384, "l2", M=4, ef_construction=16)
    index.add(wordnet_train[:40], progress=False)
    index.remove(np.arange(33))
    res = index.search(wordnet_train[:3], 12)
    assert res.ids.shape == (3, 12)
    assert (np.sort(res.ids[:, :7], axis=1) == np.arange(33, 40)).all()
    assert (res.ids[:, 7:] == -1).all() and np.isinf(res.distances[:, 7:]).all()


def test_compact_after_removing_half_keeps_recall_of_fresh_build(
    cosine_index, wordnet_train, wordnet_queries_id, wordnet_queries_ood
):
    index = HNSWIndex(384, "cosine", M=M, ef_construction=EF_C, seed=0)
    index.add(wordnet_train, progress=False)
    removed = np.random.default_rng(5).choice(5000, 2500, replace=False)
    index.remove(removed)
    assert index.compact() == 2500
    live = np.setdiff1d(np.arange(5000), removed)
    assert index.ntotal == 2500 and index._n == 2500
    fresh = HNSWIndex(384, "cosine", M=M, ef_construction=EF_C, seed=0)
    fresh.add(wordnet_train[live], ids=live, progress=False)
    queries = np.concatenate([wordnet_queries_id, wordnet_queries_ood])
    truth = live[exact_knn(wordnet_train[live], queries, 10, "cosine")]
    got = index.search(queries, 10, ef=EF).ids
    assert not np.isin(got, removed).any()
    assert (
        recall_at_k(got, truth) >= recall_at_k(fresh.search(queries, 10, ef=EF).ids, truth) - 0.01
    )
    # The compacted index keeps accepting vectors.
    index.add(wordnet_train[removed[:10]], ids=removed[:10], progress=False)
    assert (index.search(wordnet_train[removed[:10]], 1).ids[:, 0] == removed[:10]).all()


def test_replace_deleted_reuses_slots_and_finds_new_vectors(wordnet_train):
    index = HNSWIndex(384, "cosine", M=8, ef_construction=48, allow_replace_deleted=True)
    index.add(wordnet_train[:1000], progress=False)
    index.remove(np.arange(0, 1000, 2))
    new_ids = np.arange(5000, 5300)
    index.add(wordnet_train[1000:1300], ids=new_ids, progress=False)
    assert index._n == 1000 and index.ntotal == 800
    res = index.search(wordnet_train[1000:1300], 1, ef=32)
    assert (res.ids[:, 0] == new_ids).mean() > 0.98
    res = index.search(wordnet_train[:1000], 5, ef=32)
    assert not np.isin(res.ids, np.arange(0, 1000, 2)[150:]).any()  # still deleted, never returned


def test_incremental_adds_grow_capacity_and_keep_recall(wordnet_train, wordnet_queries_id):
    index = HNSWIndex(384, "cosine", M=8, ef_construction=64)
    for start in range(0, 2000, 250):
        index.add(wordnet_train[start : start + 250], progress=False)
    assert index.ntotal == 2000
    truth = exact_knn(wordnet_train[:2000], wordnet_queries_id, 10, "cosine")
    assert recall_at_k(index.search(wordnet_queries_id, 10, ef=48).ids, truth) > 0.9


def test_save_load_and_mmap_give_identical_results(
    cosine_index, wordnet_queries_ood, wordnet_train, tmp_path
):
    index = HNSWIndex(384, "cosine", M=8, ef_construction=32)
    index.add(wordnet_train[:800], progress=False)
    index.remove([1, 2, 3])
    index.save(tmp_path / "idx")
    before = index.search(wordnet_queries_ood, 10, ef=20)
    for mmap in (False, True):
        loaded = vs.load(tmp_path / "idx", mmap=mmap)
        assert isinstance(loaded, HNSWIndex) and loaded.ntotal == 797
        after = loaded.search(wordnet_queries_ood, 10, ef=20)
        np.testing.assert_array_equal(after.ids, before.ids)
        np.testing.assert_array_equal(after.distances, before.distances)
    # add after an mmap load copies the read-only arrays instead of writing the files
    loaded.add(wordnet_train[800:900], progress=False)
    assert loaded.ntotal == 897
    reread = vs.load(tmp_path / "idx")
    np.testing.assert_array_equal(reread.search(wordnet_queries_ood, 10, ef=20).ids, before.ids)


def _graph_arrays(index):
    n, r = index._n, index._n_upper
    return [
        index._links0[:n],
        index._counts0[:n],
        index._levels[:n],
        index._upper_start[:n],
        index._upper_links[:r],
        index._upper_counts[:r],
    ]


def test_single_thread_seeded_builds_are_identical(wordnet_train):
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        builds = []
        for _ in range(2):
            index = HNSWIndex(384, "l2", M=8, ef_construction=40, seed=7)
            index.add(wordnet_train[:1200], progress=False)
            builds.append(_graph_arrays(index))
    finally:
        numba.set_num_threads(previous)
    for a, b in zip(*builds):
        np.testing.assert_array_equal(a, b)
    # The graph does not depend on the thread count either (proposal/apply scheme).
    index = HNSWIndex(384, "l2", M=8, ef_construction=40, seed=7)
    index.add(wordnet_train[:1200], progress=False)
    for a, b in zip(builds[0], _graph_arrays(index)):
        np.testing.assert_array_equal(a, b)


def test_graph_lists_hold_valid_distinct_neighbors(cosine_index):
    n = cosine_index._n
    counts = cosine_index._counts0[:n]
    assert counts.max() <= 2 * M and counts.min() >= 1
    for u in range(0, n, 97):
        row = cosine_index._links0[u, : counts[u]]
        assert len(set(row.tolist())) == row.size and u not in row and (row < n).all()


def test_invalid_parameters_raise_naming_the_argument(cosine_index, wordnet_queries_id):
    with pytest.raises(ValueError, match="ef"):
        cosine_index.search(wordnet_queries_id[:2], 10, ef=0)
    with pytest.raises(TypeError, match="nprobe"):
        cosine_index.search(wordnet_queries_id[:2], 10, nprobe=3)
    with pytest.raises(ValueError, match="M"):
        HNSWIndex(8, "l2", M=1)
    with pytest.raises(TypeError, match="progress"):
        HNSWIndex(8, "l2").add(np.ones((3, 8)), progress="yes")
    with pytest.raises(ValueError, match="vectors"):
        HNSWIndex(8, "l2").add(np.ones((3, 7)))


def test_empty_index_pads_and_factory_round_trips():
    index = vs.index_factory(16, "HNSW32", metric="ip")
    assert isinstance(index, HNSWIndex) and index.M == 32 and vs.describe(index) == "HNSW32"
    res = index.search(np.ones(16), 3)
    assert (res.ids == -1).all()


def test_add_after_mmap_load_never_writes_the_files(wordnet_train, tmp_path):
    index = HNSWIndex(384, "l2", M=4, ef_construction=16, allow_replace_deleted=True)
    index.add(wordnet_train[:300], progress=False)
    index.remove(np.arange(50))
    index.save(tmp_path / "idx")
    mapped = vs.load(tmp_path / "idx", mmap=True)
    mapped.add(
        wordnet_train[300:340], progress=False
    )  # reuses deleted slots: writes into mapped arrays
    assert mapped.ntotal == 290
    vs.load(tmp_path / "idx", verify=True)  # checksums still match: the files are untouched


def test_compact_of_everything_leaves_an_empty_index_that_accepts_adds(wordnet_train):
    index = HNSWIndex(384, "ip", M=4, ef_construction=16)
    index.add(wordnet_train[:100], progress=False)
    index.remove(np.arange(100))
    assert index.compact() == 100 and index.ntotal == 0
    assert (index.search(wordnet_train[:2], 3).ids == -1).all()
    index.add(wordnet_train[100:150], ids=np.arange(100, 150), progress=False)
    assert set(index.search(wordnet_train[100:150], 1).ids[:, 0].tolist()) <= set(range(100, 150))
    assert index.ntotal == 50
