"""HNSWIndex storages: the default walks LVQ8 codes of the vectors (and scans them for filtered
searches over many allowed rows) and re-scores its best candidates with the float32 vectors; codes
kept in step with adds, slot reuse and compaction; both metrics; one query and batches alike."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import exact_knn

import vecsearch as vs
from vecsearch import F
from vecsearch.benchmark.evaluation import recall_at_k
from vecsearch.exact import BLAS_MIN_QUERIES
from vecsearch.filtering.tuning import DEFAULT_TUNING
from vecsearch.indexes.graph_filtered import CODE_RERANK_MIN

K = 10
N = 3000  # rows of the real slice used here: build stays ~1 s


@pytest.fixture(scope="module")
def data(wordnet_train, wordnet_queries_id):
    """Shuffled rows: the slice is in WordNet order, where neighboring rows are similar (a stale
    code row would still look plausible)."""
    order = np.random.default_rng(0).permutation(wordnet_train.shape[0])[:N]
    return np.ascontiguousarray(wordnet_train[order]), wordnet_queries_id[:40]


def _index(x, metric):
    index = vs.HNSWIndex(384, metric, M=16, ef_construction=64, seed=0)
    index.add(x, attributes={"rank": np.arange(x.shape[0], dtype=np.int64)}, progress=False)
    return index


def _prefilter(index, q, where):
    """Prefilter search in batches below BLAS_MIN_QUERIES (the code scan serves them; the BLAS scan larger ones)."""
    step = BLAS_MIN_QUERIES - 1
    parts = [index.search(q[i : i + step], K, where=where, strategy="prefilter") for i in range(0, q.shape[0], step)]
    return np.concatenate([p.ids for p in parts]), np.concatenate([p.distances for p in parts])


def _truth(x, q, rows, metric):
    return rows[exact_knn(x[rows], q, K, metric)]


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_prefilter_past_the_code_scan_threshold_matches_the_exact_scan(data, metric):
    """2,400 allowed rows (past CODE_SCAN_MIN_MATCHES): same ids as the exact scan and the exact
    float32 distances for them (the code candidates are re-scored with the stored vectors)."""
    x, q = data
    index = _index(x, metric)
    where = F.rank < 2400
    assert index.compile_where(where).count >= index.filter_tuning.code_scan_min_matches
    found_ids, found_distances = _prefilter(index, q, where)
    truth = _truth(x, q, np.arange(2400), metric)
    assert recall_at_k(found_ids, truth) >= 0.99
    xn = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cosine" else x
    qn = q / np.linalg.norm(q, axis=1, keepdims=True) if metric == "cosine" else q
    rows = found_ids
    if metric == "cosine":
        expected = 1.0 - np.einsum("qd,qkd->qk", qn, xn[rows])
    else:
        expected = ((xn[rows] - qn[:, None, :]) ** 2).sum(axis=2)
    np.testing.assert_allclose(found_distances, expected, rtol=1e-4, atol=1e-5)
    assert (found_ids < 2400).all()


def test_code_scan_sees_vectors_added_after_the_codes_were_built(data):
    x, q = data
    index = _index(x, "cosine")
    where = F.rank < 2400
    index.add(q[:1] * 2.0, ids=[10**6], attributes={"rank": np.array([5], np.int64)}, progress=False)
    found = index.search(q[:1], K, where=where, strategy="prefilter")
    assert found.ids[0, 0] == 10**6
    assert found.distances[0, 0] == pytest.approx(0.0, abs=1e-5)


def test_code_scan_sees_a_deleted_slot_reused_by_add(data):
    """allow_replace_deleted rewrites a slot in place: its code row is re-encoded."""
    x, q = data
    index = vs.HNSWIndex(384, "cosine", M=16, ef_construction=64, seed=0, allow_replace_deleted=True)
    index.add(x, attributes={"rank": np.arange(x.shape[0], dtype=np.int64)}, progress=False)
    where = F.rank < 2400
    index.remove([7])
    index.add(q[:1] * 2.0, ids=[10**6], attributes={"rank": np.array([5], np.int64)}, progress=False)
    assert index.n_slots == N  # the deleted slot was reused, not appended
    found = index.search(q[:1], K, where=where, strategy="prefilter")
    assert found.ids[0, 0] == 10**6
    assert found.distances[0, 0] == pytest.approx(0.0, abs=1e-5)


def test_code_scan_after_compaction_reads_the_renumbered_slots(data):
    """Compaction renumbers slots: the code rows move with their vectors."""
    x, q = data
    index = _index(x, "cosine")
    index.filter_tuning = replace(DEFAULT_TUNING, code_scan_min_matches=100)  # the 1,733 rows left use the codes
    where = F.rank < 2600
    index.search(q[:1], K, where=where, strategy="prefilter")
    removed = np.arange(0, N, 3)
    index.remove(removed)
    assert index.compact() == removed.size
    found_ids, _ = _prefilter(index, q, where)
    kept = np.setdiff1d(np.arange(2600), removed)
    assert recall_at_k(found_ids, _truth(x, q, kept, "cosine")) >= 0.99
    assert not np.isin(found_ids, removed).any()


def test_one_query_and_batch_code_scans_agree(data):
    """The single-query path (calling thread) and a batch (thread pool) scan the same codes."""
    x, q = data
    index = _index(x, "l2")
    index.filter_tuning = replace(DEFAULT_TUNING, code_scan_min_matches=100)
    where = F.rank < 2000
    batch = index.search(q[:8], K, where=where, strategy="prefilter")
    for i in range(8):
        one = index.search(q[i], K, where=where, strategy="prefilter")
        np.testing.assert_array_equal(one.ids[0], batch.ids[i])
        np.testing.assert_allclose(one.distances[0], batch.distances[i], rtol=1e-6)


def test_code_scan_with_fewer_allowed_rows_than_candidates_returns_them_all(data):
    x, q = data
    index = _index(x, "cosine")
    index.filter_tuning = replace(DEFAULT_TUNING, code_scan_min_matches=1)
    n_allowed = CODE_RERANK_MIN // 2
    found = index.search(q[:3], K, where=F.rank < n_allowed, strategy="prefilter")
    assert (found.ids >= 0).all() and np.isfinite(found.distances).all()
    assert set(found.ids.ravel().tolist()) <= set(range(n_allowed))


# ---- the default storage against storage="float32": same graph, walked on codes or on floats ----
@pytest.fixture(scope="module")
def walk_pair(data):
    """The same graph build walked on float32 vectors and on the codes (cosine, all 3,000 rows)."""
    x, _ = data
    plain = vs.HNSWIndex(384, "cosine", M=16, ef_construction=64, seed=0, storage="float32")
    coded = vs.HNSWIndex(384, "cosine", M=16, ef_construction=64, seed=0)
    ranks = {"rank": np.arange(x.shape[0], dtype=np.int64)}
    plain.add(x, attributes=ranks, progress=False)
    coded.add(x, attributes=ranks, progress=False)
    return plain, coded


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_code_walk_recall_matches_the_float_walk_with_exact_distances(data, metric):
    x, q = data
    plain = vs.HNSWIndex(384, metric, M=16, ef_construction=64, seed=0, storage="float32")
    coded = vs.HNSWIndex(384, metric, M=16, ef_construction=64, seed=0)
    plain.add(x, progress=False)
    coded.add(x, progress=False)
    truth = exact_knn(x, q, K, metric)
    for batch in (q[:1], q):  # the serial and the parallel kernels
        found = coded.search(batch, K, ef=32)
        assert recall_at_k(found.ids, truth[: batch.shape[0]]) >= recall_at_k(plain.search(batch, K, ef=32).ids,
                                                                           truth[: batch.shape[0]]) - 0.02
    found = coded.search(q, K, ef=32)
    rows = found.ids
    expected = ((x[rows] - q[:, None, :]) ** 2).sum(axis=2) if metric == "l2" else -np.einsum("qd,qkd->qk", q, x[rows])
    np.testing.assert_allclose(found.distances, expected, rtol=1e-4, atol=1e-4)


def test_both_storages_filtered_strategies_reach_the_recall_floor(walk_pair, data):
    x, q = data
    for index in walk_pair:
        for count in (1500, 600):
            where = F.rank < count
            truth = _truth(x, q, np.arange(count), "cosine")
            for strategy in ("beam_collect", "postfilter"):
                found = np.vstack([index.search(q[i], K, where=where, strategy=strategy).ids for i in range(q.shape[0])])
                assert recall_at_k(found, truth) >= 0.95, (index.storage, count, strategy)
                assert (found[found >= 0] < count).all()


def test_code_walk_survives_save_load_and_follows_removals(walk_pair, data, tmp_path):
    x, q = data
    _, coded = walk_pair
    coded.save(str(tmp_path / "coded"))
    loaded = vs.load(str(tmp_path / "coded"))
    assert loaded.storage == "lvq8"
    np.testing.assert_array_equal(loaded.search(q, K).ids, coded.search(q, K).ids)
    removed = loaded.search(q[:5], 1).ids[:, 0]
    loaded.remove(removed)
    assert not np.isin(loaded.search(q[:5], K).ids, removed).any()
    loaded.compact()
    again = loaded.search(q, K)
    kept = np.setdiff1d(np.arange(N), removed)
    assert recall_at_k(again.ids, kept[exact_knn(x[kept], q, K, "cosine")]) >= 0.9


def test_float32_storage_keeps_no_codes_and_scans_exactly(data):
    """storage="float32": no code rows (memory), every scan exact; the planner knows which scan it gets."""
    x, q = data
    plain = vs.HNSWIndex(384, "cosine", M=16, ef_construction=64, seed=0, storage="float32")
    coded = vs.HNSWIndex(384, "cosine", M=16, ef_construction=64, seed=0)
    for index in (plain, coded):
        index.add(x, attributes={"rank": np.arange(x.shape[0], dtype=np.int64)}, progress=False)
    assert coded.memory_bytes() - plain.memory_bytes() >= N * (384 + 4)
    found = plain.search(q, K, where=F.rank < 1500, strategy="beam_collect")
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    expected = 1 - np.einsum("qd,qkd->qk", qn, xn[found.ids])
    np.testing.assert_allclose(found.distances, expected, rtol=1e-4, atol=1e-4)
    assert coded.filter_capabilities().code_scan and not plain.filter_capabilities().code_scan
    assert not vs.FlatIndex(384, "cosine").filter_capabilities().code_scan


def test_files_written_with_walk_codes_load_with_the_matching_storage(data, tmp_path):
    """Indexes saved before the storage parameter said walk_codes=True/False."""
    from vecsearch.io import write_directory

    x, q = data
    index = vs.HNSWIndex(384, "l2", M=8, ef_construction=32, storage="float32")
    index.add(x[:500], progress=False)
    for walk_codes, storage in ((True, "lvq8"), (False, "float32")):
        header, arrays = index.get_state()
        params = dict(header["params"])
        params.pop("storage")
        params["walk_codes"] = walk_codes
        write_directory(str(tmp_path / storage), {**header, "params": params}, arrays)
        loaded = vs.load(str(tmp_path / storage))
        assert loaded.storage == storage
        truth = exact_knn(x[:500], q, K, "l2")
        assert recall_at_k(loaded.search(q, K, ef=64).ids, truth) >= 0.9
