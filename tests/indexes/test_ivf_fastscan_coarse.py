"""The two-stage coarse probe of IVFFastScanIndex (vecsearch/indexes/ivf_coarse.py): PCA-reduced
candidate lists re-scored exactly. It must return the exact probe's lists and scores on (almost)
every query, leave the search results as they were, fall back to the exact probe where it does not
pay, and survive save / load (also of saves from before it existed)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import exact_knn

import vecsearch as vs
from vecsearch.benchmark.evaluation import recall_at_k
from vecsearch.codecs.kmeans import centroid_tiles, nearest_centroids
from vecsearch.indexes import ivf_coarse
from vecsearch.indexes.ivf_fastscan import IVFFastScanIndex
from vecsearch.kernels.coarse_rescore import SAMPLE_STRIDE, candidate_lists
from vecsearch.validation import metric_code

NLIST = 1024  # ivf_coarse.MIN_NLIST: the smallest nlist the two-stage probe is considered for
K = 10
NPROBES = (1, 4, 16, 64)


@pytest.fixture(scope="module")
def queries(wordnet_queries_id, wordnet_train_queries_ood):
    """700 held-out queries (200 in-distribution texts + 500 single words): none was a training row."""
    return np.ascontiguousarray(np.vstack([wordnet_queries_id, wordnet_train_queries_ood]))


@pytest.fixture(scope="module")
def built(wordnet_train):
    cache: dict[str, IVFFastScanIndex] = {}

    def get(metric: str) -> IVFFastScanIndex:
        if metric not in cache:
            index = IVFFastScanIndex(384, metric, nlist=NLIST, m=48, keep_vectors=True, kmeans_iters=4, pq_iters=4)
            index.train(wordnet_train)
            index.add(wordnet_train)
            cache[metric] = index
        return cache[metric]

    return get


def exact_probe(index: IVFFastScanIndex, q: np.ndarray, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
    c = index.centroids
    c_sq = np.einsum("ij,ij->i", c, c).astype(np.float32)
    return nearest_centroids(q, centroid_tiles(c), c_sq, metric_code(index.metric), nprobe)


def reduced_probe(index: IVFFastScanIndex, q: np.ndarray, nprobe: int, rank: int) -> tuple[np.ndarray, np.ndarray]:
    c = index.centroids
    c_sq = np.einsum("ij,ij->i", c, c).astype(np.float32)
    return ivf_coarse.ReducedProbe(c, c_sq, rank).probe(q, metric_code(index.metric), nprobe)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_training_chooses_a_reduced_rank_that_finds_the_exact_lists_with_exact_scores(built, queries, metric):
    index = built(metric)
    assert index.coarse_rank in ivf_coarse.RANKS
    q = queries if metric == "l2" else queries / np.linalg.norm(queries, axis=1, keepdims=True)
    c = index.centroids
    all_scores = (np.sum(q * q, axis=1)[:, None] + np.sum(c * c, axis=1)[None] - 2 * q @ c.T if metric == "l2"
                  else -(q @ c.T))
    shares = []
    for nprobe in NPROBES:
        lists, scores = reduced_probe(index, q, nprobe, index.coarse_rank)
        exact, exact_scores = exact_probe(index, q, nprobe)
        # the rank was chosen to find 99.5% of the lists of training rows; these queries are held
        # out, and on this slice (5 rows per list) the training rows sit closer to their centroids
        shares.append(ivf_coarse.share_found(lists, exact))
        assert shares[-1] >= 0.985, nprobe
        # the scores are exact (the L2 list scan adds them to its residual code distances), best first
        np.testing.assert_allclose(scores, all_scores[np.arange(q.shape[0])[:, None], lists], rtol=1e-5, atol=1e-5)
        assert (np.diff(scores, axis=1) >= 0).all()
        assert (scores >= exact_scores - 1e-5).all()  # the j-th list found is never better than the exact j-th
    assert np.mean(shares) >= 0.99


def test_a_too_small_rank_misses_lists_the_chosen_one_finds(built, queries):
    """The measurement matters: 16 dimensions lose lists the chosen rank keeps (the check can fail)."""
    index = built("l2")
    exact, _ = exact_probe(index, queries, 16)
    low = ivf_coarse.share_found(reduced_probe(index, queries, 16, 16)[0], exact)
    chosen = ivf_coarse.share_found(reduced_probe(index, queries, 16, index.coarse_rank)[0], exact)
    assert low < 0.98 < chosen


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_search_results_match_the_exact_probe(built, queries, wordnet_train, metric):
    index = built(metric)
    rank = index.coarse_rank
    truth = exact_knn(wordnet_train, queries, K, metric)
    try:
        for nprobe in (4, 16):
            index.set_coarse_rank(0)
            exact = index.search(queries, K, nprobe=nprobe)
            index.set_coarse_rank(rank)
            two_stage = index.search(queries, K, nprobe=nprobe)
            assert (two_stage.ids == exact.ids).mean() >= 0.95
            assert abs(recall_at_k(two_stage.ids, truth) - recall_at_k(exact.ids, truth)) <= 0.01
    finally:
        index.set_coarse_rank(rank)


def test_single_queries_and_large_nprobes_take_the_exact_probe(built, queries):
    index = built("l2")
    rank = index.coarse_rank
    try:
        for params in ({"nprobe": 16}, {"nprobe": 128}):
            index.set_coarse_rank(0)
            exact = [index.search(queries[:1], K, **params).ids, index.search(queries[:64], K, nprobe=128).ids]
            index.set_coarse_rank(rank)
            again = [index.search(queries[:1], K, **params).ids, index.search(queries[:64], K, nprobe=128).ids]
            for a, b in zip(exact, again):
                np.testing.assert_array_equal(a, b)
    finally:
        index.set_coarse_rank(rank)


def test_small_nlist_keeps_the_exact_probe(wordnet_train):
    index = IVFFastScanIndex(384, "l2", nlist=64, m=48, kmeans_iters=2, pq_iters=2)
    index.train(wordnet_train[:2000])
    assert index.coarse_rank == 0


def test_no_qualifying_rank_keeps_the_exact_probe(built, wordnet_train, monkeypatch):
    index = built("l2")
    c = index.centroids
    c_sq = np.einsum("ij,ij->i", c, c).astype(np.float32)
    code = metric_code("l2")
    assert ivf_coarse.choose_rank(c, c_sq, code, wordnet_train[:500], centroid_tiles(c))[0] > 0
    monkeypatch.setattr(ivf_coarse, "LIST_RECALL_TARGET", 1.01)
    rank, measured = ivf_coarse.choose_rank(c, c_sq, code, wordnet_train[:500], centroid_tiles(c))
    assert rank == 0 and sorted(measured) == [r for r in ivf_coarse.RANKS if 2 * r <= 384]


def test_save_load_keeps_the_rank_and_the_results_without_recomputing_the_basis(built, queries, tmp_path,
                                                                               monkeypatch):
    index = built("cosine")
    index.save(str(tmp_path / "fs"))
    monkeypatch.setattr(ivf_coarse, "principal_axes", None)  # a load must not need eigh (the saved basis)
    for mmap in (False, True):
        loaded = vs.load(str(tmp_path / "fs"), mmap=mmap)
        assert loaded.coarse_rank == index.coarse_rank > 0
        a, b = index.search(queries, K, nprobe=16), loaded.search(queries, K, nprobe=16)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.distances, b.distances)


def test_a_save_from_before_the_two_stage_probe_loads_and_measures_a_rank(built, queries):
    index = built("l2")
    header, arrays = index.get_state()
    assert arrays["coarse_basis"].shape == (384, index.coarse_rank)
    arrays = {name: arr for name, arr in arrays.items() if name not in ("coarse_rank", "coarse_basis")}
    loaded = vs.Index.from_state(header, arrays)
    assert loaded.coarse_rank in ivf_coarse.RANKS  # chosen with the stored vectors as queries
    loaded.set_coarse_rank(index.coarse_rank)
    np.testing.assert_array_equal(index.search(queries, K, nprobe=16).ids, loaded.search(queries, K, nprobe=16).ids)


@pytest.mark.parametrize("bad", [np.array([17], np.int64), np.array([400], np.int64), np.array([16.0]),
                                 np.array([16, 16], np.int64)])
def test_a_bad_saved_rank_raises_value_error_naming_it(built, bad):
    header, arrays = built("cosine").get_state()
    with pytest.raises(ValueError, match="coarse_rank"):
        vs.Index.from_state(header, {**arrays, "coarse_rank": bad})


def _basis(arrays, edit):
    basis = np.array(arrays["coarse_basis"])
    return edit(basis)


def _nan(basis):
    basis[3, 2] = np.nan
    return basis


BASIS_EDITS = [
    ("missing", lambda a: {k: v for k, v in a.items() if k != "coarse_basis"}),
    ("too narrow", lambda a: {**a, "coarse_basis": _basis(a, lambda b: np.ascontiguousarray(b[:, :16]))}),
    ("float64", lambda a: {**a, "coarse_basis": _basis(a, lambda b: b.astype(np.float64))}),
    ("nan", lambda a: {**a, "coarse_basis": _basis(a, _nan)}),
    ("without a rank", lambda a: {k: v for k, v in a.items() if k != "coarse_rank"}),
    ("with rank 0", lambda a: {**a, "coarse_rank": np.zeros(1, np.int64)}),
]


@pytest.mark.parametrize("name, edit", BASIS_EDITS, ids=[n for n, _ in BASIS_EDITS])
def test_a_bad_saved_basis_raises_value_error_naming_it(built, name, edit):
    header, arrays = built("cosine").get_state()
    with pytest.raises(ValueError, match="coarse_basis"):
        vs.Index.from_state(header, edit(dict(arrays)))


def test_an_exact_probe_index_saves_rank_zero_and_no_basis(wordnet_train):
    index = IVFFastScanIndex(384, "l2", nlist=64, m=48, kmeans_iters=2, pq_iters=2)
    index.train(wordnet_train[:2000])
    index.add(wordnet_train[:2000])
    header, arrays = index.get_state()
    assert arrays["coarse_rank"].tolist() == [0] and "coarse_basis" not in arrays
    assert vs.Index.from_state(header, arrays).coarse_rank == 0


@pytest.mark.parametrize("rank", [8, 17, 400, -16, True, 16.0])
def test_set_coarse_rank_rejects_bad_ranks(built, rank):
    with pytest.raises(ValueError, match="rank"):
        built("cosine").set_coarse_rank(rank)


def test_set_coarse_rank_needs_a_trained_index():
    with pytest.raises(ValueError, match="set_coarse_rank"):
        IVFFastScanIndex(384, "l2", nlist=1024, m=48).set_coarse_rank(0)


def test_the_exact_re_score_finds_lists_the_reduced_ranking_alone_misses(built, queries):
    """Same rank, same basis: the reduced scores' own top-nprobe vs the candidates re-scored."""
    index = built("l2")
    c = index.centroids
    c_sq = np.sum(c * c, axis=1)
    basis = ivf_coarse.principal_axes(c, c.mean(axis=0, dtype=np.float64))[:, : index.coarse_rank]
    approx = c_sq[None] - 2 * (queries @ basis) @ ((c - c.mean(axis=0)) @ basis).T
    exact, _ = exact_probe(index, queries, 16)
    alone = ivf_coarse.share_found(np.argsort(approx, axis=1)[:, :16], exact)
    rescored = ivf_coarse.share_found(reduced_probe(index, queries, 16, index.coarse_rank)[0], exact)
    assert alone < 0.97 and rescored >= 0.985


@pytest.mark.parametrize("n_cand", [1, 18, 80, 300])
def test_candidate_lists_hold_at_least_the_n_cand_best(n_cand):
    rng = np.random.default_rng(n_cand)
    sample = np.empty(1024, np.float32)
    cand = np.empty(4096, np.int64)
    rows = [rng.standard_normal(4096).astype(np.float32) for _ in range(100)]
    rows.append(np.ones(4096, np.float32))  # all tied: every list
    skewed = np.full(4096, 5000, np.float32)
    skewed[::SAMPLE_STRIDE] = np.arange(4096 // SAMPLE_STRIDE)  # only sampled positions pass: too few
    rows.append(skewed)
    for row in rows:
        best = set(np.argsort(row, kind="stable")[:n_cand].tolist()) if row.min() < row.max() else set(range(4096))
        m = candidate_lists(row.copy(), n_cand, sample, cand)
        assert m >= n_cand and len(set(cand[:m].tolist())) == m
        assert best <= set(cand[:m].tolist()) or row.min() == row.max()
    if n_cand >= 18:  # the sample's threshold passes fewer than n_cand: the heap found exactly n_cand
        assert candidate_lists(skewed.copy(), n_cand, sample, cand) == n_cand
