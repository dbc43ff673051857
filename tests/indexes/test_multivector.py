"""MultiVectorIndex: exact Chamfer kernel, recall against exact Chamfer, ids, remove, errors, save/load."""

from __future__ import annotations

import numpy as np
import pytest

import vecsearch as vs
from vecsearch.benchmark.evaluation import recall_at_k
from vecsearch.codecs.fde import MINILM_TUNED, FDEConfig
from vecsearch.indexes.multivector import MultiVectorIndex, chamfer_scores
from vecsearch.kernels.chamfer import ball_carve


def numpy_chamfer(q: np.ndarray, d: np.ndarray) -> float:
    return float((q @ d.T).max(axis=1).sum())


@pytest.fixture(scope="module")
def mv(wordnet_multivector):
    m = wordnet_multivector
    docs = (m["doc_vecs"], m["doc_offsets"])
    queries = (m["query_vecs"], m["query_offsets"])
    docs_list = [m["doc_vecs"][m["doc_offsets"][i] : m["doc_offsets"][i + 1]] for i in range(200)]
    queries_list = [
        m["query_vecs"][m["query_offsets"][i] : m["query_offsets"][i + 1]] for i in range(100)
    ]
    exact = np.array([[numpy_chamfer(q, d) for d in docs_list] for q in queries_list])
    truth = np.argsort(-exact, axis=1, kind="stable")[:, :10]
    return {
        "docs": docs,
        "queries": queries,
        "docs_list": docs_list,
        "queries_list": queries_list,
        "exact": exact,
        "truth": truth,
    }


def test_chamfer_kernel_equals_numpy_on_real_tokens(mv):
    rng = np.random.default_rng(0)
    cand = rng.integers(-1, 200, size=(100, 30)).astype(np.int64)
    got = chamfer_scores(*mv["queries"], *mv["docs"], cand)
    want = np.where(
        cand >= 0, np.take_along_axis(mv["exact"], np.maximum(cand, 0), axis=1), -np.inf
    )
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_search_exact_equals_numpy_chamfer_top10(mv):
    index = MultiVectorIndex(384, fde=FDEConfig(reps=2, k_sim=2, d_proj=8))
    index.add(mv["docs"])
    res = index.search_exact(mv["queries"], 10)
    assert recall_at_k(res.ids, mv["truth"]) >= 0.999
    top_sims = np.take_along_axis(mv["exact"], mv["truth"][:, :1], axis=1)[:, 0]
    np.testing.assert_allclose(-res.distances[:, 0], top_sims, rtol=1e-4)


# Measured on the slice (200 docs, 100 queries, seed 0), recall@10 vs exact Chamfer: FDE MINILM_TUNED
# 0.92 at 40 candidates, 0.94 at 50; paper config 0.86 at 60, 0.95 at 100; tokens (token_k=16) 0.945
# at 40; mean-pooled 0.91 at 50.
@pytest.mark.parametrize(
    "source,fde,candidates",
    [("fde", MINILM_TUNED, 50), ("fde", FDEConfig(), 100), ("tokens", None, 40)],
    ids=["fde-tuned", "fde-paper", "tokens"],
)
def test_recall_at_10_against_exact_chamfer_reaches_0_9(mv, source, fde, candidates):
    index = MultiVectorIndex(384, fde=fde, candidate_source=source)
    index.add(mv["docs"])
    res = index.search(mv["queries"], 10, candidates=candidates)
    assert res.ids.shape == (100, 10) and res.distances.dtype == np.float32
    assert recall_at_k(res.ids, mv["truth"]) >= 0.9
    # distances are exact negative Chamfer of the returned ids, sorted best first
    # (the token heuristic may pad: a one-token query's token_k hits can come from < 10 documents)
    found = res.ids >= 0
    got = np.take_along_axis(mv["exact"], np.maximum(res.ids, 0), axis=1)
    np.testing.assert_allclose(-res.distances[found], got[found], rtol=1e-4, atol=1e-4)
    assert np.isinf(res.distances[~found]).all()
    assert (res.distances[:, 1:] >= res.distances[:, :-1]).all()


