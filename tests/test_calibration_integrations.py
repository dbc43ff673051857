"""Calibration beyond a bare index: Collection, the LangChain store, MultiVectorIndex (exact Chamfer
truth) and ``vecsearch bench --calibrate`` (a setting chosen on held-out queries, measured on others)."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from conftest import exact_knn

import vecsearch as vs
from vecsearch import cli
from vecsearch.base import Index
from vecsearch.benchmark import datasets, read_results
from vecsearch.benchmark.runner import RESULTS_FILE, split_calibration_queries
from vecsearch.calibration import sample_rows
from vecsearch.indexes.multivector import MultiVectorIndex
from vecsearch.recall import recall_at_k
from vecsearch.store.collection import Collection

K = 10
N = 3000


def _sids(n: int) -> list[str]:
    return [f"d{i}" for i in range(n)]


def _rows(col: Collection, res: dict) -> np.ndarray:
    """Result string ids ``d<row>`` -> rows (nq, K), -1 padded."""
    out = np.full((len(res["ids"]), K), -1, np.int64)
    for i, ids in enumerate(res["ids"]):
        out[i, : len(ids)] = [int(s[1:]) for s in ids]
    return out


def _sets(vecs: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [vecs[offsets[i] : offsets[i + 1]] for i in range(offsets.shape[0] - 1)]


# ---- Collection ---------------------------------------------------------------------------------------
def test_collection_calibration_becomes_the_query_default_and_reaches_the_target_on_other_queries(
        wordnet_train, wordnet_train_queries_ood, wordnet_queries_ood):
    col = Collection(dim=384, index="hnsw", M=8, ef_construction=48)
    col.add(_sids(N), wordnet_train[:N])
    report = col.calibrate(target_recall=0.95, k=K, query_embeddings=wordnet_train_queries_ood)
    assert report.reached and report.queries_from == "given" and set(report.params) == {"ef"}
    assert col.index.search_defaults == report.params
    res = col.query(wordnet_queries_ood, n_results=K, include=[])
    explicit = col.query(wordnet_queries_ood, n_results=K, include=[], ef=report.params["ef"])
    assert res["ids"] == explicit["ids"]
    held_out = recall_at_k(_rows(col, res), exact_knn(wordnet_train[:N], wordnet_queries_ood, K, "cosine"))
    assert 0.93 <= held_out <= 0.995, held_out


def test_collection_calibration_is_saved_when_it_returns_and_survives_reopening(tmp_path, wordnet_train,
                                                                                 wordnet_train_queries_ood):
    path = str(tmp_path / "col")
    col = Collection(path, dim=384, index="hnsw", M=8, ef_construction=48)
    col.add(_sids(2000), wordnet_train[:2000])
    report = col.calibrate(target_recall=0.9, k=K, query_embeddings=wordnet_train_queries_ood[:200])
    col.add(["late"], wordnet_train[2000:2001])  # a logged change after the calibration
    before = col.query(wordnet_train_queries_ood[200:260], n_results=K, include=[])["ids"]
    del col  # dropped without close(): nothing but the calibration's own snapshot and the log remain
    gc.collect()
    again = Collection(path)
    try:
        assert again.index.search_defaults == report.params and again.count() == 2001
        assert again.query(wordnet_train_queries_ood[200:260], n_results=K, include=[])["ids"] == before
        again.close()
        assert Collection(path).index.search_defaults == report.params
    finally:
        again.close()


@pytest.mark.parametrize("kwargs, match", [({"target_recall": 0}, "target_recall"),
                                           ({"k": 0}, "k"),
                                           ({"n_queries": 0}, "n_queries"),
                                           ({"query_embeddings": np.zeros((3, 5), np.float32)}, "query_embeddings")])
def test_bad_collection_calibration_arguments_name_the_argument(wordnet_train, kwargs, match):
    col = Collection(dim=384, index="flat")
    col.add(_sids(100), wordnet_train[:100])
    with pytest.raises((ValueError, TypeError), match=match):
        col.calibrate(**kwargs)


def test_an_empty_collection_has_nothing_to_calibrate():
    with pytest.raises(ValueError, match="non-empty"):
        Collection(dim=8, index="flat").calibrate()


# ---- MultiVectorIndex --------------------------------------------------------------------------------
def test_multivector_calibrates_candidates_against_exact_chamfer_and_holds_on_other_queries(wordnet_multivector):
    m = wordnet_multivector
    index = MultiVectorIndex(384)
    index.add((m["doc_vecs"], m["doc_offsets"]))
    queries = _sets(m["query_vecs"], m["query_offsets"])  # 50 one-word, then 50 definition queries
    tune, check = queries[0::2], queries[1::2]
    report = index.calibrate(target_recall=0.9, k=K, queries=tune)
    assert report.reached and set(report.params) == {"candidates"} and report.queries_from == "given"
    assert index.search_defaults == report.params
    truth = index.search_exact(check, K).ids
    assert recall_at_k(index.search(check, K).ids, truth) >= 0.85
    # the cheapest: fewer candidates miss the target on the calibration queries
    below = [p for p in report.curve if p.params["candidates"] < report.params["candidates"]]
    assert below and all(p.recall < 0.9 + p.margin for p in below)


def test_multivector_queries_sampled_from_the_index_exclude_their_own_document(wordnet_multivector):
    """Exact candidates (every document) score 1.0 only if each sampled document is dropped from its
    results and its truth alike."""
    m = wordnet_multivector
    index = MultiVectorIndex(384, candidate_source="mean")
    index.add((m["doc_vecs"], m["doc_offsets"]), ids=np.arange(1000, 1200))
    report = index.calibrate(target_recall=1.0, k=K, n_queries=40, seed=3)
    assert report.queries_from == "stored documents" and report.n_queries == 40
    assert report.reached and report.recall == pytest.approx(1.0)
    # an approximate setting is scored without the own document too (it would always be found)
    own = 1000 + sample_rows(200, 40, 3)
    queries = [index.document_tokens(int(i)) for i in own]

    def without_own(ids):
        return np.stack([row[row != i][:K] for row, i in zip(ids, own)])

    found = without_own(index.search(queries, K + 1, candidates=10).ids)
    expected = recall_at_k(found, without_own(index.search_exact(queries, K + 1).ids))
    (point,) = [p for p in report.curve if p.params == {"candidates": 10}]
    assert point.recall == pytest.approx(expected) and expected < 0.9


def test_multivector_calibrated_default_is_saved_and_explicit_candidates_win(tmp_path, wordnet_multivector):
    m = wordnet_multivector
    index = MultiVectorIndex(384)
    index.add((m["doc_vecs"], m["doc_offsets"]))
    queries = (m["query_vecs"], m["query_offsets"])
    report = index.calibrate(target_recall=0.8, k=K, queries=queries)
    chosen = report.params["candidates"]
    np.testing.assert_array_equal(index.search(queries, K).ids, index.search(queries, K, candidates=chosen).ids)
    assert not np.array_equal(index.search(queries, K, candidates=10).ids, index.search(queries, K).ids)
    index.save(tmp_path / "mv")
    loaded = vs.load(tmp_path / "mv")
    assert loaded.search_defaults == {"candidates": chosen}
    np.testing.assert_array_equal(loaded.search(queries, K).ids, index.search(queries, K).ids)


def test_muvera_collection_calibrates_on_token_matrix_queries(wordnet_multivector):
    m = wordnet_multivector
    col = Collection(index="muvera")
    col.add(_sids(200), _sets(m["doc_vecs"], m["doc_offsets"]))
    queries = _sets(m["query_vecs"], m["query_offsets"])
    report = col.calibrate(target_recall=0.85, k=K, query_embeddings=queries)
    assert report.reached and set(report.params) == {"candidates"}
    assert col.index.search_defaults == report.params


@pytest.mark.parametrize("kwargs, match", [({"vectors": np.zeros((2, 384), np.float32)}, "vectors"),
                                           ({"queries": []}, "queries"),
                                           ({"offsets": np.array([0, 1])}, "offsets"),
                                           ({"target_recall": 2}, "target_recall"),
                                           ({"n_queries": -1}, "n_queries")])
def test_bad_multivector_calibration_arguments_name_the_argument(wordnet_multivector, kwargs, match):
    m = wordnet_multivector
    index = MultiVectorIndex(384)
    index.add((m["doc_vecs"], m["doc_offsets"]))
    with pytest.raises((ValueError, TypeError), match=match):
        index.calibrate(**kwargs)


# ---- LangChain -------------------------------------------------------------------------------------
def _lookup_embeddings(train: np.ndarray, queries: np.ndarray):
    from langchain_core.embeddings import Embeddings

    class Lookup(Embeddings):
        """"d<i>" embeds to train row i, "q<i>" to query i (documents and queries of a real model)."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [train[int(t[1:])].tolist() for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return queries[int(text[1:])].tolist()

    return Lookup()


