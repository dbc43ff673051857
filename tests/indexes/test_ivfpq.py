"""IVFPQIndex against faiss IndexIVFPQ / IndexRefineFlat at the same settings, plus its contract."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from conftest import exact_knn

import vecsearch as vs
from vecsearch.benchmark.evaluation import recall_at_k
from vecsearch.codecs.kmeans import assign

NLIST, M, NBITS, NPROBE, K, RERANK = 32, 16, 8, 8, 10, 4


@pytest.fixture(scope="module")
def queries(wordnet_queries_id, wordnet_train_queries_ood):
    """700 queries (200 in-distribution + 500 single words) so recall differences are not noise."""
    return np.ascontiguousarray(np.vstack([wordnet_queries_id, wordnet_train_queries_ood]))


def _faiss_recalls(train, queries, metric, truth):
    faiss.omp_set_num_threads(1)  # the 2-core CI box is shared; OpenMP spinning under load is slow
    quantizer = (
        faiss.IndexFlatL2(train.shape[1]) if metric == "l2" else faiss.IndexFlatIP(train.shape[1])
    )
    fmetric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    index = faiss.IndexIVFPQ(quantizer, train.shape[1], NLIST, M, NBITS, fmetric)
    index.train(train)
    refine = faiss.IndexRefineFlat(index)
    refine.add(train)
    index.nprobe = NPROBE
    plain = recall_at_k(index.search(queries, K)[1], truth)
    refine.k_factor = RERANK
    refined = recall_at_k(refine.search(queries, K)[1], truth)
    return plain, refined


@pytest.fixture(scope="module", params=["l2", "ip"])
def built(request, wordnet_train):
    metric = request.param
    index = vs.IVFPQIndex(
        384, metric, nlist=NLIST, m=M, nbits=NBITS, keep_vectors=True, nprobe=NPROBE, seed=0
    )
    index.train(wordnet_train)
    index.add(wordnet_train)
    return metric, index


def test_recall_matches_faiss_ivfpq_and_refine(built, wordnet_train, queries):
    metric, index = built
    truth = exact_knn(wordnet_train, queries, K, metric)
    ours_plain = recall_at_k(index.search(queries, K).ids, truth)
    ours_refined = recall_at_k(index.search(queries, K, rerank=RERANK).ids, truth)
    faiss_plain, faiss_refined = _faiss_recalls(wordnet_train, queries, metric, truth)
    assert ours_plain >= faiss_plain - 0.02, (ours_plain, faiss_plain)
    assert ours_refined >= faiss_refined - 0.01, (ours_refined, faiss_refined)
    assert ours_refined > ours_plain + 0.1  # re-ranking must actually help on this data


def test_adc_distances_equal_distance_to_reconstruction(built, wordnet_train, queries):
    """Without re-rank, returned distances are the exact distances to the PQ reconstructions."""
    metric, index = built
    res = index.search(queries[:20], K)
    x = wordnet_train
    labels = assign(x, index.centroids, "l2" if metric == "l2" else "ip")[0]
    recon = index.centroids[labels] + index.pq.decode(index.pq.encode(x - index.centroids[labels]))
    found = recon[res.ids]
    if metric == "l2":
        expected = ((found - queries[:20, None, :]) ** 2).sum(-1)
    else:
        expected = -np.einsum("qkd,qd->qk", found, queries[:20])
    np.testing.assert_allclose(res.distances, expected, rtol=1e-3, atol=1e-3)


def test_rerank_distances_are_exact(built, wordnet_train, queries):
    metric, index = built
    res = index.search(queries[:20], K, rerank=RERANK)
    found = wordnet_train[res.ids]
    if metric == "l2":
        expected = ((found - queries[:20, None, :]) ** 2).sum(-1)
    else:
        expected = -np.einsum("qkd,qd->qk", found, queries[:20])
    np.testing.assert_allclose(res.distances, expected, rtol=1e-4, atol=1e-4)
    assert (np.diff(res.distances, axis=1) >= 0).all()


def test_more_probes_never_lower_adc_recall_much(built, wordnet_train, queries):
    metric, index = built
    truth = exact_knn(wordnet_train, queries, K, metric)
    recalls = [recall_at_k(index.search(queries, K, nprobe=p).ids, truth) for p in (1, 4, 32)]
    assert recalls[0] < recalls[1] < recalls[2]
    # nprobe = nlist scans everything: single-query path gives the same as the batch path
    single = index.search(queries[3], K, nprobe=NLIST)
    np.testing.assert_array_equal(single.ids[0], index.search(queries[:5], K, nprobe=NLIST).ids[3])


def test_cosine_equals_ip_on_normalized_vectors(wordnet_train, wordnet_queries_id):
    data = wordnet_train[:2000] / np.linalg.norm(wordnet_train[:2000], axis=1, keepdims=True)
    cos = vs.IVFPQIndex(384, "cosine", nlist=8, m=8, nbits=6, seed=3)
    ip = vs.IVFPQIndex(384, "ip", nlist=8, m=8, nbits=6, seed=3)
    for index in (cos, ip):
        index.train(data * 3.0 if index.metric == "cosine" else data)  # cosine normalizes its input
        index.add(data * 3.0 if index.metric == "cosine" else data)
    rc, ri = cos.search(wordnet_queries_id[:30] * 2.0, 5), ip.search(wordnet_queries_id[:30], 5)
    np.testing.assert_array_equal(rc.ids, ri.ids)
    np.testing.assert_allclose(rc.distances, 1.0 + ri.distances, atol=1e-4)


def test_remove_drops_ids_and_keeps_others(wordnet_train, wordnet_queries_id):
    data = wordnet_train[:1500]
    index = vs.IVFPQIndex(384, "l2", nlist=8, m=8, nbits=6, keep_vectors=True, nprobe=8)
    index.train(data)
    ids = np.arange(1500, dtype=np.int64) * 7 + 100
    index.add(data, ids=ids)
    before = index.search(data[:50], 1, rerank=50).ids[:, 0]
    np.testing.assert_array_equal(before, ids[:50])  # every vector finds itself after exact re-rank
    removed = ids[:25]
    assert index.remove(np.concatenate([removed, [-5, 999999]])) == 25
    assert index.ntotal == 1475 and int(index.list_sizes().sum()) == 1475
    res = index.search(data[:50], 5, rerank=10)
    assert not np.isin(res.ids, removed).any()
    np.testing.assert_array_equal(res.ids[25:, 0], ids[25:50])
    assert index.remove(removed) == 0


def test_save_load_roundtrip_mmap_and_append(tmp_path, wordnet_train, wordnet_queries_id):
    data = wordnet_train[:2000]
    queries = wordnet_queries_id[:40]
    for opq in (False, True):
        index = vs.IVFPQIndex(
            384, "cosine", nlist=8, m=16, nbits=5, opq=opq, keep_vectors=True, nprobe=3, seed=1
        )
        index.train(data)
        index.add(data[:1500])
        index.remove([3, 4])
        path = tmp_path / f"ivfpq_{opq}"
        index.save(str(path))
        for mmap in (False, True):
            loaded = vs.load(str(path), mmap=mmap)
            assert isinstance(loaded, vs.IVFPQIndex) and loaded.ntotal == 1498
            assert loaded.describe() == index.describe()
            for params in ({}, {"rerank": 3}, {"nprobe": 8}):
                a, b = index.search(queries, 10, **params), loaded.search(queries, 10, **params)
                np.testing.assert_array_equal(a.ids, b.ids)
                np.testing.assert_allclose(a.distances, b.distances, rtol=1e-6)
        # append after (mmap) load, then remove: same as doing it on the original
        loaded.add(data[1500:], ids=np.arange(5000, 5500))
        index.add(data[1500:], ids=np.arange(5000, 5500))
        loaded.remove([5000, 10])
        index.remove([5000, 10])
        a, b = index.search(queries, 10, rerank=2), loaded.search(queries, 10, rerank=2)
        np.testing.assert_array_equal(a.ids, b.ids)
        assert loaded.ntotal == 1996
        hit = loaded.search(data[1600], 1, rerank=50, nprobe=8)
        assert hit.ids[0, 0] == 5100


def test_many_small_appends_equal_one_bulk_add(wordnet_train, wordnet_queries_id):
    data = wordnet_train[:1200]
    bulk = vs.IVFPQIndex(384, "ip", nlist=8, m=8, nbits=6, seed=2)
    bulk.train(data)
    pieces = vs.IVFPQIndex(384, "ip", nlist=8, m=8, nbits=6, seed=2)
    pieces.train(data)
    bulk.add(data)
    for start in range(0, 1200, 97):
        pieces.add(data[start : start + 97])
    a, b = (
        bulk.search(wordnet_queries_id[:30], 10, nprobe=8),
        pieces.search(wordnet_queries_id[:30], 10, nprobe=8),
    )
    np.testing.assert_array_equal(a.ids, b.ids)


def test_fewer_candidates_than_k_are_padded():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((300, 12)).astype(np.float32)
    index = vs.IVFPQIndex(12, "l2", nlist=4, m=3, nbits=4, keep_vectors=True, nprobe=1)
    index.train(data)
    index.add(data[:6])
    res = index.search(data[:2], 10, rerank=3)
    assert (res.ids[:, 6:] == -1).all() and np.isinf(res.distances[:, 6:]).all()
    assert res.ids.shape == (2, 10)


def test_same_seed_gives_identical_index(wordnet_train):
    data = wordnet_train[:1000]
    a = vs.IVFPQIndex(384, "l2", nlist=8, m=8, nbits=6, opq=True, seed=5).train(data)
    b = vs.IVFPQIndex(384, "l2", nlist=8, m=8, nbits=6, opq=True, seed=5).train(data)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.pq.codebooks, b.pq.codebooks)


def test_factory_forms_and_describe():
    index = vs.index_factory(64, "IVF16,PQ8x4", metric="ip", nprobe=3)
    assert isinstance(index, vs.IVFPQIndex)
    assert (index.nlist, index.params.m, index.params.nbits, index.params.nprobe) == (16, 8, 4, 3)
    assert index.describe() == "IVF16,PQ8x4"
    refine = vs.index_factory(64, "OPQ8,IVF16,PQ8,Refine")
    assert refine.params.keep_vectors and refine.params.opq and refine.params.nbits == 8
    assert refine.describe() == "OPQ8,IVF16,PQ8,Refine"
    with pytest.raises(ValueError, match="OPQ4 must match PQ8"):
        vs.index_factory(64, "OPQ4,IVF16,PQ8")


def test_clear_errors():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((300, 12)).astype(np.float32)
    with pytest.raises(ValueError, match="divisible by m"):
        vs.IVFPQIndex(12, "l2", nlist=4, m=5)
    index = vs.IVFPQIndex(12, "l2", nlist=4, m=3, nbits=4)
    with pytest.raises(ValueError, match="not trained"):
        index.add(data)
    with pytest.raises(ValueError, match="not trained"):
        index.search(data[:1], 3)
    with pytest.raises(ValueError, match="needs at least 64 training points"):
        vs.IVFPQIndex(12, "l2", nlist=64, m=3, nbits=4).train(data[:50])
    with pytest.raises(ValueError, match="needs at least 256 training points"):
        vs.IVFPQIndex(12, "l2", nlist=4, m=3, nbits=8).train(data[:200])
    index.train(data)
    index.add(data)
    with pytest.raises(ValueError, match="keep_vectors=True"):
        index.search(data[:1], 3, rerank=2)
    with pytest.raises(ValueError, match="nprobe"):
        index.search(data[:1], 3, nprobe=0)
    with pytest.raises(TypeError, match="unexpected parameter"):
        index.search(data[:1], 3, ef=10)
    with pytest.raises(ValueError, match="already trained"):
        index.train(data)
    with pytest.raises(ValueError, match="nbits"):
        vs.IVFPQIndex(12, "l2", nlist=4, m=3, nbits=9)


def test_warmup_runs_for_all_metrics():
    data = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    vs.IVFPQIndex.warmup_kernels(data)


def test_blas_and_numba_coarse_probes_agree(built, queries, monkeypatch):
    """Batches take the BLAS coarse path, small calls the numba kernel: same lists and results."""
    import vecsearch.indexes.ivfpq as ivfpq_module

    _, index = built
    batch = queries[:100]
    via_blas = index.search(batch, K, nprobe=4)
    monkeypatch.setattr(ivfpq_module, "BLAS_PROBE_MIN_QUERIES", 10**9)
    via_numba = index.search(batch, K, nprobe=4)
    assert (via_blas.ids == via_numba.ids).mean() > 0.99  # float rounding may swap near-ties
    np.testing.assert_allclose(via_blas.distances, via_numba.distances, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rerank", [None, RERANK])
def test_single_query_serial_path_equals_batched_parallel_path(built, queries, rerank):
    """One query per call runs the serial kernels, a batch of 8 the parallel ones: same answers."""
    _, index = built
    batch = np.ascontiguousarray(queries[:8])
    params = {} if rerank is None else {"rerank": rerank}
    together = index.search(batch, K, **params)
    one_by_one = [index.search(q, K, **params) for q in batch]
    np.testing.assert_array_equal(together.ids, np.vstack([r.ids for r in one_by_one]))
    np.testing.assert_allclose(together.distances, np.vstack([r.distances for r in one_by_one]), rtol=1e-6)
