"""The one graph walk (vecsearch.kernels.graph_walk) against brute force, for every storage and policy.

A small HNSW graph (300 random vectors) is walked with a beam as wide as the graph, so every
reachable node is scored: the walk must then return exactly the brute-force top-k under the
storage's own scores (decoded rows scored in numpy), restricted to what the policy may return.
"""

from __future__ import annotations

import numpy as np
import pytest

import vecsearch as vs
from vecsearch.codecs.lvq import f16_values, make_codec
from vecsearch.indexes.graph_filtered import acorn_policy, collect_policy, plain_policy
from vecsearch.indexes.scratch import new_scratch
from vecsearch.kernels import graph_walk as kw
from vecsearch.kernels.storage import (
    MODE_IP,
    MODE_L2,
    MODE_L2_VIA_IP,
    NO_STORAGE,
    STORE_F16,
    STORE_F32,
    STORE_LVQ4,
    STORE_LVQ4X8,
    STORE_LVQ8,
    make_storage,
)

N, D, K = 300, 24, 10
LVQ_NAMES = {STORE_LVQ8: "lvq8", STORE_LVQ4: "lvq4", STORE_LVQ4X8: "lvq4x8"}


@pytest.fixture(scope="module")
def graph():
    """(index, data, queries): a float32 HNSW over N x D Gaussian rows (its graph is what is walked)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, D)).astype(np.float32)
    q = rng.standard_normal((12, D)).astype(np.float32)
    index = vs.HNSWIndex(D, "l2", M=8, ef_construction=64, storage="float32", seed=1)
    index.add(x, progress=False)
    return index, x, q


def storage_and_rows(kind: int, mode: int, x: np.ndarray):
    """A storage of ``kind`` over ``x`` and the float32 rows its scores are computed from."""
    norms = None
    if kind == STORE_F32:
        rows = x.copy()
        extra = {"f32": rows}
    elif kind == STORE_F16:
        half = x.astype(np.float16)
        rows = half.astype(np.float32)
        extra = {"u16": half.view(np.uint16), "f16": f16_values()}
    else:
        codec = make_codec(LVQ_NAMES[kind]).fit(x)
        codes = codec.encode(x)
        rows = codec.decode(codes).astype(np.float32)
        extra = {"codes": codes, "mu": codec.mu, "f16": f16_values()}
    if mode == MODE_L2_VIA_IP:
        norms = (x.astype(np.float64) ** 2).sum(1).astype(np.float32)  # exact norms, approximate products
        extra["norms"] = norms
    return make_storage(kind, mode, **extra), rows, norms


def reference_scores(mode: int, rows: np.ndarray, norms, q: np.ndarray) -> np.ndarray:
    """(nq, N) float64 scores, smaller is better, as the storage defines them."""
    ip = q.astype(np.float64) @ rows.astype(np.float64).T
    if mode == MODE_L2:
        return ((q.astype(np.float64)[:, None, :] - rows[None].astype(np.float64)) ** 2).sum(2)
    if mode == MODE_IP:
        return -ip
    return norms[None, :].astype(np.float64) - 2.0 * ip


def walk(index, st, policy, q, k=K, ef=N, sec=NO_STORAGE, n_rerank=0, need=0, q_full=None):
    g, _, _, _ = index._bundles()
    nq = q.shape[0]
    s = new_scratch(1, N, ef)
    out_slots = np.empty((nq, k), np.int64)
    out_scores = np.empty((nq, k), np.float32)
    local = np.empty(nq, np.float32)
    q_full = q if q_full is None else q_full
    kernel = kw.search_rows if policy.kind == kw.POLICY_PLAIN else kw.policy_rows
    kernel(g, index._entry, index._max_level, tuple(st), tuple(sec), tuple(policy), q, q_full, 0, nq, k, ef,
                   n_rerank, need, s.visited, s.epochs, 0, s.cand_s, s.cand_i, s.top_s, s.top_i, out_slots,
                   out_scores, local)
    return out_slots, out_scores, local


def assert_exact_topk(slots, scores, ref, eligible, k=K):
    """Each row: the k best eligible nodes under ``ref`` (ties allowed), scores equal to ``ref``'s."""
    for i in range(slots.shape[0]):
        candidates = np.flatnonzero(eligible)
        best = np.sort(ref[i, candidates])[: min(k, candidates.size)]
        got = slots[i][slots[i] >= 0]
        assert got.size == best.size
        assert eligible[got].all()
        tol = 1e-4 * max(1.0, float(np.abs(best).max()))
        np.testing.assert_allclose(np.sort(ref[i, got]), best, atol=tol)
        np.testing.assert_allclose(scores[i, : got.size], ref[i, got], atol=tol)
        assert np.all(np.diff(scores[i, : got.size]) >= 0)  # best first


