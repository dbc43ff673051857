"""vecsearch.benchmark.evaluation: recall with ties and padding, exact distances, timing, Pareto frontier."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import exact_knn

from vecsearch import FlatIndex
from vecsearch.benchmark.evaluation import (
    best_qps,
    evaluate_point,
    exact_distances,
    interpolated_qps,
    latency_percentiles,
    pad_ids,
    pareto_frontier,
    recall_at_k,
    recall_per_query,
    time_interleaved,
)


def test_recall_counts_a_tied_neighbor_returned_under_another_id():
    truth = np.array([[4, 7, 9]])
    truth_d = np.array([[0.1, 0.2, 0.3]], np.float32)
    found = np.array([[4, 7, 12]])  # 12 is at the same distance as the true 3rd neighbor 9
    found_d = np.array([[0.1, 0.2, 0.3]], np.float32)
    assert recall_at_k(found, truth, 3) == pytest.approx(2 / 3)  # ids only
    assert recall_at_k(found, truth, 3, found_distances=found_d, truth_distances=truth_d) == 1.0


def test_recall_does_not_count_a_farther_neighbor_as_a_tie():
    truth = np.array([[4, 7, 9]])
    truth_d = np.array([[0.1, 0.2, 0.3]], np.float32)
    found = np.array([[4, 7, 12]])
    found_d = np.array([[0.1, 0.2, 0.31]], np.float32)
    assert recall_at_k(
        found, truth, 3, found_distances=found_d, truth_distances=truth_d
    ) == pytest.approx(2 / 3)


def test_recall_ignores_padding_and_counts_duplicates_once():
    truth = np.array([[1, 2, 3, 4]])
    found = np.array([[1, -1, -1, -1]])
    assert recall_at_k(found, truth, 4) == 0.25
    dup = np.array([[1, 1, 1, 1]])
    d = np.zeros((1, 4), np.float32)
    assert recall_at_k(dup, truth, 4, found_distances=d, truth_distances=d) == 0.25
    padded_d = np.array([[0.0, np.inf, np.inf, np.inf]], np.float32)
    truth_d = np.array([[0.0, 0.1, 0.2, 0.3]], np.float32)
    assert recall_at_k(found, truth, 4, found_distances=padded_d, truth_distances=truth_d) == 0.25


def test_recall_divides_by_the_true_neighbors_that_exist():
    # Only two database vectors: the truth is padded, and finding both is full recall.
    truth = np.array([[5, 6, -1, -1]])
    found = np.array([[6, 5, -1, -1]])
    assert recall_at_k(found, truth, 4) == 1.0


def test_recall_uses_only_the_first_k_columns():
    truth = np.array([[1, 2, 3, 4, 5]])
    found = np.array([[1, 9, 2, 8, 3]])
    assert recall_per_query(found, truth, 2)[0] == 0.5


def test_recall_rejects_truth_shorter_than_k():
    with pytest.raises(ValueError, match="at least k=5"):
        recall_at_k(np.zeros((2, 5), int), np.zeros((2, 3), int), 5)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_exact_distances_match_flat_index(metric, wordnet_train, wordnet_queries_id):
    train = wordnet_train[:1000] * np.linspace(0.5, 2.0, 1000, dtype=np.float32)[:, None]
    q = wordnet_queries_id[:20]
    index = FlatIndex(384, metric)
    index.add(train)
    res = index.search(q, 7)
    got = exact_distances(train, q, res.ids, metric)
    np.testing.assert_allclose(got, res.distances, rtol=1e-4, atol=1e-5)
    padded = np.full((20, 2), -1)
    assert np.isinf(exact_distances(train, q, padded, metric)).all()


def test_pareto_frontier_drops_dominated_points():
    recall = np.array([0.5, 0.6, 0.55, 0.9, 0.9, 0.95])
    qps = np.array([1000, 900, 800, 300, 200, 100])
    front = pareto_frontier(recall, qps)
    np.testing.assert_array_equal(front, [0, 1, 3, 5])
    assert best_qps(recall, qps, 0.9) == 300
    assert np.isnan(best_qps(recall, qps, 0.99))


def test_interpolated_qps_is_log_linear_between_the_points_around_the_target():
    recall, qps = np.array([0.5, 0.8, 0.9, 0.97]), np.array([4000.0, 2000.0, 1000.0, 250.0])
    assert interpolated_qps(recall, qps, 0.9) == pytest.approx(1000.0)
    assert interpolated_qps(recall, qps, 0.85) == pytest.approx(np.sqrt(2000.0 * 1000.0))
    assert interpolated_qps(recall, qps, 0.3) == 4000.0  # first point already reaches it
    assert np.isnan(interpolated_qps(recall, qps, 0.99))


def test_time_interleaved_takes_the_methods_in_turn_and_keeps_every_round():
    order = []
    calls = {"a": lambda: order.append("a") or 1, "b": lambda: order.append("b") or 2}
    timings = time_interleaved(calls, 3)
    assert order == ["a", "b"] * 4  # one untimed call each, then three rounds in turn
    assert [len(t.wall_s) for t in timings.values()] == [3, 3]
    assert [len(t.thread_s) for t in timings.values()] == [3, 3]  # the calling thread's CPU seconds too
    assert timings["a"].output == 1 and timings["b"].best_s <= timings["b"].median_s
    assert timings["a"].rate(100) == pytest.approx(100 / min(timings["a"].wall_s))
    order.clear()
    time_interleaved(calls, 2, warmup="each")
    assert order == ["a", "a", "b", "b"] * 2


def test_time_interleaved_drops_a_failing_method_and_times_the_others():
    def boom():
        raise RuntimeError("lost the index")

    timings = time_interleaved({"ok": lambda: None, "bad": boom}, 2)
    assert timings["bad"].error == "RuntimeError: lost the index" and timings["bad"].wall_s == []
    assert np.isnan(timings["bad"].rate(10)) and len(timings["ok"].wall_s) == 2


def test_pad_ids_stacks_rows_of_any_length_with_minus_one():
    out = pad_ids([np.array([3, 4]), [], np.arange(12)], 10)
    assert out.dtype == np.int64 and out.shape == (3, 10)
    np.testing.assert_array_equal(out[0], [3, 4] + [-1] * 8)
    assert (out[1] == -1).all() and (out[2] == np.arange(10)).all()


def test_latency_percentiles_are_milliseconds():
    p = latency_percentiles(np.array([0.001] * 99 + [0.1]), (50, 99))
    assert p["p50_ms"] == pytest.approx(1.0)
    assert 1.0 < p["p99_ms"] <= 100.0


def test_evaluate_point_scores_exact_search_as_full_recall(wordnet_train, wordnet_queries_ood):
    train, q = wordnet_train[:2000], wordnet_queries_ood[:50]
    truth = exact_knn(train, q, 10, "cosine")
    truth_d = exact_distances(train, q, truth, "cosine")
    index = FlatIndex(384, "cosine")
    index.add(train)
    point = evaluate_point(
        lambda x: index.search(x, 10).ids,
        train,
        q,
        truth,
        truth_d,
        10,
        "cosine",
        runs=1,
        latency_queries=5,
    )
    assert point.recall == 1.0 and point.qps > 0 and point.p99_ms >= point.p50_ms > 0
    # A search that returns every other true neighbor scores 0.5.
    half = evaluate_point(
        lambda x: np.where(np.arange(10) % 2 == 0, truth[: x.shape[0]], -1),
        train,
        q,
        truth,
        truth_d,
        10,
        "cosine",
        runs=1,
        latency_queries=5,
    )
    assert half.recall == pytest.approx(0.5)


def test_sweep_measures_every_setting_and_recall_grows_with_k_searched(
    wordnet_train, wordnet_queries_id
):
    from vecsearch.benchmark.evaluation import sweep

    train, q = wordnet_train[:2000], wordnet_queries_id[:30]
    truth = exact_knn(train, q, 10, "cosine")
    index = FlatIndex(384, "cosine")
    index.add(train[:1000])  # half the database: recall is the share of true neighbors in it

    def search(x, keep):
        ids = index.search(x, 10).ids
        return np.where(np.arange(10) < keep, ids, -1)

    points = sweep(
        search,
        [{"keep": 2}, {"keep": 10}],
        train,
        q,
        truth,
        None,
        10,
        "cosine",
        runs=1,
        latency_queries=3,
    )
    assert [s for s, _ in points] == [{"keep": 2}, {"keep": 10}]
    low, high = points[0][1].recall, points[1][1].recall
    expected = np.isin(truth, np.arange(1000)).mean()
    assert low < high and high == pytest.approx(expected)
