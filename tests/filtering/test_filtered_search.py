"""search(..., where=...) on Flat and HNSW: predicate always holds, recall vs exact over the allowed subset."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import exact_knn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vecsearch as vs
from vecsearch import F
from vecsearch.benchmark.evaluation import recall_at_k
from vecsearch.filtering.compile import compile_where
from vecsearch.filtering.planner import available_strategies, choose_strategy
from vecsearch.filtering.predicates import parse_where
from vecsearch.filtering.tuning import DEFAULT_TUNING

K = 10
# Matches on the 5000-row slice for selectivities 50%, 10%, 1%, 0.1%, 0.01% (the last is 0.5 rows: 1).
SELECTIVITY_COUNTS = {"50%": 2500, "10%": 500, "1%": 50, "0.1%": 5, "0.01%": 1}


@pytest.fixture(scope="module")
def attrs(wordnet_train, wordnet_attrs):
    """Real attributes plus ``proj``: the position along the data's first principal direction."""
    x = wordnet_train
    centered = x - x.mean(axis=0)
    direction = np.linalg.svd(centered[:2000], full_matrices=False)[2][0]
    cols = dict(wordnet_attrs)
    cols["proj"] = (x @ direction).astype(np.float64)
    cols["has_example"] = cols["has_example"].astype(bool)
    return cols, direction


@pytest.fixture(scope="module")
def indexes(wordnet_train, attrs):
    cols, _ = attrs
    flat = vs.FlatIndex(384, "cosine")
    flat.add(wordnet_train, attributes=cols)
    hnsw = vs.HNSWIndex(384, "cosine", M=16, ef_construction=100, ef_search=64, seed=0)
    hnsw.add(wordnet_train, attributes=cols)
    # nprobe 16 of 32 lists: unfiltered recall@10 0.973 with rerank 8 (nprobe 8: 0.91), so the
    # filtered floor below measures what the filter costs, not the probe setting.
    ivfpq = vs.IVFPQIndex(384, "cosine", nlist=32, m=48, keep_vectors=True, nprobe=16, seed=0)
    ivfpq.train(wordnet_train)
    ivfpq.add(wordnet_train, attributes=cols)
    return {"flat": flat, "hnsw": hnsw, "ivfpq": ivfpq}


SEARCH_PARAMS = {"flat": {}, "hnsw": {}, "ivfpq": {"rerank": 8}}


def _truth_over_subset(db, q, mask, k):
    """Exact top-k ids over the rows in ``mask`` (faiss oracle on the subset), padded with -1."""
    rows = np.flatnonzero(mask)
    out = np.full((q.shape[0], k), -1, np.int64)
    if rows.size:
        found = exact_knn(db[rows], q, min(k, rows.size), "cosine")
        out[:, : found.shape[1]] = rows[found]
    return out


