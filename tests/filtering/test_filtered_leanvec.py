"""search(..., where=...) on LeanVecIndex: the ACORN-1 walk on codes, the exact scan on the secondary
vectors, and the planner between them, against exact search over the allowed subset."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import exact_knn

import vecsearch as vs
from vecsearch import F
from vecsearch.filtering.planner import available_strategies
from vecsearch.filtering.tuning import DEFAULT_TUNING
from vecsearch.indexes.leanvec import LeanVecIndex

K = 10


@pytest.fixture(scope="module")
def proj(wordnet_train):
    """Position of every row along the slice's first principal direction, and that direction."""
    x = wordnet_train
    direction = np.linalg.svd(x[:2000] - x.mean(axis=0), full_matrices=False)[2][0]
    return (x @ direction).astype(np.float64), direction


@pytest.fixture(scope="module")
def lean(wordnet_train, proj):
    index = LeanVecIndex(384, "cosine", reduced_dim=128, primary="lvq8", M=24, ef_construction=100, seed=0)
    index.train(wordnet_train)
    index.add(wordnet_train, attributes={"proj": proj[0], "bucket": np.arange(wordnet_train.shape[0]) % 10})
    return index


def _truth(db, q, mask):
    rows = np.flatnonzero(mask)
    found = exact_knn(db[rows], q[None], min(K, rows.size), "cosine")
    return set(rows[found[0]].tolist())


def _range_for(proj_sorted, q_proj, count, correlated):
    n = proj_sorted.shape[0]
    if correlated:
        a = int(np.clip(np.searchsorted(proj_sorted, q_proj) - count // 2, 0, n - count))
    else:
        a = 0 if q_proj > proj_sorted[n // 2] else n - count
    return float(proj_sorted[a]), float(proj_sorted[a + count - 1])


def test_leanvec_offers_every_graph_strategy(lean):
    """LeanVec is the graph over other storage: the exact scan, the beam, the ACORN walk, post-filtering."""
    assert available_strategies(lean.filter_capabilities()) == ("prefilter", "beam_collect", "filtered_walk",
                                                                "postfilter")


@pytest.mark.parametrize("strategy", [None, "filtered_walk", "beam_collect", "prefilter", "postfilter"])
@pytest.mark.parametrize("shape", ["correlated", "anti_correlated"])
@pytest.mark.parametrize("count", [2500, 500, 50])
def test_leanvec_filtered_recall_vs_exact_over_allowed_subset(lean, proj, wordnet_train, wordnet_queries_id,
                                                            monkeypatch, strategy, shape, count):
    # Lower the exact-scan threshold so the planner's approximate plans run on the 5000-row slice.
    monkeypatch.setattr(lean, "filter_tuning", replace(DEFAULT_TUNING, prefilter_max_matches=100,
                                                       fallback_exact_max_matches=100))
    values, direction = proj
    proj_sorted = np.sort(values)
    hits = total = 0
    for q in wordnet_queries_id[:20]:
        lo, hi = _range_for(proj_sorted, float(q @ direction), count, shape == "correlated")
        mask = (values >= lo) & (values <= hi)
        res = lean.search(q, K, where=F.proj.between(lo, hi), strategy=strategy, ef=64)
        found = res.ids[0][res.ids[0] >= 0]
        assert mask[found].all(), "a returned id fails the predicate"
        assert found.shape[0] == K  # every strategy fills k when k rows match
        hits += len(set(found.tolist()) & _truth(wordnet_train, q, mask))
        total += K
    assert hits / total >= 0.95, f"{strategy} {shape} {count}: recall@10 {hits / total:.3f}"


def test_leanvec_filtered_search_skips_removed_ids_and_survives_save_and_load(lean, wordnet_queries_id, tmp_path):
    where = F.bucket.isin([1, 2])
    before = {s: lean.search(wordnet_queries_id[:12], K, where=where, strategy=s).ids
              for s in ("filtered_walk", "prefilter")}
    lean.save(tmp_path / "lv")
    loaded = vs.load(tmp_path / "lv")
    for strategy, ids in before.items():
        np.testing.assert_array_equal(loaded.search(wordnet_queries_id[:12], K, where=where, strategy=strategy).ids, ids)
    removed = np.unique(before["filtered_walk"][:, :3])
    loaded.remove(removed)
    for strategy in ("filtered_walk", "prefilter", None):
        res = loaded.search(wordnet_queries_id[:12], K, where=where, strategy=strategy)
        assert not np.isin(res.ids, removed).any()
        assert np.isin(res.ids % 10, [1, 2]).all()
