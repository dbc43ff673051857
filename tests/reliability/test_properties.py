"""Property-based tests (hypothesis, bounded and derandomized): the index contract against a brute-force
oracle, filters against exact Python evaluation, and save/load round trips, for every index type."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vecsearch as vs
from vecsearch import registry
from vecsearch.filtering.predicates import And, Between, Compare, Contains, Exists, In, Not, Or

DIM = 6

# ---- attribute columns and predicates -----------------------------------------------------------
# Integers near where float64 loses them (2**53, 2**62, the ends of int64), close to each other so
# that comparisons between them are frequent: exactness shows only there.
near_edges = st.builds(lambda base, d: base + d, st.sampled_from([2**53, 2**62, 2**63 - 6, -(2**63) + 5]),
                       st.integers(-5, 5))
ints = st.one_of(near_edges, st.integers(-5, 5), st.integers(-(2**63), 2**63 - 1))
floats = st.one_of(st.sampled_from([0.0, -0.0, 0.5, 2.0**53, 1e300, -math.inf, math.inf]),
                   st.floats(allow_nan=False, width=64))
strings = st.sampled_from(["en", "de", "abc\x00", "", "\x00", "é"])
FIELDS = {"i": ints, "f": floats, "b": st.booleans(), "s": strings, "t": st.lists(strings, max_size=3)}


@st.composite
def rows(draw, n_min: int = 1, n_max: int = 25) -> list[dict[str, Any]]:
    n = draw(st.integers(n_min, n_max))
    return [{f: draw(st.one_of(st.none(), strat)) for f, strat in FIELDS.items()} for _ in range(n)]


def leaf() -> st.SearchStrategy:
    number = st.one_of(ints, floats, st.sampled_from([2**70, -(2**70), 2.5]))
    ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
    return st.one_of(
        st.builds(Compare, st.sampled_from(["i", "f"]), ops, number),
        st.builds(lambda f, op, v: Compare(f, op, v), st.just("s"), st.sampled_from(["==", "!="]), strings),
        st.builds(lambda op, v: Compare("b", op, v), st.sampled_from(["==", "!="]), st.booleans()),
        st.builds(Between, st.sampled_from(["i", "f"]), number, number),
        st.builds(lambda f, vs_, neg: In(f, vs_, neg), st.sampled_from(["i", "f"]), st.lists(number, max_size=3), st.booleans()),
        st.builds(lambda vs_, neg: In("s", vs_, neg), st.lists(strings, max_size=3), st.booleans()),
        st.builds(lambda vs_, mode: Contains("t", vs_, mode), st.lists(strings, max_size=3), st.sampled_from(["any", "all"])),
        st.builds(Exists, st.sampled_from(list(FIELDS))),
    )


predicates = st.recursive(leaf(), lambda inner: st.one_of(
    st.builds(lambda a, b: And((a, b)), inner, inner), st.builds(lambda a, b: Or((a, b)), inner, inner),
    st.builds(Not, inner)), max_leaves=5)


def holds(expr: Any, row: dict[str, Any]) -> bool:
    """The predicate on one row, in exact Python arithmetic (nulls match no comparison)."""
    if isinstance(expr, And):
        return all(holds(e, row) for e in expr.items)
    if isinstance(expr, Or):
        return any(holds(e, row) for e in expr.items)
    if isinstance(expr, Not):
        return not holds(expr.item, row)
    v = row.get(expr.field)
    if isinstance(expr, Exists):
        return v is not None
    if v is None:
        return False
    if isinstance(expr, Compare):
        return {"==": v == expr.value, "!=": v != expr.value, "<": v < expr.value, "<=": v <= expr.value,
                ">": v > expr.value, ">=": v >= expr.value}[expr.op]
    if isinstance(expr, Between):
        return expr.lo <= v <= expr.hi
    if isinstance(expr, In):
        return any(v == x for x in expr.values) != expr.negate
    if isinstance(expr, Contains):
        return any(x in v for x in expr.values) if expr.mode == "any" else all(x in v for x in expr.values)
    raise AssertionError(expr)


def _columns(data: list[dict[str, Any]]) -> dict[str, list[Any]]:
    cols = {f: [r[f] for r in data] for f in FIELDS}
    return {f: c for f, c in cols.items() if any(v is not None for v in c)}


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=rows(), where=predicates, removed=st.sets(st.integers(0, 24), max_size=5))
def test_filters_match_exact_python_evaluation(data, where, removed):
    index = vs.FlatIndex(DIM)
    cols = _columns(data)
    index.add(np.random.default_rng(0).standard_normal((len(data), DIM)).astype(np.float32), attributes=cols)
    index.remove(sorted(removed))
    live = [i for i in range(len(data)) if i not in removed]
    stored = [{f: data[i][f] if f in cols else None for f in FIELDS} for i in range(len(data))]
    try:
        got = index.match(where).tolist()
    except ValueError as exc:  # a field no row has: refused, never silently empty
        assert "unknown field" in str(exc)
        return
    # the float column stores float64: compare what it holds (an int value -> its float)
    want = [i for i in live if holds(where, {**stored[i], "f": stored[i]["f"]})]
    assert got == want, (where, [stored[i] for i in set(got) ^ set(want)][:3])


# ---- the contract, for every type --------------------------------------------------------------------
def _make(record: Any) -> Any:
    if record.vector_input:
        index = record.cls(DIM, "l2", **record.cls.suggested_params(300, DIM))
        if record.requires_training:
            index.train(np.random.default_rng(1).standard_normal((300, DIM)).astype(np.float32))
        return index
    return record.cls(DIM, fde=vs.FDEConfig(reps=2, k_sim=2, d_proj=3))


def _payload(record: Any, x: np.ndarray) -> Any:
    return x if record.vector_input else [np.stack([row, -row]) for row in x]


operations = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(1, 12)),
    st.tuples(st.just("remove"), st.lists(st.integers(0, 80), max_size=6)),
    st.tuples(st.just("search"), st.integers(1, 40)),
), min_size=1, max_size=8)


@pytest.mark.parametrize("record", registry.all_types(), ids=lambda r: r.name)
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(ops=operations)
def test_any_sequence_of_adds_removes_and_searches_keeps_the_contract(record, ops):
    """Ids are unique and sequential, removes count what was live, and every search returns (nq, k)
    live ids padded with -1 / +inf, best first; the exact type returns the brute-force answer."""
    index = _make(record)
    rng = np.random.default_rng(len(ops))
    vectors: dict[int, np.ndarray] = {}
    for op, arg in ops:
        if op == "add":
            x = rng.standard_normal((arg, DIM)).astype(np.float32)
            ids = index.add(_payload(record, x))
            assert len(set(ids.tolist()) & set(vectors)) == 0
            vectors.update(zip(ids.tolist(), x))
        elif op == "remove":
            live = set(vectors)
            assert index.remove(arg) == len(live & set(arg))
            for i in arg:
                vectors.pop(i, None)
        else:
            q = rng.standard_normal((3, DIM)).astype(np.float32)
            res = index.search(_payload(record, q), arg)
            assert res.ids.shape == res.distances.shape == (3, arg)
            for row, dist in zip(res.ids, res.distances):
                found = row[row >= 0]
                assert set(found.tolist()) <= set(vectors) and len(set(found.tolist())) == found.size
                assert (np.isfinite(dist) == (row >= 0)).all() and (np.diff(dist[np.isfinite(dist)]) >= -1e-5).all()
            if record.name == "flat":
                ids = np.array(sorted(vectors), np.int64)
                if ids.size:
                    d = ((np.stack([vectors[i] for i in ids])[None] - q[:, None]) ** 2).sum(-1)
                    want = np.sort(d, axis=1)[:, :arg]
                    np.testing.assert_allclose(res.distances[:, : want.shape[1]], want, rtol=1e-4, atol=1e-4)
        assert index.ntotal == len(vectors) and sorted(index.ids().tolist()) == sorted(vectors)


@pytest.mark.parametrize("record", registry.all_types(), ids=lambda r: r.name)
@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=rows(n_min=12, n_max=30), removed=st.sets(st.integers(0, 29), max_size=6), mmap=st.booleans())
def test_save_and_load_give_back_the_same_index(record, data, removed, mmap):
    index = _make(record)
    x = np.random.default_rng(len(data)).standard_normal((len(data), DIM)).astype(np.float32)
    index.add(_payload(record, x), attributes=_columns(data))
    index.remove(sorted(removed))
    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp) / "idx")
        loaded = vs.load(Path(tmp) / "idx", mmap=mmap)
        assert type(loaded) is type(index) and loaded.ntotal == index.ntotal
        assert loaded.ids().tolist() == index.ids().tolist()
        for i in index.ids().tolist():
            assert loaded.get_attributes(i) == index.get_attributes(i)
        q = _payload(record, x[:4] + 0.01)
        a, b = index.search(q, 5), loaded.search(q, 5)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.distances, b.distances)
        if "s" in _columns(data):
            np.testing.assert_array_equal(loaded.match({"s": "abc\x00"}), index.match({"s": "abc\x00"}))


@pytest.mark.parametrize("cls", [vs.HNSWIndex, vs.LeanVecIndex], ids=["hnsw", "leanvec"])
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(distinct=st.integers(1, 30), n=st.integers(2, 200), seed=st.integers(0, 2**16), k=st.integers(1, 20))
def test_a_small_graph_over_duplicated_vectors_reaches_every_node_when_ef_covers_it(cls, distinct, n, seed, k):
    """At M=4 on many copies of few vectors (the probe's 24/200 unreachable runs), a search with
    ``ef >= ntotal`` returns min(k, ntotal) results, also after a third of the vectors are removed."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((distinct, DIM)).astype(np.float32)[rng.integers(0, distinct, n)]
    index = cls(DIM, "l2", M=4, seed=seed)
    if index.requires_training:
        index.train(x)
    index.add(x)
    for _ in range(2):
        want = min(k, index.ntotal)
        res = index.search(x[:3], k, ef=n)
        assert (res.ids[:, :want] >= 0).all(), (res.ids.tolist(), index.ntotal)
        index.remove(index.ids()[::3])
