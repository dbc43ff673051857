"""Collection hybrid search: keyword leg, dense leg, their fusion, where/where_document on both, persistence."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from vecsearch.io import IndexFileError
from vecsearch.store.collection import Collection
from vecsearch.store.fusion import reciprocal_rank_fusion, relative_score_fusion
from vecsearch.store.keyword import KeywordIndex

WORDS = ["apple", "banana", "cherry", "dog", "eagle", "fig", "grape", "hazel", "iris", "jade", "kiwi", "lemon"]
N = 400
DIM = 24


def _corpus(seed: int = 0) -> tuple[list[str], np.ndarray, list[str], list[dict]]:
    """N records whose text and vectors disagree often enough that the legs differ."""
    rng = np.random.default_rng(seed)
    ids = [f"r{i}" for i in range(N)]
    vectors = rng.normal(size=(N, DIM)).astype(np.float32)
    docs = [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 8)))) + f" item{i}" for i in range(N)]
    metas = [{"group": i % 4, "even": i % 2 == 0} for i in range(N)]
    return ids, vectors, docs, metas


@pytest.fixture()
def col():
    ids, vectors, docs, metas = _corpus()
    c = Collection(index="flat", metric="l2")
    c.add(ids, vectors, documents=docs, metadatas=metas)
    return c


def _reference_keyword(ids, docs) -> tuple[KeywordIndex, list[str]]:
    index = KeywordIndex()
    index.add(np.arange(len(ids)), docs)
    return index, ids


def test_keyword_only_query_equals_a_standalone_bm25_index(col):
    ids, _, docs, _ = _corpus()
    ref, _ = _reference_keyword(ids, docs)
    res = col.query(search_text=["cherry dog", "item17 kiwi"], n_results=15, include=["documents", "distances", "scores"])
    for qi, text in enumerate(["cherry dog", "item17 kiwi"]):
        want_ids, want_scores = ref.search(text, 15)
        assert res["ids"][qi] == [ids[i] for i in want_ids]
        assert res["distances"][qi] == [None] * len(want_ids)  # the dense leg did not run
        got = [s["keyword_score"] for s in res["scores"][qi]]
        np.testing.assert_allclose(got, want_scores, rtol=1e-6)
        assert all(s["found_by"] == ["keyword"] and s["fused"] is None for s in res["scores"][qi])
        assert [s["keyword_rank"] for s in res["scores"][qi]] == list(range(1, len(want_ids) + 1))
    assert res["ids"][1][0] == "r17"


def test_embeddings_only_query_is_unchanged_and_scores_give_vector_ranks(col):
    _, vectors, _, _ = _corpus()
    res = col.query(vectors[:3] + 0.01, n_results=5, include=["distances", "scores"])
    d = ((vectors[None, :3] + 0.01 - vectors[:, None]) ** 2).sum(-1).T  # (3, N)
    for qi in range(3):
        assert res["ids"][qi] == [f"r{i}" for i in np.argsort(d[qi], kind="stable")[:5]]
        assert [s["vector_rank"] for s in res["scores"][qi]] == [1, 2, 3, 4, 5]
        assert [s["vector_distance"] for s in res["scores"][qi]] == res["distances"][qi]
        assert all(s["keyword_rank"] is None and s["found_by"] == ["vector"] for s in res["scores"][qi])


@pytest.mark.parametrize("fusion", ["rrf", "relative_score"])
def test_hybrid_equals_fusing_the_two_legs_by_hand(col, fusion):
    _, vectors, _, _ = _corpus()
    q, text, fetch = vectors[7:9] + 0.3, ["grape lemon", "apple item8"], 30
    dense = col.query(q, n_results=fetch, include=["distances"])
    keyword = col.query(search_text=text, n_results=fetch, include=["scores"])
    res = col.query(q, search_text=text, n_results=10, fusion=fusion, alpha=0.3, fetch_k=fetch,
                    include=["distances", "scores"])
    for qi in range(2):
        to_int = {f"r{i}": i for i in range(N)}
        legs = [([to_int[s] for s in dense["ids"][qi]], -np.asarray(dense["distances"][qi])),
                ([to_int[s] for s in keyword["ids"][qi]], [h["keyword_score"] for h in keyword["scores"][qi]])]
        if fusion == "rrf":
            want = reciprocal_rank_fusion(legs, weights=(0.3, 0.7), k=10)
        else:
            want = relative_score_fusion(legs, weights=(0.3, 0.7), k=10)
        assert res["ids"][qi] == [f"r{i}" for i in want.ids]
        np.testing.assert_allclose([h["fused"] for h in res["scores"][qi]], want.scores)
        for hit, dist, (vr, kr) in zip(res["scores"][qi], res["distances"][qi], want.ranks.T):
            assert hit["vector_rank"] == (vr or None) and hit["keyword_rank"] == (kr or None)
            assert (dist is None) == (vr == 0) and hit["vector_distance"] == dist
            assert set(hit["found_by"]) == {leg for leg, r in (("vector", vr), ("keyword", kr)) if r}


def test_hybrid_default_is_rrf_with_equal_weights_and_found_by_both(col):
    _, vectors, docs, _ = _corpus()
    res = col.query(vectors[42], search_text=docs[42], n_results=3, include=["scores"])
    top = res["scores"][0][0]
    assert res["ids"][0][0] == "r42" and top["found_by"] == ["vector", "keyword"]
    assert top["fused"] == pytest.approx(2 / 61)  # rank 1 in both legs, 1 / (60 + 1) each


def test_alpha_one_and_zero_of_relative_score_reproduce_each_leg(col):
    _, vectors, _, _ = _corpus()
    q, text = vectors[3] + 0.5, "banana eagle"
    dense = col.query(q, n_results=10)["ids"][0]
    keyword = col.query(search_text=text, n_results=10)["ids"][0]
    assert col.query(q, search_text=text, fusion="relative_score", alpha=1.0)["ids"][0] == dense
    assert col.query(q, search_text=text, fusion="relative_score", alpha=0.0)["ids"][0] == keyword


def test_where_restricts_both_legs(col):
    ids, vectors, docs, metas = _corpus()
    where = {"$and": [{"group": 1}, {"even": False}]}
    allowed = [i for i in range(N) if metas[i]["group"] == 1 and not metas[i]["even"]]
    ref, _ = _reference_keyword(ids, docs)  # a filter restricts the hits, not BM25's corpus statistics
    got = col.query(search_text="fig jade", where=where, n_results=20)["ids"][0]
    assert got == [ids[i] for i in ref.search("fig jade", 20, allowed=np.array(allowed))[0]]
    res = col.query(vectors[:4], search_text=["fig"] * 4, where=where, n_results=20, include=["metadatas"])
    assert all(m["group"] == 1 and not m["even"] for row in res["metadatas"] for m in row)
    assert all(len(row) == 20 for row in res["ids"])


def test_where_document_restricts_dense_keyword_and_hybrid_queries(col):
    ids, vectors, docs, _ = _corpus()
    flt = {"$and": [{"$contains": "kiwi"}, {"$not_contains": "lemon"}]}
    allowed = np.array([i for i in range(N) if "kiwi" in docs[i] and "lemon" not in docs[i]])
    q = vectors[:3] + 0.2
    res = col.query(q, where_document=flt, n_results=8, include=["distances"])
    d = ((q[:, None] - vectors[None, allowed]) ** 2).sum(-1)
    for qi in range(3):
        assert res["ids"][qi] == [ids[i] for i in allowed[np.argsort(d[qi], kind="stable")[:8]]]
        np.testing.assert_allclose(res["distances"][qi], np.sort(d[qi])[:8], rtol=1e-4)
    hybrid = col.query(q, search_text=["apple"] * 3, where_document=flt, include=["documents"])
    assert all("kiwi" in doc and "lemon" not in doc for row in hybrid["documents"] for doc in row)
    keyword = col.query(search_text="kiwi", where_document={"$contains": "cherry"}, n_results=100)
    assert sorted(keyword["ids"][0]) == sorted(ids[i] for i in range(N) if "kiwi" in docs[i] and "cherry" in docs[i])


@pytest.mark.parametrize("exact_max", [10, 4096])
def test_where_document_on_a_graph_index_post_filters_or_scores_exactly_without_losing_rows(
        wordnet_train, monkeypatch, exact_max):
    import vecsearch.store.query as query_module

    monkeypatch.setattr(query_module, "EXACT_MAX", exact_max)  # 10: the post-filtered over-fetch path
    n = 3000
    col = Collection(index="hnsw", M=8, ef_construction=40, seed=0)
    col.add([str(i) for i in range(n)], wordnet_train[:n], documents=[f"t{i % 3} x{i}." for i in range(n)])
    res = col.query(wordnet_train[:5], n_results=10, where_document={"$contains": "t1"}, include=["documents"])
    assert all(len(row) == 10 and all(d.startswith("t1") for d in row) for row in res["documents"])
    truth = col.query(wordnet_train[:5], n_results=10)
    assert truth["ids"][0][0] == "0"  # the unfiltered top hit of a database vector is itself
    # one matching record, far from the query: found however deep the over-fetch must go
    one = col.query(wordnet_train[:2], n_results=10, where_document={"$contains": "x2999."})
    assert one["ids"] == [["2999"], ["2999"]]
    # hybrid with a where_document: both legs obey it
    both = col.query(wordnet_train[:2], search_text=["x7", "t2"], where_document={"$contains": "t2"},
                     include=["documents"])
    assert all(d.startswith("t2") for row in both["documents"] for d in row)


def test_get_and_delete_take_where_document(col):
    ids, _, docs, _ = _corpus()
    want = [ids[i] for i in range(N) if "hazel" in docs[i] or "iris" in docs[i]]
    flt = {"$or": [{"$contains": "hazel"}, {"$contains": "iris"}]}
    assert col.get(where_document=flt)["ids"] == want
    assert col.get(where={"group": 0}, where_document=flt)["ids"] == [s for s in want if int(s[1:]) % 4 == 0]
    assert col.delete(where_document=flt) == len(want)
    assert col.count() == N - len(want)
    assert col.query(search_text="hazel iris")["ids"] == [[]]  # the keyword index followed the delete
    with pytest.raises(ValueError, match=r"where_document\['\$contains'\]"):
        col.get(where_document={"$contains": 3})
    with pytest.raises(ValueError, match="where_document"):
        col.delete(where_document={"$near": "x"})


def test_keyword_index_follows_add_upsert_update_and_delete():
    col = Collection(index="flat", metric="l2", dim=2)
    col.add(["a", "b", "c"], np.eye(3, 2) + 1, documents=["red apple", "green pear", None])
    col.upsert(["a"], np.ones((1, 2)), documents=["yellow banana"])
    col.update(["b"], documents=["ripe apple"])
    col.update(["c"], documents=["apple pie"], metadatas=[{"k": 1}])
    col.delete(ids=["c"])
    assert col.query(search_text="apple")["ids"] == [["b"]]
    assert col.query(search_text="banana")["ids"] == [["a"]]
    assert col.query(search_text="red green pear")["ids"] == [[]]


def test_update_merges_metadata_keeps_other_fields_and_skips_unknown_ids():
    col = Collection(index="flat", metric="l2")
    vec = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]], np.float32)
    col.add(["a", "b"], vec, documents=["alpha", "beta"], metadatas=[{"x": 1, "y": 2}, None])
    with pytest.warns(UserWarning, match="update: ids not in the collection: 'zz'"):
        col.update(["a", "zz"], metadatas=[{"y": None, "z": 5}, {"q": 1}])
    got = col.get(["a"], include=["documents", "metadatas", "embeddings"])
    assert got["documents"] == ["alpha"] and got["metadatas"] == [{"x": 1, "z": 5}]
    np.testing.assert_array_equal(got["embeddings"][0], vec[0])  # read back unchanged
    assert col.get(where={"y": 2})["ids"] == [] and col.get(where={"z": 5})["ids"] == ["a"]
    col.update(["b"], embeddings=np.array([[5.0, 5.0, 5.0]]), documents=[None])  # None: keep the document
    got = col.get(["b"], include=["documents", "embeddings"])
    assert got["documents"] == ["beta"] and got["embeddings"][0].tolist() == [5.0, 5.0, 5.0]
    assert "zz" not in col.get()["ids"]
    with pytest.raises(ValueError, match="embeddings"):
        col.update(["a"], embeddings=np.ones((1, 4)))
    with pytest.raises(ValueError, match="documents"):
        col.update(["a", "b"], documents=["one"])


def test_bad_query_arguments_raise_naming_the_argument(col):
    q = np.ones(DIM, np.float32)
    cases = [
        (ValueError, "neither", {}),
        (ValueError, "search_text", {"query_embeddings": np.ones((2, DIM)), "search_text": ["a"]}),
        (TypeError, r"search_text\[1\]", {"search_text": ["a", 3]}),
        (TypeError, "search_text", {"search_text": 5}),
        (ValueError, "fusion", {"query_embeddings": q, "search_text": "a", "fusion": "max"}),
        (ValueError, "alpha", {"query_embeddings": q, "search_text": "a", "alpha": 1.5}),
        (TypeError, "alpha", {"query_embeddings": q, "search_text": "a", "alpha": "high"}),
        (ValueError, "rank_constant", {"query_embeddings": q, "search_text": "a", "rank_constant": -1}),
        (ValueError, "fetch_k", {"query_embeddings": q, "search_text": "a", "n_results": 10, "fetch_k": 5}),
        (TypeError, "n_results", {"search_text": "a", "n_results": 2.5}),
        (ValueError, "where_document", {"search_text": "a", "where_document": {"$contains": ""}}),
        (ValueError, "include", {"search_text": "a", "include": ["score"]}),
    ]
    for exc, match, kwargs in cases:
        with pytest.raises(exc, match=match):
            col.query(**kwargs)


def test_keyword_and_hybrid_on_an_empty_collection_return_empty_rows():
    col = Collection(index="flat")
    res = col.query(search_text=["a", "b"], include=["scores", "distances"])
    assert res["ids"] == [[], []] and res["scores"] == [[], []]


def _results(col: Collection, vectors: np.ndarray) -> list:
    res = col.query(vectors[:5] + 0.1, search_text=["apple dog", "kiwi", "item3", "fig fig", "zzz"],
                    n_results=10, include=["scores"])
    return [res["ids"], [[(h["fused"], h["keyword_score"]) for h in row] for row in res["scores"]]]


def test_keyword_index_is_restored_from_snapshot_and_log(tmp_path):
    ids, vectors, docs, metas = _corpus()
    path = tmp_path / "col"
    col = Collection(str(path), index="flat", metric="l2")
    col.add(ids[:200], vectors[:200], documents=docs[:200], metadatas=metas[:200])
    col.checkpoint()  # snapshot holds the keyword state
    col.add(ids[200:], vectors[200:], documents=docs[200:], metadatas=metas[200:])  # log only
    col.delete(ids=ids[::7])
    col.update(ids[1:3], documents=["apple dog apple", "dog"])
    before = _results(col, vectors)
    col._wal.close()  # crash: no final snapshot
    col._dir.unlock()
    again = Collection(str(path))
    assert _results(again, vectors) == before
    again.close()  # snapshot with the log applied
    assert (next(path.glob("snap-*")) / "keyword").is_dir()
    third = Collection(str(path))
    assert _results(third, vectors) == before
    third.close()


def test_snapshot_without_keyword_state_is_reindexed_from_the_documents(tmp_path):
    ids, vectors, docs, _ = _corpus()
    path = tmp_path / "col"
    col = Collection(str(path), index="flat", metric="l2")
    col.add(ids, vectors, documents=docs)
    before = _results(col, vectors)
    col.close()
    shutil.rmtree(next(path.glob("snap-*")) / "keyword")  # as written before the keyword index existed
    again = Collection(str(path))
    assert _results(again, vectors) == before
    again.close()


def test_keyword_state_that_disagrees_with_the_records_is_reported(tmp_path):
    ids, vectors, docs, _ = _corpus()
    for name, n in (("a", N), ("b", N - 1)):
        col = Collection(str(tmp_path / name), index="flat", metric="l2")
        col.add(ids[:n], vectors[:n], documents=docs[:n])
        col.close()
    snap_a, snap_b = next((tmp_path / "a").glob("snap-*")), next((tmp_path / "b").glob("snap-*"))
    shutil.rmtree(snap_a / "keyword")
    shutil.copytree(snap_b / "keyword", snap_a / "keyword")  # well-formed, checksummed, but of other records
    with pytest.raises(IndexFileError, match="keyword"):
        Collection(str(tmp_path / "a"))


def test_muvera_collection_runs_hybrid_queries(wordnet_multivector):
    mv = wordnet_multivector
    offsets, toks = mv["doc_offsets"], mv["doc_vecs"]
    n = 60
    docs = [toks[offsets[i] : offsets[i + 1]] for i in range(n)]
    col = Collection(index="muvera")
    col.add([f"d{i}" for i in range(n)], docs, documents=[f"word{i % 5} shared" for i in range(n)])
    res = col.query(docs[:2], search_text=["word3", "word4"], n_results=5, include=["scores", "documents"],
                    where_document={"$contains": "word"}, where=None)
    assert all(len(row) == 5 for row in res["ids"])
    assert res["scores"][0][0]["found_by"] in (["vector", "keyword"], ["keyword"], ["vector"])
    only = col.query(docs[:1], where_document={"$contains": "word2"}, n_results=20, include=["documents"])
    assert len(only["ids"][0]) == 12 and all(d.startswith("word2") for d in only["documents"][0])