STORAGES = [(STORE_F32, MODE_L2), (STORE_F32, MODE_IP), (STORE_F32, MODE_L2_VIA_IP),
            (STORE_F16, MODE_L2), (STORE_F16, MODE_IP), (STORE_F16, MODE_L2_VIA_IP),
            (STORE_LVQ8, MODE_L2), (STORE_LVQ8, MODE_IP), (STORE_LVQ8, MODE_L2_VIA_IP),
            (STORE_LVQ4, MODE_L2), (STORE_LVQ4, MODE_IP), (STORE_LVQ4X8, MODE_L2), (STORE_LVQ4X8, MODE_IP)]


@pytest.mark.parametrize("kind,mode", STORAGES)
def test_plain_walk_over_the_whole_graph_returns_the_storage_topk(graph, kind, mode):
    index, x, q = graph
    st, rows, norms = storage_and_rows(kind, mode, x)
    no_deleted = np.zeros(N, np.bool_)
    slots, scores, _ = walk(index, st, plain_policy(no_deleted, False), q)
    assert_exact_topk(slots, scores, reference_scores(mode, rows, norms, q), np.ones(N, bool))


@pytest.mark.parametrize("kind,mode", [(STORE_F32, MODE_L2), (STORE_LVQ8, MODE_IP)])
def test_plain_walk_never_returns_deleted_nodes_but_walks_through_them(graph, kind, mode):
    index, x, q = graph
    st, rows, norms = storage_and_rows(kind, mode, x)
    deleted = np.zeros(N, np.bool_)
    deleted[::3] = True
    slots, scores, _ = walk(index, st, plain_policy(deleted, True), q)
    assert_exact_topk(slots, scores, reference_scores(mode, rows, norms, q), ~deleted)


@pytest.mark.parametrize("kind,mode", [(STORE_F32, MODE_L2), (STORE_LVQ8, MODE_L2), (STORE_F16, MODE_IP)])
@pytest.mark.parametrize("share", [0.5, 0.05])
def test_acorn_walk_seeded_with_every_passing_node_returns_the_passing_topk(graph, kind, mode, share):
    index, x, q = graph
    st, rows, norms = storage_and_rows(kind, mode, x)
    allowed = np.random.default_rng(3).random(N) < share
    seeds = np.flatnonzero(allowed).astype(np.int64)
    slots, scores, _ = walk(index, st, acorn_policy(allowed, seeds), q)
    assert_exact_topk(slots, scores, reference_scores(mode, rows, norms, q), allowed)


def test_acorn_walk_without_seeds_finds_most_passing_neighbours(graph):
    """ACORN-1 reaches passing nodes through failing ones (two hops) from the graph's entry."""
    index, x, q = graph
    st, rows, norms = storage_and_rows(STORE_F32, MODE_L2, x)
    allowed = np.random.default_rng(4).random(N) < 0.3
    slots, _, _ = walk(index, st, acorn_policy(allowed, np.empty(0, np.int64)), q, ef=64)
    ref = reference_scores(MODE_L2, rows, norms, q)
    ref[:, ~allowed] = np.inf
    truth = np.argsort(ref, axis=1)[:, :K]
    hits = np.mean([len(set(slots[i]) & set(truth[i])) / K for i in range(q.shape[0])])
    assert allowed[slots[slots >= 0]].all()
    assert hits >= 0.9


@pytest.mark.parametrize("kind,mode", [(STORE_F32, MODE_IP), (STORE_LVQ8, MODE_L2), (STORE_LVQ4X8, MODE_IP)])
def test_collect_walk_pools_the_best_passing_nodes_it_scored(graph, kind, mode):
    """POLICY_COLLECT walks unfiltered and keeps the passing nodes: over the whole graph, their exact
    top-k; the local selectivity it reports is the share of scored nodes that passed."""
    index, x, q = graph
    st, rows, norms = storage_and_rows(kind, mode, x)
    allowed = np.random.default_rng(5).random(N) < 0.4
    slots, scores, local = walk(index, st, collect_policy(allowed), q, need=K)
    assert_exact_topk(slots, scores, reference_scores(mode, rows, norms, q), allowed)
    np.testing.assert_allclose(local, allowed.mean(), atol=1e-6)


def test_collect_walk_gives_up_where_too_few_scored_nodes_pass(graph):
    """With min_scored nodes scored and fewer than min_local of them passing, the row stops early
    and reports its low local selectivity (the caller answers it again)."""
    index, x, q = graph
    st, rows, norms = storage_and_rows(STORE_F32, MODE_L2, x)
    allowed = np.zeros(N, np.bool_)
    allowed[:3] = True
    _, _, local = walk(index, st, collect_policy(allowed, min_local=0.2, min_scored=40), q)
    assert (local < 0.2).all()


