"""LeanVecIndex: recall with re-rank on the real slice, OOD training, persistence, removal, errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import exact_knn

import vecsearch as vs
from vecsearch.benchmark.evaluation import recall_at_k
from vecsearch.indexes.leanvec import LeanVecIndex


@pytest.fixture(scope="module")
def id_index(wordnet_train):
    index = LeanVecIndex(384, "cosine", reduced_dim=128, primary="lvq8", M=24, ef_construction=100)
    index.train(wordnet_train)
    index.add(wordnet_train)
    return index


def test_leanvec_id_lvq8_reaches_recall_095_with_rerank(
    id_index, wordnet_train, wordnet_queries_id
):
    truth = exact_knn(wordnet_train, wordnet_queries_id, 10, "cosine")
    res = id_index.search(wordnet_queries_id, 10, ef=128)
    assert recall_at_k(res.ids, truth) >= 0.95


def test_reranking_the_whole_buffer_beats_reranking_only_k(
    id_index, wordnet_train, wordnet_queries_ood
):
    truth = exact_knn(wordnet_train, wordnet_queries_ood, 10, "cosine")
    full = recall_at_k(id_index.search(wordnet_queries_ood, 10, ef=64).ids, truth)
    only_k = recall_at_k(id_index.search(wordnet_queries_ood, 10, ef=64, rerank=10).ids, truth)
    assert full > only_k
    assert full >= 0.85


def test_rerank_pool_wider_than_the_beam_does_not_lose_recall(
    id_index, wordnet_train, wordnet_queries_ood
):
    truth = exact_knn(wordnet_train, wordnet_queries_ood, 10, "cosine")
    beam = id_index.search(wordnet_queries_ood, 10, ef=16)
    pool = id_index.search(wordnet_queries_ood, 10, ef=16, rerank=64)
    assert recall_at_k(pool.ids, truth) >= recall_at_k(beam.ids, truth)
    # the pool kept more than the beam's 16 candidates: some rows changed
    assert (pool.ids != beam.ids).any()


def test_returned_distances_are_exact_secondary_distances(
    id_index, wordnet_train, wordnet_queries_id
):
    res = id_index.search(wordnet_queries_id[:20], 10, ef=64)
    q = wordnet_queries_id[:20] / np.linalg.norm(wordnet_queries_id[:20], axis=1, keepdims=True)
    x = wordnet_train / np.linalg.norm(wordnet_train, axis=1, keepdims=True)
    exact = 1.0 - np.einsum("qd,qkd->qk", q, x[res.ids])
    np.testing.assert_allclose(res.distances, exact, atol=2e-6)
    assert (np.diff(res.distances, axis=1) >= -1e-6).all()


def test_ood_index_search_on_ood_queries(
    wordnet_train, wordnet_train_queries_ood, wordnet_queries_ood
):
    x = wordnet_train[:2500]
    index = LeanVecIndex(384, "ip", reduced_dim=96, primary="lvq8", M=24, ef_construction=100)
    index.train(x, queries=wordnet_train_queries_ood)
    assert index.projection.kind == "ood"
    index.add(x)
    truth = exact_knn(x, wordnet_queries_ood, 10, "ip")
    assert recall_at_k(index.search(wordnet_queries_ood, 10, ef=128).ids, truth) >= 0.93


@pytest.mark.parametrize(
    "metric,reduced_dim,primary,secondary",
    [
        ("l2", None, "lvq4x8", "float16"),
        ("l2", 64, "lvq4", "lvq8"),
        ("ip", None, "lvq8", "float32"),
        ("cosine", 48, "float32", "float32"),
    ],
)
def test_every_primary_and_secondary_kind_finds_neighbors(
    metric, reduced_dim, primary, secondary, wordnet_train, wordnet_queries_id
):
    x = wordnet_train[:1500]
    index = LeanVecIndex(
        384,
        metric,
        reduced_dim=reduced_dim,
        primary=primary,
        secondary=secondary,
        M=16,
        ef_construction=64,
    )
    index.train(x)
    index.add(x)
    truth = exact_knn(x, wordnet_queries_id, 10, metric)
    assert recall_at_k(index.search(wordnet_queries_id, 10, ef=96).ids, truth) >= 0.9


def test_ood_projection_under_l2_uses_exact_norms(
    wordnet_train, wordnet_train_queries_ood, wordnet_queries_ood
):
    x = wordnet_train[:1500] * np.linspace(0.5, 2.0, 1500, dtype=np.float32)[:, None]
    index = LeanVecIndex(384, "l2", reduced_dim=64, M=16, ef_construction=64)
    index.train(x, queries=wordnet_train_queries_ood)
    index.add(x)
    truth = exact_knn(x, wordnet_queries_ood, 10, "l2")
    assert recall_at_k(index.search(wordnet_queries_ood, 10, ef=96).ids, truth) >= 0.85


def test_incremental_adds_and_removed_ids_never_returned(wordnet_train, wordnet_queries_id):
    x = wordnet_train[:2000]
    index = LeanVecIndex(384, "cosine", reduced_dim=64, M=16, ef_construction=64)
    index.train(x)
    index.add(x[:1000])
    index.add(x[1000:], ids=np.arange(1000, 2000) + 10_000)
    truth = exact_knn(x, wordnet_queries_id, 10, "cosine")
    truth = np.where(truth >= 1000, truth + 10_000, truth)
    res = index.search(wordnet_queries_id, 10, ef=96)
    assert recall_at_k(res.ids, truth) >= 0.9
    removed = np.unique(res.ids[:, 0])
    assert index.remove(removed) == removed.size
    assert index.ntotal == 2000 - removed.size
    res2 = index.search(wordnet_queries_id, 10, ef=96)
    assert not np.isin(res2.ids, removed).any()


def test_save_load_gives_identical_results(
    tmp_path, wordnet_train, wordnet_train_queries_ood, wordnet_queries_ood
):
    x = wordnet_train[:1200]
    index = LeanVecIndex(
        384, "ip", reduced_dim=32, primary="lvq4", secondary="lvq8", M=12, ef_construction=48
    )
    index.train(x, queries=wordnet_train_queries_ood)
    index.add(x)
    index.remove([3, 5])
    before = index.search(wordnet_queries_ood, 10, ef=40)
    index.save(tmp_path / "lv")
    for mmap in (False, True):
        loaded = vs.load(tmp_path / "lv", mmap=mmap)
        assert isinstance(loaded, LeanVecIndex) and loaded.projection.kind == "ood"
        after = loaded.search(wordnet_queries_ood, 10, ef=40)
        np.testing.assert_array_equal(after.ids, before.ids)
        np.testing.assert_array_equal(after.distances, before.distances)
    loaded.add(wordnet_train[1200:1300])  # a mmap-loaded index grows into writable memory
    assert loaded.ntotal == 1298


def test_same_seed_builds_identical_graphs(wordnet_train):
    x = wordnet_train[:600]
    graphs = []
    for _ in range(2):
        index = LeanVecIndex(384, "l2", reduced_dim=16, M=8, ef_construction=32, seed=3)
        index.train(x)
        index.add(x)
        _, arrays = index.get_state()
        graphs.append((arrays["links0"].copy(), arrays["upper_links"].copy()))
    for a, b in zip(*graphs):
        np.testing.assert_array_equal(a, b)


def test_fewer_results_than_k_are_padded(wordnet_train):
    index = LeanVecIndex(384, "l2", reduced_dim=8, M=8, ef_construction=16)
    index.train(wordnet_train[:50])
    index.add(wordnet_train[:5])
    res = index.search(wordnet_train[:2], 8)
    assert (res.ids[:, :5] >= 0).all() and (res.ids[:, 5:] == -1).all()
    assert np.isinf(res.distances[:, 5:]).all()


def test_clear_errors_for_bad_reduced_dim_query_sample_and_untrained_use(wordnet_train):
    with pytest.raises(ValueError, match="reduced_dim"):
        LeanVecIndex(384, reduced_dim=384)
    with pytest.raises(ValueError, match="reduced_dim"):
        LeanVecIndex(384, reduced_dim=0)
    index = LeanVecIndex(384, "ip", reduced_dim=16)
    with pytest.raises(ValueError, match="queries"):
        index.train(wordnet_train[:100], queries=np.zeros((20, 100), np.float32))
    with pytest.raises(ValueError, match="not trained"):
        index.search(wordnet_train[:1], 5)
    with pytest.raises(ValueError, match="not trained"):
        index.add(wordnet_train[:10])
    with pytest.raises(TypeError, match="unexpected parameter"):
        index.train(wordnet_train[:100]).search(wordnet_train[:1], 5, nprobe=3)


def test_factory_forms_and_describe_round_trip():
    index = vs.index_factory(384, "LeanVec128,LVQ4x8,HNSW24", metric="ip", secondary="float16")
    assert isinstance(index, LeanVecIndex)
    assert (index.params.reduced_dim, index.params.primary, index.params.M) == (128, "lvq4x8", 24)
    assert vs.describe(index) == "LeanVec128,LVQ4x8,HNSW24"
    lvq = vs.index_factory(384, "LVQ4,HNSW16")
    assert lvq.params.reduced_dim is None and vs.describe(lvq) == "LVQ4,HNSW16"
    assert vs.describe(vs.index_factory(384, "LeanVec64,HNSW16")) == "LeanVec64,HNSW16"


def test_warmup_builds_and_searches_tiny_indexes():
    data = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    LeanVecIndex.warmup_kernels(data)


def test_a_trained_projection_is_reused_across_indexes(
    wordnet_train, wordnet_train_queries_ood, wordnet_queries_ood
):
    from vecsearch.codecs.projection import train_leanvec_ood

    x = wordnet_train[:1000]
    projection = train_leanvec_ood(x, wordnet_train_queries_ood, 32)
    truth = exact_knn(x, wordnet_queries_ood, 10, "ip")
    for primary in ("lvq8", "lvq4"):
        index = LeanVecIndex(384, "ip", reduced_dim=32, primary=primary, M=12, ef_construction=48)
        index.set_projection(projection, x)
        assert index.projection is projection
        index.add(x)
        assert (
            recall_at_k(index.search(wordnet_queries_ood, 10, ef=64).ids, truth) >= 0.7
        )  # d=32: coarse
    with pytest.raises(ValueError, match="already holds"):
        index.train(x)
    with pytest.raises(ValueError, match="projection"):
        LeanVecIndex(384, "ip", reduced_dim=16).set_projection(projection, x)


def test_default_reduced_dim_is_two_thirds_in_multiples_of_64_and_none_for_small_dims():
    from vecsearch.indexes.leanvec import auto_reduced_dim

    assert LeanVecIndex(384, "cosine").params.reduced_dim == 256
    assert LeanVecIndex(32, "cosine").params.reduced_dim is None
    assert LeanVecIndex(192, "cosine").params.reduced_dim is None
    assert LeanVecIndex(768, "cosine").params.reduced_dim == 512
    assert auto_reduced_dim(1536) == 1024 and auto_reduced_dim(1000) == 640
    assert all(auto_reduced_dim(d) % 64 == 0 and auto_reduced_dim(d) < d for d in range(193, 4097))

def test_default_rerank_widens_only_when_the_reduction_cuts_deeper_than_the_default():
    from vecsearch.indexes.leanvec import default_rerank

    assert default_rerank(10, 64, 384, 256) == 20  # the code walks' max(2k, 20) at the default reduction
    assert default_rerank(10, 64, 384, 384) == 20  # no reduction
    assert default_rerank(10, 128, 384, 128) == 40  # a third of the dims: twice the pool
    assert default_rerank(10, 30, 384, 64) == 30  # never past the beam
    assert default_rerank(50, 200, 384, 256) == 100
