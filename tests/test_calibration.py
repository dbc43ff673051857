"""index.calibrate(target_recall=...): measured, not guessed; the choice becomes the saved default."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import exact_knn

import vecsearch as vs
from vecsearch.recall import recall_at_k

K = 10


@pytest.fixture(scope="module")
def hnsw(wordnet_train):
    index = vs.HNSWIndex(384, "cosine", M=12, ef_construction=64)
    index.add(wordnet_train, progress=False)
    return index


def test_hnsw_calibrated_on_training_queries_holds_on_other_queries(hnsw, wordnet_train, wordnet_train_queries_ood,
                                                                       wordnet_queries_ood):
    report = hnsw.calibrate(target_recall=0.95, k=K, queries=wordnet_train_queries_ood)
    assert report.reached and report.recall >= 0.95
    assert set(report.params) == {"ef"}
    truth = exact_knn(wordnet_train, wordnet_queries_ood, K, "cosine")
    held_out = recall_at_k(hnsw.search(wordnet_queries_ood, K).ids, truth)  # the calibrated default
    assert 0.93 <= held_out <= 0.99, held_out
    # the cheapest setting: the grid point just below it misses the target on the calibration sample
    below = [p for p in report.curve if p.params["ef"] < report.params["ef"]]
    assert below and max(below, key=lambda p: p.params["ef"]).recall < 0.95 + report.curve[0].margin + 0.02


def test_calibrated_default_is_saved_and_explicit_parameters_still_win(hnsw, wordnet_train_queries_ood,
                                                                         wordnet_queries_ood, tmp_path):
    report = hnsw.calibrate(target_recall=0.9, k=K, queries=wordnet_train_queries_ood)
    ef = report.params["ef"]
    assert hnsw.search_defaults == {"ef": ef}
    np.testing.assert_array_equal(hnsw.search(wordnet_queries_ood, K).ids,
                                  hnsw.search(wordnet_queries_ood, K, ef=ef).ids)
    explicit = hnsw.search(wordnet_queries_ood, K, ef=ef + 150).ids
    assert not np.array_equal(explicit, hnsw.search(wordnet_queries_ood, K).ids)
    hnsw.save(tmp_path / "calibrated")
    loaded = vs.load(tmp_path / "calibrated")
    assert loaded.search_defaults == {"ef": ef}
    np.testing.assert_array_equal(loaded.search(wordnet_queries_ood, K).ids, hnsw.search(wordnet_queries_ood, K).ids)


def test_ivfpq_calibrates_nprobe_and_rerank_together(wordnet_train, wordnet_train_queries_ood):
    index = vs.IVFPQIndex(384, "cosine", nlist=32, m=48, keep_vectors=True)
    index.train(wordnet_train)
    index.add(wordnet_train)
    report = index.calibrate(target_recall=0.9, k=K, queries=wordnet_train_queries_ood)
    assert report.reached and report.recall >= 0.9
    assert "nprobe" in report.params
    assert len({tuple(sorted(p.params.items())) for p in report.curve}) == len(report.curve)  # nothing measured twice


def test_an_index_without_vectors_needs_the_truth_vectors(wordnet_train, wordnet_train_queries_ood):
    index = vs.IVFPQIndex(384, "cosine", nlist=16, m=24)
    index.train(wordnet_train)
    ids = index.add(wordnet_train)
    with pytest.raises(ValueError, match="vectors"):
        index.calibrate(target_recall=0.8, queries=wordnet_train_queries_ood)
    report = index.calibrate(target_recall=0.3, queries=wordnet_train_queries_ood, vectors=wordnet_train,
                             vector_ids=ids)
    assert report.reached


def test_an_unreachable_target_reports_the_most_accurate_setting(wordnet_train, wordnet_train_queries_ood):
    index = vs.IVFPQIndex(384, "cosine", nlist=16, m=8)  # 8 bytes per vector, no re-rank: recall caps low
    index.train(wordnet_train)
    ids = index.add(wordnet_train)
    report = index.calibrate(target_recall=0.999, queries=wordnet_train_queries_ood[:100], vectors=wordnet_train,
                             vector_ids=ids)
    assert not report.reached
    assert report.recall == max(p.recall for p in report.curve)
    assert index.search_defaults == report.params


def test_queries_sampled_from_the_index_exclude_their_own_row(wordnet_train):
    """An exact index scores 1.0 only if each sampled row is dropped from its results and its truth alike."""
    flat = vs.FlatIndex(384, "cosine")
    flat.add(wordnet_train[:800])
    report = flat.calibrate(target_recall=0.99, k=K, n_queries=50)
    assert report.queries_from == "stored vectors" and report.n_queries == 50
    assert report.recall == pytest.approx(1.0)


def test_flat_has_nothing_to_calibrate(wordnet_train, wordnet_queries_id):
    flat = vs.FlatIndex(384, "cosine")
    flat.add(wordnet_train[:500])
    report = flat.calibrate(target_recall=0.99, queries=wordnet_queries_id[:20])
    assert report.params == {} and report.recall == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs, match", [({"target_recall": 0}, "target_recall"),
                                           ({"target_recall": 1.5}, "target_recall"),
                                           ({"target_recall": "high"}, "target_recall"),
                                           ({"k": 0}, "k"),
                                           ({"n_queries": 0}, "n_queries"),
                                           ({"queries": np.zeros((3, 5), np.float32)}, "queries")])
def test_bad_calibration_arguments_name_the_argument(hnsw, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        hnsw.calibrate(**kwargs)
