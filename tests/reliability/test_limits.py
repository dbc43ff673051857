"""Extreme values and bad arguments, one test per reported problem: exact int64 filters, no float32
overflow, k-like parameters clamped, strict parameter types, errors that name the argument."""

from __future__ import annotations

import resource
import subprocess
import sys

import numpy as np
import pytest

import vecsearch as vs
from vecsearch import registry
from vecsearch.filtering.predicates import F
from vecsearch.validation import MAX_NORM


def _vectors(n: int = 40, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


# ---- integers above 2**53 in filters ------------------------------------------------------------
@pytest.fixture(scope="module")
def snowflakes():
    index = vs.FlatIndex(8, "l2")
    ts = 2**62 + np.arange(300, dtype=np.int64)  # not representable in float64: 2**62 + 1 == 2**62
    index.add(_vectors(300), attributes={"ts": ts})
    return index, ts


@pytest.mark.parametrize("where, count", [
    (F.ts >= 2**62 + 150, 150), (F.ts > 2**62 + 150, 149), (F.ts < 2**62 + 1, 1), (F.ts <= 2**62 + 1, 2),
    (F.ts.between(2**62 + 10, 2**62 + 12), 3), (F.ts.isin([2**62 + 10, 2**62 + 11]), 2), (F.ts == 2**62 + 7, 1),
    (F.ts.not_in([2**62]), 299), (F.ts != 2**62 + 1, 299), (F.ts < 2**70, 300), (F.ts > -(2**70), 300),
    (F.ts > 2**63, 0), (F.ts >= 1.5e18, 300), (F.ts < 2.0**62, 0), (F.ts <= 2.0**62, 1), (F.ts > 2.0**62, 299),
    (F.ts.isin([2.5, 2**64, 2.0**62]), 1),
])
def test_int64_range_filters_compare_exactly_above_2_pow_53(snowflakes, where, count):
    index, ts = snowflakes
    got = index.match(where)
    assert got.size == count
    want = [int(i) for i in index.ids() if eval_ts(where, int(ts[i]))]  # ids are 0..299, ts[id]
    assert sorted(got.tolist()) == want


def eval_ts(where, v):
    """The predicate in exact Python integer arithmetic (the oracle)."""
    op, value = type(where).__name__, getattr(where, "value", None)
    if op == "Between":
        return where.lo <= v <= where.hi
    if op == "In":
        return (v in where.values) != where.negate
    return {"==": v == value, "!=": v != value, "<": v < value, "<=": v <= value, ">": v > value, ">=": v >= value}[where.op]


def test_an_attribute_outside_int64_is_a_value_error_naming_the_field():
    with pytest.raises(ValueError, match="'big'.*int64"):
        vs.FlatIndex(8).add(_vectors(1), attributes={"big": [2**64]})
    with pytest.raises(ValueError, match="'big'.*int64"):
        vs.FlatIndex(8).add(_vectors(1), attributes={"big": np.array([2**63], np.uint64)})


def test_the_compiled_filter_cache_tells_structurally_different_filters_apart():
    index = vs.FlatIndex(8)
    index.add(_vectors(4), attributes={"x": [1, 2, None, 1], "x.exists()": [True, False, True, False],
                                      "f": [1.0, 1.5, 2.0, 1.0]})
    assert index.match(F["x.exists()"] == True).tolist() == [0, 2]
    assert index.match(F.x.exists()).tolist() == [0, 1, 3]
    assert index.match(F.x == 1).tolist() == [0, 3]
    assert index.match(F.f == 1).tolist() == [0, 3]
    assert index.match(F.f == 1.5).tolist() == [1]
    with pytest.raises(TypeError):
        index.match(F.x == True)


# ---- float32 overflow ------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1e-30, 1e19, 1e30])
def test_cosine_normalizes_tiny_and_huge_vectors_exactly(scale):
    x = _vectors(10)
    small, big = vs.FlatIndex(8, "cosine"), vs.FlatIndex(8, "cosine")
    small.add(x)
    big.add(x * np.float32(scale))
    for q in (x[:3], x[:3] * np.float32(scale)):
        a, b = small.search(x[:3], 5), big.search(q, 5)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_allclose(a.distances, b.distances, atol=1e-5)


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("record", [r for r in registry.all_types() if r.vector_input], ids=lambda r: r.name)
def test_vectors_whose_distances_overflow_float32_are_refused_with_a_clear_error(record, metric):
    index = record.cls(8, metric, **record.cls.suggested_params(300, 8))
    x = _vectors(300)
    too_big = x * np.float32(2 * MAX_NORM)
    if record.requires_training:
        with pytest.raises(ValueError, match="norm.*overflow float32"):
            index.train(too_big)
        index.train(x)
    with pytest.raises(ValueError, match="vectors: row 0 has norm"):
        index.add(too_big)
    assert index.ntotal == 0
    index.add(x)
    with pytest.raises(ValueError, match="queries: row 0 has norm"):
        index.search(too_big[:1], 3)
    with pytest.raises(ValueError, match="queries: row 0 has norm"):
        index.search(too_big[:100], 3)  # the batch path checks too


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_the_largest_accepted_vectors_still_rank_correctly(metric):
    """At the bound, every distance is finite and the order is the exact one (float64 oracle)."""
    x = _vectors(10)
    x = (x / np.linalg.norm(x, axis=1, keepdims=True) * np.float32(MAX_NORM * 0.999)).astype(np.float32)
    index = vs.FlatIndex(8, metric)
    index.add(x)
    res = index.search(x[:3], 10)
    assert np.isfinite(res.distances).all() and (res.ids >= 0).all()
    x64 = x.astype(np.float64)
    exact = ((x64[:3, None] - x64[None]) ** 2).sum(-1) if metric == "l2" else -(x64[:3] @ x64.T)
    for row, ids in zip(exact, res.ids):
        np.testing.assert_allclose(row[ids], np.sort(row), rtol=1e-5)


def test_multivector_token_vectors_are_bounded_too():
    index = vs.MultiVectorIndex(8, fde=vs.FDEConfig(reps=2, k_sim=2, d_proj=4))
    with pytest.raises(ValueError, match="docs: row 0 has norm"):
        index.add([_vectors(3) * np.float32(2 * MAX_NORM)])


# ---- k-like parameters ------------------------------------------------------------------------------
_HUGE_K_SCRIPT = """
import resource, sys, traceback, numpy as np, vecsearch as vs
from vecsearch import registry
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # 3 GiB: a 10**9-wide result would not fit
x = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
for record in registry.all_types():
    try:
        if record.vector_input:
            index = record.cls(8, "l2", **record.cls.suggested_params(300, 8))
            if record.requires_training:
                index.train(x)
            index.add(x[:5])
            queries = x[:2]
        else:
            index = record.cls(8, fde=vs.FDEConfig(reps=2, k_sim=2, d_proj=4))
            index.add([x[i : i + 2] for i in range(0, 10, 2)])
            queries = [x[:2], x[2:4]]
        res = index.search(queries, 10**9)
        assert res.ids.shape == (2, 4096) and (res.ids[:, :5] >= 0).all() and (res.ids[:, 5:] == -1).all(), res.ids.shape
        for knob in record.search_knobs:
            res = index.search(queries, 3, **{knob: 10**9})
            assert res.ids.shape == (2, 3) and (res.ids >= 0).all(), (knob, res.ids)
        print("ok", record.name, flush=True)
    except BaseException as exc:
        print("FAIL", record.name, type(exc).__name__, str(exc)[:300].replace(chr(10), " "), flush=True)
"""


@pytest.fixture(scope="module")
def huge_k_outcomes() -> dict[str, str]:
    """One child for every type (under a 3 GiB address-space limit): type name -> "ok" or the failure."""
    proc = subprocess.run([sys.executable, "-c", _HUGE_K_SCRIPT], capture_output=True, text=True, check=False, timeout=300)
    out = {}
    for line in proc.stdout.splitlines():
        status, name, *rest = line.split(" ", 2)
        out[name] = "ok" if status == "ok" else " ".join(rest)
    out["_stderr"] = proc.stderr[-2000:]
    return out


@pytest.mark.parametrize("record", registry.all_types(), ids=lambda r: r.name)
def test_huge_k_and_search_widths_are_clamped_to_what_can_be_returned(huge_k_outcomes, record):
    assert huge_k_outcomes.get(record.name) == "ok", huge_k_outcomes.get(record.name, huge_k_outcomes["_stderr"])


def test_k_up_to_4096_keeps_the_padded_shape():
    index = vs.FlatIndex(4)
    index.add(np.eye(4, dtype=np.float32))
    assert index.search(np.ones(4, np.float32), 4096).ids.shape == (1, 4096)
    assert index.search(np.ones(4, np.float32), 4097).ids.shape == (1, 4096)


# ---- strict parameter types ---------------------------------------------------------------------
@pytest.mark.parametrize("make, pattern", [
    (lambda: vs.HNSWIndex(8, M="16"), "M"),
    (lambda: vs.HNSWIndex(8, M=16.0), "M"),
    (lambda: vs.HNSWIndex(8, ef_search=True), "ef_search"),
    (lambda: vs.IVFPQIndex(8, nlist="4", m=2), "nlist"),
    (lambda: vs.IVFPQIndex(8, nlist=4, m=2, opq="yes"), "opq"),
    (lambda: vs.IVFPQIndex(8, nlist=4, m=2, keep_vectors=1), "keep_vectors"),
    (lambda: vs.LeanVecIndex(8, M="8"), "M"),
])
def test_parameters_of_the_wrong_type_are_type_errors_not_coerced(make, pattern):
    with pytest.raises(TypeError, match=pattern):
        make()


def test_numpy_integers_are_accepted_as_parameters():
    assert vs.HNSWIndex(8, M=np.int64(8)).M == 8


@pytest.mark.parametrize("make", [lambda: vs.HNSWIndex(8, seed=-1), lambda: vs.IVFPQIndex(8, nlist=4, m=2, seed=-1),
                                  lambda: vs.LeanVecIndex(8, seed=-1)])
def test_a_negative_seed_is_refused_when_the_index_is_made(make):
    with pytest.raises(ValueError, match="seed"):
        make()


@pytest.mark.parametrize("knob, value", [("ef", True), ("ef", "64"), ("ef", 1.5)])
def test_search_knobs_of_the_wrong_type_are_type_errors(knob, value):
    index = vs.HNSWIndex(8, M=4)
    index.add(_vectors())
    with pytest.raises(TypeError, match=knob):
        index.search(_vectors(1), 3, **{knob: value})


# ---- errors that name the argument ------------------------------------------------------------------
@pytest.mark.parametrize("call, pattern", [
    (lambda ix: ix.add([[1.0] * 8, [1.0] * 7]), "vectors: expected a rectangular array"),
    (lambda ix: ix.search([[1.0] * 8, [1.0]], 2), "queries: expected a rectangular array"),
    (lambda ix: ix.remove([[1, 2]]), r"ids: expected one id or a 1-D sequence of ids, got shape \(1, 2\)"),
    (lambda ix: ix.remove([[1], [2, 3]]), "ids: expected a rectangular array"),
    (lambda ix: ix.remove(["a"]), "ids: expected integer ids"),
    (lambda ix: ix.remove([2**64]), "ids: id 18446744073709551616 is outside int64"),
    (lambda ix: ix.add(_vectors(2), ids=[2**63, 1]), "ids: id 9223372036854775808 is outside int64"),
    (lambda ix: ix.update_attributes([[1]], {"year": 1}), "ids: expected one id"),
    (lambda ix: ix.reconstruct(["x"]), "ids: expected integer ids"),
])
def test_bad_arguments_raise_errors_that_name_them(call, pattern):
    index = vs.FlatIndex(8)
    index.add(_vectors(4), attributes={"year": [1, 2, 3, 4]})
    with pytest.raises((ValueError, TypeError), match=pattern):
        call(index)
    assert index.ntotal == 4


def test_collection_n_results_is_named_when_bad_and_clamped_when_huge():
    from vecsearch.store.collection import Collection

    col = Collection(dim=8, index="flat")
    col.add(ids=[str(i) for i in range(5)], embeddings=_vectors(5))
    with pytest.raises(ValueError, match="n_results"):
        col.query(_vectors(1), n_results=0)
    with pytest.raises(TypeError, match="n_results"):
        col.query(_vectors(1), n_results=2.5)
    assert col.query(_vectors(1), n_results=10**9)["ids"] == col.query(_vectors(1), n_results=5)["ids"]  # all 5, no padding


def test_update_attributes_accepts_a_bare_value_for_one_id():
    """The README's own example: update_attributes([17], {"year": 2024})."""
    index = vs.FlatIndex(8)
    index.add(_vectors(20), attributes={"year": list(range(20)), "lang": ["en"] * 20})
    index.update_attributes([17], {"year": 2024})
    index.update_attributes(3, {"lang": "de", "year": None})
    assert index.get_attributes(17) == {"year": 2024, "lang": "en"}
    assert index.get_attributes(3) == {"lang": "de"}
    with pytest.raises(TypeError, match="expected a column of 2 values"):
        index.update_attributes([1, 2], {"year": 5})  # several ids still need one value each


def test_load_arguments_are_checked(tmp_path):
    index = vs.FlatIndex(4)
    index.save(tmp_path / "i")
    with pytest.raises(TypeError, match="mmap"):
        vs.load(tmp_path / "i", mmap="yes")
    with pytest.raises(TypeError, match="path"):
        vs.load(42)


def test_string_attributes_survive_save_and_load_byte_for_byte(tmp_path):
    values = ["abc\x00", "\x00", "", "é\u2603", "tab\there", "abc", "\ud800"]
    index = vs.FlatIndex(4)
    index.add(np.eye(4, dtype=np.float32)[np.arange(len(values)) % 4] + np.arange(len(values))[:, None],
              attributes={"s": values, "t": [[v, "x"] for v in values]})
    index.save(tmp_path / "i")
    loaded = vs.load(tmp_path / "i")
    for i, v in enumerate(values):
        assert loaded.get_attributes(i) == {"s": v, "t": [v, "x"]}
        assert loaded.match(F.s == v).tolist() == [i]


def test_rlimit_is_available_for_the_memory_bound_checks():
    assert resource.getrlimit(resource.RLIMIT_AS)  # the huge-k script relies on it (POSIX)
