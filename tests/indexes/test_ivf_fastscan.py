"""IVFFastScanIndex against exact search and faiss IndexIVFPQFastScan (+ IndexRefineFlat) at the same
nlist / m / nprobe / re-rank depth, plus its contract: growing lists, removal, state, filters."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from conftest import exact_knn

import vecsearch as vs
from vecsearch.benchmark.evaluation import recall_at_k
from vecsearch import parallel
from vecsearch.codecs import fastscan_runner
from vecsearch.codecs.kmeans import assign
from vecsearch.indexes import ivf_fastscan as module
from vecsearch.indexes.ivf_fastscan import IVFFastScanIndex, suggested_m
from vecsearch.validation import normalize_rows

NLIST, M, K, K_FACTOR = 64, 96, 10, 10


@pytest.fixture(autouse=True)
def _faiss_single_thread():
    faiss.omp_set_num_threads(1)  # shared 2-core box: OpenMP spinning under load is very slow


@pytest.fixture(scope="module")
def queries(wordnet_queries_id, wordnet_train_queries_ood):
    """700 queries (200 in-distribution + 500 single words) so recall differences are not noise."""
    return np.ascontiguousarray(np.vstack([wordnet_queries_id, wordnet_train_queries_ood]))


def make(metric: str, x: np.ndarray, *, batches: int = 1, **params) -> IVFFastScanIndex:
    settings = {"nlist": NLIST, "m": M, "keep_vectors": True, "seed": 0} | params
    index = IVFFastScanIndex(x.shape[1], metric, **settings)
    index.train(x)
    for part in np.array_split(np.arange(x.shape[0]), batches):
        index.add(x[part], ids=part)
    return index


@pytest.fixture(scope="module")
def built(wordnet_train):
    """``built(metric)``: an index per metric, filled by three adds after training (lists relaid
    out on the way), built once per module."""
    cache: dict[str, IVFFastScanIndex] = {}

    def get(metric: str) -> IVFFastScanIndex:
        if metric not in cache:
            cache[metric] = make(metric, wordnet_train, batches=3)
        return cache[metric]

    return get


METRICS = ["l2", "ip", "cosine"]


@pytest.fixture(scope="module")
def faiss_recalls(wordnet_train):
    """``faiss_recalls(metric, queries, truth, nprobe)``: (plain, refined) recall@K of faiss
    IndexIVFPQFastScan and IndexRefineFlat (k_factor K_FACTOR) over it, same nlist / m / metric."""
    cache: dict[str, tuple] = {}

    def peer_results(metric, queries, truth, nprobe):
        if metric not in cache:
            fmetric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
            base = faiss.IndexIVFPQFastScan(faiss.IndexFlat(384, fmetric), 384, NLIST, M, 4, fmetric)
            base.by_residual = metric == "l2"  # as ours: residual codes for L2 only
            refine = faiss.IndexRefineFlat(base)
            refine.train(wordnet_train)
            refine.add(wordnet_train)
            cache[metric] = (base, refine)
        base, refine = cache[metric]
        base.nprobe = nprobe
        refine.k_factor = K_FACTOR
        return recall_at_k(base.search(queries, K)[1], truth), recall_at_k(refine.search(queries, K)[1], truth)

    return peer_results


# ---- recall ------------------------------------------------------------------------------------
@pytest.mark.parametrize("nprobe", [8, 16])
@pytest.mark.parametrize("metric", ["l2", "ip"])  # cosine: test_cosine_equals_ip_on_normalized_vectors
def test_recall_matches_faiss_fastscan_and_refine_at_equal_settings(built, faiss_recalls, wordnet_train, queries,
                                                                     metric, nprobe):
    index = built(metric)
    truth = exact_knn(wordnet_train, queries, K, metric)
    ours_plain = recall_at_k(index.search(queries, K, nprobe=nprobe, rerank=0).ids, truth)
    ours_refined = recall_at_k(index.search(queries, K, nprobe=nprobe, rerank=K * K_FACTOR).ids, truth)
    faiss_plain, faiss_refined = faiss_recalls(metric, queries, truth, nprobe)
    assert ours_plain >= faiss_plain - 0.02, (ours_plain, faiss_plain)
    assert ours_refined >= faiss_refined - 0.015, (ours_refined, faiss_refined)


@pytest.mark.parametrize("nprobe, floor_refined, floor_plain", [(16, 0.85, 0.55), (64, 0.96, 0.6)])
@pytest.mark.parametrize("metric", METRICS)
def test_recall_against_exact_search_with_and_without_rerank(built, wordnet_train, queries, metric, nprobe,
                                                             floor_refined, floor_plain):
    """The re-rank's worth: 4-bit estimates alone rank ~0.6-0.7 of the true top 10 (the recall cost
    of keep_vectors=False, documented in the class); re-ranking 10k candidates recovers ~0.9+."""
    index = built(metric)
    truth = exact_knn(wordnet_train, queries, K, metric)
    refined = recall_at_k(index.search(queries, K, nprobe=nprobe).ids, truth)  # default: rerank 10 * k
    plain = recall_at_k(index.search(queries, K, nprobe=nprobe, rerank=0).ids, truth)
    assert refined >= floor_refined and plain >= floor_plain, (refined, plain)
    assert refined > plain + 0.15


@pytest.mark.parametrize("metric", METRICS)
def test_rerank_distances_are_exact_and_estimates_are_distances_to_the_codes(built, wordnet_train, queries, metric):
    """Re-ranked distances are exact; without re-rank they are the distances to the PQ reconstructions
    (centroid + decoded residual for L2), up to the uint8 rounding of the look-up tables."""
    index = built(metric)
    x, q = wordnet_train, queries[:50]
    centroids = index.centroids
    labels = assign(x, centroids, "l2" if metric == "l2" else "ip")[0]
    if index.by_residual:
        recon = centroids[labels] + index.codec.decode(index.codec.encode(x - centroids[labels]))
    else:
        recon = index.codec.decode(index.codec.encode(x))
    for rerank, stored in ((100, x), (0, recon)):
        res = index.search(q, K, rerank=rerank)
        found = stored[res.ids]
        if metric == "l2":
            expected = ((found - q[:, None, :]) ** 2).sum(-1)
        else:
            expected = -np.einsum("qkd,qd->qk", found, q) + (1.0 if metric == "cosine" else 0.0)
        np.testing.assert_allclose(res.distances, expected, rtol=1e-4, atol=1e-4 if rerank else 0.02)
        assert (np.diff(res.distances, axis=1) >= 0).all()


def test_cosine_equals_ip_on_normalized_vectors(wordnet_train, wordnet_queries_id):
    """cosine normalizes once at add/search, then it is ip: same ids, distances 1 + ip's."""
    data = wordnet_train[:3000] * 3.0
    queries = wordnet_queries_id * 2.0
    cos, ip = make("cosine", data, nlist=16), make("ip", normalize_rows(data.copy()), nlist=16)
    for rerank in (0, 50):
        rc = cos.search(queries, 5, rerank=rerank)
        ri = ip.search(normalize_rows(queries.copy()), 5, rerank=rerank)
        np.testing.assert_array_equal(rc.ids, ri.ids)
        np.testing.assert_allclose(rc.distances, 1.0 + ri.distances, atol=1e-5)


