"""The planner's policy on its own: capabilities and filter statistics in, a strategy out (fakes,
no index), so each threshold of FilterTuning is exercised at its boundary."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from vecsearch.filtering.planner import (
    FilterCapabilities,
    available_strategies,
    choose_strategy,
    record_beam_feedback,
)
from vecsearch.filtering.tuning import DEFAULT_TUNING

T = DEFAULT_TUNING
FLAT = FilterCapabilities(exact_search=True, exact_scan=True)
HNSW = FilterCapabilities(exact_scan=True, code_scan=True, beam_collect=True, graph_walk=True)
LEANVEC = FilterCapabilities(exact_scan=True, graph_walk=True)
IVF = FilterCapabilities(exact_scan=True, list_scan=True)
IVF_NO_VECTORS = FilterCapabilities(code_scan=True, list_scan=True)
POSTFILTER_ONLY = FilterCapabilities()


class FakeFilter:
    """What the planner reads of a compiled filter: match count, selectivity, feedback."""

    def __init__(self, count: int, n_live: int = 1_000_000):
        self.count = count
        self.selectivity = count / n_live
        self.plan_feedback = None


def test_each_capability_set_offers_its_strategies():
    assert available_strategies(FLAT) == ("prefilter", "postfilter")
    assert available_strategies(HNSW) == ("prefilter", "beam_collect", "filtered_walk", "postfilter")
    assert available_strategies(IVF_NO_VECTORS) == ("prefilter", "postfilter", "ivf_masked")
    assert available_strategies(POSTFILTER_ONLY) == ("postfilter",)


def test_an_exact_index_always_scans_the_allowed_rows():
    for count in (1, 10_000, 900_000):
        assert choose_strategy(FLAT, FakeFilter(count), T) == "prefilter"


def test_ivf_scans_exactly_up_to_its_threshold_and_only_with_stored_vectors():
    assert choose_strategy(IVF, FakeFilter(T.ivf_prefilter_max_matches), T) == "prefilter"
    assert choose_strategy(IVF, FakeFilter(T.ivf_prefilter_max_matches + 1), T) == "ivf_masked"
    assert choose_strategy(IVF_NO_VECTORS, FakeFilter(10), T) == "ivf_masked"


def test_a_code_scanning_graph_scans_more_matches_than_an_exact_one():
    n_live = 200_000  # 2.5-4%: above walk_min_selectivity, so only the match count decides
    at_exact_limit = FakeFilter(T.prefilter_max_matches + 1, n_live)
    at_code_limit = FakeFilter(T.code_scan_prefilter_max_matches, n_live)
    assert choose_strategy(LEANVEC, FakeFilter(T.prefilter_max_matches, n_live), T) == "prefilter"
    assert choose_strategy(LEANVEC, at_exact_limit, T) != "prefilter"
    assert choose_strategy(HNSW, at_exact_limit, T) == "prefilter"
    assert choose_strategy(HNSW, at_code_limit, T) == "prefilter"
    assert choose_strategy(HNSW, FakeFilter(T.code_scan_prefilter_max_matches + 1, n_live), T) != "prefilter"


@pytest.mark.parametrize("caps", [HNSW, LEANVEC], ids=["hnsw", "leanvec"])
def test_below_walk_min_selectivity_a_graph_scans_however_many_rows_match(caps):
    n_live = 100_000_000
    at_limit = round(T.walk_min_selectivity * n_live)
    assert at_limit > T.fallback_scan_max(True)  # far past every count threshold
    assert choose_strategy(caps, FakeFilter(at_limit, n_live), T) == "filtered_walk"
    assert choose_strategy(caps, FakeFilter(at_limit - 1, n_live), T) == "prefilter"


def test_below_walk_min_selectivity_a_graph_that_cannot_scan_still_walks():
    walk_only = FilterCapabilities(graph_walk=True)
    assert choose_strategy(walk_only, FakeFilter(10_000, 100_000_000), T) == "filtered_walk"


@pytest.mark.parametrize("scale", [T.beam_ef_scale, T.walk_ef_scale], ids=["beam", "walk"])
def test_filtered_beams_widen_from_any_filter_monotonically_up_to_their_cap(scale):
    widths = [scale(s) for s in (1.0, 0.5, 0.2, 0.1, 0.05, 0.01, 1e-4, 0.0)]
    assert widths[0] == 1.0
    assert widths[1] > 1.0  # a 50% filter already needs a wider beam (recall 0.950 -> 0.971 on WordNet OOD)
    assert all(a <= b for a, b in itertools.pairwise(widths))
    assert widths[-1] == max(T.beam_ef_boost_max if scale == T.beam_ef_scale else T.walk_ef_boost_max, 1.0)


@pytest.mark.parametrize("selectivity,expected", [(0.5, "beam_collect"), (T.beam_min_selectivity, "beam_collect"),
                                                  (0.02, "filtered_walk")])
def test_hnsw_beams_from_its_minimum_selectivity_and_walks_below(selectivity, expected):
    assert choose_strategy(HNSW, FakeFilter(int(selectivity * 1_000_000)), T) == expected


@pytest.mark.parametrize("selectivity,expected", [(0.5, "postfilter"), (T.postfilter_min_selectivity, "postfilter"),
                                                  (0.05, "filtered_walk")])
def test_a_graph_without_a_beam_post_filters_from_its_threshold_and_walks_below(selectivity, expected):
    assert choose_strategy(LEANVEC, FakeFilter(int(selectivity * 1_000_000)), T) == expected


def test_an_index_with_no_strategy_of_its_own_post_filters():
    assert choose_strategy(POSTFILTER_ONLY, FakeFilter(5), T) == "postfilter"


def test_a_filter_the_beam_keeps_doubting_goes_to_the_scan_with_periodic_rechecks():
    allowed = FakeFilter(20_000)  # 2%: past the code scan's limit, inside the fallback scan's
    tuning = replace(T, beam_min_selectivity=0.01)
    assert choose_strategy(HNSW, allowed, tuning) == "beam_collect"
    record_beam_feedback(allowed, tuning.beam_feedback_min_rows, tuning.beam_feedback_min_rows, tuning)
    picks = [choose_strategy(HNSW, allowed, tuning) for _ in range(2 * tuning.beam_feedback_recheck)]
    assert picks.count("beam_collect") == 2 and picks.count("prefilter") == len(picks) - 2


def test_a_filter_the_beam_answers_well_keeps_the_beam():
    allowed = FakeFilter(20_000)
    tuning = replace(T, beam_min_selectivity=0.01)
    record_beam_feedback(allowed, 40, 2, tuning)
    assert {choose_strategy(HNSW, allowed, tuning) for _ in range(20)} == {"beam_collect"}


def test_beam_feedback_halves_past_its_window_so_recent_calls_weigh_most():
    allowed = FakeFilter(20_000)
    record_beam_feedback(allowed, T.beam_feedback_window, T.beam_feedback_window, T)
    record_beam_feedback(allowed, 2, 0, T)
    assert allowed.plan_feedback[:2] == [(T.beam_feedback_window + 2) // 2, T.beam_feedback_window // 2]
