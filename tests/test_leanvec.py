"""LeanVec projections (ID PCA, OOD Frank-Wolfe: training, persistence, errors) and the graph they index.

The index API itself is covered in tests/indexes/test_leanvec_index.py; the graph-build and
operating-point behaviours of the LeanVec graph kernels are guarded at the end of this file.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import exact_knn

import vecsearch as vs
from vecsearch.benchmark.evaluation import recall_at_k
from vecsearch.codecs.projection import (
    LeanVecProjection,
    ood_loss,
    train_leanvec_id,
    train_leanvec_ood,
)
from vecsearch.indexes.hnsw import HNSWIndex
from vecsearch.indexes.leanvec import BUILD_ALPHA, ENTRY_SAMPLE, LeanVecIndex
from vecsearch.kernels.distances import METRIC_L2
from vecsearch.kernels.leanvec_graph import KIND_FLOAT32, build_batch_search


def _ip_error(proj, q, x):
    true = q @ x.T
    return float(((proj.approx_inner_products(q, x) - true) ** 2).sum() / (true**2).sum())


def test_ood_projection_reconstructs_held_out_ood_inner_products_better_than_id(
    wordnet_train, wordnet_train_queries_ood, wordnet_queries_ood
):
    d = 32
    pid = train_leanvec_id(wordnet_train, d)
    pood = train_leanvec_ood(wordnet_train, wordnet_train_queries_ood, d)
    err_id = _ip_error(pid, wordnet_queries_ood, wordnet_train)
    err_ood = _ip_error(pood, wordnet_queries_ood, wordnet_train)
    assert err_ood < err_id
    assert err_ood < 0.5  # a real approximation, not a degenerate projection


def test_ood_frank_wolfe_decreases_the_loss_and_stops_on_relative_change(
    wordnet_train, wordnet_train_queries_ood
):
    pood = train_leanvec_ood(wordnet_train, wordnet_train_queries_ood, 16)
    hist = np.asarray(pood.loss_history)
    assert hist[-1] < 0.5 * hist[0]
    assert 2 < len(hist) <= 501
    assert abs(hist[-1] - hist[-2]) / abs(hist[-2]) < 1e-3
    # Iterates stay in the spectral-norm ball.
    assert np.linalg.norm(pood.query_matrix, 2) <= 1 + 1e-4
    assert np.linalg.norm(pood.database_matrix, 2) <= 1 + 1e-4


def test_id_projection_is_orthonormal_pca_of_centered_data(wordnet_train):
    p = train_leanvec_id(wordnet_train, 24)
    np.testing.assert_allclose(p.database_matrix.T @ p.database_matrix, np.eye(24), atol=1e-4)
    np.testing.assert_allclose(p.mu, wordnet_train.mean(0), atol=1e-5)
    z = p.transform_database(wordnet_train)
    var = z.var(0)
    assert (np.diff(var) <= 1e-6).all()  # components sorted by explained variance
    # PCA keeps more variance than a random orthonormal projection.
    rand = np.linalg.qr(np.random.default_rng(0).standard_normal((384, 24)))[0]
    assert var.sum() > ((wordnet_train - p.mu) @ rand).var(0).sum() * 2


def test_projection_round_trips_through_arrays(wordnet_train, wordnet_train_queries_ood):
    p = train_leanvec_ood(wordnet_train[:1000], wordnet_train_queries_ood, 8)
    q = LeanVecProjection.from_arrays("ood", p.to_arrays())
    np.testing.assert_array_equal(
        q.transform_queries(wordnet_train[:5], "ip"), p.transform_queries(wordnet_train[:5], "ip")
    )


def test_ood_loss_at_zero_is_trace_of_kq_kx():
    rng = np.random.default_rng(0)
    kq = rng.standard_normal((6, 6))
    kq = kq @ kq.T
    kx = rng.standard_normal((6, 6))
    kx = kx @ kx.T
    z = np.zeros((6, 2))
    assert ood_loss(z, z, kq, kx) == pytest.approx(np.trace(kq @ kx))


def test_leanvec_training_rejects_bad_reduced_dim_and_query_dim(wordnet_train):
    with pytest.raises(ValueError, match="reduced_dim"):
        train_leanvec_id(wordnet_train, 384)
    with pytest.raises(ValueError, match="reduced_dim"):
        train_leanvec_id(wordnet_train, 0)
    with pytest.raises(ValueError, match="queries"):
        train_leanvec_ood(wordnet_train, np.zeros((10, 100), np.float32), 16)


# ---- the LeanVec graph -------------------------------------------------------------------------
def test_build_search_on_codes_links_like_a_build_on_the_decoded_vectors(wordnet_train):
    # The build's beam search scores the LVQ codes; it must choose the links a search over the
    # decoded float32 vectors would (equal L2 up to float rounding).
    x = wordnet_train[:1500]
    index = LeanVecIndex(384, "l2", reduced_dim=48, primary="lvq8", M=16, ef_construction=64)
    index.train(x)
    index.add(x)
    n, R = index._n, index.params.M
    decoded = index._decoded_primary()
    mu = index._primary_codec.mu
    batch = np.arange(0, n, 7, dtype=np.int64)
    f16 = np.zeros(65536, np.float32)  # unused by the LVQ kernels (arithmetic float16 decode)
    links = []
    for kind, rows in (
        (index._kind, index._prim_rows),
        (KIND_FLOAT32, np.zeros((0, 0), np.uint8)),
    ):
        out = np.full((batch.size, R), -1, np.int32)
        deg = np.zeros(batch.size, np.int32)
        build_batch_search(
            METRIC_L2, kind, rows, mu, f16, decoded, index._neighbors, index._degrees,
            index._entry, batch, 64, R, np.float32(BUILD_ALPHA**2), 1, out, deg,
        )  # fmt: skip
        links.append((out, deg))
    (codes_links, codes_deg), (float_links, float_deg) = links
    same = [
        len(set(codes_links[i, : codes_deg[i]]) & set(float_links[i, : float_deg[i]]))
        / max(float_deg[i], 1)
        for i in range(batch.size)
    ]
    assert np.mean(same) >= 0.98
    assert (np.abs(codes_deg - float_deg) <= 1).all()


def test_wide_leanvec_graph_matches_hnsw_recall_per_ef_on_ood_queries(
    wordnet_train, wordnet_queries_ood
):
    # The recommended operating point (bench/bench_leanvec.py): out-degree 56, ef_construction 150
    # reaches HNSW16/200's recall at equal ef on the out-of-distribution queries, which the old
    # M=32, ef_construction=100 graph did not (0.834 vs 0.859 at ef=16 on this slice; ~2.5x
    # HNSW's ef for recall 0.95 on the full set).
    x = wordnet_train
    truth = exact_knn(x, wordnet_queries_ood, 10, "cosine")
    hnsw = HNSWIndex(384, "cosine", M=16, ef_construction=200, seed=0)
    hnsw.add(x, progress=False)
    lean = LeanVecIndex(
        384, "cosine", reduced_dim=192, primary="lvq8", M=56, ef_construction=150, seed=0
    )
    lean.train(x)
    lean.add(x)
    for ef in (16, 32):
        r_hnsw = recall_at_k(hnsw.search(wordnet_queries_ood, 10, ef=ef).ids, truth)
        r_lean = recall_at_k(lean.search(wordnet_queries_ood, 10, ef=ef).ids, truth)
        assert r_lean >= r_hnsw - 0.005, (ef, r_lean, r_hnsw)


@pytest.fixture(scope="module")
def entry_layer_index(wordnet_train):
    index = LeanVecIndex(384, "cosine", reduced_dim=96, primary="lvq8", M=32, ef_construction=100)
    index.train(wordnet_train)
    index.add(wordnet_train)
    return index


def test_entry_layer_starts_with_the_medoid_and_saves_walk_reads_at_equal_recall(
    entry_layer_index, wordnet_train, wordnet_queries_ood
):
    index = entry_layer_index
    sample = index._entry_sample
    assert sample[0] == index._entry and np.unique(sample).size == sample.size
    assert 1 < sample.size <= min(ENTRY_SAMPLE, index.ntotal)
    truth = exact_knn(wordnet_train, wordnet_queries_ood, 10, "cosine")
    layered = recall_at_k(index.search(wordnet_queries_ood, 10, ef=24).ids, truth)
    walk_reads = index.last_walk_reads.mean() - sample.size  # the sample's rows are cache-resident
    index._entry_sample = sample[:1]  # the medoid alone, as before the entry layer
    try:
        medoid = recall_at_k(index.search(wordnet_queries_ood, 10, ef=24).ids, truth)
        medoid_reads = index.last_walk_reads.mean() - 1
    finally:
        index._entry_sample = sample
    assert walk_reads < medoid_reads
    assert layered >= medoid - 0.01


def test_index_files_without_an_entry_layer_load_and_walk_from_the_medoid(
    tmp_path, wordnet_train, wordnet_queries_id
):
    # Files saved before the entry layer existed have no ``entry_sample`` array.
    x = wordnet_train[:1500]
    index = LeanVecIndex(384, "ip", reduced_dim=48, M=16, ef_construction=48)
    index.train(x)
    index.add(x)
    index.save(tmp_path / "lv")
    manifest_file = tmp_path / "lv" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    (tmp_path / "lv" / manifest["arrays"].pop("entry_sample")["file"]).unlink()
    manifest_file.write_text(json.dumps(manifest))
    old = vs.load(tmp_path / "lv")
    np.testing.assert_array_equal(old._entry_sample, [index._entry])
    index._entry_sample = index._entry_sample[:1]
    np.testing.assert_array_equal(
        old.search(wordnet_queries_id, 10, ef=32).ids,
        index.search(wordnet_queries_id, 10, ef=32).ids,
    )


def test_removed_entry_layer_nodes_keep_routing_but_are_never_returned(
    wordnet_train, wordnet_queries_id
):
    x = wordnet_train[:2000]
    index = LeanVecIndex(384, "cosine", reduced_dim=64, M=16, ef_construction=64)
    index.train(x)
    index.add(x)
    removed = index._ids.slot_to_id[index._entry_sample]  # the medoid and every sampled entry
    assert index.remove(removed) == removed.size
    res = index.search(wordnet_queries_id, 10, ef=64)
    assert not np.isin(res.ids, removed).any()
    keep = np.setdiff1d(np.arange(x.shape[0]), removed)
    truth = keep[exact_knn(x[keep], wordnet_queries_id, 10, "cosine")]
    assert recall_at_k(res.ids, truth) >= 0.9