def test_l2_by_residual_with_a_single_probe_uses_the_list_table(built, faiss_recalls, wordnet_train, queries):
    """Regression: with nprobe=1 the L2 kernel took the shared <q, y> table for the list's table
    (recall@10 0.0 without re-rank); nprobe=1 must rank like faiss."""
    truth = exact_knn(wordnet_train, queries, K, "l2")
    plain = recall_at_k(built("l2").search(queries, K, nprobe=1, rerank=0).ids, truth)
    faiss_plain, _ = faiss_recalls("l2", queries, truth, 1)
    assert plain >= faiss_plain - 0.02, (plain, faiss_plain)


# ---- add: growing lists -----------------------------------------------------------------------
def test_adds_in_batches_relayout_lists_and_equal_one_bulk_add(wordnet_train, wordnet_queries_id):
    data = wordnet_train[:3000]
    bulk = make("ip", data, nlist=16)
    tight = bulk.list_capacity()
    assert tight == 3000  # one add: no spare room
    pieces = IVFFastScanIndex(384, "ip", nlist=16, m=M, keep_vectors=True, seed=0).train(data)
    capacities = []
    for start in range(0, 3000, 211):  # 15 adds: lists overflow their blocks and are laid out again
        pieces.add(data[start:start + 211], ids=np.arange(start, min(start + 211, 3000)))
        capacities.append(pieces.list_capacity())
    assert len(set(capacities)) > 3 and capacities[-1] > tight  # relaid out several times, with spare room
    for params in ({"rerank": 0, "nprobe": 16}, {"nprobe": 4}):
        a, b = bulk.search(wordnet_queries_id, 10, **params), pieces.search(wordnet_queries_id, 10, **params)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.distances, b.distances)
    assert pieces.compact() == 0 and pieces.list_capacity() == tight  # compact gives the spare blocks back
    np.testing.assert_array_equal(pieces.search(wordnet_queries_id, 10).ids, bulk.search(wordnet_queries_id, 10).ids)