def _proj_filter(proj_sorted, q_proj, count, correlated):
    """A range on ``proj`` holding ``count`` rows: around the query's position, or at the far end."""
    n = proj_sorted.shape[0]
    if correlated:
        p = int(np.searchsorted(proj_sorted, q_proj))
        a = int(np.clip(p - count // 2, 0, n - count))
    else:
        a = 0 if q_proj > proj_sorted[n // 2] else n - count
    return float(proj_sorted[a]), float(proj_sorted[a + count - 1])


# beam_collect runs only where the planner would pick it (selectivity >= beam_min_selectivity).
RECALL_CASES = [
    (index_name, strategy, selectivity)
    for index_name, strategy in [("hnsw", None), ("hnsw", "filtered_walk"), ("hnsw", "beam_collect"), ("ivfpq", None),
                                 ("ivfpq", "ivf_masked"), ("flat", None)]
    for selectivity, count in SELECTIVITY_COUNTS.items()
    if strategy != "beam_collect" or count / 5000 >= DEFAULT_TUNING.beam_min_selectivity
]


@pytest.mark.parametrize("shape", ["correlated", "anti_correlated"])
@pytest.mark.parametrize("index_name, strategy, selectivity", RECALL_CASES)
def test_filtered_recall_vs_exact_over_allowed_subset(indexes, attrs, wordnet_train, wordnet_queries_id,
                                                       index_name, strategy, selectivity, shape):
    index = indexes[index_name]
    cols, direction = attrs
    proj = cols["proj"]
    proj_sorted = np.sort(proj)
    queries = wordnet_queries_id[:20]
    count = SELECTIVITY_COUNTS[selectivity]
    hits, total = 0.0, 0
    for q in queries:
        lo, hi = _proj_filter(proj_sorted, float(q @ direction), count, shape == "correlated")
        mask = (proj >= lo) & (proj <= hi)
        truth = _truth_over_subset(wordnet_train, q[None], mask, K)
        res = index.search(q, K, where=F.proj.between(lo, hi), strategy=strategy, **SEARCH_PARAMS[index_name])
        assert mask[res.ids[res.ids >= 0]].all()
        hits += recall_at_k(res.ids, truth) * min(K, int(mask.sum()))
        total += min(K, int(mask.sum()))
        if count < K:  # tiny selectivities: the result must be exactly the matching rows
            assert set(res.ids[0][res.ids[0] >= 0].tolist()) == set(np.flatnonzero(mask).tolist())
    recall = hits / total
    floor = 1.0 if index_name == "flat" else 0.95
    assert recall >= floor, f"{index_name}/{strategy} {selectivity} {shape}: recall@10 {recall:.3f}"


@pytest.mark.parametrize("strategy", [None, "prefilter", "filtered_walk", "postfilter"])
def test_real_attribute_filters_reach_recall_floor_on_hnsw(indexes, attrs, wordnet_train, wordnet_queries_id, strategy):
    """Natural filters: the lexfile of the query's nearest neighbor (correlated), verbs, long glosses + no example."""
    cols, _ = attrs
    hnsw = indexes["hnsw"]
    queries = wordnet_queries_id[:40]
    nearest = exact_knn(wordnet_train, queries, 1, "cosine")[:, 0]
    hits = total = 0
    for qi, q in enumerate(queries):
        lex = int(cols["lexfile"][nearest[qi]])
        for where, mask in [
            (F.lexfile == lex, cols["lexfile"] == lex),
            ({"pos": "v"}, cols["pos"] == "v"),
            ((F.gloss_len > 120) & ~F.has_example, (cols["gloss_len"] > 120) & ~cols["has_example"]),
        ]:
            truth = _truth_over_subset(wordnet_train, q[None], mask, K)
            res = hnsw.search(q, K, where=where, strategy=strategy)
            assert mask[res.ids[res.ids >= 0]].all()
            n = min(K, int(mask.sum()))
            hits += recall_at_k(res.ids, truth) * n
            total += n
    assert hits / total >= 0.95


def test_batched_filtered_search_equals_single_queries(indexes, wordnet_queries_id):
    where = (F.pos == "n") & (F.gloss_len < 80)
    for name in ("flat", "hnsw", "ivfpq"):
        for strategy in available_strategies(indexes[name].filter_capabilities()):
            kw = SEARCH_PARAMS[name]
            batch = indexes[name].search(wordnet_queries_id[:32], K, where=where, strategy=strategy, **kw)
            for i in (0, 17, 31):
                single = indexes[name].search(wordnet_queries_id[i], K, where=where, strategy=strategy, **kw)
                if strategy != "postfilter":  # postfilter retries per row, otherwise identical
                    np.testing.assert_array_equal(batch.ids[i], single.ids[0])


@pytest.mark.parametrize("n_queries", [1, 5, 40])  # numba row scan, masked scan, BLAS over gathered rows
@pytest.mark.parametrize("where", [F.pos == "r", F.gloss_len < 70, F.lexfile.isin([1, 2, 3, 4, 5, 6])])
@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_flat_filtered_search_is_exact(wordnet_train, wordnet_queries_ood, attrs, where, n_queries, metric):
    cols, _ = attrs
    index = vs.FlatIndex(384, metric)
    index.add(wordnet_train[:3000], attributes={k: v[:3000] for k, v in cols.items()})
    q = wordnet_queries_ood[:n_queries]
    res = index.search(q, K, where=where)
    mask = compile_where(where, index._attribute_store(), index._ids.deleted).mask
    rows = np.flatnonzero(mask)
    import faiss

    sub = wordnet_train[:3000][rows]
    fi = faiss.IndexFlatL2(384) if metric == "l2" else faiss.IndexFlatIP(384)
    fi.add(sub)
    d, i = fi.search(q, K)
    expected = d if metric == "l2" else (-d if metric == "ip" else 1.0 - d)
    np.testing.assert_allclose(res.distances, expected, rtol=1e-4, atol=1e-4)
    same = res.ids == rows[i]
    assert (same | (np.abs(res.distances - expected) < 1e-4)).all()


predicates = st.recursive(
    st.one_of(
        st.builds(lambda v: F.pos.isin(v), st.lists(st.sampled_from("nvasr"), min_size=1, max_size=3)),
        st.builds(lambda a, b: F.gloss_len.between(a, a + b), st.integers(0, 200), st.integers(0, 150)),
        st.builds(lambda v: F.lexfile >= v, st.integers(0, 44)),
        st.builds(lambda v: F.lexfile < v, st.integers(0, 44)),
        st.builds(lambda v: F.has_example == v, st.booleans()),
        st.builds(lambda v: parse_where({"n_lemmas": {"$lte": v}}), st.integers(1, 4)),
    ),
    lambda inner: st.one_of(st.builds(lambda a, b: a & b, inner, inner), st.builds(lambda a, b: a | b, inner, inner),
                            st.builds(lambda a: ~a, inner)),
    max_leaves=4,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=predicates, index_name=st.sampled_from(["flat", "hnsw", "ivfpq"]),
       strategy=st.sampled_from([None, "prefilter", "beam_collect", "filtered_walk", "postfilter", "ivf_masked"]),
       qi=st.integers(0, 150))
def test_every_returned_id_satisfies_the_predicate(indexes, wordnet_queries_id, where, index_name, strategy, qi):
    index = indexes[index_name]
    if strategy not in (None, *available_strategies(index.filter_capabilities())):
        strategy = None
    allowed = compile_where(where, index._attribute_store(), index._ids.deleted)
    res = index.search(wordnet_queries_id[qi : qi + 8], K, where=where, strategy=strategy, **SEARCH_PARAMS[index_name])
    valid = res.ids >= 0
    assert allowed.mask[res.ids[valid]].all()
    # padding only when fewer than k rows match (all strategies fill k when they can)
    assert (valid.sum(axis=1) == min(K, allowed.count)).all()
    assert np.isinf(res.distances[~valid]).all()
    for row, ok in zip(res.distances, valid):
        assert (np.diff(row[ok]) >= -1e-6).all()  # best first


@pytest.mark.parametrize("index_name", ["flat", "hnsw", "ivfpq"])
def test_zero_matches_return_padded_results(indexes, wordnet_queries_id, index_name):
    res = indexes[index_name].search(wordnet_queries_id[:3], K, where=(F.pos == "n") & (F.pos == "v"))
    assert (res.ids == -1).all() and np.isinf(res.distances).all()
    res = indexes[index_name].search(wordnet_queries_id[:3], K, where=F.pos == "not-a-pos")
    assert (res.ids == -1).all()


def test_strategy_argument_is_validated(indexes, wordnet_queries_id):
    q = wordnet_queries_id[0]
    with pytest.raises(ValueError, match="strategy: expected one of"):
        indexes["hnsw"].search(q, K, where=F.pos == "n", strategy="magic")
    with pytest.raises(ValueError, match="not available for FlatIndex"):
        indexes["flat"].search(q, K, where=F.pos == "n", strategy="filtered_walk")
    with pytest.raises(ValueError, match="only meaningful together with where"):
        indexes["flat"].search(q, K, strategy="prefilter")

    def available(name):
        return available_strategies(indexes[name].filter_capabilities())

    assert available("hnsw") == ("prefilter", "beam_collect", "filtered_walk", "postfilter")
    assert available("ivfpq") == ("prefilter", "postfilter", "ivf_masked")
    assert available("flat") == ("prefilter", "postfilter")


def test_ivfpq_without_raw_vectors_filters_by_adc(wordnet_train, wordnet_queries_id, attrs):
    """No keep_vectors: prefilter is an ADC scan of every allowed row; results still satisfy the filter."""
    cols, _ = attrs
    index = vs.IVFPQIndex(384, "cosine", nlist=16, m=48, nprobe=4, seed=0)
    index.train(wordnet_train[:3000])
    index.add(wordnet_train[:3000], attributes={k: v[:3000] for k, v in cols.items()})
    where = (F.pos == "r") & (F.gloss_len < 60)
    mask = (cols["pos"][:3000] == "r") & (cols["gloss_len"][:3000] < 60)
    truth = _truth_over_subset(wordnet_train[:3000], wordnet_queries_id[:30], mask, K)
    for strategy in ("prefilter", "ivf_masked"):
        res = index.search(wordnet_queries_id[:30], K, where=where, strategy=strategy)
        assert mask[res.ids[res.ids >= 0]].all() and (res.ids >= 0).all()
        assert recall_at_k(res.ids, truth) >= 0.6  # PQ-only scores (m=48, no re-rank)


def test_hnsw_filtered_search_skips_removed_and_follows_compaction(wordnet_train, wordnet_queries_id, attrs):
    cols, _ = attrs
    n = 2000
    index = vs.HNSWIndex(384, "cosine", M=12, ef_construction=80, seed=1)
    index.add(wordnet_train[:n], ids=np.arange(n) + 10_000, attributes={k: v[:n] for k, v in cols.items()})
    removed = np.arange(0, n, 3) + 10_000
    index.remove(removed)
    where = F.pos.isin(["n", "v"])
    keep = np.setdiff1d(np.arange(n), removed - 10_000)
    mask = np.zeros(n, bool)
    mask[keep] = np.isin(cols["pos"][keep], ["n", "v"])
    truth = _truth_over_subset(wordnet_train[:n], wordnet_queries_id[:30], mask, K) + 10_000
    for strategy in ("prefilter", "beam_collect", "filtered_walk", "postfilter"):
        res = index.search(wordnet_queries_id[:30], K, where=where, strategy=strategy)
        assert not np.isin(res.ids, removed).any()
        assert recall_at_k(res.ids, truth) >= 0.95
    index.compact()  # renumbers slots: attributes must follow their ids
    for i in (1, 2, 1999):
        assert index.get_attributes(10_000 + i)["lexfile"] == int(cols["lexfile"][i])
    res = index.search(wordnet_queries_id[:30], K, where=where)
    assert recall_at_k(res.ids, truth) >= 0.95


def test_hnsw_filtered_search_survives_save_and_load(tmp_path, indexes, wordnet_queries_id):
    hnsw = indexes["hnsw"]
    hnsw.save(tmp_path / "h")
    loaded = vs.load(tmp_path / "h")
    where = {"$and": [{"pos": {"$in": ["a", "s"]}}, {"gloss_len": {"$lt": 90}}]}
    for strategy in ("prefilter", "filtered_walk"):
        np.testing.assert_array_equal(
            loaded.search(wordnet_queries_id[:16], K, where=where, strategy=strategy).ids,
            hnsw.search(wordnet_queries_id[:16], K, where=where, strategy=strategy).ids,
        )


@pytest.mark.parametrize("shape", ["correlated", "anti_correlated"])
@pytest.mark.parametrize("count", [2500, 1000, 400])
def test_planner_without_prefilter_picks_beam_and_reaches_recall_floor(indexes, attrs, wordnet_train,
                                                                      wordnet_queries_id, monkeypatch, shape, count):
    """With the exact-scan threshold lowered, the 5000-row slice exercises the approximate plans:
    beam_collect from 5% up (its anti-correlated rows re-answered by the fallback), the walk below."""
    hnsw = indexes["hnsw"]
    # fallback = the ACORN walk
    monkeypatch.setattr(hnsw, "filter_tuning", replace(DEFAULT_TUNING, prefilter_max_matches=50,
                                                       fallback_exact_max_matches=50,
                                                       code_scan_prefilter_max_matches=50,
                                                       fallback_code_scan_max_matches=50))
    cols, direction = attrs
    proj = cols["proj"]
    proj_sorted = np.sort(proj)
    hits, total = 0, 0
    for q in wordnet_queries_id[:20]:
        lo, hi = _proj_filter(proj_sorted, float(q @ direction), count, shape == "correlated")
        where = F.proj.between(lo, hi)
        allowed = hnsw.compile_where(where)
        expected = "beam_collect" if count / 5000 >= DEFAULT_TUNING.beam_min_selectivity else "filtered_walk"
        assert choose_strategy(hnsw.filter_capabilities(), allowed, hnsw.filter_tuning) == expected
        mask = (proj >= lo) & (proj <= hi)
        truth = _truth_over_subset(wordnet_train, q[None], mask, K)
        res = hnsw.search(q, K, where=where)
        assert mask[res.ids[res.ids >= 0]].all()
        hits += recall_at_k(res.ids, truth) * K
        total += K
    assert hits / total >= 0.95, f"{shape} {count}: recall@10 {hits / total:.3f}"


def test_merge_distinct_keeps_the_best_score_of_each_slot():
    from vecsearch.indexes.graph_filtered import merge_distinct

    a_slots = np.array([[4, 2, -1], [1, 2, 3]])
    a_scores = np.array([[0.1, 0.5, np.inf], [0.3, 0.4, 0.9]], np.float32)
    b_slots = np.array([[2, 7, 4], [-1, -1, -1]])
    b_scores = np.array([[0.2, 0.3, 0.1], [np.inf, np.inf, np.inf]], np.float32)
    slots, scores = merge_distinct(a_slots, a_scores, b_slots, b_scores, 4)
    np.testing.assert_array_equal(slots, [[4, 2, 7, -1], [1, 2, 3, -1]])
    np.testing.assert_allclose(scores, [[0.1, 0.2, 0.3, np.inf], [0.3, 0.4, 0.9, np.inf]])


def test_cached_filter_follows_adds_removals_and_attribute_updates(wordnet_train, wordnet_queries_id):
    """A repeated predicate is compiled once, but never answers from a state the index has left."""
    n = 400
    index = vs.HNSWIndex(384, "cosine", M=8, ef_construction=40, seed=0)
    index.add(wordnet_train[:n], attributes={"year": np.arange(n) % 10})
    where = F.year >= 5
    q = wordnet_queries_id[0]
    first = index.compile_where(where)
    assert index.compile_where(F.year >= 5) is first  # cache hit for an equal predicate
    assert first.count == n // 2
    index.add(wordnet_train[n : n + 10], attributes={"year": np.full(10, 9)})
    assert index.compile_where(where).count == n // 2 + 10
    index.remove(np.arange(5, n, 10))  # ids with year 5
    assert index.compile_where(where).count == n // 2 + 10 - n // 10
    index.update_attributes([0], {"year": [7]})
    assert index.compile_where(where).count == n // 2 + 10 - n // 10 + 1
    res = index.search(q, 500, where=where, strategy="prefilter")
    found = set(res.ids[res.ids >= 0].tolist())
    assert 0 in found and not found & set(range(5, n, 10))


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
def test_wide_range_mask_honours_bound_inclusiveness(op):
    """Wide ranges take the one-pass mask kernel: open and closed bounds on int and float columns."""
    from vecsearch.filtering.attributes import AttributeStore
    from vecsearch.filtering.compile import compile_where

    n = 1000
    values = {"i": np.arange(n) // 2, "f": (np.arange(n) // 2) / 4.0}
    store = AttributeStore()
    store.sync(np.arange(n, dtype=np.int64), np.zeros(n, bool))
    store.write(np.arange(n), store.prepare(values, n, "attributes"), clear_others=True)
    for field, pivot in (("i", 250), ("f", 62.5)):
        expr = {"<": F[field] < pivot, "<=": F[field] <= pivot, ">": F[field] > pivot, ">=": F[field] >= pivot}[op]
        expected = {"<": values[field] < pivot, "<=": values[field] <= pivot,
                    ">": values[field] > pivot, ">=": values[field] >= pivot}[op]
        allowed = compile_where(expr, store, np.zeros(n, bool))
        np.testing.assert_array_equal(allowed.mask, expected)
        assert allowed.count == int(expected.sum())


def test_beam_flags_anti_correlated_rows_but_not_random_or_correlated_ones(indexes, attrs, wordnet_queries_id):
    """The beam's local-selectivity checks (the free two-hop look, then the scored probe) send rows
    whose neighborhood fails the filter to the fallback, and leave rows of a filter that passes
    everywhere, or around the query, alone."""
    import math

    from vecsearch.indexes.graph_filtered import collect_policy

    hnsw = indexes["hnsw"]
    cols, direction = attrs
    proj_sorted = np.sort(cols["proj"])
    n = hnsw.ntotal
    queries = np.ascontiguousarray(wordnet_queries_id[:40] / np.linalg.norm(wordnet_queries_id[:40], axis=1, keepdims=True))
    tuning = hnsw.filter_tuning

    def doubtful(where_for):
        """Rows whose beam (as _beam_collect runs it, ef 64) would be answered again."""
        count = 0
        for q in queries:
            allowed = hnsw.compile_where(where_for(q))
            min_local = tuning.beam_min_local_ratio * allowed.selectivity
            probe = max(tuning.beam_probe_nodes, math.ceil(tuning.beam_probe_passing / allowed.selectivity))
            policy = collect_policy(allowed.mask, min_local, probe, True)
            _, _, local = hnsw._walk(q[None, :], K, 64, policy, 2 * K, need=K)
            count += int(local[0] < min_local)
        return count

    assert doubtful(lambda q: F.gloss_len >= 0) == 0  # every row passes
    assert doubtful(lambda q: F.proj.between(*_proj_filter(proj_sorted, float(q @ direction), n // 5, True))) <= 2
    assert doubtful(lambda q: F.proj.between(*_proj_filter(proj_sorted, float(q @ direction), n // 5, False))) >= 30


def test_cached_filter_the_beam_keeps_doubting_goes_to_the_scan(indexes, attrs, wordnet_queries_id, monkeypatch):
    """Feedback: once the beam re-answered most rows under a cached (repeated) filter, the planner
    scans directly, rechecking with the beam one call in BEAM_FEEDBACK_RECHECK; a filter the beam
    answers well keeps the beam."""
    hnsw = indexes["hnsw"]
    # the 5000-row slice: force the beam
    monkeypatch.setattr(hnsw, "filter_tuning", replace(DEFAULT_TUNING, code_scan_prefilter_max_matches=50))
    cols, direction = attrs
    proj_sorted = np.sort(cols["proj"])
    # one filter for all queries: the 20% of rows at the low end of `direction`, and the 40
    # queries that lie farthest towards the high end
    queries = wordnet_queries_id[np.argsort(wordnet_queries_id @ direction)[-40:]]
    anti = F.proj.between(float(proj_sorted[0]), float(proj_sorted[999]))
    everyone = F.gloss_len >= 0
    import vecsearch.base as base

    chosen = []

    def recording(*args, **kwargs):
        chosen.append(choose_strategy(*args, **kwargs))
        return chosen[-1]

    monkeypatch.setattr(base, "choose_strategy", recording)
    for where, expect_scan in ((anti, True), (everyone, False)):
        chosen.clear()
        for q in queries:
            hnsw.search(q, K, where=where)
        late = chosen[DEFAULT_TUNING.beam_feedback_min_rows + 1:]
        if expect_scan:
            assert chosen[0] == "beam_collect"
            assert late.count("prefilter") >= len(late) - 1 - len(late) // DEFAULT_TUNING.beam_feedback_recheck
            assert "beam_collect" in late  # the periodic recheck
        else:
            assert set(chosen) == {"beam_collect"}


def test_ivf_rows_whose_nearest_lists_fail_the_filter_are_answered_again_over_more_lists(
        wordnet_train, wordnet_queries_id, attrs):
    """Anti-correlated filter on IVF-PQ (nprobe 4 of 64 lists): the rows whose nearest lists barely
    pass probe more lists and re-rank more candidates (recall 0.92 here; 0.76 without)."""
    cols, direction = attrs
    ivf = vs.IVFPQIndex(384, "cosine", nlist=64, m=48, keep_vectors=True, nprobe=4, seed=0)
    ivf.train(wordnet_train)
    ivf.add(wordnet_train, attributes={"proj": cols["proj"]})
    proj_sorted = np.sort(cols["proj"])
    queries = wordnet_queries_id[:40]
    count = 2500  # half the rows

    found, truth = [], []
    for q in queries:
        lo, hi = _proj_filter(proj_sorted, float(q @ direction), count, False)
        mask = (cols["proj"] >= lo) & (cols["proj"] <= hi)
        truth.append(_truth_over_subset(wordnet_train, q[None, :], mask, K)[0])
        found.append(ivf.search(q, K, where=F.proj.between(lo, hi), strategy="ivf_masked", rerank=8).ids[0])
        assert mask[found[-1][found[-1] >= 0]].all()
    # 0.76 with ivf_min_near_ratio = 0 (no row judged doubtful)
    assert recall_at_k(np.array(found), np.array(truth)) >= 0.90


def test_ivf_judges_rows_doubtful_only_where_the_filter_fails_near_them(wordnet_train, wordnet_queries_id, attrs):
    """The masked IVF kernel widens a query (factor > 1) when its first lists pass far less than the
    filter overall: most rows under an anti-correlated quarter, none under a random quarter."""
    cols, direction = attrs
    n = wordnet_train.shape[0]
    ivf = vs.IVFPQIndex(384, "cosine", nlist=64, m=48, keep_vectors=True, nprobe=4, seed=0)
    ivf.train(wordnet_train)
    rand = np.random.default_rng(1).permutation(n)
    ivf.add(wordnet_train, attributes={"proj": cols["proj"], "rand": rand})
    queries = wordnet_queries_id[:40]
    proj_sorted = np.sort(cols["proj"])
    params = ivf._parse_search_params({"rerank": 8})
    random_quarter = ivf.compile_where(F.rand < n // 4)
    widen_max = ivf.filter_tuning.ivf_widen_max
    _, _, factors = ivf._masked_run(queries, K, params, random_quarter, 4, 320, widen_max)
    assert (factors == 1.0).all()
    doubtful = 0
    for q in queries:
        lo, hi = _proj_filter(proj_sorted, float(q @ direction), n // 4, False)
        anti = ivf.compile_where(F.proj.between(lo, hi))
        _, _, factor = ivf._masked_run(q[None, :], K, params, anti, 4, 320, widen_max)
        doubtful += int(factor[0] > 1.0)
    assert doubtful >= 0.75 * len(queries)
