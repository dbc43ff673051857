"""Predicate language for filtered search: ``vs.F`` expressions, the Mongo/Chroma dict form, compilation.

Build predicates from fields of :data:`F`::

    (F.year >= 2020) & (F.lang == "en")          F.lang.isin(["en", "de"])    F.price.between(1, 9)
    F.tags.contains_any(["a", "b"])              F.tags.contains_all(["a"])    ~(F.pos == "n") | F.draft

or pass the equivalent dict form (``{"$and": [{"year": {"$gte": 2020}}, {"lang": "en"}]}``; operators
``$and $or $not $eq $ne $gt $gte $lt $lte $in $nin $contains $all $exists``; several keys in one dict
are AND-ed; on a tags field ``{"tags": "x"}`` and ``$in`` mean "contains", as in MongoDB).

Semantics: a comparison matches only rows where the field has a value (nulls match nothing, also
for ``!=`` and ``$nin``); ``~p`` is the complement of ``p`` among the live rows. Python's
``and``/``or``/``not`` and chained comparisons (``a < F.x < b``) raise ``TypeError``.

:func:`vecsearch.filtering.compile.compile_where` turns a predicate into
:class:`~vecsearch.filtering.compile.AllowedSlots` (a bool mask over the index's slots and the exact
match count).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .attributes import is_bool_value, is_float_value, is_int_value, is_str_value

_BOOL_ERROR = (
    "where: a predicate has no truth value; combine predicates with & | ~ and parentheses, "
    "e.g. (F.a == 1) & (F.b > 2), not with and/or/not; for ranges use F.x.between(lo, hi) instead of lo < F.x < hi"
)


def _check_scalar(value: Any, where: str) -> Any:
    if not (is_bool_value(value) or is_int_value(value) or is_float_value(value) or is_str_value(value)):
        raise TypeError(f"{where}: expected an int, float, bool or str value, got {type(value).__name__} {value!r}")
    if is_float_value(value) and math.isnan(value):
        raise ValueError(f"{where}: NaN is not a valid comparison value")
    return value.item() if isinstance(value, np.generic) else value


def _typed(value: Any) -> Any:
    """A cache-key element that tells ``1``, ``1.0`` and ``True`` apart (tuples of values recursively)."""
    if isinstance(value, tuple):
        return tuple(_typed(v) for v in value)
    return (type(value).__name__, value)


def _check_list(values: Any, where: str) -> tuple[Any, ...]:
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{where}: expected a list of values, got {type(values).__name__} {values!r}")
    return tuple(_check_scalar(v, where) for v in values)


class Expr:
    """A predicate node; combine with ``&``, ``|``, ``~``."""

    def __and__(self, other: Any) -> Expr:
        return And((self, parse_where(other)))

    def __rand__(self, other: Any) -> Expr:
        return And((parse_where(other), self))

    def __or__(self, other: Any) -> Expr:
        return Or((self, parse_where(other)))

    def __ror__(self, other: Any) -> Expr:
        return Or((parse_where(other), self))

    def __invert__(self) -> Expr:
        return Not(self)

    def __bool__(self) -> bool:
        raise TypeError(_BOOL_ERROR)

    @property
    def key(self) -> tuple:
        """The predicate's structure as nested tuples (node kind, field, operator, typed values),
        computed once: keys the compiled-filter cache. Structural, so a field literally named
        ``"x.exists()"`` never shares a key with ``F.x.exists()``, nor ``1`` with ``True`` or ``1.0``."""
        key = self.__dict__.get("_key")
        if key is None:
            key = self.__dict__["_key"] = self._structure()
        return key

    def _structure(self) -> tuple:
        items = tuple(_typed(v) if not isinstance(v, Expr) else v.key for v in self._parts())
        return (type(self).__name__, *items)

    def _parts(self) -> tuple:
        return ()


class TrueExpr(Expr):
    def __repr__(self) -> str:
        return "TRUE"


class Compare(Expr):
    """``field op value`` with op in ``== != < <= > >=``."""

    def __init__(self, field: str, op: str, value: Any):
        self.field, self.op, self.value = field, op, _check_scalar(value, f"where: F.{field} {op}")

    def _parts(self) -> tuple:
        return (self.field, self.op, self.value)

    def __repr__(self) -> str:
        return f"(F.{self.field} {self.op} {self.value!r})"


class IsTrue(Compare):
    """A bare bool field used as a predicate (``F.draft``, ``~F.draft``): ``field == True``."""

    def __init__(self, field: str):
        super().__init__(field, "==", True)

    def __repr__(self) -> str:
        return f"F.{self.field}"


class Between(Expr):
    """``lo <= field <= hi`` (inclusive)."""

    def __init__(self, field: str, lo: Any, hi: Any):
        self.field = field
        self.lo = _check_scalar(lo, f"where: F.{field}.between")
        self.hi = _check_scalar(hi, f"where: F.{field}.between")

    def _parts(self) -> tuple:
        return (self.field, self.lo, self.hi)

    def __repr__(self) -> str:
        return f"F.{self.field}.between({self.lo!r}, {self.hi!r})"


class In(Expr):
    """``field in values`` (``negate``: present and not in values); on tags: contains any."""

    def __init__(self, field: str, values: Any, negate: bool = False):
        self.field, self.negate = field, negate
        self.values = _check_list(values, f"where: F.{field}.{'not_in' if negate else 'isin'}")

    def _parts(self) -> tuple:
        return (self.field, self.negate, self.values)

    def __repr__(self) -> str:
        return f"F.{self.field}.{'not_in' if self.negate else 'isin'}({list(self.values)!r})"


class Contains(Expr):
    """Tags field holds any / all of ``values``."""

    def __init__(self, field: str, values: Any, mode: str):
        self.field, self.mode = field, mode
        self.values = _check_list(values, f"where: F.{field}.contains_{mode}")

    def _parts(self) -> tuple:
        return (self.field, self.mode, self.values)

    def __repr__(self) -> str:
        return f"F.{self.field}.contains_{self.mode}({list(self.values)!r})"


class Exists(Expr):
    def __init__(self, field: str):
        self.field = field

    def _parts(self) -> tuple:
        return (self.field,)

    def __repr__(self) -> str:
        return f"F.{self.field}.exists()"


class And(Expr):
    def __init__(self, items: tuple[Expr, ...]):
        self.items = items

    def _parts(self) -> tuple:
        return self.items

    def __repr__(self) -> str:
        return "(" + " & ".join(map(repr, self.items)) + ")"


class Or(Expr):
    def __init__(self, items: tuple[Expr, ...]):
        self.items = items

    def _parts(self) -> tuple:
        return self.items

    def __repr__(self) -> str:
        return "(" + " | ".join(map(repr, self.items)) + ")"


class Not(Expr):
    def __init__(self, item: Expr):
        self.item = item

    def _parts(self) -> tuple:
        return (self.item,)

    def __repr__(self) -> str:
        return f"~{self.item!r}"


class Field:
    """A named attribute; comparisons and methods build :class:`Expr` nodes."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, name: str):
        self.name = name

    def __eq__(self, value: object) -> Expr:  # type: ignore[override]
        return Compare(self.name, "==", value)

    def __ne__(self, value: object) -> Expr:  # type: ignore[override]
        return Compare(self.name, "!=", value)

    def __lt__(self, value: Any) -> Expr:
        return Compare(self.name, "<", value)

    def __le__(self, value: Any) -> Expr:
        return Compare(self.name, "<=", value)

    def __gt__(self, value: Any) -> Expr:
        return Compare(self.name, ">", value)

    def __ge__(self, value: Any) -> Expr:
        return Compare(self.name, ">=", value)

    def isin(self, values: Any) -> Expr:
        return In(self.name, values)

    def not_in(self, values: Any) -> Expr:
        return In(self.name, values, negate=True)

    def between(self, lo: Any, hi: Any) -> Expr:
        return Between(self.name, lo, hi)

    def contains(self, value: Any) -> Expr:
        return Contains(self.name, [value], "any")

    def contains_any(self, values: Any) -> Expr:
        return Contains(self.name, values, "any")

    def contains_all(self, values: Any) -> Expr:
        return Contains(self.name, values, "all")

    def exists(self) -> Expr:
        return Exists(self.name)

    # A bare field combined with & | ~ is a bool field test (F.draft == True).
    def __and__(self, other: Any) -> Expr:
        return IsTrue(self.name) & other

    def __rand__(self, other: Any) -> Expr:
        return parse_where(other) & IsTrue(self.name)

    def __or__(self, other: Any) -> Expr:
        return IsTrue(self.name) | other

    def __ror__(self, other: Any) -> Expr:
        return parse_where(other) | IsTrue(self.name)

    def __invert__(self) -> Expr:
        return ~IsTrue(self.name)

    def __bool__(self) -> bool:
        raise TypeError(_BOOL_ERROR)

    def __repr__(self) -> str:
        return f"F.{self.name}"