def test_every_vector_finds_itself_after_rerank(wordnet_train):
    index = make("l2", wordnet_train[:2000], nlist=16, batches=4)
    res = index.search(wordnet_train[:2000:7], 1, nprobe=4)
    np.testing.assert_array_equal(res.ids[:, 0], np.arange(0, 2000, 7))


# ---- remove -----------------------------------------------------------------------------------
def test_removed_ids_never_come_back_and_the_rest_equals_an_index_without_them(wordnet_train, wordnet_queries_id):
    data = wordnet_train[:3000]
    rng = np.random.default_rng(1)
    removed = np.sort(rng.choice(3000, 700, replace=False))
    kept = np.setdiff1d(np.arange(3000), removed)
    index = make("l2", data, nlist=16, batches=2)
    assert index.remove(np.concatenate([removed, [-3, 10**9]])) == 700  # unknown ids ignored
    assert index.ntotal == 2300 and index.n_slots == 3000 and int(index.list_sizes().sum()) == 2300
    reference = IVFFastScanIndex(384, "l2", nlist=16, m=M, keep_vectors=True, seed=0).train(data)
    reference.add(data[kept], ids=kept)
    for params in ({"nprobe": 16, "rerank": 0}, {"nprobe": 4}):
        got = index.search(wordnet_queries_id, 50, **params)
        assert not np.isin(got.ids, removed).any()
        np.testing.assert_array_equal(got.ids, reference.search(wordnet_queries_id, 50, **params).ids)
    # a removed vector's own query finds another one; filtered searches skip removed rows too
    assert not np.isin(index.search(data[removed[:20]], 5, nprobe=16).ids, removed).any()
    index.update_attributes(kept, {"group": kept % 3})
    assert not np.isin(index.search(data[removed[:20]], 5, where={"group": 1}).ids, removed).any()
    assert index.compact() == 700 and index.n_slots == 2300
    got = index.search(wordnet_queries_id, 50, nprobe=4)
    np.testing.assert_array_equal(got.ids, reference.search(wordnet_queries_id, 50, nprobe=4).ids)
    assert index.remove(removed) == 0


def test_removing_a_quarter_of_the_slots_compacts_automatically(wordnet_train):
    index = make("ip", wordnet_train[:4000], nlist=16, keep_vectors=False)
    assert index.remove(np.arange(900)) == 900 and index.n_slots == 4000  # below the threshold: flagged only
    assert index.remove(np.arange(900, 1100)) == 200
    assert index.n_slots == index.ntotal == 2900  # 1,100 >= max(1024, 25%): compacted
    res = index.search(wordnet_train[1100:1120], 3, nprobe=16)
    assert (res.ids >= 1100).all() and (res.ids[:, 0] == np.arange(1100, 1120)).mean() > 0.8