def test_langchain_store_calibrates_on_text_queries_and_keeps_it_across_reopening(
        tmp_path, wordnet_train, wordnet_train_queries_ood):
    pytest.importorskip("langchain_core")
    from vecsearch.integrations.langchain import VecsearchVectorStore

    embeddings = _lookup_embeddings(wordnet_train, wordnet_train_queries_ood)
    path = str(tmp_path / "store")
    store = VecsearchVectorStore(embeddings, path=path, index="hnsw", M=8, ef_construction=48)
    store.add_texts(_sids(2000), ids=_sids(2000))
    report = store.calibrate(target_recall=0.95, k=4, queries=[f"q{i}" for i in range(300)])
    assert report.reached and report.k == 4 and report.n_queries == 300
    assert store.collection.index.search_defaults == report.params
    store.close()
    again = VecsearchVectorStore(embeddings, path=path)
    try:
        assert again.collection.index.search_defaults == report.params
        with pytest.raises(TypeError, match="queries"):
            again.calibrate(queries="q1")
        with pytest.raises(ValueError, match="queries"):
            again.calibrate(queries=["q1"], query_embeddings=wordnet_train_queries_ood[:1])
        with pytest.raises(ValueError, match="queries"):
            again.calibrate(queries=[])
    finally:
        again.close()