def test_more_candidates_never_lower_fde_recall_much(mv):
    index = MultiVectorIndex(384, fde=MINILM_TUNED)
    index.add(mv["docs"])
    recalls = [
        recall_at_k(index.search(mv["queries"], 10, candidates=c).ids, mv["truth"])
        for c in (10, 30, 200)
    ]
    assert recalls[0] < recalls[1] <= recalls[2]
    assert recalls[2] == 1.0  # all 200 documents re-ranked exactly


def test_hnsw_inner_index_matches_flat_candidates_and_recall_floor(mv):
    flat = MultiVectorIndex(384, fde=MINILM_TUNED)
    hnsw = MultiVectorIndex(384, fde=MINILM_TUNED, inner="hnsw", M=16, ef_construction=100)
    flat.add(mv["docs"])
    hnsw.add(mv["docs"])
    assert hnsw.inner_index.type_name == "hnsw" and hnsw.inner_index.metric == "ip"
    res = hnsw.search(mv["queries"], 10, candidates=60, inner_search={"ef": 120})
    assert recall_at_k(res.ids, mv["truth"]) >= 0.9
    assert recall_at_k(res.ids, flat.search(mv["queries"], 10, candidates=60).ids) >= 0.95


def test_custom_ids_map_to_the_right_documents(mv):
    ids = np.arange(1000, 1200, dtype=np.int64)[::-1].copy()
    index = MultiVectorIndex(384, candidate_source="tokens")
    returned = index.add(mv["docs_list"], ids=ids)
    assert np.array_equal(returned, ids)
    res = index.search(mv["queries_list"][:20], 5, candidates=200, token_k=200)
    assert np.array_equal(res.ids, ids[mv["truth"][:20, :5]])
    np.testing.assert_array_equal(index.document_tokens(int(ids[3])), mv["docs_list"][3])


@pytest.mark.parametrize("source", ["fde", "tokens", "mean"])
def test_removed_documents_are_never_returned(mv, source):
    index = MultiVectorIndex(
        384, fde=FDEConfig(reps=8, k_sim=3, d_proj=16), candidate_source=source
    )
    index.add(mv["docs"])
    gone = np.unique(mv["truth"][:, 0])
    assert index.remove(gone) == gone.size
    assert index.ntotal == 200 - gone.size
    res = index.search(mv["queries"], 10, candidates=200, token_k=200)
    assert not np.isin(res.ids, gone).any()
    exact = index.search_exact(mv["queries"], 10)
    assert not np.isin(exact.ids, gone).any()
    assert recall_at_k(res.ids, exact.ids) >= 0.999


def test_k_larger_than_ntotal_pads(mv):
    index = MultiVectorIndex(384)
    index.add(mv["docs_list"][:3])
    res = index.search(mv["queries_list"][:2], 5)
    assert (res.ids[:, 3:] == -1).all() and np.isinf(res.distances[:, 3:]).all()
    assert set(res.ids[0, :3]) == {0, 1, 2}
    empty = MultiVectorIndex(384).search(mv["queries_list"][:2], 4)
    assert (empty.ids == -1).all()