@pytest.mark.parametrize("kind,mode", [(STORE_LVQ8, MODE_L2), (STORE_LVQ4, MODE_IP), (STORE_F16, MODE_L2)])
def test_rerank_rescoring_every_candidate_returns_exact_float32_topk(graph, kind, mode):
    """A compressed walk whose candidates are all re-scored by the float32 storage returns the
    exact top-k with exact distances."""
    index, x, q = graph
    st, _, _ = storage_and_rows(kind, mode, x)
    exact_mode = MODE_L2 if mode == MODE_L2 else MODE_IP
    sec, rows, norms = storage_and_rows(STORE_F32, exact_mode, x)
    no_deleted = np.zeros(N, np.bool_)
    slots, scores, _ = walk(index, st, plain_policy(no_deleted, False), q, sec=sec, n_rerank=N)
    assert_exact_topk(slots, scores, reference_scores(exact_mode, rows, norms, q), np.ones(N, bool))


def test_short_results_are_padded_and_an_empty_graph_returns_padding(graph):
    index, x, q = graph
    st, _, _ = storage_and_rows(STORE_F32, MODE_L2, x)
    allowed = np.zeros(N, np.bool_)
    allowed[[5, 9]] = True
    slots, scores, _ = walk(index, st, acorn_policy(allowed, np.array([5, 9], np.int64)), q[:2])
    assert (slots[:, 2:] == -1).all() and np.isinf(scores[:, 2:]).all()
    assert set(slots[0, :2].tolist()) == {5, 9}
    empty = vs.HNSWIndex(D, "l2", storage="float32")
    empty.add(x[:1], progress=False)
    empty.remove(empty.ids())
    assert (empty.search(q[:2], 3).ids == -1).all()


def test_greedy_descent_ends_at_a_local_minimum_of_the_storage_scores(graph):
    index, x, q = graph
    st, rows, norms = storage_and_rows(STORE_F32, MODE_L2, x)
    g, _, _, _ = index._bundles()
    s = new_scratch(1, N, 8)
    for qi in q:
        qm = np.empty(D, np.float32)
        d_entry = np.float32(((x[index._entry] - qi) ** 2).sum())
        node, d = kw.greedy_descend(tuple(g), tuple(st), qi, qm, np.float32(0), np.float32(0), np.int64(index._entry),
                                    d_entry, np.int64(index._max_level), np.int64(0), np.zeros(N, np.bool_),
                                    s.visited, s.epochs, 0, s.cand_s[0], s.cand_i[0], s.top_s[0], s.top_i[0])
        assert d <= d_entry
        assert d == pytest.approx(float(((x[node] - qi) ** 2).sum()), rel=1e-5)


def test_only_bundles_of_rare_encodings_carry_the_type_that_compiles_them():
    # make_storage marks float16 / 4-bit LVQ bundles by the dtype of their u16 field, so kernels
    # compiled for float32 / LVQ8 bundles leave the rare encodings' scoring out (first-use compile time)
    common = [make_storage(STORE_F32, MODE_L2, f32=np.zeros((2, 4), np.float32)),
              make_storage(STORE_LVQ8, MODE_IP, codes=np.zeros((2, 8), np.uint8)), NO_STORAGE]
    rare = [make_storage(STORE_F16, MODE_L2, u16=np.zeros((2, 4), np.uint16)),
            make_storage(STORE_LVQ4, MODE_IP, codes=np.zeros((2, 6), np.uint8)),
            make_storage(STORE_LVQ4X8, MODE_L2, codes=np.zeros((2, 10), np.uint8))]
    assert {st.u16.dtype for st in common} == {np.dtype(np.int16)}
    assert {st.u16.dtype for st in rare} == {np.dtype(np.uint16)}


def test_a_default_hnsw_index_runs_without_compiling_the_rare_encodings(tmp_path):
    # a fresh numba cache: every kernel the default index uses is compiled here, and a callee that
    # is compiled registers a signature with its dispatcher (code loaded from a cache would not)
    import os
    import subprocess
    import sys

    script = (
        "import numpy as np, vecsearch as vs\n"
        "from vecsearch.kernels import storage\n"
        "x = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)\n"
        "h = vs.HNSWIndex(16, 'cosine'); h.add(x, progress=False); h.search(x[:3], 5); h.search(x[0], 5)\n"
        "print(len(storage.score_row.signatures), len(storage.other_score.signatures))\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, check=True,
                         env=env)
    score_row, other_score = out.stdout.split()
    assert int(score_row) >= 1  # the scoring was compiled in this process
    assert other_score == "0"  # float32 / LVQ8 bundles never compile the float16 / 4-bit scoring
