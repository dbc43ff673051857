"""Predicate language: compiled masks equal a plain-numpy reference, the dict form, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vecsearch as vs
from vecsearch import F
from vecsearch.filtering.compile import compile_where
from vecsearch.filtering.predicates import (
    And,
    Between,
    Compare,
    Contains,
    Exists,
    In,
    Not,
    Or,
    parse_where,
)

N = 2000
TAGS = ["red", "green", "blue", "gold", "grey"]


@pytest.fixture(scope="module")
def data(wordnet_attrs):
    """Real wordnet attributes (first N rows) plus a tags column and a column with nulls."""
    rng = np.random.default_rng(0)
    cols = {k: v[:N] for k, v in wordnet_attrs.items()}
    cols["has_example"] = cols["has_example"].astype(bool)
    cols["n_lemmas"] = cols["n_lemmas"].astype(np.float64)
    tags = [[t for t in TAGS if rng.random() < p] for p in rng.uniform(0.05, 0.6, N)]
    opt = [None if rng.random() < 0.2 else int(rng.integers(0, 10)) for _ in range(N)]
    index = vs.FlatIndex(4)
    index.add(rng.standard_normal((N, 4)).astype(np.float32), attributes={**cols, "tags": tags, "opt": opt})
    index.remove(np.arange(0, N, 97))  # compaction: compiled masks must follow the live rows
    keep = np.setdiff1d(np.arange(N), np.arange(0, N, 97))
    ref = {k: np.asarray(v)[keep] for k, v in cols.items()}
    ref["tags"] = [set(tags[i]) for i in keep]
    ref["opt_valid"] = np.array([opt[i] is not None for i in keep])
    ref["opt"] = np.array([opt[i] if opt[i] is not None else -999 for i in keep])
    return index, ref, keep


def _cmp(values, op, v):
    return {"==": values == v, "!=": values != v, "<": values < v, "<=": values <= v, ">": values > v, ">=": values >= v}[op]


def reference(expr, ref):
    """Plain-numpy evaluation of a predicate over the reference columns (nulls match nothing)."""
    n = ref["pos"].shape[0]
    if isinstance(expr, And):
        out = np.ones(n, bool)
        for e in expr.items:
            out &= reference(e, ref)
        return out
    if isinstance(expr, Or):
        out = np.zeros(n, bool)
        for e in expr.items:
            out |= reference(e, ref)
        return out
    if isinstance(expr, Not):
        return ~reference(expr.item, ref)
    f = expr.field
    valid = ref["opt_valid"] if f == "opt" else np.ones(n, bool)
    if isinstance(expr, Exists):
        return valid.copy()
    if f == "tags":
        sets = ref["tags"]
        if isinstance(expr, Contains) and expr.mode == "all":
            return np.array([set(expr.values) <= s for s in sets])
        values = expr.values if isinstance(expr, (Contains, In)) else (expr.value,)
        hit = np.array([bool(set(values) & s) for s in sets])
        negate = (isinstance(expr, In) and expr.negate) or (isinstance(expr, Compare) and expr.op == "!=")
        return ~hit if negate else hit
    col = ref[f]
    if isinstance(expr, Compare):
        return valid & _cmp(col, expr.op, expr.value)
    if isinstance(expr, Between):
        return valid & (col >= expr.lo) & (col <= expr.hi)
    if isinstance(expr, In):
        hit = np.isin(col, list(expr.values))
        return valid & (~hit if expr.negate else hit)
    raise AssertionError(expr)


OPS = ["==", "!=", "<", "<=", ">", ">="]
leaf = st.one_of(
    st.builds(lambda v, neg: F.pos.not_in(v) if neg else F.pos.isin(v), st.lists(st.sampled_from("nvasrx"), max_size=3), st.booleans()),
    st.builds(lambda v, eq: (F.pos == v) if eq else (F.pos != v), st.sampled_from("nvasrx"), st.booleans()),
    st.builds(lambda op, v: Compare("lexfile", op, v), st.sampled_from(OPS), st.integers(-1, 46)),
    st.builds(lambda op, v: Compare("gloss_len", op, v), st.sampled_from(OPS), st.floats(0, 400, allow_nan=False)),
    st.builds(lambda a, b: F.gloss_len.between(a, b), st.integers(0, 300), st.integers(0, 300)),
    st.builds(lambda v: F.n_lemmas.isin(v), st.lists(st.integers(1, 6), max_size=3)),
    st.builds(lambda v: F.has_example == v, st.booleans()),
    st.builds(lambda v, m: F.tags.contains_all(v) if m else F.tags.contains_any(v), st.lists(st.sampled_from(TAGS + ["none"]), max_size=3), st.booleans()),
    st.builds(lambda v: F.tags == v, st.sampled_from(TAGS)),
    st.builds(lambda op, v: Compare("opt", op, v), st.sampled_from(OPS), st.integers(-1, 10)),
    st.just(F.opt.exists()),
)
predicates = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda a, b: a & b, inner, inner),
        st.builds(lambda a, b: a | b, inner, inner),
        st.builds(lambda a: ~a, inner),
    ),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(predicates)
def test_compiled_mask_equals_numpy_reference(data, expr):
    index, ref, keep = data
    store = index._attribute_store()
    store.sync(index._ids.slot_to_id, index._ids.deleted)
    allowed = compile_where(expr, store, index._ids.deleted)
    expected = reference(expr, ref)
    np.testing.assert_array_equal(allowed.mask, expected)  # Flat compacted: slot i <-> keep[i]
    assert allowed.count == int(expected.sum())
    np.testing.assert_array_equal(allowed.slots, np.flatnonzero(expected))


@pytest.mark.parametrize(
    "doc, expr",
    [
        ({"pos": "v"}, F.pos == "v"),
        ({"pos": "v", "lexfile": {"$gte": 30, "$lt": 35}}, (F.pos == "v") & (F.lexfile >= 30) & (F.lexfile < 35)),
        ({"$and": [{"gloss_len": {"$gt": 50}}, {"pos": {"$in": ["n", "a"]}}]}, (F.gloss_len > 50) & F.pos.isin(["n", "a"])),
        ({"$or": [{"lexfile": 3}, {"pos": {"$ne": "n"}}]}, (F.lexfile == 3) | (F.pos != "n")),
        ({"$not": {"pos": {"$nin": ["n"]}}}, ~F.pos.not_in(["n"])),
        ({"lexfile": {"$lte": 5, "$not": {"$eq": 2}}}, (F.lexfile <= 5) & ~(F.lexfile == 2)),
        ({"tags": "red"}, F.tags.contains("red")),
        ({"tags": {"$in": ["red", "blue"]}}, F.tags.contains_any(["red", "blue"])),
        ({"tags": {"$all": ["red", "blue"]}}, F.tags.contains_all(["red", "blue"])),
        ({"tags": {"$contains": "gold"}}, F.tags.contains("gold")),
        ({"opt": {"$exists": False}}, ~F.opt.exists()),
        ({"has_example": True}, F.has_example == True),
        ({"has_example": False, "pos": "n"}, ~F.has_example & (F.pos == "n")),
        ({"$or": [{"has_example": True}, {"pos": "n"}]}, (F.pos == "n") | F.has_example),
        ({}, None),
    ],
)
def test_dict_form_compiles_like_the_expression(data, doc, expr):
    index, ref, _ = data
    store = index._attribute_store()
    got = compile_where(doc, store, index._ids.deleted).mask
    expected = np.ones(ref["pos"].shape[0], bool) if expr is None else reference(expr, ref)
    np.testing.assert_array_equal(got, expected)


def test_python_and_or_not_and_chained_comparisons_raise_type_error():
    with pytest.raises(TypeError, match="combine predicates with & | ~"):
        (F.a == 1) and (F.b == 2)
    with pytest.raises(TypeError, match="not with and/or/not"):
        (F.a == 1) or (F.b == 2)
    with pytest.raises(TypeError, match="between"):
        1 < F.year < 3  # noqa: B015
    with pytest.raises(TypeError, match="not with and/or/not"):
        not (F.a == 1)


@pytest.mark.parametrize(
    "where, error, fragment",
    [
        (F.pos > "a", TypeError, "ordering comparison '>' is not valid on field 'pos' of type str"),
        (F.pos == 3, TypeError, "needs a str, got int 3"),
        (F.lexfile == "3", TypeError, "needs a number, got str '3'"),
        (F.has_example == 1, TypeError, "needs a bool"),
        (F.lexfile.contains_any([1]), TypeError, "contains_any"),
        (F.tags.between(1, 2), TypeError, "between"),
        (F.tags.contains_any([1]), TypeError, "needs a str tag"),
        (F.nope == 1, ValueError, "unknown field 'nope'"),
        ({"pos": ["n"]}, TypeError, r"use \{'\$in'"),
        ({"pos": {"$regex": "n"}}, ValueError, "unknown operator '\\$regex'"),
        ({"$xor": []}, ValueError, "unknown top-level operator"),
        ({"$and": {}}, ValueError, "non-empty list"),
        ({"pos": {"$exists": 1}}, TypeError, "true or false"),
        (F.pos, TypeError, "bare field F.pos is a predicate only for bool fields"),
        (F.pos & (F.lexfile > 1), TypeError, "bare field F.pos"),
        ("pos == 'n'", TypeError, "expected a predicate"),
    ],
)
def test_bad_predicates_raise_clear_errors(data, where, error, fragment):
    index, _, _ = data
    with pytest.raises(error, match=fragment):
        index.search(np.zeros(4, np.float32) + 1, 3, where=where)


def test_bad_comparison_values_are_rejected_when_built():
    with pytest.raises(TypeError, match="expected an int, float, bool or str"):
        F.year == [2020]  # noqa: B015
    with pytest.raises(ValueError, match="NaN"):
        F.year >= float("nan")  # noqa: B015
    with pytest.raises(TypeError, match="list of values"):
        F.lang.isin("en")


def test_values_absent_from_the_vocabulary_match_nothing(data):
    index, _, _ = data
    store = index._attribute_store()
    assert compile_where(F.pos == "q", store, index._ids.deleted).count == 0
    assert compile_where(F.tags.contains_all(["red", "nope"]), store, index._ids.deleted).count == 0


def test_parse_where_accepts_expressions_unchanged():
    expr = F.a == 1
    assert parse_where(expr) is expr
    assert "F.a" in repr((F.a == 1) & ~F.b.isin([1]))