# ---- state --------------------------------------------------------------------------------------
def test_save_load_and_mmap_give_identical_results_and_accept_adds(tmp_path, wordnet_train, wordnet_queries_id):
    data = wordnet_train[:3000]
    index = make("cosine", data[:2000], nlist=16, batches=2)
    index.remove([3, 4, 1500])
    path = tmp_path / "fs"
    index.save(str(path))
    files_before = {p.name: p.read_bytes() for p in path.iterdir()}
    for mmap in (False, True):
        loaded = vs.load(str(path), mmap=mmap)
        assert isinstance(loaded, IVFFastScanIndex) and loaded.ntotal == 1997
        assert loaded.describe() == index.describe() == "IVF16,PQ96x4fs,Refine"
        for params in ({}, {"rerank": 0}, {"nprobe": 16, "rerank": 30}):
            for q in (wordnet_queries_id, wordnet_queries_id[:1]):
                a, b = index.search(q, 10, **params), loaded.search(q, 10, **params)
                np.testing.assert_array_equal(a.ids, b.ids)
                np.testing.assert_array_equal(a.distances, b.distances)
        # add and remove after the (mapped) load: the same as on the original, the files untouched
        loaded.add(data[2000:], ids=np.arange(2000, 3000))
        loaded.remove([2001, 7])
    index.add(data[2000:], ids=np.arange(2000, 3000))
    index.remove([2001, 7])
    for params in ({}, {"rerank": 0}):
        np.testing.assert_array_equal(index.search(wordnet_queries_id, 10, **params).ids,
                                      loaded.search(wordnet_queries_id, 10, **params).ids)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == files_before


@pytest.fixture(scope="module")
def small(wordnet_train):
    """1,000 rows, 8 lists, vectors kept: the state the corruption tests edit (each edits a copy)."""
    return make("ip", wordnet_train[:1000], nlist=8)


def _state(index):
    header, arrays = index.get_state()
    return header, {name: np.array(arr) for name, arr in arrays.items()}


def _edit_slot_past_end(a):
    a["list_slots"][np.flatnonzero(a["list_slots"] >= 0)[5]] = 10**6


def _edit_duplicate_slot(a):
    used = np.flatnonzero(a["list_slots"] >= 0)
    a["list_slots"][used[1]] = a["list_slots"][used[0]]


def _edit_slot_missing(a):
    a.update(list_slots=a["list_slots"][:-1])


def _padded_slots(a):
    """``list_slots`` in the layout saved before the slots were unpadded: (n_blocks * 32,), -1 past each list."""
    padded = np.full(int(a["list_block_offsets"][-1]) * 32, -1, np.int32)
    first = 0
    for lst, size in enumerate(a["list_sizes"]):
        start = int(a["list_block_offsets"][lst]) * 32
        padded[start:start + size] = a["list_slots"][first:first + size]
        first += size
    return padded


def _edit_padding_slot(a):
    a.update(list_slots=_padded_slots(a))
    a["list_slots"][np.flatnonzero(a["list_slots"] < 0)[0]] = 0


def _edit_offsets_not_monotone(a):
    a["list_block_offsets"][3], a["list_block_offsets"][4] = a["list_block_offsets"][4] + 1, a["list_block_offsets"][3]