# ---- vecsearch bench --calibrate --------------------------------------------------------------------
@pytest.fixture
def bench_cut(tmp_path, monkeypatch):
    """1,000 embedded rows and 80 queries as an ann-benchmarks file (ground truth computed and cached)."""
    monkeypatch.setenv("VECSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    ds = datasets.load_embedded()
    cut = datasets.Dataset("cut", ds.train[:1000], ds.test[:80], "cosine")
    path = tmp_path / "cut-angular.hdf5"
    datasets.write_hdf5(cut, path)
    return path, cut


def test_bench_calibrates_on_held_out_queries_and_measures_the_setting_on_the_others(
        tmp_path, bench_cut, monkeypatch, capsys):
    path, cut = bench_cut
    seen = []
    original = Index.calibrate

    def spy(self, target_recall=0.95, k=10, queries=None, **kwargs):
        seen.append(np.array(queries))
        return original(self, target_recall, k, queries, **kwargs)

    monkeypatch.setattr(Index, "calibrate", spy)
    out = tmp_path / "out"
    assert cli.main(["bench", "--runs", "1", "--rounds", "1", "--latency-queries", "5", "--dataset", str(path),
                     "--index", "hnsw:M=8:ef=10,20,40,80", "--peers", "none", "--queries", "40",
                     "--calibrate", "0.9", "--no-plot", "--out", str(out)]) == 0
    np.testing.assert_array_equal(seen[0], cut.test[40:80])  # the queries after the measured ones
    rows = read_results(out / RESULTS_FILE)
    sweep = [r for r in rows if not r.get("calibrated")]
    (cal,) = [r for r in rows if r.get("calibrated")]
    assert [r["search_params"]["ef"] for r in sweep] == [10, 20, 40, 80]
    assert cal["search_params"] == cal["calibration"]["params"] and set(cal["search_params"]) == {"ef"}
    assert cal["n_queries"] == 40 and cal["calibration"]["n_queries"] == 40
    assert cal["calibration"]["target_recall"] == 0.9 and cal["calibration"]["recall_held_out"] >= 0.9
    assert cal["qps"] > 0 and cal.get("qps_rounds", 0) >= 2  # re-timed with the sweep's points
    printed = capsys.readouterr().out
    assert "QPS at the calibrated setting" in printed and f"ef={cal['search_params']['ef']}" in printed


def test_bench_without_spare_queries_holds_out_the_last_half_and_does_not_measure_them(bench_cut):
    _, cut = bench_cut
    measured, held = split_calibration_queries(cut, None, 1000)
    assert measured.test.shape[0] == 40 and np.array_equal(held, cut.test[40:])
    measured, held = split_calibration_queries(cut, None, 10)
    assert measured.test.shape[0] == 70 and np.array_equal(held, cut.test[70:])
    measured, held = split_calibration_queries(cut, 30, 1000)
    assert measured is cut and np.array_equal(held, cut.test[30:])
    with pytest.raises(ValueError, match="calibration_queries"):
        split_calibration_queries(cut, None, 0)


@pytest.mark.parametrize("value", ["0", "1.5", "high"])
def test_bench_rejects_a_calibration_target_outside_0_1(value, capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--calibrate", value])
    assert "--calibrate" in capsys.readouterr().err
