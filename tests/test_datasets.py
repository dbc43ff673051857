"""vecsearch.benchmark.datasets: ann-benchmarks HDF5 I/O, raw readers, ground truth, synthetic and embedded data."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from conftest import exact_knn

from vecsearch.benchmark import datasets
from vecsearch.benchmark.datasets import Dataset


def _small(metric: str, wordnet_train, wordnet_queries_id, n: int = 800, nq: int = 40) -> Dataset:
    train, test = wordnet_train[:n], wordnet_queries_id[:nq]
    nb, dist = datasets.compute_ground_truth(train, test, 20, metric)
    return Dataset("small", train, test, metric, nb, dist)


@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
def test_hdf5_round_trip_keeps_vectors_ground_truth_and_metric(
    tmp_path, metric, wordnet_train, wordnet_queries_id
):
    ds = _small(metric, wordnet_train, wordnet_queries_id)
    path = tmp_path / f"small-{metric}.hdf5"
    datasets.write_hdf5(ds, path)
    back = datasets.load_hdf5(path)
    assert back.metric == metric
    np.testing.assert_array_equal(back.train, ds.train)
    np.testing.assert_array_equal(back.test, ds.test)
    np.testing.assert_array_equal(back.neighbors, ds.neighbors)
    np.testing.assert_allclose(back.distances, ds.distances, rtol=1e-5, atol=1e-6)


def test_hdf5_file_uses_ann_benchmarks_conventions(tmp_path, wordnet_train, wordnet_queries_id):
    ds = _small("l2", wordnet_train, wordnet_queries_id)
    path = tmp_path / "euclid.hdf5"
    datasets.write_hdf5(ds, path)
    with h5py.File(path, "r") as f:
        assert f.attrs["distance"] == "euclidean"
        assert f["neighbors"].dtype == np.int32
        # ann-benchmarks stores the true L2 distance; vecsearch reports squared L2.
        np.testing.assert_allclose(f["distances"][()] ** 2, ds.distances, rtol=1e-4, atol=1e-6)


def test_hdf5_angular_file_is_read_as_cosine(tmp_path, wordnet_train, wordnet_queries_id):
    path = tmp_path / "angular.hdf5"
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = "angular"
        f.create_dataset("train", data=wordnet_train[:300].astype(np.float64))
        f.create_dataset("test", data=wordnet_queries_id[:5])
    ds = datasets.load_hdf5(path)
    assert ds.metric == "cosine" and ds.train.dtype == np.float32 and ds.neighbors is None


def test_hdf5_with_unsupported_distance_raises(tmp_path):
    path = tmp_path / "jaccard.hdf5"
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = "jaccard"
        f.create_dataset("train", data=np.zeros((3, 2), np.float32))
        f.create_dataset("test", data=np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match="distance"):
        datasets.load_hdf5(path)


@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
def test_ground_truth_equals_faiss_flat(metric, wordnet_train, wordnet_queries_ood):
    train, test = wordnet_train[:3000], wordnet_queries_ood[:100]
    if metric == "l2":
        # Un-normalized data so l2 and ip differ from cosine.
        scale = np.random.default_rng(0).uniform(0.5, 2.0, (train.shape[0], 1)).astype(np.float32)
        train = train * scale
    ids, dist = datasets.compute_ground_truth(train, test, 10, metric)
    truth = exact_knn(train, test, 10, metric)
    same = (ids == truth).mean()
    assert same >= 0.995, f"ids agree with faiss on {same:.4f} of positions"
    # Where ids differ they must be ties: the distances of both lists agree.
    from vecsearch.benchmark.evaluation import exact_distances

    np.testing.assert_allclose(
        exact_distances(train, test, truth, metric), dist, rtol=1e-4, atol=1e-5
    )


def test_missing_ground_truth_is_computed_then_loaded_from_cache(
    tmp_path, monkeypatch, wordnet_train, wordnet_queries_id
):
    monkeypatch.setenv("VECSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    ds = Dataset("no-gt", wordnet_train[:500], wordnet_queries_id[:20], "cosine")
    first = datasets.ensure_ground_truth(ds, 10)
    assert first.neighbors.shape == (20, 100) and first.distances.shape == (20, 100)
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("ground truth recomputed although cached")

    monkeypatch.setattr(datasets, "compute_ground_truth", fail)
    second = datasets.ensure_ground_truth(ds, 10)
    np.testing.assert_array_equal(second.neighbors, first.neighbors)


def test_exact_neighbors_of_any_arrays_are_exact_cached_and_padded(
    tmp_path, monkeypatch, wordnet_train, wordnet_queries_id
):
    monkeypatch.setenv("VECSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    train, q = wordnet_train[:400], wordnet_queries_id[:15]
    few, few_d = datasets.exact_neighbors(train[:3], q, 5, "l2")  # k > n: padded
    assert (few[:, 3:] == -1).all() and np.isinf(few_d[:, 3:]).all() and (few[:, :3] >= 0).all()
    ids, dist = datasets.exact_neighbors(train, q, 10, "ip")
    np.testing.assert_array_equal(ids[:, 0], exact_knn(train, q, 10, "ip")[:, 0])
    assert (
        ids.shape == dist.shape == (15, 10) and len(list((tmp_path / "cache").rglob("*.npz"))) == 2
    )
    monkeypatch.setattr(datasets, "compute_ground_truth", None)  # a second call reads the cache
    np.testing.assert_array_equal(datasets.exact_neighbors(train, q, 5, "ip")[0], ids[:, :5])


def test_filtered_exact_neighbors_search_only_the_rows_each_mask_allows(
    wordnet_train, wordnet_queries_id
):
    train, q = wordnet_train[:500], wordnet_queries_id[:6]
    even = np.arange(500) % 2 == 0
    few = np.zeros(500, bool)
    few[[7, 9, 11]] = True
    masks = [even] * 4 + [few, few.copy()]
    ids, dist = datasets.filtered_exact_neighbors(train, q, masks, 10, "cosine")
    for i, mask in enumerate(masks):
        rows = np.flatnonzero(mask)
        expect = rows[exact_knn(train[rows], q[i : i + 1], min(10, rows.size), "cosine")[0]]
        np.testing.assert_array_equal(ids[i, : expect.size], expect)
    assert (ids[4:, 3:] == -1).all() and np.isinf(dist[4:, 3:]).all()


def test_neighbors_without_distances_get_exact_distances(wordnet_train, wordnet_queries_id):
    ds = _small("cosine", wordnet_train, wordnet_queries_id)
    filled = datasets.ensure_ground_truth(
        Dataset("x", ds.train, ds.test, "cosine", ds.neighbors, None), 10
    )
    np.testing.assert_allclose(filled.distances, ds.distances, rtol=1e-4, atol=1e-5)


def test_fvecs_ivecs_and_fbin_readers_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 5)).astype(np.float32)
    rows = np.hstack([np.full((7, 1), 5, np.int32), x.view(np.int32)])
    rows.tofile(tmp_path / "a.fvecs")
    np.testing.assert_array_equal(datasets.read_vectors(tmp_path / "a.fvecs"), x)
    ids = rng.integers(0, 100, (7, 3)).astype(np.int32)
    np.hstack([np.full((7, 1), 3, np.int32), ids]).tofile(tmp_path / "gt.ivecs")
    np.testing.assert_array_equal(datasets.read_ivecs(tmp_path / "gt.ivecs"), ids)
    with open(tmp_path / "a.fbin", "wb") as f:
        np.array([7, 5], np.int32).tofile(f)
        x.tofile(f)
    np.testing.assert_array_equal(datasets.read_vectors(tmp_path / "a.fbin"), x)


def test_truncated_fbin_raises(tmp_path):
    with open(tmp_path / "bad.fbin", "wb") as f:
        np.array([10, 4], np.int32).tofile(f)
        np.zeros(7, np.float32).tofile(f)
    with pytest.raises(ValueError, match="header says 10x4"):
        datasets.read_vectors(tmp_path / "bad.fbin")


def test_npy_dataset_holds_out_queries_disjoint_from_train(tmp_path):
    x = np.arange(2000 * 3, dtype=np.float32).reshape(2000, 3)
    np.save(tmp_path / "x.npy", x)
    ds = datasets.load_dataset(tmp_path / "x.npy", n_queries=50)
    assert ds.metric == "l2" and ds.test.shape == (50, 3) and ds.train.shape == (1950, 3)
    assert not set(ds.test[:, 0].tolist()) & set(ds.train[:, 0].tolist())


def test_load_dataset_names_the_bad_path():
    with pytest.raises(FileNotFoundError, match="nope.npy"):
        datasets.load_dataset("nope.npy")


def test_synthetic_is_seeded_and_has_neighbor_structure():
    a = datasets.synthetic(2000, 20, 32, intrinsic_dim=4, seed=3)
    b = datasets.synthetic(2000, 20, 32, intrinsic_dim=4, seed=3)
    c = datasets.synthetic(2000, 20, 32, intrinsic_dim=4, seed=4)
    np.testing.assert_array_equal(a.train, b.train)
    assert not np.array_equal(a.train, c.train)
    # Low intrinsic dimension: the nearest neighbor is much closer than a typical point
    # (for uniform noise in 32-d the ratio would be near 1).
    med = np.median(((a.test[:, None, :] - a.train[None, :500, :]) ** 2).sum(-1), axis=1)
    assert np.median(a.distances[:, 0] / med) < 0.2


def test_embedded_dataset_is_small_licensed_and_exact():
    assert datasets.EMBEDDED_FILE.stat().st_size < 10_000_000
    assert (datasets.DATA_DIR / "LICENSE-WordNet.txt").is_file()
    for kind in ("id", "ood"):
        ds = datasets.load_embedded(kind)
        assert (
            ds.train.shape == (10_000, 384)
            and ds.test.shape == (500, 384)
            and ds.metric == "cosine"
        )
        assert ds.neighbors.shape == (500, 100)
        truth = exact_knn(ds.train, ds.test[:50], 10, "cosine")
        from vecsearch.benchmark.evaluation import recall_at_k

        assert recall_at_k(ds.neighbors[:50, :10], truth, 10) >= 0.998