CORRUPTIONS = [
    ("list_slots", _edit_slot_past_end),
    ("list_slots", _edit_duplicate_slot),
    ("list_slots", _edit_padding_slot),
    ("list_slots", _edit_slot_missing),
    ("list_block_offsets", _edit_offsets_not_monotone),
    ("list_block_offsets", lambda a: a.update(list_block_offsets=a["list_block_offsets"] + 1)),
    ("list_sizes", lambda a: a["list_sizes"].__setitem__(2, 10**4)),
    ("list_sizes", lambda a: a["list_sizes"].__setitem__(2, -1)),
    ("codebooks", lambda a: a.update(codebooks=a["codebooks"][:, :8])),
    ("centroids", lambda a: a["centroids"].__setitem__((1, 2), np.nan)),
    ("list_codes", lambda a: a.update(list_codes=a["list_codes"][:-1])),
    ("list_codes", lambda a: a.update(list_codes=a["list_codes"].astype(np.int16))),
    ("vectors", lambda a: a.pop("vectors")),
    ("vectors", lambda a: a["vectors"].__setitem__((0, 0), np.inf)),
    ("extra", lambda a: a.update(extra=np.zeros(3, np.float32))),
]


@pytest.mark.parametrize("name, edit", CORRUPTIONS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CORRUPTIONS)])
def test_corrupt_state_raises_value_error_naming_the_array(small, name, edit):
    header, arrays = _state(small)
    edit(arrays)
    with pytest.raises(ValueError, match=name):
        vs.Index.from_state(header, arrays)


def test_a_state_with_slots_padded_to_blocks_loads_and_answers_the_same(small, wordnet_queries_id):
    """Saves from before the slots were unpadded (one per code position, -1 past each list's size)."""
    header, arrays = _state(small)
    assert arrays["list_slots"].shape == (small.ntotal,)
    arrays["list_slots"] = _padded_slots(arrays)
    assert arrays["list_slots"].shape[0] > small.ntotal
    loaded = vs.Index.from_state(header, arrays)
    for params in ({}, {"rerank": 0}):
        a, b = small.search(wordnet_queries_id, 10, **params), loaded.search(wordnet_queries_id, 10, **params)
        np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(loaded.get_state()[1]["list_slots"], small.get_state()[1]["list_slots"])


def test_lists_that_miss_a_live_slot_or_hold_a_removed_one_are_rejected(wordnet_train):
    index = make("ip", wordnet_train[:1000], nlist=8)
    index.remove([10])
    header, arrays = _state(index)
    arrays["deleted"][11] = True  # slot 11 is in a list but flagged removed
    with pytest.raises(ValueError, match="list_slots"):
        vs.Index.from_state(header, arrays)
    header, arrays = _state(index)
    arrays["deleted"][10] = False  # slot 10 is live but no list holds it
    arrays["slot_to_id"][10] = 10
    with pytest.raises(ValueError, match="list_slots"):
        vs.Index.from_state(header, arrays)
    header, arrays = _state(index)
    assert vs.Index.from_state(header, arrays).ntotal == 999  # the untouched state loads


def test_a_truncated_file_on_disk_raises_index_file_error(tmp_path, wordnet_train):
    index = make("ip", wordnet_train[:1000], nlist=8, keep_vectors=False)
    index.save(str(tmp_path / "fs"))
    target = next(p for p in (tmp_path / "fs").iterdir() if p.name.startswith("list_slots"))
    target.write_bytes(target.read_bytes()[:-64])
    with pytest.raises(vs.IndexFileError):
        vs.load(str(tmp_path / "fs"))