class _Fields:
    """``F.year`` or ``F["field name"]`` -> :class:`Field`."""

    def __getattr__(self, name: str) -> Field:
        if name.startswith("__"):
            raise AttributeError(name)
        return Field(name)

    def __getitem__(self, name: str) -> Field:
        if not isinstance(name, str):
            raise TypeError(f"F[...]: expected a field name (str), got {type(name).__name__}")
        return Field(name)


F = _Fields()

# ---- dict form -----------------------------------------------------------------------------------
_FIELD_OPS = {
    "$eq": lambda f, v: Field(f) == v,
    "$ne": lambda f, v: Field(f) != v,
    "$gt": lambda f, v: Field(f) > v,
    "$gte": lambda f, v: Field(f) >= v,
    "$lt": lambda f, v: Field(f) < v,
    "$lte": lambda f, v: Field(f) <= v,
    "$in": lambda f, v: Field(f).isin(v),
    "$nin": lambda f, v: Field(f).not_in(v),
    "$contains": lambda f, v: Field(f).contains(v),
    "$all": lambda f, v: Field(f).contains_all(v),
}


def _combine(parts: list[Expr], cls: type) -> Expr:
    if not parts:
        return TrueExpr()
    return parts[0] if len(parts) == 1 else cls(tuple(parts))


