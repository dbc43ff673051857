"""ShardedIndex on a local Ray instance: exact equality with single-node Flat, HNSW recall, filters,
save/load, train, and the fault contract (dead shard -> ShardUnavailableError or replica, no hangs).

One Ray session for every distributed test module (``ray_helpers.ray_session``); few, small actors.
Replication, balanced reads, MultiVector and concurrency have their own modules beside this one.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import ray
from conftest import exact_knn
from ray_helpers import kill_and_wait, ray_session  # noqa: F401  (the session-wide Ray fixture)

import vecsearch
from vecsearch.benchmark.evaluation import recall_at_k
from vecsearch.distributed import (
    ShardedIndex,
    ShardTimeoutError,
    ShardUnavailableError,
    merge_topk,
    shard_of,
    splitmix64,
)

K = 10
pytestmark = pytest.mark.usefixtures("ray_session")


ATTR_FIELDS = ("pos", "lexfile")


@pytest.fixture(scope="module")
def flat_sharded(wordnet_train, wordnet_attrs):
    """Flat over 2 shards holding wordnet_train with attributes: the first half given as a dict of
    columns, the second half as per-row dicts (both forms must be routed with their vectors)."""
    index = ShardedIndex("Flat", n_shards=2, dim=384, metric="cosine")
    half = 2500
    index.add(wordnet_train[:half], attributes={f: wordnet_attrs[f][:half] for f in ATTR_FIELDS})
    rows = [
        {"pos": str(p), "lexfile": int(lf)}
        for p, lf in zip(wordnet_attrs["pos"][half:], wordnet_attrs["lexfile"][half:])
    ]
    index.add(wordnet_train[half:], attributes=rows)
    yield index
    index.close()


@pytest.fixture(scope="module")
def flat_single(wordnet_train, wordnet_attrs):
    index = vecsearch.FlatIndex(384, "cosine")
    index.add(wordnet_train, attributes={f: wordnet_attrs[f] for f in ATTR_FIELDS})
    return index


@pytest.fixture(scope="module")
def hnsw_sharded(wordnet_train):
    index = ShardedIndex(
        "HNSW16", n_shards=2, dim=384, metric="cosine", ef_construction=100, seed=0
    )
    index.add(wordnet_train)
    yield index
    index.close()


# ---- pure helpers (no Ray) -----------------------------------------------------------------------
def test_splitmix64_matches_the_reference_sequence():
    # First outputs of splitmix64 seeded with 0 and 1 (Vigna's reference implementation).
    assert splitmix64(np.array([0, 1], np.int64)).tolist() == [
        0xE220A8397B1DCDAF,
        0x910A2DEC89025CC1,
    ]


def test_routing_is_deterministic_and_balanced():
    ids = np.arange(100_000, dtype=np.int64)
    shards = shard_of(ids, 3)
    assert np.array_equal(shards, shard_of(ids.copy(), 3))
    counts = np.bincount(shards, minlength=3)
    assert counts.min() > 0.97 * ids.size / 3


def test_merge_topk_orders_ties_by_id_and_pads_last():
    ids_a = np.array([[7, 3, -1]], np.int64)
    dist_a = np.array([[0.5, 1.0, np.inf]], np.float32)
    ids_b = np.array([[2, 9, -1]], np.int64)
    dist_b = np.array([[0.5, 0.25, np.inf]], np.float32)
    ids, dists = merge_topk([ids_a, ids_b], [dist_a, dist_b], 5)
    assert ids.tolist() == [[9, 2, 7, 3, -1]]
    assert dists.tolist() == [[0.25, 0.5, 0.5, 1.0, np.inf]]
    ids, dists = merge_topk([ids_a[:, :1]], [dist_a[:, :1]], 3)
    assert ids.tolist() == [[7, -1, -1]] and dists[0, 1:].tolist() == [np.inf, np.inf]


def test_import_vecsearch_does_not_import_ray():
    code = "import sys, vecsearch, vecsearch.distributed; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ---- correctness against single-node indexes ---------------------------------------------------
def test_flat_two_shards_returns_exactly_the_single_node_flat_results(
    flat_sharded, flat_single, wordnet_queries_id, wordnet_queries_ood
):
    assert flat_sharded.ntotal == 5000
    for queries in (
        wordnet_queries_id,
        wordnet_queries_ood,
        wordnet_queries_id[:5],
        wordnet_queries_id[0],
    ):
        got = flat_sharded.search(queries, K)
        want = flat_single.search(queries, K)
        np.testing.assert_array_equal(got.ids, want.ids)
        np.testing.assert_array_equal(got.distances, want.distances)
        assert got.ids.dtype == np.int64 and got.distances.dtype == np.float32


def test_add_routes_every_id_to_its_hash_shard(flat_sharded):
    expected = np.bincount(shard_of(np.arange(5000), 2), minlength=2)
    assert flat_sharded.shard_sizes() == expected.tolist()


def test_bad_attributes_are_rejected_in_the_driver_before_any_shard_writes(
    flat_sharded, wordnet_train
):
    x = wordnet_train[:4]
    with pytest.raises(ValueError, match="attributes"):
        flat_sharded.add(x, attributes={"pos": ["n", "v"]})  # 2 values for 4 vectors
    with pytest.raises(ValueError, match="attributes"):
        flat_sharded.add(x, attributes=[{"pos": "n"}] * 3)
    with pytest.raises((TypeError, ValueError), match="attributes"):
        flat_sharded.add(x, attributes={"pos": [1, "n", 2.5, None]})  # mixed kinds in one column
    assert flat_sharded.ntotal == 5000


def test_search_pads_when_fewer_than_k_vectors_match(
    flat_sharded, flat_single, wordnet_attrs, wordnet_queries_id
):
    where = vecsearch.F.lexfile.isin([3, 16, 43])
    matches = np.flatnonzero(np.isin(wordnet_attrs["lexfile"], [3, 16, 43]))
    n_match = matches.size
    assert 0 < n_match < K and set(shard_of(matches, 2).tolist()) == {0, 1}
    got = flat_sharded.search(wordnet_queries_id[:20], K, where=where)
    want = flat_single.search(wordnet_queries_id[:20], K, where=where)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.distances, want.distances)
    assert (got.ids[:, n_match:] == -1).all() and np.isinf(got.distances[:, n_match:]).all()
    # Before the first add (dim not given) there are no shards yet: padding only.
    empty = ShardedIndex(vecsearch.FlatIndex, n_shards=2)
    assert empty.shard_actors == [] and empty.ntotal == 0
    res = empty.search(np.ones((3, 8), np.float32), 2)
    assert res.ids.tolist() == [[-1, -1]] * 3 and np.isinf(res.distances).all()


def test_add_with_a_stored_id_is_rejected_before_any_shard_writes(flat_sharded, wordnet_train):
    sizes = flat_sharded.shard_sizes()
    # Ids 100000..100019 go to both shards; id 3 is already stored on one of them.
    batch_ids = np.concatenate([np.arange(100_000, 100_020), [3]])
    with pytest.raises(ValueError, match="id 3 is already in the index"):
        flat_sharded.add(wordnet_train[:21], ids=batch_ids)
    assert flat_sharded.shard_sizes() == sizes
    with pytest.raises(ValueError, match="vectors"):
        flat_sharded.add(np.ones((2, 5), np.float32))
    # Sequential ids continue after the largest id seen; remove routes by id (unknown ids ignored).
    assert flat_sharded.add(wordnet_train[:2]).tolist() == [5000, 5001]
    flat_sharded.add(wordnet_train[2:3], ids=[7000])
    assert flat_sharded.add(wordnet_train[3:4]).tolist() == [7001]
    assert flat_sharded.remove([5000, 5001, 7000, 7001, 10**9]) == 4
    assert flat_sharded.shard_sizes() == sizes


def test_bad_spec_or_parameters_raise_in_the_driver():
    with pytest.raises(ValueError, match="ef_construction"):
        ShardedIndex("HNSW16", n_shards=2, dim=8, ef_construction=0)
    with pytest.raises(ValueError, match="description"):
        ShardedIndex("NoSuchIndex", n_shards=2, dim=8)
    with pytest.raises(TypeError, match="spec"):
        ShardedIndex(42, n_shards=2, dim=8)
    with pytest.raises(ValueError, match="n_shards"):
        ShardedIndex("Flat", n_shards=0, dim=8)
    with pytest.raises(ValueError, match="timeout_s"):
        ShardedIndex("Flat", n_shards=1, dim=8, timeout_s=0)


def test_hnsw_sharded_recall_at_10_within_001_of_single_node(
    hnsw_sharded, wordnet_train, wordnet_queries_id
):
    # HNSWIndex must exist: vecsearch.HNSWIndex raises if the module is missing (a failure, not a skip).
    HNSWIndex = vecsearch.HNSWIndex
    params = {"M": 16, "ef_construction": 100, "seed": 0}
    single = HNSWIndex(384, "cosine", **params)
    single.add(wordnet_train)
    sharded = hnsw_sharded
    truth = exact_knn(wordnet_train, wordnet_queries_id, K, "cosine")
    for ef in (16, 48):
        r_single = recall_at_k(single.search(wordnet_queries_id, K, ef=ef).ids, truth)
        r_sharded = recall_at_k(sharded.search(wordnet_queries_id, K, ef=ef).ids, truth)
        assert r_sharded >= r_single - 0.01, (ef, r_sharded, r_single)
    assert r_sharded > 0.9


def test_filters_are_respected_across_shards(
    flat_sharded, wordnet_train, wordnet_attrs, wordnet_queries_id
):
    pos, lexfile = wordnet_attrs["pos"], wordnet_attrs["lexfile"]
    queries = wordnet_queries_id[:50]
    for where, mask in (
        (vecsearch.F.pos == "v", pos == "v"),
        (
            {"$and": [{"pos": "n"}, {"lexfile": {"$in": [5, 6]}}]},
            (pos == "n") & np.isin(lexfile, [5, 6]),
        ),
    ):
        allowed = np.flatnonzero(mask)
        assert K < allowed.size < 5000
        got = flat_sharded.search(queries, K, where=where)
        truth = allowed[exact_knn(wordnet_train[allowed], queries, K, "cosine")]
        assert np.isin(got.ids, allowed).all()
        assert recall_at_k(got.ids, truth) == 1.0
    none = flat_sharded.search(queries, K, where=vecsearch.F.pos == "no-such-pos")
    assert (none.ids == -1).all() and np.isinf(none.distances).all()


def test_save_load_round_trip_gives_equal_results(
    tmp_path, hnsw_sharded, wordnet_train, wordnet_queries_id
):
    before = hnsw_sharded.search(wordnet_queries_id, K, ef=32)
    hnsw_sharded.save(tmp_path / "sharded")
    hnsw_sharded.save(tmp_path / "sharded")  # overwriting an existing save is atomic too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sharded"]
    assert sorted(p.name for p in (tmp_path / "sharded").iterdir()) == [
        "manifest.json",
        "shard_00000",
        "shard_00001",
    ]
    loaded = ShardedIndex.load(tmp_path / "sharded")
    assert loaded.ntotal == 5000 and loaded.shard_sizes() == hnsw_sharded.shard_sizes()
    after = loaded.search(wordnet_queries_id, K, ef=32)
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_array_equal(after.distances, before.distances)
    # The loaded index keeps working: removes route by id, new ids continue after the saved ones.
    assert loaded.remove([0, 1, 2, 10**9]) == 3 and loaded.ntotal == 4997
    assert loaded.add(wordnet_train[:2]).tolist() == [5000, 5001]
    loaded.close()
    # A damaged shard file fails the load with the shard named and the file error, not a hang.
    victim = next((tmp_path / "sharded" / "shard_00001").glob("*.npy"))
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(
        ShardUnavailableError, match="shard 1 of 2: its actor failed to start"
    ) as info:
        ShardedIndex.load(tmp_path / "sharded")
    message = str(info.value)
    assert victim.name in message and any(
        w in message for w in ("truncated", "checksum", "unreadable")
    )


def test_train_ships_one_trained_state_to_every_shard(wordnet_train, wordnet_queries_id):
    # IVF-PQ is the trainable type: trained once, every shard must quantize with the same codebooks,
    # so the sharded ADC results equal the single-node index trained on the same sample.
    IVFPQIndex = vecsearch.IVFPQIndex
    params = {"nlist": 8, "m": 16, "nbits": 8, "seed": 0, "kmeans_iters": 5, "pq_iters": 8}
    sample = wordnet_train[:2000]
    single = IVFPQIndex(384, "cosine", **params)
    single.train(sample)
    single.add(wordnet_train)
    sharded = ShardedIndex(IVFPQIndex, n_shards=2, dim=384, metric="cosine", **params)
    sharded.train(sample)
    assert sharded.is_trained
    sharded.add(wordnet_train)
    want = single.search(wordnet_queries_id, K, nprobe=4)
    got = sharded.search(wordnet_queries_id, K, nprobe=4)
    np.testing.assert_allclose(got.distances, want.distances, rtol=1e-5, atol=1e-6)
    assert recall_at_k(got.ids, want.ids) > 0.99
    with pytest.raises(ValueError, match="train before adding"):
        sharded.train(sample)
    sharded.close()


def test_leanvec_ood_training_params_reach_the_trained_shard(
    wordnet_train, wordnet_queries_ood, wordnet_train_queries_ood
):
    # LeanVec-OOD: train(x, queries=...) must reach the training shard; the projection it learns
    # is shipped to both shards, so recall matches a single-node index trained the same way.
    data = wordnet_train[:2000]
    params = {"seed": 0, "ef_construction": 64}
    single = vecsearch.index_factory(384, "LeanVec64,LVQ8,HNSW16", "cosine", **params)
    single.train(data, queries=wordnet_train_queries_ood)
    sharded = ShardedIndex("LeanVec64,LVQ8,HNSW16", n_shards=2, dim=384, metric="cosine", **params)
    sharded.train(data, queries=wordnet_train_queries_ood)
    _, want_arrays = single.get_state()
    states = [ray.get(a[0].trained_state.remote(), timeout=60) for a in sharded.shard_actors]
    assert sorted(states[0]["arrays"]) == sorted(want_arrays)
    for name, arr in want_arrays.items():
        # Both shards hold the very same trained state; it equals the driver-trained one up to
        # float summation order (BLAS threads differ between the driver and the actor).
        np.testing.assert_array_equal(states[0]["arrays"][name], states[1]["arrays"][name])
        np.testing.assert_allclose(
            states[0]["arrays"][name], arr, rtol=1e-4, atol=1e-6, err_msg=name
        )
    single.add(data)
    sharded.add(data)
    truth = exact_knn(data, wordnet_queries_ood, K, "cosine")
    r_single = recall_at_k(single.search(wordnet_queries_ood, K, ef=32).ids, truth)
    r_sharded = recall_at_k(sharded.search(wordnet_queries_ood, K, ef=32).ids, truth)
    assert r_sharded >= r_single - 0.01, (r_sharded, r_single)
    sharded.close()


# ---- faults -------------------------------------------------------------------------------------
def test_dead_shard_fails_over_to_its_replica_then_raises_shard_unavailable(
    wordnet_train, wordnet_queries_id
):
    # auto_heal=False: nothing replaces the dead replicas here (healing has its own tests).
    index = ShardedIndex(
        "Flat", n_shards=2, replicas=2, dim=384, metric="cosine", timeout_s=30.0, auto_heal=False
    )
    index.add(wordnet_train[:300])
    before = index.search(wordnet_queries_id[:20], K)
    first, second = index.shard_actors[1]
    kill_and_wait(first)
    after = index.search(wordnet_queries_id[:20], K)  # served by shard 1's replica
    np.testing.assert_array_equal(after.ids, before.ids)
    index.add(wordnet_train[300:400])  # writes now go to the surviving replica only
    assert index.ntotal == 400
    assert index.replica_counts() == [2, 1]
    kill_and_wait(second)
    with pytest.raises(ShardUnavailableError, match="shard 1 of 2") as info:
        index.search(wordnet_queries_id[:20], K)
    assert info.value.shard == 1
    with pytest.raises(ShardUnavailableError, match="shard 1 of 2"):
        index.add(wordnet_train[400:500])
    with pytest.raises(ShardUnavailableError, match="shard 1 of 2"):
        _ = index.ntotal
    with pytest.raises(ShardUnavailableError, match="shard 1 of 2"):
        index.heal(timeout_s=60)  # no replica left to copy from
    index.close()


def test_slow_shard_raises_timeout_instead_of_hanging():
    class SleepyFlat(vecsearch.FlatIndex):
        """A Flat index whose search stalls far longer than the timeout (a hung shard)."""

        def _search(self, queries, k, params):
            time.sleep(60.0)
            return super()._search(queries, k, params)

    rng = np.random.default_rng(2)
    index = ShardedIndex(SleepyFlat, n_shards=1, dim=4, timeout_s=1.0)
    index.add(rng.standard_normal((20, 4)))
    with pytest.raises(ShardTimeoutError, match="timeout_s=1") as info:
        index.search(rng.standard_normal((2, 4)), 3)
    assert info.value.shard == 0 and isinstance(info.value, TimeoutError)
    index.close()