# ---- filtered search --------------------------------------------------------------------------
@pytest.mark.parametrize("keep_vectors", [True, False])
def test_filtered_search_returns_only_matches_with_high_recall(wordnet_train, wordnet_queries_id, wordnet_attrs,
                                                               keep_vectors):
    index = IVFFastScanIndex(384, "ip", nlist=32, m=M, keep_vectors=keep_vectors, seed=0).train(wordnet_train)
    index.add(wordnet_train, attributes={"pos": wordnet_attrs["pos"], "lexfile": wordnet_attrs["lexfile"]})
    q = wordnet_queries_id[:100]
    strategies = ["prefilter", "postfilter"] if keep_vectors else ["postfilter"]
    # floors: re-ranked candidates ~0.9; 4-bit estimates alone ~0.65, as unfiltered (keep_vectors=False)
    cases = (({"pos": "v"}, 0.85), ({"pos": {"$in": ["n", "a"]}}, 0.85), ({"lexfile": 30}, 0.8))
    for where, floor in cases:
        floor = floor if keep_vectors else floor - 0.3
        allowed = index.match(where)
        truth = allowed[exact_knn(wordnet_train[allowed], q, K, "ip")]
        for strategy in [None, *strategies]:
            res = index.search(q, K, where=where, strategy=strategy, nprobe=16)
            got = res.ids[res.ids >= 0]
            assert np.isin(got, allowed).all()
            recall = recall_at_k(res.ids, truth)
            exact = keep_vectors and strategy in (None, "prefilter")
            assert recall >= (0.999 if exact else floor), (where, strategy, recall)


def test_all_filtered_out_and_k_beyond_ntotal_pad(wordnet_train):
    index = make("l2", wordnet_train[:500], nlist=4)
    index.update_attributes(np.arange(500), {"even": np.arange(500) % 2 == 0})
    assert (index.search(wordnet_train[:3], 5, where={"$and": [{"even": True}, {"even": False}]}).ids == -1).all()
    res = index.search(wordnet_train[:3], 600, nprobe=1, rerank=0)  # k > ntotal: all 500, then padding
    assert (res.ids[:, :500] >= 0).all() and (res.ids[:, 500:] == -1).all() and np.isinf(res.distances[:, 500:]).all()
    empty = IVFFastScanIndex(384, "l2", nlist=4, m=M).train(wordnet_train[:500])
    assert (empty.search(wordnet_train[:2], 3).ids == -1).all()


