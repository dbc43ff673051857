"""k-means and product-quantization kernels against faiss (Kmeans, ProductQuantizer) and numpy references."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

import vecsearch as vs
import vecsearch.codecs.kmeans as km
from vecsearch.codecs.pq import train_opq_rotation
from vecsearch.kernels.clustering import split_empty_clusters


@pytest.fixture(autouse=True)
def _faiss_single_thread():
    faiss.omp_set_num_threads(1)  # shared 2-core box: OpenMP spinning under load is very slow


@pytest.mark.parametrize("m, nbits", [(16, 8), (32, 4)])
def test_pq_reconstruction_mse_within_5_percent_of_faiss(m, nbits, wordnet_train):
    x = wordnet_train
    ours = vs.ProductQuantizer(384, m, nbits, seed=0).fit(x)
    codes = ours.encode(x)
    assert codes.dtype == np.uint8 and codes.shape == (5000, m) and int(codes.max()) < 2**nbits
    mse = float(((ours.decode(codes) - x) ** 2).sum(1).mean())
    ref = faiss.ProductQuantizer(384, m, nbits)
    ref.train(x)
    ref_mse = float(((ref.decode(ref.compute_codes(x)) - x) ** 2).sum(1).mean())
    assert mse <= 1.05 * ref_mse, (mse, ref_mse)


@pytest.mark.parametrize(
    "dim, m, nbits, n_rows",
    [(384, 8, 5, 50), (381, 127, 4, 51), (21, 7, 3, 13)],  # even, odd (3) and odd (3) sub-dims
)
def test_pq_encode_picks_the_nearest_codeword_per_subspace(dim, m, nbits, n_rows, wordnet_train):
    x = np.ascontiguousarray(wordnet_train[:800, :dim])
    dsub = dim // m
    pq = vs.ProductQuantizer(dim, m, nbits, niter=5).fit(x)
    codes = pq.encode(x[:n_rows])  # n_rows not a multiple of the 4-row tile: the tail path runs
    sub = x[:n_rows].reshape(n_rows, m, dsub)
    dists = ((sub[:, :, None, :] - pq.codebooks[None]) ** 2).sum(-1)  # (n_rows, m, ksub)
    best = dists.min(-1)
    chosen = np.take_along_axis(dists, codes[:, :, None].astype(np.int64), -1)[..., 0]
    np.testing.assert_allclose(chosen, best, rtol=1e-5, atol=1e-6)
    # decode is the concatenation of the chosen codewords; re-encoding it is stable
    recon = pq.decode(codes)
    np.testing.assert_array_equal(
        recon.reshape(n_rows, m, dsub), pq.codebooks[np.arange(m)[None], codes]
    )
    np.testing.assert_array_equal(pq.encode(recon), codes)


@pytest.mark.parametrize("n_centroids", [5, 8, 12, 256])
def test_direct_assignment_picks_the_nearest_centroid(n_centroids):
    """Centroid counts below, at and off the 8-lane minimum search, rows off the 4-row tile."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((37, 5)).astype(np.float32)
    centroids = rng.standard_normal((n_centroids, 5)).astype(np.float32)
    for metric in ("l2", "ip"):
        labels, scores = km.assign(x, centroids, metric)
        exact = (
            ((x[:, None] - centroids[None]) ** 2).sum(-1) if metric == "l2" else -(x @ centroids.T)
        )
        np.testing.assert_array_equal(labels, exact.argmin(1))
        np.testing.assert_allclose(scores, exact.min(1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_adc_equals_exact_distance_to_reconstruction(metric, wordnet_train, wordnet_queries_id):
    x, q = wordnet_train[:1000], wordnet_queries_id[:7]
    pq = vs.ProductQuantizer(384, 12, 6, niter=5, seed=1).fit(x)
    codes = pq.encode(x)
    tables = pq.compute_distance_tables(q, metric)
    assert tables.shape == (7, 12, 64) and tables.dtype == np.float32
    got = pq.adc(tables, codes)
    recon = pq.decode(codes)
    expected = ((q[:, None] - recon[None]) ** 2).sum(-1) if metric == "l2" else -(q @ recon.T)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pq.compute_distance_tables(q[0], metric)[0], tables[0])


def test_pq_errors_name_the_argument():
    with pytest.raises(ValueError, match="divisible by m"):
        vs.ProductQuantizer(10, 3)
    pq = vs.ProductQuantizer(8, 2, 4)
    with pytest.raises(ValueError, match="not trained"):
        pq.encode(np.zeros((2, 8), np.float32))
    with pytest.raises(ValueError, match="at least 2\\*\\*nbits = 16"):
        pq.fit(np.random.default_rng(0).standard_normal((10, 8)))
    pq.fit(np.random.default_rng(0).standard_normal((100, 8)))
    with pytest.raises(ValueError, match="expected shape \\(n, 8\\)"):
        pq.encode(np.zeros((2, 7), np.float32))
    with pytest.raises(TypeError, match="uint8"):
        pq.decode(np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="values < 16"):
        pq.decode(np.full((2, 2), 200, np.uint8))


def test_kmeans_objective_close_to_faiss(wordnet_train):
    x = wordnet_train
    centroids, objective = km.kmeans(x, 64, niter=10, seed=0)
    assert centroids.shape == (64, 384) and centroids.dtype == np.float32
    ref = faiss.Kmeans(384, 64, niter=10, seed=1)
    ref.train(x)
    ref_objective = float(km.assign(x, ref.centroids)[1].sum())
    ours = float(km.assign(x, centroids)[1].sum())
    assert ours <= 1.03 * ref_objective, (ours, ref_objective)
    # Lloyd never gets worse: the final centroids beat the last reported assignment objective
    assert ours <= objective * (1 + 1e-4)


def test_tiled_and_direct_assignment_agree(wordnet_train, monkeypatch):
    x = wordnet_train[:2000]
    centroids = x[::50].copy()
    for metric in ("l2", "ip"):
        monkeypatch.setattr(km, "TILED_MIN_WORK", 1)
        tiled_labels, tiled_scores = km.assign(x, centroids, metric)
        monkeypatch.setattr(km, "TILED_MIN_WORK", 1 << 40)
        direct_labels, direct_scores = km.assign(x, centroids, metric)
        assert (tiled_labels == direct_labels).mean() > 0.999  # ties/rounding only
        np.testing.assert_allclose(tiled_scores, direct_scores, rtol=1e-4, atol=1e-4)
        exact = (
            ((x[:, None] - centroids[None]) ** 2).sum(-1) if metric == "l2" else -(x @ centroids.T)
        )
        np.testing.assert_allclose(direct_scores, exact.min(1), rtol=1e-4, atol=1e-4)


def test_empty_cluster_takes_half_of_the_largest():
    centroids = np.array([[1.0, 2.0], [9.0, 9.0], [4.0, 4.0], [7.0, 7.0]], np.float32)
    counts = np.array([5, 0, 10, 0], np.int64)
    assert split_empty_clusters(centroids, counts) == 2
    assert counts.sum() == 15 and (counts > 0).all()
    np.testing.assert_allclose(
        centroids[1], [4.0, 4.0], rtol=1e-2
    )  # copy of the largest, perturbed
    assert not np.array_equal(centroids[1], centroids[2])


def test_kmeans_uses_every_cluster_on_duplicate_heavy_data():
    rng = np.random.default_rng(0)
    # 90% of the points sit on one spot: random init draws many duplicate centroids there
    spots = rng.standard_normal((30, 16)).astype(np.float32) * 10
    which = np.where(rng.random(3000) < 0.9, 0, rng.integers(1, 30, 3000))
    x = spots[which] + 0.01 * rng.standard_normal((3000, 16)).astype(np.float32)
    centroids, _ = km.kmeans(x, 30, niter=15, seed=0)
    labels, _ = km.assign(x, centroids)
    # without repair the duplicated initial centroids would stay empty forever
    assert np.unique(labels).shape[0] >= 29


def test_kmeans_is_seeded_and_caps_training_sample(wordnet_train):
    x = wordnet_train[:3000]
    a, _ = km.kmeans(x, 16, niter=3, seed=7, max_points_per_centroid=20)
    b, _ = km.kmeans(x, 16, niter=3, seed=7, max_points_per_centroid=20)
    np.testing.assert_array_equal(a, b)
    rows = km.sample_training_rows(3000, 16, 20, np.random.default_rng(0))
    assert rows.shape == (320,) and np.unique(rows).shape == (320,)
    pp, _ = km.kmeans(x, 16, niter=3, seed=7, init="kmeans++")
    assert np.isfinite(pp).all() and not np.array_equal(pp, a)
    with pytest.raises(ValueError, match="at least 16 training points"):
        km.kmeans(x[:10], 16)
    with pytest.raises(ValueError, match="init"):
        km.kmeans(x, 4, init="forgy")


def test_opq_rotation_is_orthonormal_and_lowers_pq_error(wordnet_train):
    x = wordnet_train[:2000]
    rotation = train_opq_rotation(x, 16, 6, niter=4, seed=0)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(384), atol=1e-4)
    plain = vs.ProductQuantizer(384, 16, 6, niter=10).fit(x)
    xr = x @ rotation
    rotated = vs.ProductQuantizer(384, 16, 6, niter=10).fit(xr)
    mse_plain = ((plain.decode(plain.encode(x)) - x) ** 2).sum(1).mean()
    mse_rot = ((rotated.decode(rotated.encode(xr)) - xr) ** 2).sum(1).mean()
    assert mse_rot < mse_plain