def _parse_field(field: str, spec: Any, path: str) -> Expr:
    if isinstance(spec, dict):
        parts = []
        for op, arg in spec.items():
            if op == "$exists":
                if not is_bool_value(arg):
                    raise TypeError(f"{path}[{field!r}]['$exists']: expected true or false, got {arg!r}")
                parts.append(Exists(field) if arg else Not(Exists(field)))
            elif op == "$not":
                parts.append(Not(_parse_field(field, arg, f"{path}[{field!r}]")))
            elif op in _FIELD_OPS:
                parts.append(_FIELD_OPS[op](field, arg))
            else:
                raise ValueError(f"{path}[{field!r}]: unknown operator {op!r} (known: {sorted([*_FIELD_OPS, '$exists', '$not'])})")
        if not parts:
            raise ValueError(f"{path}[{field!r}]: empty operator dict")
        return _combine(parts, And)
    if isinstance(spec, (list, tuple, set, np.ndarray)):
        raise TypeError(f"{path}[{field!r}]: a list is not a value; use {{'$in': [...]}} or {{'$all': [...]}}")
    return Field(field) == spec


def _parse_doc(doc: dict, path: str) -> Expr:
    parts: list[Expr] = []
    for key, value in doc.items():
        if not isinstance(key, str):
            raise TypeError(f"{path}: keys must be field names or operators (str), got {key!r}")
        if key in ("$and", "$or"):
            if not isinstance(value, (list, tuple)) or not value:
                raise ValueError(f"{path}[{key!r}]: expected a non-empty list of conditions, got {value!r}")
            subs = [parse_where(v, f"{path}[{key!r}][{i}]") for i, v in enumerate(value)]
            parts.append(_combine(subs, And if key == "$and" else Or))
        elif key == "$not":
            parts.append(Not(parse_where(value, f"{path}['$not']")))
        elif key.startswith("$"):
            raise ValueError(f"{path}: unknown top-level operator {key!r} (known: '$and', '$or', '$not')")
        else:
            parts.append(_parse_field(key, value, path))
    return _combine(parts, And)


def parse_where(where: Any, path: str = "where") -> Expr:
    """An :class:`Expr` from an expression or the dict form; raises ``TypeError``/``ValueError`` on bad input."""
    if isinstance(where, Expr):
        return where
    if isinstance(where, dict):
        return _parse_doc(where, path)
    if isinstance(where, Field):
        return IsTrue(where.name)
    raise TypeError(
        f"{path}: expected a predicate such as vs.F.year >= 2020 or a dict such as "
        f"{{'year': {{'$gte': 2020}}}}, got {type(where).__name__} {where!r}"
    )
