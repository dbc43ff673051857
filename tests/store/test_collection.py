"""Collection: Chroma-like semantics, filters through the predicate layer, persistence and reopen."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import exact_knn

import vecsearch as vs
from vecsearch.benchmark.evaluation import recall_at_k
from vecsearch.store.collection import Collection

N = 2000


def _sids(rows) -> list[str]:
    return [f"doc-{int(r)}" for r in rows]


def _metas(attrs, rows) -> list[dict]:
    return [
        {"pos": str(attrs["pos"][r]), "lexfile": int(attrs["lexfile"][r]), "gloss_len": int(attrs["gloss_len"][r]),
         "example": bool(attrs["has_example"][r])}
        for r in rows
    ]


@pytest.fixture(scope="module")
def filled(request):
    train = request.getfixturevalue("wordnet_train")[:N]
    attrs = request.getfixturevalue("wordnet_attrs")
    col = Collection(dim=384, index="flat")
    rows = np.arange(N)
    col.add(_sids(rows), train, documents=[f"text {r}" for r in rows], metadatas=_metas(attrs, rows))
    return col, train, attrs


def _ids_to_rows(ids_lists) -> np.ndarray:
    k = max(len(x) for x in ids_lists)
    out = np.full((len(ids_lists), k), -1, np.int64)
    for i, ids in enumerate(ids_lists):
        out[i, : len(ids)] = [int(s.split("-")[1]) for s in ids]
    return out


def test_flat_collection_query_equals_faiss_exact_neighbors(filled, wordnet_queries_id):
    col, train, _ = filled
    q = wordnet_queries_id[:30]
    res = col.query(q, n_results=10)
    truth = exact_knn(train, q, 10, "cosine")
    assert recall_at_k(_ids_to_rows(res["ids"]), truth) >= 0.99
    assert all(d == sorted(d) for d in res["distances"])
    assert res["documents"][0][0] == f"text {res['ids'][0][0].split('-')[1]}"


def test_hnsw_collection_recall_against_faiss(wordnet_train, wordnet_queries_id):
    col = Collection(dim=384, index="hnsw", M=16, ef_construction=100, seed=0)
    col.add(_sids(range(N)), wordnet_train[:N])
    q = wordnet_queries_id[:50]
    res = col.query(q, n_results=10, ef=64)
    truth = exact_knn(wordnet_train[:N], q, 10, "cosine")
    assert recall_at_k(_ids_to_rows(res["ids"]), truth) >= 0.95


_FILTERS = [
    ({"pos": "v"}, lambda a: a["pos"] == "v"),
    (vs.F.pos == "v", lambda a: a["pos"] == "v"),
    ({"$and": [{"gloss_len": {"$gte": 40}}, {"gloss_len": {"$lt": 60}}]},
     lambda a: (a["gloss_len"] >= 40) & (a["gloss_len"] < 60)),
    (vs.F.lexfile.isin([29, 30, 31]) & (vs.F.example == True),
     lambda a: np.isin(a["lexfile"], [29, 30, 31]) & (a["has_example"] == 1)),
    ({"$or": [{"pos": "r"}, {"lexfile": 3}]}, lambda a: (a["pos"] == "r") | (a["lexfile"] == 3)),
]


@pytest.mark.parametrize("case", range(len(_FILTERS)))
def test_filtered_query_equals_brute_force_over_allowed_records(filled, wordnet_queries_id, case):
    col, train, attrs = filled
    where, mask_fn = _FILTERS[case]
    mask = mask_fn({k: v[:N] for k, v in attrs.items()})
    assert mask.any()
    rows = np.flatnonzero(mask)
    q = wordnet_queries_id[:20]
    res = col.query(q, n_results=5, where=where)
    truth = rows[exact_knn(train[rows], q, 5, "cosine")]
    assert recall_at_k(_ids_to_rows(res["ids"]), truth) >= 0.99
    for ids in res["ids"]:
        assert all(mask[int(s.split("-")[1])] for s in ids)


def test_get_by_ids_keeps_the_given_order_and_skips_unknown_ids(filled):
    col, _, attrs = filled
    got = col.get(["doc-7", "missing", "doc-3", "doc-1999"])
    assert got["ids"] == ["doc-7", "doc-3", "doc-1999"]
    assert got["documents"] == ["text 7", "text 3", "text 1999"]
    assert got["metadatas"][1]["lexfile"] == int(attrs["lexfile"][3])
    assert got["embeddings"] is None


def test_get_by_where_and_ids_returns_the_intersection(filled):
    col, _, attrs = filled
    verbs = set(np.flatnonzero(attrs["pos"][:N] == "v").tolist())
    got = col.get(where={"pos": "v"})
    assert {int(s.split("-")[1]) for s in got["ids"]} == verbs
    some = ["doc-0", "doc-2", "doc-3", "doc-4"]
    both = col.get(ids=some, where={"pos": "v"})
    assert both["ids"] == [s for s in some if int(s.split("-")[1]) in verbs]
    assert col.get(limit=3, offset=2)["ids"] == ["doc-2", "doc-3", "doc-4"]


def test_include_flags_select_the_returned_fields(filled, wordnet_queries_id):
    col, train, _ = filled
    res = col.query(wordnet_queries_id[0], n_results=3, include=["embeddings"])
    assert res["documents"] is None and res["metadatas"] is None and res["distances"] is None
    row = int(res["ids"][0][0].split("-")[1])
    np.testing.assert_allclose(res["embeddings"][0][0], train[row] / np.linalg.norm(train[row]), atol=1e-6)
    got = col.get(["doc-5"], include=["documents"])
    assert got["documents"] == ["text 5"] and got["metadatas"] is None
    with pytest.raises(ValueError, match="include"):
        col.query(wordnet_queries_id[0], include=["nope"])
    with pytest.raises(ValueError, match="include"):
        col.get(include=["distances"])


def test_upsert_replaces_the_whole_record(wordnet_train, wordnet_queries_id):
    col = Collection(index="flat")
    col.add(["a", "b"], wordnet_train[:2], documents=["A", "B"], metadatas=[{"v": 1}, {"v": 2}])
    col.upsert(["a", "c"], wordnet_train[2:4], documents=["A2", None], metadatas=[{"w": "x"}, None])
    assert col.count() == 3
    got = col.get(["a", "b", "c"], include=["documents", "metadatas", "embeddings"])
    assert got["documents"] == ["A2", "B", None]
    assert got["metadatas"] == [{"w": "x"}, {"v": 2}, None]
    np.testing.assert_allclose(got["embeddings"][0], wordnet_train[2] / np.linalg.norm(wordnet_train[2]), atol=1e-6)
    # the old vector of "a" is gone from the index, its old metadata no longer matches
    res = col.query(wordnet_train[0], n_results=3)
    assert res["ids"][0][0] != "a" or res["distances"][0][0] > 1e-3
    assert col.get(where={"v": 1})["ids"] == []
    assert col.get(where={"w": "x"})["ids"] == ["a"]


def test_add_of_an_existing_id_keeps_the_first_record_warns_and_adds_the_new_ones(wordnet_train):
    col = Collection(index="flat")
    col.add(["a"], wordnet_train[:1], documents=["A alpha"], metadatas=[{"v": 1}])
    with pytest.warns(UserWarning, match=r"add: ids already in the collection .*upsert.*'a'"):
        col.add(["b", "a"], wordnet_train[1:3], documents=["B beta", "A2 gamma"], metadatas=[{"v": 2}, {"v": 3}])
    got = col.get(["a", "b"], include=["documents", "metadatas", "embeddings"])
    assert got["documents"] == ["A alpha", "B beta"] and got["metadatas"] == [{"v": 1}, {"v": 2}]
    np.testing.assert_allclose(got["embeddings"][0], wordnet_train[0] / np.linalg.norm(wordnet_train[0]), atol=1e-6)
    # the skipped entry left no trace: not in the vectors, the filters or the keyword index
    assert col.count() == 2 and col.get(where={"v": 3})["ids"] == []
    assert col.query(search_text="gamma")["ids"] == [[]]
    with pytest.warns(UserWarning, match="'a'"):
        col.add(["a"], wordnet_train[5:6])  # only existing ids: nothing to do
    assert col.count() == 2


def test_delete_by_where_removes_only_matching_records(wordnet_train, wordnet_attrs):
    col = Collection(index="flat")
    rows = np.arange(300)
    col.add(_sids(rows), wordnet_train[rows], metadatas=_metas(wordnet_attrs, rows))
    nouns = int((wordnet_attrs["pos"][:300] == "n").sum())
    assert col.delete(where={"pos": "n"}) == nouns
    assert col.count() == 300 - nouns
    res = col.query(wordnet_train[:50], n_results=20)
    assert all(wordnet_attrs["pos"][int(s.split("-")[1])] != "n" for ids in res["ids"] for s in ids)
    assert col.delete(ids=["doc-unknown"]) == 0
    with pytest.raises(ValueError, match="got none"):
        col.delete()


def test_metadata_values_round_trip_and_only_scalars_are_filterable():
    col = Collection(index="flat", metric="l2")
    meta = {"n": 3, "x": 0.5, "flag": True, "tags": ["red", "blue"], "nested": {"a": [1, 2]}, "none": None}
    col.add(["r"], np.ones((1, 4)), metadatas=[meta])
    assert col.get(["r"])["metadatas"] == [meta]
    assert col.get(where={"n": 3})["ids"] == ["r"]
    assert col.get(where={"tags": "red"})["ids"] == ["r"]
    assert col.get(where={"x": {"$gt": 0.25}})["ids"] == ["r"]
    with pytest.raises(ValueError, match="unknown field"):
        col.get(where={"nested": 1})


def test_rejected_writes_leave_the_collection_unchanged():
    col = Collection(index="flat", dim=4)
    col.add(["a"], np.ones((1, 4)), metadatas=[{"kind": "x"}])
    bad = [
        (TypeError, {"ids": [1], "embeddings": np.ones((1, 4))}),
        (ValueError, {"ids": ["b", "b"], "embeddings": np.ones((2, 4))}),
        (ValueError, {"ids": ["b"], "embeddings": np.ones((1, 5))}),
        (ValueError, {"ids": ["b", "c"], "embeddings": np.ones((1, 4))}),
        (ValueError, {"ids": ["b"], "embeddings": np.full((1, 4), np.nan)}),
        (ValueError, {"ids": ["b"], "embeddings": np.zeros((1, 4))}),  # zero vector under cosine
        (ValueError, {"ids": ["b"], "embeddings": np.ones((1, 4)), "documents": ["x", "y"]}),
        (TypeError, {"ids": ["b"], "embeddings": np.ones((1, 4)), "metadatas": [{"kind": 3}]}),  # str field
        (TypeError, {"ids": ["b"], "embeddings": np.ones((1, 4)), "metadatas": [{"o": object()}]}),
        (TypeError, {"ids": ["b"], "embeddings": np.ones((1, 4)), "documents": [3]}),
    ]
    for exc, kwargs in bad:
        with pytest.raises(exc):
            col.add(**kwargs)
    assert col.get()["ids"] == ["a"]


def test_query_pads_nothing_and_handles_empty_and_small_collections():
    col = Collection(index="flat")
    empty = col.query(np.ones(4), n_results=3)
    assert empty["ids"] == [[]] and empty["distances"] == [[]]
    col.add(["a", "b"], np.eye(2, 4) + 0.1)
    res = col.query(np.ones((2, 4)), n_results=10)
    assert [len(x) for x in res["ids"]] == [2, 2]
    with pytest.raises(ValueError, match="unknown field"):
        col.query(np.ones(4), where={"nope": 1})


def test_reopen_restores_records_vectors_and_filters(tmp_path, wordnet_train, wordnet_attrs, wordnet_queries_id):
    path = tmp_path / "col"
    rows = np.arange(500)
    with Collection(str(path), index="hnsw", M=8, ef_construction=64, seed=1) as col:
        col.add(_sids(rows[:300]), wordnet_train[:300], documents=[f"t{r}" for r in rows[:300]],
                metadatas=_metas(wordnet_attrs, rows[:300]))
        col.checkpoint()  # part in the snapshot ...
        col.add(_sids(rows[300:]), wordnet_train[300:500], metadatas=_metas(wordnet_attrs, rows[300:]))
        col.upsert(["doc-1"], wordnet_train[600:601], documents=["new"])
        col.delete(where={"pos": "r"})  # ... part only in the log
        before = col.get(include=["documents", "metadatas", "embeddings"])
        q_before = col.query(wordnet_queries_id[:10], n_results=5, where={"pos": "n"})
    reopened = Collection(str(path))
    assert (reopened.dim, reopened.metric, reopened.index_spec) == (384, "cosine", "hnsw")
    after = reopened.get(include=["documents", "metadatas", "embeddings"])
    assert after["ids"] == before["ids"]
    assert after["documents"] == before["documents"] and after["metadatas"] == before["metadatas"]
    np.testing.assert_array_equal(np.array(after["embeddings"]), np.array(before["embeddings"]))
    assert reopened.query(wordnet_queries_id[:10], n_results=5, where={"pos": "n"}) == q_before
    reopened.close()


def test_reopen_without_close_replays_the_log(tmp_path, wordnet_train):
    path = str(tmp_path / "col")
    col = Collection(path, index="flat")
    col.add(_sids(range(50)), wordnet_train[:50])
    col.delete(ids=["doc-3"])
    col._wal.close()  # simulate a crash: no snapshot, lock released by the dying process
    col._dir.unlock()
    again = Collection(path)
    assert again.count() == 49 and "doc-3" not in again.get()["ids"]
    again.close()


def test_small_checkpoint_threshold_snapshots_and_truncates_the_log(tmp_path, wordnet_train):
    path = tmp_path / "col"
    col = Collection(str(path), index="flat", checkpoint_bytes=20_000)
    for i in range(40):
        col.add([f"x{i}-{j}" for j in range(10)], wordnet_train[i * 10 : i * 10 + 10])
    assert col._gen > 1
    # the threshold grows with the snapshot (half its size), so snapshots stay amortized
    assert col._checkpoint_threshold() > 20_000
    logs = list(path.glob("wal-*.log"))
    assert len(logs) == 1 and logs[0].stat().st_size < col._checkpoint_threshold()
    assert len(list(path.glob("snap-*"))) == 1
    col.close()
    assert Collection(str(path)).count() == 400


def test_reopen_with_conflicting_settings_raises(tmp_path):
    path = str(tmp_path / "col")
    Collection(path, index="flat", metric="l2", dim=3).close()
    with pytest.raises(ValueError, match="metric"):
        Collection(path, metric="ip")
    with pytest.raises(ValueError, match="dim"):
        Collection(path, dim=4)
    col = Collection(path)
    assert (col.metric, col.index_spec, col.dim) == ("l2", "flat", 3)
    col.close()


def test_closed_collection_rejects_writes(tmp_path):
    col = Collection(str(tmp_path / "c"), index="flat")
    col.close()
    with pytest.raises(ValueError, match="closed"):
        col.add(["a"], np.ones((1, 3)))


def test_upserts_on_hnsw_compact_tombstones_and_keep_filters_right(monkeypatch, wordnet_train, wordnet_attrs):
    import vecsearch.store.collection as collection_module

    monkeypatch.setattr(collection_module, "COMPACT_MIN_DELETED", 50)
    col = Collection(index="hnsw", M=8, ef_construction=40)
    rows = np.arange(400)
    col.add(_sids(rows), wordnet_train[rows], metadatas=_metas(wordnet_attrs, rows))
    for start in range(0, 200, 50):  # replace records 0..199 with other vectors and flipped metadata
        part = rows[start : start + 50]
        col.upsert(_sids(part), wordnet_train[part + 1000], metadatas=[{"pos": "z"}] * 50)
    assert col.index._ids.n_slots < 600  # tombstones were dropped
    assert col.count() == 400 and len(col.get(where={"pos": "z"})["ids"]) == 200
    res = col.query(wordnet_train[1000:1010], n_results=1, where={"pos": "z"})
    assert [ids[0] for ids in res["ids"]] == [f"doc-{i}" for i in range(10)]


def _token_sets(vecs: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [vecs[offsets[i] : offsets[i + 1]] for i in range(offsets.shape[0] - 1)]


def _chamfer_topk(queries: list[np.ndarray], docs: list[np.ndarray], rows: np.ndarray, k: int) -> np.ndarray:
    """Exact Chamfer top-k (plain numpy oracle) over the documents ``rows``."""
    out = []
    for q in queries:
        sims = np.array([(q @ docs[r].T).max(axis=1).sum() for r in rows])
        out.append(rows[np.argsort(-sims, kind="stable")[:k]])
    return np.array(out)


def test_muvera_collection_takes_token_matrices_filters_and_reopens(tmp_path, wordnet_multivector):
    mv = wordnet_multivector
    docs = _token_sets(mv["doc_vecs"], mv["doc_offsets"])
    queries = _token_sets(mv["query_vecs"], mv["query_offsets"])[::10]
    n = len(docs)
    metas = [{"half": "a" if i % 2 else "b", "i": i} for i in range(n)]
    path = str(tmp_path / "mv")
    col = Collection(path, index="muvera", fde={"reps": 8, "k_sim": 3, "d_proj": 8})
    assert col.metric == "ip"
    col.add([f"doc-{i}" for i in range(n - 20)], docs[: n - 20], metadatas=metas[: n - 20])
    col.checkpoint()
    col.add([f"doc-{i}" for i in range(n - 20, n)], docs[n - 20 :], metadatas=metas[n - 20 :])
    # with every document as a candidate the Chamfer re-rank is exact
    res = col.query(queries, n_results=5, candidates=n)
    truth = _chamfer_topk(queries, docs, np.arange(n), 5)
    assert recall_at_k(_ids_to_rows(res["ids"]), truth) >= 0.99
    filtered = col.query(queries, n_results=5, where={"half": "a"}, candidates=n)
    odd = np.arange(1, n, 2)
    assert recall_at_k(_ids_to_rows(filtered["ids"]), _chamfer_topk(queries, docs, odd, 5)) >= 0.99
    approx = col.query(queries, n_results=5, where={"half": "a"})  # FDE candidates, post-filtered
    assert all(len(ids) == 5 and all(int(s.split("-")[1]) % 2 for s in ids) for ids in approx["ids"])
    got = col.get(["doc-3"], include=["embeddings"])
    np.testing.assert_array_equal(got["embeddings"][0], docs[3])
    col.close()
    again = Collection(path)
    assert again.count() == n and again.query(queries, n_results=5, candidates=n)["ids"] == res["ids"]
    assert again.query(queries, n_results=5, where={"half": "a"}, candidates=n)["ids"] == filtered["ids"]
    with pytest.raises(ValueError, match="metric"):
        Collection(index="muvera", metric="cosine")
    again.close()


def test_factory_string_selects_the_index_and_a_dropped_collection_can_be_reopened(tmp_path, wordnet_train):
    path = str(tmp_path / "f")
    col = Collection(path, index="HNSW8", metric="ip")
    col.add(_sids(range(100)), wordnet_train[:100])
    assert type(col.index).__name__ == "HNSWIndex" and col.index.M == 8
    del col  # no close(): the log has everything and the directory lock is released
    again = Collection(path)
    assert again.count() == 100 and again.query(wordnet_train[5], n_results=1)["ids"] == [["doc-5"]]
    again.close()