def test_bad_documents_and_queries_raise_and_leave_index_unchanged(mv):
    index = MultiVectorIndex(384)
    index.add(mv["docs_list"][:5])
    bad = [mv["docs_list"][5], np.empty((0, 384), np.float32), mv["docs_list"][6]]
    with pytest.raises(ValueError, match="set 1 has zero tokens"):
        index.add(bad)
    nan_doc = mv["docs_list"][7].copy()
    nan_doc[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        index.add([mv["docs_list"][8], nan_doc])
    with pytest.raises(ValueError, match="dimension 384"):
        index.add([np.ones((2, 100), np.float32)])
    with pytest.raises(ValueError, match="already in the index"):
        index.add(mv["docs_list"][9:10], ids=[2])
    assert index.ntotal == 5 and index.n_tokens == sum(d.shape[0] for d in mv["docs_list"][:5])
    with pytest.raises(ValueError, match="set 0 has zero tokens"):
        index.search([np.empty((0, 384), np.float32)], 3)
    with pytest.raises(ValueError, match="NaN"):
        index.search([nan_doc], 3)
    with pytest.raises(TypeError, match="unexpected parameter"):
        index.search(mv["queries_list"][:1], 3, ef=10)
    with pytest.raises(ValueError, match="candidates"):
        index.search(mv["queries_list"][:1], 3, candidates=0)
    with pytest.raises(ValueError, match="inner"):
        MultiVectorIndex(384, inner="annoy")
    with pytest.raises(ValueError, match="candidate_source"):
        MultiVectorIndex(384, candidate_source="colbert")
    # a later good add keeps ids aligned: slots 5.. hold exactly the new documents
    new_ids = index.add(mv["docs_list"][5:8])
    assert np.array_equal(new_ids, [5, 6, 7])
    np.testing.assert_array_equal(index.document_tokens(6), mv["docs_list"][6])


@pytest.mark.parametrize(
    "source,inner,params",
    [("fde", "flat", {}), ("tokens", "flat", {}), ("fde", "hnsw", {"M": 8, "ef_construction": 40})],
    ids=["fde-flat", "tokens-flat", "fde-hnsw"],
)
def test_save_load_restores_identical_results(tmp_path, mv, source, inner, params):
    cfg = FDEConfig(reps=6, k_sim=3, d_proj=16, seed=3, fill_empty=False)
    index = MultiVectorIndex(384, fde=cfg, inner=inner, candidate_source=source, **params)
    index.add(mv["docs"], ids=np.arange(200, dtype=np.int64) * 3)
    index.remove([0, 9, 30])
    before = index.search(mv["queries"], 10, candidates=40)
    index.save(tmp_path / "mv")
    for mmap in (False, True):
        loaded = vs.load(tmp_path / "mv", mmap=mmap)
        assert isinstance(loaded, MultiVectorIndex)
        assert loaded.fde == cfg and loaded.candidate_source == source and loaded.ntotal == 197
        after = loaded.search(mv["queries"], 10, candidates=40)
        assert np.array_equal(before.ids, after.ids)
        np.testing.assert_array_equal(before.distances, after.distances)
    loaded.add(mv["docs_list"][:2], ids=[5000, 5001])  # a loaded (read-only mmap) index still grows
    assert loaded.ntotal == 199


def test_ball_carving_merges_close_query_tokens_and_keeps_recall(mv):
    q_vecs, q_offs = mv["queries"]
    carved, offs = ball_carve(q_vecs, q_offs, np.float32(0.7))
    assert offs[-1] == carved.shape[0] <= q_vecs.shape[0]
    assert (np.diff(offs) >= 1).all()
    # reference greedy carving for one multi-token query
    qi = int(np.argmax(np.diff(q_offs)))
    toks = q_vecs[q_offs[qi] : q_offs[qi + 1]]
    left, balls = list(range(len(toks))), []
    while left:
        c = left.pop(0)
        members = [c] + [b for b in left if toks[c] @ toks[b] >= 0.7]
        left = [b for b in left if b not in members]
        balls.append(toks[members].sum(0))
    np.testing.assert_allclose(
        carved[offs[qi] : offs[qi + 1]], np.array(balls), rtol=1e-5, atol=1e-6
    )
    # threshold above every similarity: nothing merges, results identical to no carving
    index = MultiVectorIndex(384, fde=MINILM_TUNED)
    index.add(mv["docs"])
    plain = index.search(mv["queries"], 10, candidates=50)
    same = index.search(mv["queries"], 10, candidates=50, ball_carving=1.0)
    assert recall_at_k(same.ids, plain.ids) >= 0.99
    merged = index.search(mv["queries"], 10, candidates=50, ball_carving=0.7)
    assert recall_at_k(merged.ids, mv["truth"]) >= 0.8


def test_warmup_compiles_multivector_paths():
    data = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    MultiVectorIndex.warmup_kernels(data)


def test_ivfpq_inner_index_trains_on_first_add_and_compresses_fdes(mv):
    index = MultiVectorIndex(384, fde=MINILM_TUNED, inner="ivfpq", nlist=4, m=64, nbits=4, nprobe=4)
    index.add(mv["docs"])
    assert index.inner_index.is_trained and index.inner_index.code_size == 64 + 4
    res = index.search(mv["queries"], 10, candidates=80)
    assert recall_at_k(res.ids, mv["truth"]) >= 0.8  # measured 0.89 (4-bit PQ codes; flat FDE: 0.97)
    too_small = MultiVectorIndex(384, fde=MINILM_TUNED, inner="ivfpq", nlist=4, m=64, nbits=8)
    with pytest.raises(ValueError, match="first add trains the inner 'ivfpq' index"):
        too_small.add(mv["docs_list"][:100])  # 8-bit PQ needs >= 256 training vectors
    assert too_small.ntotal == 0 and too_small.n_tokens == 0


def _allowed_truth(mv, allowed_docs: np.ndarray) -> np.ndarray:
    """Exact Chamfer top-10 over the allowed documents only (ids = document numbers)."""
    masked = np.where(np.isin(np.arange(200), allowed_docs)[None, :], mv["exact"], -np.inf)
    return np.argsort(-masked, axis=1, kind="stable")[:, :10]


def test_filtered_search_with_few_matches_is_exact_chamfer_over_the_matches(mv):
    index = MultiVectorIndex(384, fde=MINILM_TUNED)
    index.add(mv["docs"], attributes={"bucket": np.arange(200) % 4})
    res = index.search(mv["queries"], 10, candidates=40, where=vs.F.bucket == 1)
    allowed = np.flatnonzero(np.arange(200) % 4 == 1)
    assert np.isin(res.ids, allowed).all()
    np.testing.assert_array_equal(res.ids, _allowed_truth(mv, allowed))


def test_filtered_search_over_fetches_when_many_match(mv):
    from dataclasses import replace

    from vecsearch.filtering.tuning import DEFAULT_TUNING

    index = MultiVectorIndex(384, fde=MINILM_TUNED)
    index.filter_tuning = replace(DEFAULT_TUNING, multivector_exact_max_matches=0)  # force the over-fetch path
    index.add(mv["docs"], attributes={"bucket": np.arange(200) % 4})
    res = index.search(mv["queries"], 10, candidates=40, where={"bucket": {"$in": [0, 2, 3]}})
    allowed = np.flatnonzero(np.arange(200) % 4 != 1)
    assert np.isin(res.ids[res.ids >= 0], allowed).all()
    assert recall_at_k(res.ids, _allowed_truth(mv, allowed)) >= 0.9


def test_filtered_search_with_no_match_returns_padding(mv):
    index = MultiVectorIndex(384, fde=MINILM_TUNED)
    index.add(mv["docs"], attributes={"bucket": np.arange(200) % 4})
    res = index.search(mv["queries"], 5, where=vs.F.bucket == 9)
    assert (res.ids == -1).all() and np.isposinf(res.distances).all()


# ---- fde="auto" (the class default): the first add chooses the FDE and the candidate count ----------
def test_default_index_chooses_on_first_add_and_reaches_0_9(mv):
    index = MultiVectorIndex(384)
    assert repr(index).endswith("fde='auto')") and index.fde_choice is None
    index.add(mv["docs"])
    choice = index.fde_choice
    assert choice is not None and choice.reached and index.fde == choice.config
    assert index.search_defaults == {"candidates": choice.candidates}
    assert index.inner_index.dim == index.fde.output_dim
    res = index.search(mv["queries"], 10)  # nothing but the defaults
    # measured: 0.928 (candidates=40 of 200 documents); 10 candidates give 0.62, so this can fail
    assert recall_at_k(res.ids, mv["truth"]) >= 0.9
    # later adds keep the chosen configuration; the candidates stay the same fraction of the corpus
    chosen, first = index.fde, choice.candidates
    index.add(mv["docs_list"] * 2)  # 200 + 400 documents
    assert index.fde == chosen and index.ntotal == 600
    assert index.search_defaults == {"candidates": int(np.ceil(first / 200 * 600 - 1e-9))}
    index.set_search_defaults({"candidates": 25})  # someone else's value is never rescaled
    index.add(mv["docs_list"][:10])
    assert index.search_defaults == {"candidates": 25}


def test_explicit_fde_or_candidates_is_never_overridden(mv):
    index = MultiVectorIndex(384, fde=MINILM_TUNED)
    index.add(mv["docs"])
    assert index.fde == MINILM_TUNED and index.fde_choice is None and index.search_defaults == {}
    mean = MultiVectorIndex(384, candidate_source="mean")
    mean.add(mv["docs"])
    assert mean.fde_choice is None and mean.search_defaults == {}
    auto = MultiVectorIndex(384)
    auto.set_search_defaults({"candidates": 7})
    auto.add(mv["docs"])
    assert auto.fde_choice is not None and auto.search_defaults == {"candidates": 7}
    with pytest.raises(ValueError, match="fde: expected 'auto'"):
        MultiVectorIndex(384, fde="paper")


def test_small_first_add_takes_the_fallback_without_measuring(mv):
    from vecsearch.codecs.fde_auto import AUTO_GRID

    index = MultiVectorIndex(384)
    index.add(mv["docs_list"][:20])
    assert index.fde == AUTO_GRID[0] and index.search_defaults == {}
    assert index.fde_choice is not None and index.fde_choice.candidates is None


def test_auto_index_saves_its_choice_and_an_empty_one_stays_auto(mv, tmp_path):
    index = MultiVectorIndex(384)
    index.add(mv["docs"])
    index.save(tmp_path / "chosen")
    loaded = vs.load(tmp_path / "chosen")
    assert loaded.fde == index.fde and loaded.search_defaults == index.search_defaults
    np.testing.assert_array_equal(loaded.search(mv["queries"], 10).ids, index.search(mv["queries"], 10).ids)
    loaded.add(mv["docs_list"])  # the saved fraction keeps scaling the candidates
    assert loaded.search_defaults["candidates"] > index.search_defaults["candidates"]
    MultiVectorIndex(384).save(tmp_path / "empty")
    empty = vs.load(tmp_path / "empty")
    assert repr(empty).endswith("fde='auto')")
    empty.add(mv["docs"])
    assert empty.fde == index.fde and empty.search_defaults == index.search_defaults


def test_state_with_documents_but_fde_auto_is_rejected(mv):
    index = MultiVectorIndex(384, fde=FDEConfig(reps=2, k_sim=2, d_proj=8))
    index.add(mv["docs_list"][:5])
    header, arrays = index.get_state()
    header["params"]["fde"] = "auto"
    with pytest.raises(ValueError, match="params.fde: 'auto'"):
        vs.Index.from_state(header, arrays)
    header["params"]["fde"] = index.fde.model_dump()
    for bad in ({"fraction": 2.0, "value": 3}, {"fraction": 0.1}, {"fraction": 0.1, "value": 0}, 5):
        header["params"]["auto_candidates"] = bad
        with pytest.raises(ValueError, match="params.auto_candidates"):
            vs.Index.from_state(header, arrays)
    del header["params"]["auto_candidates"]  # files written before it existed
    assert vs.Index.from_state(header, arrays).ntotal == 5
