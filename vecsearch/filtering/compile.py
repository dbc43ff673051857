"""Compilation of a predicate over an index's attribute columns: the allowed live slots, counted exactly.

:func:`compile_where` turns a predicate (:mod:`vecsearch.filtering.predicates`) into
:class:`AllowedSlots` (a bool mask over the index's slots and the exact match count) with
vectorized numpy over the columns and their inverted and sorted indexes, O(rows) at worst.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..kernels.masks import mask_to_slots, range_mask
from .attributes import (
    AttributeStore,
    Column,
    is_bool_value,
    is_float_value,
    is_int_value,
    is_str_value,
)
from .predicates import (
    And,
    Between,
    Compare,
    Contains,
    Exists,
    Expr,
    In,
    IsTrue,
    Not,
    Or,
    TrueExpr,
    parse_where,
)

# ---- compilation ---------------------------------------------------------------------------------
# Sets with at most n / _IDS_FRACTION members are kept as sorted slot arrays, larger ones as masks.
_IDS_FRACTION = 32


class SlotSet:
    """A set of slots over ``n`` rows, held as a bool mask or a sorted unique int64 array."""

    __slots__ = ("_count", "_ids", "_mask", "n")

    def __init__(self, n: int, mask: np.ndarray | None = None, ids: np.ndarray | None = None, count: int | None = None):
        """``count`` (the number of True entries of ``mask``) may be given when already known."""
        self.n, self._mask, self._ids, self._count = n, mask, ids, count

    @classmethod
    def from_ids(cls, n: int, ids: np.ndarray) -> SlotSet:
        if ids.shape[0] * _IDS_FRACTION <= n:
            return cls(n, ids=ids)
        mask = np.zeros(n, np.bool_)
        mask[ids] = True
        return cls(n, mask=mask)

    @property
    def count(self) -> int:
        if self._count is None:
            self._count = int(self._ids.shape[0]) if self._ids is not None else int(np.count_nonzero(self._mask))
        return self._count

    def mask(self) -> np.ndarray:
        if self._mask is None:
            self._mask = np.zeros(self.n, np.bool_)
            self._mask[self._ids] = True
        return self._mask

    def ids(self) -> np.ndarray:
        if self._ids is None:
            self._ids = mask_to_slots(self._mask, self.count)
        return self._ids

    def __and__(self, other: SlotSet) -> SlotSet:
        if self._ids is not None and other._ids is not None:
            return SlotSet(self.n, ids=np.intersect1d(self._ids, other._ids, assume_unique=True))
        if self._ids is not None:
            return SlotSet(self.n, ids=self._ids[other.mask()[self._ids]])
        if other._ids is not None:
            return SlotSet(self.n, ids=other._ids[self._mask[other._ids]])
        return SlotSet(self.n, mask=self._mask & other._mask)

    def __or__(self, other: SlotSet) -> SlotSet:
        if self._ids is not None and other._ids is not None:
            return SlotSet.from_ids(self.n, np.union1d(self._ids, other._ids))
        return SlotSet(self.n, mask=self.mask() | other.mask())

    def invert(self, live: np.ndarray) -> SlotSet:
        return SlotSet(self.n, mask=live & ~self.mask())


class AllowedSlots:
    """Compiled filter: ``mask`` bool (n_slots,) over live slots, exact ``count``, sorted ``slots`` int64.

    ``plan_feedback`` belongs to :mod:`vecsearch.filtering.planner`: what its strategies observed while
    answering under this filter (a compiled filter is cached and reused by later calls).
    """

    def __init__(self, slot_set: SlotSet, n_live: int):
        self._set = slot_set
        self.count = slot_set.count
        self.n_live = n_live
        self.plan_feedback: list[int] | None = None

    @property
    def mask(self) -> np.ndarray:
        return self._set.mask()

    @property
    def slots(self) -> np.ndarray:
        return self._set.ids()

    @property
    def selectivity(self) -> float:
        return self.count / self.n_live if self.n_live else 0.0


def _kind_error(col: Column, what: str, value: Any = None) -> TypeError:
    got = "" if value is None else f", got {type(value).__name__} {value!r}"
    return TypeError(f"where: {what} is not valid on field {col.name!r} of type {col.kind}{got}")


def _check_value(col: Column, value: Any, what: str) -> None:
    ok = {
        "int": lambda v: is_int_value(v) or is_float_value(v),
        "float": lambda v: is_int_value(v) or is_float_value(v),
        "bool": is_bool_value,
        "str": is_str_value,
        "tags": is_str_value,
    }[col.kind](value)
    if not ok:
        expected = {"int": "a number", "float": "a number", "bool": "a bool", "str": "a str", "tags": "a str tag"}[col.kind]
        raise TypeError(
            f"where: {what} on field {col.name!r} (type {col.kind}) needs {expected}, got {type(value).__name__} {value!r}"
        )


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _int_bound(value: Any, low: bool, inclusive: bool) -> int | None:
    """The inclusive int64 bound equivalent to ``x >= value`` (``low``) or ``x <= value``, exclusive
    when not ``inclusive``; ``None`` when no int64 satisfies it. Exact for any int or float."""
    if is_float_value(value):
        if math.isinf(value):
            if (value < 0) == low:  # x >= -inf / x <= +inf: no bound
                return _INT64_MIN if low else _INT64_MAX
            return None
        if low:
            bound = math.ceil(value) if inclusive else math.floor(value) + 1
        else:
            bound = math.floor(value) if inclusive else math.ceil(value) - 1
    else:
        bound = int(value) + (0 if inclusive else (1 if low else -1))
    if low:
        return None if bound > _INT64_MAX else max(bound, _INT64_MIN)
    return None if bound < _INT64_MIN else min(bound, _INT64_MAX)


def _float_bound(value: Any, low: bool, inclusive: bool) -> float:
    """The inclusive float64 bound equivalent to ``x >= value`` (``low``) or ``x <= value`` (exclusive
    when not ``inclusive``), exact also for integers that float64 cannot hold (2**53 + 1)."""
    try:
        f = float(value)
    except OverflowError:
        f = math.inf if value > 0 else -math.inf
    toward = math.inf if low else -math.inf
    if low:
        outside = f < value if inclusive else f <= value
    else:
        outside = f > value if inclusive else f >= value
    return float(np.nextafter(f, toward)) if outside else f


def _range(col: Column, lo: Any, hi: Any, lo_incl: bool, hi_incl: bool, live: np.ndarray) -> SlotSet:
    """Rows with ``lo <= value <= hi`` (each bound exclusive when not ``*_incl``, open when None).

    Compared exactly in the column's own type: an int64 column against int64 bounds (a float
    bound is rounded to the int64 range it means), never through float64, which cannot tell
    apart integers above 2**53 (nanosecond timestamps, snowflake ids)."""
    empty = SlotSet(col.n, ids=np.empty(0, np.int64))
    if col.kind == "int":
        low = _INT64_MIN if lo is None else _int_bound(lo, True, lo_incl)
        high = _INT64_MAX if hi is None else _int_bound(hi, False, hi_incl)
        if low is None or high is None or low > high:
            return empty
        bounds: tuple[Any, Any] = (np.int64(low), np.int64(high))
    else:
        low_f = -math.inf if lo is None else _float_bound(lo, True, lo_incl)
        high_f = math.inf if hi is None else _float_bound(hi, False, hi_incl)
        if not low_f <= high_f:
            return empty
        bounds = (low_f, high_f)
    order, sorted_vals = col.sorted_index()
    a = int(np.searchsorted(sorted_vals, bounds[0], side="left"))
    b = int(np.searchsorted(sorted_vals, bounds[1], side="right"))
    if b <= a:
        return empty
    if (b - a) * _IDS_FRACTION <= col.n:
        return SlotSet(col.n, ids=np.sort(order[a:b]))
    # A wide range: one pass over the values (live rows only) beats scattering b - a matched rows
    # into a mask (116k rows, 50% range: ~10 us vs ~45 us).
    mask = np.empty(col.n, np.bool_)
    count = range_mask(col.values, col.valid, live, bounds[0], bounds[1], mask)
    return SlotSet(col.n, mask=mask, count=count)


def _exact_members(col: Column, values: tuple[Any, ...]) -> np.ndarray:
    """``values`` that a numeric column can hold exactly, as an array of its dtype (an int64 column
    equals 2.0 but never 2.5 or 2**64; a float64 column never equals 2**53 + 1)."""
    if col.kind == "int":
        ints = [int(v) for v in values if (is_int_value(v) or (math.isfinite(v) and float(v).is_integer()))]
        return np.array([v for v in ints if _INT64_MIN <= v <= _INT64_MAX], np.int64)
    out = []
    for v in values:
        try:
            f = float(v)
        except OverflowError:
            continue
        if f == v:
            out.append(f)
    return np.array(out, np.float64)


def _postings_union(col: Column, codes: list[int]) -> SlotSet:
    if not codes:
        return SlotSet(col.n, ids=np.empty(0, np.int64))
    if len(codes) == 1:
        return SlotSet.from_ids(col.n, col.postings(codes[0]))
    offsets, _ = col.inverted_index()
    total = int(sum(offsets[c + 1] - offsets[c] for c in codes))
    if col.kind == "str" and total * _IDS_FRACTION > col.n:
        lut = np.zeros(len(col.vocab) + 1, np.bool_)
        lut[codes] = True
        return SlotSet(col.n, mask=lut[col.values] & col.valid)  # code -1 (null) reads lut[-1] = False
    return SlotSet.from_ids(col.n, np.unique(np.concatenate([col.postings(c) for c in codes])))


def _equal(col: Column, value: Any, what: str, live: np.ndarray) -> SlotSet:
    _check_value(col, value, what)
    if col.kind in ("str", "tags"):
        code = col.code_of.get(value)
        return _postings_union(col, [] if code is None else [code])
    if col.kind == "bool":
        return SlotSet(col.n, mask=col.valid & (col.values == value))
    return _range(col, value, value, True, True, live)


def _compile(expr: Expr, store: AttributeStore, live: np.ndarray) -> SlotSet:
    n = store.n
    if isinstance(expr, TrueExpr):
        return SlotSet(n, mask=live.copy())
    if isinstance(expr, And):
        result = _compile(expr.items[0], store, live)
        for item in expr.items[1:]:
            result = result & _compile(item, store, live)
        return result
    if isinstance(expr, Or):
        result = _compile(expr.items[0], store, live)
        for item in expr.items[1:]:
            result = result | _compile(item, store, live)
        return result
    if isinstance(expr, Not):
        return _compile(expr.item, store, live).invert(live)
    col = store.column(expr.field)
    if isinstance(expr, Exists):
        return SlotSet(n, mask=col.valid.copy())
    if isinstance(expr, IsTrue) and col.kind != "bool":
        raise TypeError(
            f"where: the bare field F.{col.name} is a predicate only for bool fields; field {col.name!r} "
            f"is {col.kind}: compare it, e.g. F.{col.name} == value"
        )
    if isinstance(expr, Compare):
        op, value = expr.op, expr.value
        if op == "==":
            return _equal(col, value, "==", live)
        if op == "!=":
            return SlotSet(n, mask=col.valid & ~_equal(col, value, "!=", live).mask())
        if col.kind not in ("int", "float"):
            raise _kind_error(col, f"ordering comparison {op!r}", value)
        _check_value(col, value, op)
        if op in ("<", "<="):
            return _range(col, None, value, True, op == "<=", live)
        return _range(col, value, None, op == ">=", True, live)
    if isinstance(expr, Between):
        if col.kind not in ("int", "float"):
            raise _kind_error(col, "between()")
        _check_value(col, expr.lo, "between")
        _check_value(col, expr.hi, "between")
        return _range(col, expr.lo, expr.hi, True, True, live)
    if isinstance(expr, In):
        what = "not_in" if expr.negate else "isin"
        for v in expr.values:
            _check_value(col, v, what)
        if col.kind in ("str", "tags"):
            codes = sorted({col.code_of[v] for v in expr.values if v in col.code_of})
            matched = _postings_union(col, codes)
        elif col.kind == "bool":
            matched = SlotSet(n, mask=col.valid & np.isin(col.values, np.array(expr.values, np.bool_)))
        else:
            matched = SlotSet(n, mask=col.valid & np.isin(col.values, _exact_members(col, expr.values)))
        return SlotSet(n, mask=col.valid & ~matched.mask()) if expr.negate else matched
    if isinstance(expr, Contains):
        if col.kind != "tags":
            raise _kind_error(col, f"contains_{expr.mode}()")
        for v in expr.values:
            _check_value(col, v, f"contains_{expr.mode}")
        if expr.mode == "any":
            return _postings_union(col, sorted({col.code_of[v] for v in expr.values if v in col.code_of}))
        if not expr.values:
            return SlotSet(n, mask=col.valid.copy())
        if any(v not in col.code_of for v in expr.values):
            return SlotSet(n, ids=np.empty(0, np.int64))
        lists = sorted((col.postings(col.code_of[v]) for v in set(expr.values)), key=len)
        ids = lists[0]
        for other in lists[1:]:
            ids = np.intersect1d(ids, other, assume_unique=True)
        return SlotSet.from_ids(n, ids)
    raise TypeError(f"where: unsupported predicate node {type(expr).__name__}")


def compile_where(
    where: Any,
    store: AttributeStore | None,
    deleted: np.ndarray,
    *,
    live: np.ndarray | None = None,
    n_live: int | None = None,
) -> AllowedSlots:
    """Compile ``where`` (expression or dict) over ``store`` to the live slots that satisfy it.

    ``deleted`` bool (n_slots,) is the index's removed-slot mask; ``live`` (its negation) and
    ``n_live`` (its count) may be passed when the caller has them cached. Unknown fields raise
    ``ValueError``; values of the wrong type for a field raise ``TypeError``.
    """
    expr = parse_where(where)
    if live is None:
        live = ~deleted
    if n_live is None:
        n_live = int(np.count_nonzero(live))
    if store is None:
        store = AttributeStore()
        store.slot_ids = np.zeros(deleted.shape[0], np.int64)
    result = _compile(expr, store, live)
    if n_live < store.n:  # some slots are removed: keep live ones only
        result = result & SlotSet(store.n, mask=live)
    return AllowedSlots(result, n_live)
