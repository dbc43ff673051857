"""Fusion: RRF and relative-score formulas on worked examples and against a dict-based reference."""

from __future__ import annotations

import numpy as np
import pytest

from vecsearch.store.fusion import reciprocal_rank_fusion, relative_score_fusion


def test_rrf_worked_example():
    fused = reciprocal_rank_fusion([([1, 2, 3], None), ([3, 4], None)])
    # 3: 1/63 + 1/61; 1: 1/61; 2 and 4: 1/62 each (tie: smaller id first)
    assert fused.ids.tolist() == [3, 1, 2, 4]
    np.testing.assert_allclose(fused.scores, [1 / 63 + 1 / 61, 1 / 61, 1 / 62, 1 / 62])
    assert fused.ranks.tolist() == [[3, 1, 2, 0], [1, 0, 0, 2]]
    assert fused.found_by(1).tolist() == [True, False, False, True]
    assert np.isnan(fused.leg_scores).all()  # no scores given


def test_rrf_weights_rank_constant_and_k():
    fused = reciprocal_rank_fusion([([1, 2], [0.9, 0.1]), ([2, 1], [5.0, 1.0])], weights=[1.0, 3.0], rank_constant=0, k=1)
    # 1: 1/1 + 3/2 = 2.5; 2: 1/2 + 3/1 = 3.5
    assert fused.ids.tolist() == [2]
    assert fused.scores.tolist() == [3.5]
    assert fused.leg_scores[:, 0].tolist() == [0.1, 5.0]


def test_relative_score_worked_example():
    vector = ([1, 2, 3], [0.9, 0.5, 0.1])  # normalized 1, 0.5, 0
    keyword = ([3, 4], [10.0, 4.0])  # normalized 1, 0
    fused = relative_score_fusion([vector, keyword], weights=(0.25, 0.75))
    assert fused.ids.tolist() == [3, 1, 2, 4]
    np.testing.assert_allclose(fused.scores, [0.75, 0.25, 0.125, 0.0])
    assert fused.ranks.tolist() == [[3, 1, 2, 0], [1, 0, 0, 2]]
    np.testing.assert_array_equal(fused.leg_scores[1], [10.0, np.nan, np.nan, 4.0])


def test_relative_score_equal_scores_normalize_to_one():
    # Weaviate: when a leg's scores are all equal (or it has one hit) every hit gets the full weight.
    fused = relative_score_fusion([([7], [0.3]), ([8, 9], [2.0, 2.0])], weights=(0.4, 0.6))
    assert fused.ids.tolist() == [8, 9, 7]
    np.testing.assert_allclose(fused.scores, [0.6, 0.6, 0.4])


def test_all_weight_on_one_leg_reproduces_its_order():
    # A leg's worst hit normalizes to 0, like a hit it did not return; the weighted-rank tie-break
    # keeps it ahead of the other leg's hits (seen in bench_keyword.py: the word "Rollerblade" has 2).
    vector = ([5, 6, 9, 7], [3.0, 2.0, 1.5, 1.0])
    keyword = ([7, 6, 8], [9.0, 5.0, 1.0])
    assert relative_score_fusion([vector, keyword], weights=(1.0, 0.0)).ids.tolist() == [5, 6, 9, 7, 8]
    assert relative_score_fusion([vector, keyword], weights=(0.0, 1.0)).ids.tolist() == [7, 6, 8, 5, 9]


def reference(legs, weights, method, rank_constant=60):
    scores: dict[int, float] = {}
    for w, (ids, sc) in zip(weights, legs):
        if method == "rrf":
            for r, i in enumerate(ids, start=1):
                scores[i] = scores.get(i, 0.0) + w / (rank_constant + r)
        elif ids:
            lo, hi = min(sc), max(sc)
            for i, s in zip(ids, sc):
                scores[i] = scores.get(i, 0.0) + w * (1.0 if hi == lo else (s - lo) / (hi - lo))
    by_rank: dict[int, float] = {}
    for w, (ids, _) in zip(weights, legs):
        for r, i in enumerate(ids, start=1):
            by_rank[i] = by_rank.get(i, 0.0) + w / (60 + r)
    return sorted(scores.items(), key=lambda x: (-x[1], -by_rank[x[0]], x[0]))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("method", ["rrf", "relative"])
def test_matches_dict_reference(seed, method):
    rng = np.random.default_rng(seed)
    legs = []
    for _ in range(int(rng.integers(1, 4))):
        ids = rng.choice(60, size=int(rng.integers(0, 30)), replace=False).tolist()
        legs.append((ids, np.sort(rng.random(len(ids)))[::-1].round(2).tolist()))
    weights = rng.random(len(legs)).round(2).tolist()
    if method == "rrf":
        fused = reciprocal_rank_fusion(legs, weights=weights)
    else:
        fused = relative_score_fusion(legs, weights=weights)
    ref = reference(legs, weights, method)
    assert fused.ids.tolist() == [i for i, _ in ref]  # scores rounded: many ties, broken the same way
    np.testing.assert_allclose(fused.scores, [s for _, s in ref], atol=1e-12)


def test_padding_is_dropped_and_empty_legs_are_fine():
    fused = reciprocal_rank_fusion([(np.array([4, -1, -1]), np.array([1.0, np.inf, np.inf])), (np.array([], np.int64), None)])
    assert fused.ids.tolist() == [4] and len(fused) == 1
    assert len(reciprocal_rank_fusion([([], None), ([], None)])) == 0
    fused = relative_score_fusion([([], []), ([2, 3], [1.0, 0.5])], weights=(0.5, 0.5))
    assert fused.ids.tolist() == [2, 3]


def test_bad_input_raises():
    with pytest.raises(ValueError, match="legs"):
        reciprocal_rank_fusion([])
    with pytest.raises(ValueError, match=r"legs\[0\]"):
        reciprocal_rank_fusion([[1, 2, 3]])
    with pytest.raises(ValueError, match="twice"):
        reciprocal_rank_fusion([([1, 1], None)])
    with pytest.raises(ValueError, match="needs the scores"):
        relative_score_fusion([([1], None)])
    with pytest.raises(ValueError, match="finite"):
        relative_score_fusion([([1, 2], [1.0, np.nan])])
    with pytest.raises(ValueError, match="shape"):
        relative_score_fusion([([1, 2], [1.0])])
    with pytest.raises(ValueError, match="weights"):
        relative_score_fusion([([1], [1.0]), ([2], [1.0])], weights=(0.5,))
    with pytest.raises(ValueError, match="weights"):
        reciprocal_rank_fusion([([1], None)], weights=[-1.0])
    with pytest.raises(ValueError, match="rank_constant"):
        reciprocal_rank_fusion([([1], None)], rank_constant=-1)
    with pytest.raises(TypeError, match="integer ids"):
        reciprocal_rank_fusion([([1.5], None)])
    with pytest.raises(ValueError, match="k"):
        reciprocal_rank_fusion([([1], None)], k=0)