# ---- threads -----------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", METRICS)
def test_single_queries_never_enter_a_parallel_region(built, queries, monkeypatch, metric):
    """One query per call (1-D or a batch of one) runs the serial kernels on the calling thread;
    a batch of 20 (tiled coarse probes, 16 queries per register block) answers the same."""
    index = built(metric)
    batch = index.search(queries[:20], K)

    def parallel_kernel(*args, **kwargs):
        raise AssertionError("a single query left the calling thread")

    for name in ("nearest_centroids",):
        monkeypatch.setattr(module, name, parallel_kernel)
    monkeypatch.setattr(parallel, "_pool", parallel_kernel)  # no thread of the pool either
    singles = [index.search(one, K) for q in queries[:20] for one in (q, q[None, :])]
    ids = np.vstack([r.ids for r in singles])
    np.testing.assert_array_equal(ids[0::2], ids[1::2])
    assert (ids[0::2] == batch.ids).mean() > 0.99  # coarse scores summed in another order: near-ties may swap
    np.testing.assert_allclose(np.vstack([r.distances for r in singles[0::2]]), batch.distances, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("metric", METRICS)
def test_a_batch_split_into_chunks_over_two_threads_answers_as_one_thread(built, queries, monkeypatch, metric):
    """Batches on 2 threads are scanned in chunks the threads take in turn (grouped for ip/cosine,
    per query for l2 by residual); every query is answered once, as on the calling thread alone."""
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 numba threads")
    index = built(metric)
    q = queries[:300]
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        alone = index.search(q, K)
        numba.set_num_threads(2)
        calls = []
        run_shared = fastscan_runner.run_shared
        monkeypatch.setattr(fastscan_runner, "run_shared",
                            lambda fn, n, w, grain: calls.append(w) or run_shared(fn, n, w, grain))
        split = index.search(q, K)
    finally:
        numba.set_num_threads(before)
    assert 2 in calls  # the scan ran on two threads
    np.testing.assert_array_equal(split.ids, alone.ids)  # ties by row: the threads do not change the answer
    np.testing.assert_allclose(split.distances, alone.distances, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("nq", [8, 13, 100, 200])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("nlist", [64, 37])
def test_tiled_coarse_probes_equal_the_per_query_kernel(wordnet_train, queries, monkeypatch, metric, nq, threads,
                                                        nlist):
    """The batch path (16-query x 16-centroid register tiles, groups of 64 queries taken by the
    threads in turn; a partial last tile of centroids) picks the lists the per-query kernel picks."""
    import numba

    from vecsearch.kernels import fastscan_coarse
    from vecsearch.kernels.distances import METRIC_IP, METRIC_L2
    from vecsearch.kernels.ivf import coarse_probes_serial

    if numba.config.NUMBA_NUM_THREADS < threads:
        pytest.skip(f"needs {threads} numba threads")
    from vecsearch.codecs import kmeans

    used = []
    kernel = fastscan_coarse.coarse_probes_tiled
    monkeypatch.setattr(kmeans, "coarse_probes_tiled", lambda *a: used.append(a[2] - a[1]) or kernel(*a))
    code = METRIC_L2 if metric == "l2" else METRIC_IP
    centroids = np.ascontiguousarray(wordnet_train[:nlist])
    tiles = np.zeros((-(-nlist // 16), 384, 16), np.float32)
    fastscan_coarse.fill_tiles(centroids, tiles)
    c_sq = np.einsum("ij,ij->i", centroids, centroids).astype(np.float32)
    q = np.ascontiguousarray(queries[:nq])
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        lists, scores = module.probe_lists(q, tiles, np.ascontiguousarray(centroids.T), c_sq, code, 16)
    finally:
        numba.set_num_threads(before)
    assert sum(used) == nq and max(used) <= 64  # every query once, in groups of at most 64
    ref_lists, ref_scores = np.full((nq, 16), -1, np.int64), np.full((nq, 16), np.inf, np.float32)
    coarse_probes_serial(q, np.ascontiguousarray(centroids.T), c_sq, code, ref_lists, ref_scores)
    assert (lists == ref_lists).mean() > 0.99
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", METRICS)
def test_grouped_serial_and_parallel_batches_agree(built, queries, monkeypatch, metric):
    """Batches from GROUPED_MIN_QUERIES share code loads (grouped scan): same answers as query by query."""
    import numba

    index = built(metric)
    batch = queries[:100]
    grouped = index.search(batch, K, rerank=0)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        serial = index.search(batch, K, rerank=0)
    finally:
        numba.set_num_threads(threads)
    monkeypatch.setattr(fastscan_runner, "GROUPED_MIN_QUERIES", 10**9)
    per_query = index.search(batch, K, rerank=0)
    for other in (serial, per_query):
        assert (other.ids == grouped.ids).mean() > 0.99  # tie order may differ
        np.testing.assert_allclose(other.distances, grouped.distances, rtol=1e-5, atol=1e-5)


# ---- construction, factory, errors ---------------------------------------------------------------
@pytest.mark.parametrize("dim, m", [(384, 96), (100, 25), (97, 97), (3, 1), (1, 1), (12, 3)])
def test_suggested_m_divides_any_dim(dim, m):
    assert suggested_m(dim) == m and dim % suggested_m(dim) == 0


def test_odd_dimension_index_works_end_to_end():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((800, 6)) @ rng.standard_normal((6, 97))).astype(np.float32)  # low intrinsic dim
    params = IVFFastScanIndex.suggested_params(800, 97)
    assert params["m"] == 97
    index = IVFFastScanIndex(97, "l2", **params).train(x)
    index.add(x)
    truth = exact_knn(x, x[:50], 5, "l2")
    assert recall_at_k(index.search(x[:50], 5, nprobe=4).ids, truth) > 0.9


def test_same_seed_gives_identical_index(wordnet_train):
    a, b = (IVFFastScanIndex(384, "l2", nlist=8, m=48, seed=5).train(wordnet_train[:1000]) for _ in range(2))
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.codec.codebooks, b.codec.codebooks)


def test_factory_forms_and_describe():
    index = vs.index_factory(64, "IVF16,PQ16x4fs", metric="ip", nprobe=3)
    assert isinstance(index, IVFFastScanIndex) and not index.params.keep_vectors
    assert (index.nlist, index.params.m, index.nprobe) == (16, 16, 3)
    assert index.describe() == "IVF16,PQ16x4fs"
    refine = vs.index_factory(64, "IVF16,PQ32x4fs,Refine")
    assert isinstance(refine, IVFFastScanIndex) and refine.params.keep_vectors
    assert vs.describe(refine) == "IVF16,PQ32x4fs,Refine"
    assert isinstance(vs.index_factory(64, "IVF16,PQ16x4"), vs.IVFPQIndex)  # without "fs": 4-bit IVF-PQ


def test_clear_errors(wordnet_train):
    data = wordnet_train[:300]
    with pytest.raises(ValueError, match="m: the dimension 384 must be divisible"):
        IVFFastScanIndex(384, "l2", nlist=4, m=100)
    with pytest.raises(TypeError, match="nlist"):
        IVFFastScanIndex(384, "l2", nlist="8", m=96)
    with pytest.raises(ValueError, match="nlist"):
        IVFFastScanIndex(384, "l2", nlist=0, m=96)
    index = IVFFastScanIndex(384, "l2", nlist=4, m=96)
    with pytest.raises(ValueError, match="not trained"):
        index.add(data)
    with pytest.raises(ValueError, match="not trained"):
        index.search(data[:1], 3)
    with pytest.raises(ValueError, match="x: .*needs at least 64 training points"):
        IVFFastScanIndex(384, "l2", nlist=64, m=96).train(data[:50])
    with pytest.raises(ValueError, match="x: "):
        index.train(data[:, :100])
    index.train(data)
    with pytest.raises(ValueError, match="already trained"):
        index.train(data)
    with pytest.raises(ValueError, match="vectors"):
        index.add(np.full((2, 384), np.nan, np.float32))
    index.add(data)
    with pytest.raises(ValueError, match="rerank: .*keep_vectors=True"):
        index.search(data[:1], 3, rerank=20)
    with pytest.raises(ValueError, match="nprobe"):
        index.search(data[:1], 3, nprobe=0)
    with pytest.raises(TypeError, match="rerank"):
        index.search(data[:1], 3, rerank=2.5)
    with pytest.raises(TypeError, match="unexpected parameter"):
        index.search(data[:1], 3, ef=10)
    with pytest.raises(TypeError, match="unexpected parameters"):
        index.add(data[:2], bogus=False)
    with pytest.raises(TypeError, match="progress"):
        index.add(data[:2], progress="yes")
    with pytest.raises(ValueError, match="queries"):
        index.search(data[:1, :10], 3)
    assert index.search(data[:2], 3, rerank=0).ids.shape == (2, 3)  # rerank=0 is valid without vectors


def test_warmup_runs_for_all_metrics():
    IVFFastScanIndex.warmup_kernels(np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32))


def test_memory_per_vector_is_within_faiss_plus_4_bytes(wordnet_train):
    """Lists: m/2 code bytes + a 4-byte slot + the 8-byte id (faiss: m/2 + 8), plus the code blocks'
    padding (as faiss'); the slots are not padded, in memory or saved."""
    index = make("ip", wordnet_train, nlist=16, keep_vectors=False)
    assert index._list_slots.nbytes == 4 * 5000 and index.list_capacity() == 5000  # one add: no spare room
    _, arrays = index.get_state()
    assert arrays["list_slots"].nbytes == 4 * 5000
    list_bytes = arrays["list_codes"].nbytes + arrays["list_slots"].nbytes + arrays["slot_to_id"].nbytes
    padding = 16 * 31 * (M // 2) / 5000  # at most 31 empty code positions per list
    assert list_bytes / 5000 <= M / 2 + 8 + 4 + padding
    assert index.code_size == M // 2 + 4
