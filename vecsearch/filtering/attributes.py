"""Columnar attribute store: typed per-slot columns with inverted and sorted indexes for filtering.

One :class:`AttributeStore` belongs to an index (``Index._attributes``) and holds one row per
internal *slot* of that index (removed slots keep a row; the live mask comes from the index's
``IdMap``). Column kinds:

``int``    int64 values; sorted index (value order) for range predicates.
``float``  float64 values (float64 so that ``F.price >= 0.1`` means what it says); sorted index.
``bool``   bool values.
``str``    categorical: int32 codes into a vocabulary, inverted index code -> slots.
``tags``   multi-valued strings: CSR (``offsets`` int64 (n+1,), ``codes`` int32 (nnz,)) and an
           inverted index code -> slots.

Every column has a ``valid`` mask: a row that never got a value (field missing in that add, or set
to ``None``) is *null* and matches no comparison. Indexes are built lazily on first use and dropped
on every mutation, so a write costs O(rows written) plus, for tags, one O(nnz) CSR rebuild.
Attributes are given as a dict of columns (``{"year": [...], "lang": [...]}``) or a list of
per-row dicts (``[{"year": 2020, "lang": "en"}, ...]``); for a single row a column may be a bare
value (``update_attributes(17, {"year": 2024})``). Integers must fit int64.

Saved vocabularies are UTF-8 bytes plus offsets, so any string (``"abc\x00"``, lone surrogates)
comes back exactly; numpy's fixed-width ``<U`` arrays (the version-1 layout, still read) drop
trailing NUL characters.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

KINDS = ("int", "float", "bool", "str", "tags")
_ARRAY_PREFIX = "attr__"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FLOAT64_MAX_INT = int(np.finfo(np.float64).max)


def is_int_value(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_float_value(v: Any) -> bool:
    return isinstance(v, (float, np.floating))


def is_bool_value(v: Any) -> bool:
    return isinstance(v, (bool, np.bool_))


def is_str_value(v: Any) -> bool:
    return isinstance(v, (str, np.str_))


def is_scalar_value(v: Any) -> bool:
    """One attribute value (or None), as opposed to a column of values or a tag list."""
    return v is None or is_bool_value(v) or is_int_value(v) or is_float_value(v) or is_str_value(v)


def is_tags_value(v: Any) -> bool:
    return isinstance(v, (list, tuple, set, frozenset)) or (isinstance(v, np.ndarray) and v.ndim == 1)


def infer_kind(field: str, values: Any) -> str:
    """Column kind of a sequence of values (``None`` entries are nulls and ignored)."""
    if isinstance(values, np.ndarray) and values.dtype != object:
        if values.ndim != 1:
            raise ValueError(f"attributes[{field!r}]: expected a 1-D column, got shape {values.shape}")
        if values.dtype == np.bool_:
            return "bool"
        if np.issubdtype(values.dtype, np.integer):
            return "int"
        if np.issubdtype(values.dtype, np.floating):
            return "float"
        if values.dtype.kind in "US":
            return "str"
        raise TypeError(f"attributes[{field!r}]: unsupported dtype {values.dtype}")
    present = [v for v in values if v is not None]
    if not present:
        raise ValueError(f"attributes[{field!r}]: cannot infer a type from a column of only None values")
    if all(is_bool_value(v) for v in present):
        return "bool"
    if all(is_int_value(v) for v in present):
        return "int"
    if all(is_int_value(v) or is_float_value(v) for v in present):
        return "float"
    if all(is_str_value(v) for v in present):
        return "str"
    if all(is_tags_value(v) for v in present):
        return "tags"
    kinds = sorted({type(v).__name__ for v in present})
    raise TypeError(
        f"attributes[{field!r}]: expected one type per column (int, float, bool, str or a list of str tags), got {kinds}"
    )


class Column:
    """One typed column over ``n`` slots (see the module docstring for the layout per kind)."""

    def __init__(self, name: str, kind: str, n: int = 0):
        if kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
        self.name, self.kind = name, kind
        self.valid = np.zeros(n, np.bool_)
        self.vocab: list[str] = []
        self.code_of: dict[str, int] = {}
        if kind == "int":
            self.values = np.zeros(n, np.int64)
        elif kind == "float":
            self.values = np.zeros(n, np.float64)
        elif kind == "bool":
            self.values = np.zeros(n, np.bool_)
        elif kind == "str":
            self.values = np.full(n, -1, np.int32)
        else:
            self.offsets = np.zeros(n + 1, np.int64)
            self.codes = np.empty(0, np.int32)
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None
        self._inverted: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def n(self) -> int:
        return int(self.valid.shape[0])

    # ---- value conversion ------------------------------------------------------------------
    def _code(self, value: str) -> int:
        code = self.code_of.get(value)
        if code is None:
            code = len(self.vocab)
            self.vocab.append(value)
            self.code_of[value] = code
        return code

    def check_value(self, value: Any, where: str) -> None:
        """Raise ``TypeError`` if ``value`` (not None) does not fit this column's kind."""
        ok = {
            "int": is_int_value,
            "float": lambda v: is_int_value(v) or is_float_value(v),
            "bool": is_bool_value,
            "str": is_str_value,
            "tags": lambda v: is_tags_value(v) and all(is_str_value(t) for t in v),
        }[self.kind](value)
        if not ok:
            expected = "a list of str" if self.kind == "tags" else self.kind
            raise TypeError(f"{where}: field {self.name!r} holds {expected} values, got {type(value).__name__} {value!r}")

    def convert(self, values: Any, where: str) -> tuple[np.ndarray, Any]:
        """Validate ``values`` (sequence, ``None`` = null) -> ``(valid bool (m,), payload)``; no state change."""
        if isinstance(values, np.ndarray) and values.dtype != object and self.kind != "tags":
            kind = infer_kind(self.name, values) if values.size else self.kind
            compatible = kind == self.kind or (self.kind == "float" and kind == "int")
            if not compatible:
                raise TypeError(f"{where}: field {self.name!r} holds {self.kind} values, got an array of dtype {values.dtype}")
            valid = np.ones(values.shape[0], np.bool_)
            if self.kind == "str":
                return valid, [str(v) for v in values.tolist()]
            if values.dtype == np.uint64 and values.size and int(values.max()) > INT64_MAX:
                raise ValueError(f"{where}: field {self.name!r} holds int64 values, got {int(values.max())} (above 2**63-1)")
            dtype = {"int": np.int64, "float": np.float64, "bool": np.bool_}[self.kind]
            return valid, values.astype(dtype)
        vals = list(values)
        valid = np.array([v is not None for v in vals], np.bool_)
        for v in vals:
            if v is not None:
                self.check_value(v, where)
        if self.kind in ("str", "tags"):
            if self.kind == "tags":
                return valid, [[str(t) for t in v] if v is not None else [] for v in vals]
            return valid, [str(v) if v is not None else None for v in vals]
        dtype = {"int": np.int64, "float": np.float64, "bool": np.bool_}[self.kind]
        fill = {"int": 0, "float": 0.0, "bool": False}[self.kind]
        if self.kind == "int":
            for v in vals:
                if v is not None and not INT64_MIN <= int(v) <= INT64_MAX:
                    raise ValueError(f"{where}: field {self.name!r} holds int64 values, got {int(v)} (outside -2**63..2**63-1)")
        elif self.kind == "float":
            for v in vals:
                if v is not None and is_int_value(v) and abs(int(v)) > FLOAT64_MAX_INT:
                    raise ValueError(f"{where}: field {self.name!r} holds float64 values, got {int(v)} (beyond float64)")
        return valid, np.array([fill if v is None else v for v in vals], dtype)

    # ---- mutation ----------------------------------------------------------------------------
    def _invalidate(self) -> None:
        self._sorted = None
        self._inverted = None

    def resize(self, n: int) -> None:
        """Grow to ``n`` rows; new rows are null."""
        extra = n - self.n
        if extra <= 0:
            return
        self.valid = np.concatenate([self.valid, np.zeros(extra, np.bool_)])
        if self.kind == "tags":
            self.offsets = np.concatenate([self.offsets, np.full(extra, self.offsets[-1], np.int64)])
        else:
            fill = -1 if self.kind == "str" else 0
            self.values = np.concatenate([self.values, np.full(extra, fill, self.values.dtype)])
        self._invalidate()

    def set_rows(self, slots: np.ndarray, valid: np.ndarray, payload: Any) -> None:
        """Write converted values (from :meth:`convert`) at ``slots`` (int64, unique)."""
        self._invalidate()
        self.valid = self.valid.copy() if not self.valid.flags.writeable else self.valid
        self.valid[slots] = valid
        if self.kind == "tags":
            self._set_tags(slots, [[self._code(t) for t in dict.fromkeys(row)] for row in payload])
            return
        if not self.values.flags.writeable:
            self.values = self.values.copy()
        if self.kind == "str":
            self.values[slots] = np.array([-1 if v is None else self._code(v) for v in payload], np.int32)
        else:
            self.values[slots] = payload

    def _set_tags(self, slots: np.ndarray, rows: list[list[int]]) -> None:
        lengths = np.diff(self.offsets)
        old_lengths = lengths.copy()
        lengths[slots] = [len(r) for r in rows]
        offsets = np.zeros(self.n + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        codes = np.empty(int(offsets[-1]), np.int32)
        keep_row = np.ones(self.n, np.bool_)
        keep_row[slots] = False
        kept_rows = np.flatnonzero(keep_row & (old_lengths > 0))
        if kept_rows.size:
            src, dst = _csr_positions(self.offsets, offsets, kept_rows, old_lengths[kept_rows])
            codes[dst] = self.codes[src]
        for s, r in zip(slots.tolist(), rows):
            codes[offsets[s] : offsets[s] + len(r)] = r
        self.offsets, self.codes = offsets, codes

    def clear_rows(self, slots: np.ndarray) -> None:
        """Make ``slots`` null."""
        self.set_rows(slots, np.zeros(slots.shape[0], np.bool_), _null_payload(self.kind, slots.shape[0]))

    def take(self, mapping: np.ndarray) -> None:
        """Reorder rows: new row ``j`` = old row ``mapping[j]`` (``-1`` -> null)."""
        self._invalidate()
        has = mapping >= 0
        src_rows = np.where(has, mapping, 0)
        self.valid = self.valid[src_rows] & has
        if self.kind != "tags":
            values = self.values[src_rows]
            if self.kind == "str":
                values[~has] = -1
            self.values = values
            return
        old_lengths = np.diff(self.offsets)
        lengths = np.where(has, old_lengths[src_rows], 0)
        offsets = np.zeros(mapping.shape[0] + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        codes = np.empty(int(offsets[-1]), np.int32)
        rows = np.flatnonzero(lengths > 0)
        if rows.size:
            starts_old = self.offsets[src_rows[rows]]
            counts = lengths[rows]
            within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
            codes[np.repeat(offsets[rows], counts) + within] = self.codes[np.repeat(starts_old, counts) + within]
        self.offsets, self.codes = offsets, codes

    # ---- indexes -----------------------------------------------------------------------------
    def sorted_index(self) -> tuple[np.ndarray, np.ndarray]:
        """``(order int64 (m,), sorted_values (m,))`` over the valid rows (numeric columns)."""
        if self._sorted is None:
            rows = np.flatnonzero(self.valid)
            order = rows[np.argsort(self.values[rows], kind="stable")]
            self._sorted = (order, self.values[order])
        return self._sorted

    def inverted_index(self) -> tuple[np.ndarray, np.ndarray]:
        """``(offsets int64 (V+1,), slots int64)``: slots holding code ``c`` are ``slots[offsets[c]:offsets[c+1]]``, ascending."""
        if self._inverted is None:
            n_codes = len(self.vocab)
            if self.kind == "str":
                rows = np.flatnonzero(self.valid & (self.values >= 0))
                codes = self.values[rows]
            else:
                rows = np.repeat(np.arange(self.n, dtype=np.int64), np.diff(self.offsets))
                codes = self.codes
            order = np.argsort(codes, kind="stable")
            offsets = np.zeros(n_codes + 1, np.int64)
            np.cumsum(np.bincount(codes, minlength=n_codes), out=offsets[1:])
            self._inverted = (offsets, rows[order])
        return self._inverted

    def postings(self, code: int) -> np.ndarray:
        offsets, slots = self.inverted_index()
        return slots[offsets[code] : offsets[code + 1]]

    def tags_of(self, slot: int) -> list[str]:
        return [self.vocab[c] for c in self.codes[self.offsets[slot] : self.offsets[slot + 1]].tolist()]

    def value_of(self, slot: int) -> Any:
        """Python value at ``slot`` (``None`` if null)."""
        if not self.valid[slot]:
            return None
        if self.kind == "tags":
            return self.tags_of(slot)
        if self.kind == "str":
            return self.vocab[int(self.values[slot])]
        return self.values[slot].item()


def _null_payload(kind: str, m: int) -> Any:
    if kind in ("str", "tags"):
        return [None] * m if kind == "str" else [[] for _ in range(m)]
    return np.zeros(m, {"int": np.int64, "float": np.float64, "bool": np.bool_}[kind])


def _csr_positions(old_offsets, new_offsets, rows, lengths):
    """Element positions ``(src, dst)`` copying CSR ``rows`` (with ``lengths``) between layouts."""
    within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(old_offsets[rows], lengths) + within, np.repeat(new_offsets[rows], lengths) + within


def normalize_attributes(attributes: Any, n: int, name: str = "attributes") -> dict[str, Any]:
    """Turn a dict of columns or a list of per-row dicts into ``{field: sequence of n values}``."""
    if isinstance(attributes, dict):
        out = {}
        for field, column in attributes.items():
            if not isinstance(field, str):
                raise TypeError(f"{name}: field names must be str, got {type(field).__name__} {field!r}")
            if n == 1 and is_scalar_value(column):  # update_attributes(17, {"year": 2024})
                column = [column]
            if isinstance(column, (str, bytes)) or not hasattr(column, "__len__"):
                raise TypeError(f"{name}[{field!r}]: expected a column of {n} values, got {type(column).__name__}")
            if isinstance(column, np.ndarray) and column.ndim != 1:
                raise ValueError(f"{name}[{field!r}]: expected shape ({n},), got {column.shape}")
            if len(column) != n:
                raise ValueError(f"{name}[{field!r}]: expected {n} values (one per vector), got {len(column)}")
            out[field] = column
        return out
    if isinstance(attributes, (list, tuple)):
        if len(attributes) != n:
            raise ValueError(f"{name}: expected a list of {n} dicts (one per vector), got {len(attributes)}")
        fields: dict[str, None] = {}
        for i, row in enumerate(attributes):
            if not isinstance(row, dict):
                raise TypeError(f"{name}[{i}]: expected a dict of field -> value, got {type(row).__name__}")
            for field in row:
                if not isinstance(field, str):
                    raise TypeError(f"{name}[{i}]: field names must be str, got {field!r}")
                fields.setdefault(field)
        return {f: [row.get(f) for row in attributes] for f in fields}
    raise TypeError(f"{name}: expected a dict of columns or a list of dicts, got {type(attributes).__name__}")


# Versions of attribute-store contents, unique across all stores of the process.
_STORE_VERSIONS = itertools.count(1)


class AttributeStore:
    """Typed columns over the slots of one index, kept aligned with its ``IdMap``.

    ``slot_ids`` is the copy of ``IdMap.slot_to_id`` the rows correspond to; :meth:`sync` realigns
    the rows by external id when the index has compacted or reused slots.
    """

    def __init__(self) -> None:
        self.columns: dict[str, Column] = {}
        self.slot_ids = np.empty(0, np.int64)
        self.slot_deleted = np.empty(0, np.bool_)
        # IdMap.version this store was last synced to (0: never); lets searches skip sync().
        self.synced_version = 0
        self._changed()

    def _changed(self) -> None:
        """Record a change of any column: a new, process-unique ``version`` (keys compiled filters)."""
        self.version = next(_STORE_VERSIONS)

    @property
    def n(self) -> int:
        return int(self.slot_ids.shape[0])

    def fields(self) -> dict[str, str]:
        return {name: col.kind for name, col in self.columns.items()}

    def column(self, field: str, where: str = "where") -> Column:
        col = self.columns.get(field)
        if col is None:
            known = sorted(self.columns) or "none: add(..., attributes=...) first"
            raise ValueError(f"{where}: unknown field {field!r} (known fields: {known})")
        return col

    def sync(self, slot_to_id: np.ndarray, deleted: np.ndarray, version: int = 0) -> None:
        """Realign rows with the index's current ``slot_to_id`` (after append, compaction or slot reuse).

        ``version``: the ``IdMap.version`` these arrays belong to; a store already synced to it
        returns at once (the search path calls this on every filtered search).
        """
        if version and version == self.synced_version:
            return
        self._realign(slot_to_id, deleted)
        self.synced_version = version  # after the work: a reader never skips a half-done realignment

    def _realign(self, slot_to_id: np.ndarray, deleted: np.ndarray) -> None:
        cur, old = slot_to_id, self.slot_ids
        n_old = old.shape[0]
        if cur.shape[0] == n_old and np.array_equal(cur, old):
            self.slot_deleted = deleted.copy()
            return
        if cur.shape[0] >= n_old and np.array_equal(cur[:n_old], old):
            for col in self.columns.values():
                col.resize(cur.shape[0])
        else:
            # Compaction or reuse: carry each live row over from the old slot holding the same id.
            # Only rows live at the last sync are candidates (an id may also sit on a removed slot).
            mapping = np.full(cur.shape[0], -1, np.int64)
            old_live = np.flatnonzero(~self.slot_deleted)
            if old_live.size:
                order = old_live[np.argsort(old[old_live], kind="stable")]
                sorted_ids = old[order]
                pos = np.minimum(np.searchsorted(sorted_ids, cur), order.shape[0] - 1)
                found = (sorted_ids[pos] == cur) & ~deleted
                mapping[found] = order[pos[found]]
            for col in self.columns.values():
                col.take(mapping)
        self.slot_ids = cur.copy()
        self.slot_deleted = deleted.copy()
        self._changed()

    def prepare(self, attributes: Any, n: int, where: str) -> dict[str, tuple[str, np.ndarray, Any]]:
        """Validate attributes for ``n`` rows without changing state -> ``{field: (kind, valid, payload)}``."""
        columns = normalize_attributes(attributes, n, where)
        out = {}
        for field, values in columns.items():
            col = self.columns.get(field)
            if col is None:
                col = Column(field, infer_kind(field, values))
            valid, payload = col.convert(values, f"{where}[{field!r}]")
            out[field] = (col.kind, valid, payload)
        return out

    def write(self, slots: np.ndarray, prepared: dict[str, tuple[str, np.ndarray, Any]], *, clear_others: bool) -> None:
        """Store prepared values at ``slots``; with ``clear_others`` every other column gets nulls there."""
        for field, (kind, valid, payload) in prepared.items():
            if field not in self.columns:
                self.columns[field] = Column(field, kind, self.n)
            self.columns[field].set_rows(slots, valid, payload)
        if clear_others:
            for field, col in self.columns.items():
                if field not in prepared:
                    col.clear_rows(slots)
        self._changed()

    def get(self, slot: int) -> dict[str, Any]:
        """Attributes of one slot as a dict (null fields left out)."""
        out = {}
        for name, col in self.columns.items():
            value = col.value_of(slot)
            if value is not None:
                out[name] = value
        return out

    # ---- persistence ---------------------------------------------------------------------------
    def state(self) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
        """``(schema, arrays)``: JSON schema list and arrays named ``attr__<i>__<part>``."""
        schema, arrays = [], {}
        for i, (name, col) in enumerate(self.columns.items()):
            schema.append({"name": name, "kind": col.kind})
            p = f"{_ARRAY_PREFIX}{i}__"
            arrays[p + "valid"] = col.valid
            if col.kind == "tags":
                arrays[p + "offsets"], arrays[p + "codes"] = col.offsets, col.codes
            else:
                arrays[p + "values"] = col.values
            if col.kind in ("str", "tags"):
                arrays[p + "vocab_bytes"], arrays[p + "vocab_offsets"] = _encode_vocab(col.vocab)
        return schema, arrays

    @classmethod
    def from_state(
        cls, schema: Any, arrays: dict[str, np.ndarray], slot_to_id: np.ndarray, deleted: np.ndarray
    ) -> AttributeStore:
        """Rebuild from :meth:`state`, checking every array's dtype, shape and contents (codes within
        the vocabulary, CSR offsets in order); ``ValueError`` naming the field and array."""
        store = cls()
        store.slot_ids = np.array(slot_to_id, np.int64)
        store.slot_deleted = np.array(deleted, np.bool_)
        n = store.n
        if not isinstance(schema, list):
            raise ValueError(f"attributes: expected a list of {{name, kind}} entries, got {type(schema).__name__}")
        expected_arrays: set[str] = set()
        for i, entry in enumerate(schema):
            if not isinstance(entry, dict) or set(entry) != {"name", "kind"}:
                raise ValueError(f"attributes[{i}]: expected {{'name': str, 'kind': str}}, got {entry!r}"[:300])
            name, kind = entry["name"], entry["kind"]
            if not isinstance(name, str) or not isinstance(kind, str) or kind not in KINDS:
                raise ValueError(f"attributes[{i}]: expected a str name and a kind in {KINDS}, got {name!r}, {kind!r}"[:300])
            if name in store.columns:
                raise ValueError(f"attributes[{i}]: field {name!r} appears twice")
            p = f"{_ARRAY_PREFIX}{i}__"
            parts = ["valid"] + (["offsets", "codes"] if kind == "tags" else ["values"])
            if kind in ("str", "tags"):
                parts += ["vocab"] if p + "vocab" in arrays else ["vocab_bytes", "vocab_offsets"]
            expected_arrays.update(p + part for part in parts)
            missing = [p + part for part in parts if p + part not in arrays]
            if missing:
                raise ValueError(f"attributes: array {missing[0]!r} of field {name!r} is missing")
            store.columns[name] = _restore_column(name, kind, {part: arrays[p + part] for part in parts}, n)
        unexpected = sorted(set(arrays) - expected_arrays)
        if unexpected:
            raise ValueError(f"attributes: array {unexpected[0]!r} belongs to no field of the schema")
        return store


def _encode_vocab(vocab: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(bytes uint8 (total,), offsets int64 (V + 1,))``: the UTF-8 strings of ``vocab`` end to end."""
    encoded = [v.encode("utf-8", "surrogatepass") for v in vocab]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), np.uint8).copy(), offsets


def _decode_vocab(name: str, parts: dict[str, np.ndarray]) -> list[str]:
    if "vocab" in parts:  # format version 1: numpy fixed-width unicode
        arr = parts["vocab"]
        if arr.ndim != 1 or arr.dtype.kind != "U":
            raise ValueError(f"attributes: field {name!r}: vocab: expected a 1-D str array, got {arr.dtype} {arr.shape}")
        vocab = [str(v) for v in arr.tolist()]
    else:
        data, offsets = parts["vocab_bytes"], parts["vocab_offsets"]
        _expect(name, "vocab_bytes", data, np.uint8, (data.shape[0],) if data.ndim == 1 else None)
        _expect(name, "vocab_offsets", offsets, np.int64, (offsets.shape[0],) if offsets.ndim == 1 and offsets.size else None)
        if offsets[0] != 0 or offsets[-1] != data.shape[0] or (np.diff(offsets) < 0).any():
            raise ValueError(f"attributes: field {name!r}: vocab_offsets: expected non-decreasing offsets from 0 to {data.shape[0]}")
        raw = data.tobytes()
        try:
            vocab = [raw[a:b].decode("utf-8", "surrogatepass") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
        except UnicodeDecodeError as exc:
            raise ValueError(f"attributes: field {name!r}: vocab_bytes: not UTF-8 ({exc})") from None
    if len(set(vocab)) != len(vocab):
        raise ValueError(f"attributes: field {name!r}: vocab: a string appears twice")
    return vocab


def _expect(name: str, part: str, arr: np.ndarray, dtype: Any, shape: tuple[int, ...] | None) -> None:
    if arr.dtype != dtype or shape is None or arr.shape != shape:
        want = "1-D" if shape is None else str(shape)
        raise ValueError(f"attributes: field {name!r}: {part}: expected {np.dtype(dtype)} {want}, got {arr.dtype} {arr.shape}")


def _restore_column(name: str, kind: str, parts: dict[str, np.ndarray], n: int) -> Column:
    """A :class:`Column` from its saved arrays, every invariant the filters rely on checked."""
    col = Column(name, kind, 0)
    _expect(name, "valid", parts["valid"], np.bool_, (n,))
    col.valid = np.array(parts["valid"])
    if kind in ("str", "tags"):
        col.vocab = _decode_vocab(name, parts)
        col.code_of = {v: c for c, v in enumerate(col.vocab)}
    n_codes = len(col.vocab)
    if kind == "tags":
        offsets, codes = parts["offsets"], parts["codes"]
        _expect(name, "offsets", offsets, np.int64, (n + 1,))
        _expect(name, "codes", codes, np.int32, (codes.shape[0],) if codes.ndim == 1 else None)
        if offsets[0] != 0 or offsets[-1] != codes.shape[0] or (np.diff(offsets) < 0).any():
            raise ValueError(f"attributes: field {name!r}: offsets: expected non-decreasing offsets from 0 to {codes.shape[0]}")
        if codes.size and (codes.min() < 0 or codes.max() >= n_codes):
            raise ValueError(f"attributes: field {name!r}: codes: a tag code is outside the {n_codes} vocabulary entries")
        col.offsets, col.codes = np.array(offsets), np.array(codes)
        return col
    dtype = {"int": np.int64, "float": np.float64, "bool": np.bool_, "str": np.int32}[kind]
    values = parts["values"]
    _expect(name, "values", values, dtype, (n,))
    if kind == "str":
        valid_codes = values[col.valid]
        if (values < -1).any() or (values >= n_codes).any() or (valid_codes.size and valid_codes.min() < 0):
            raise ValueError(f"attributes: field {name!r}: values: a code is outside the {n_codes} vocabulary entries")
    col.values = np.array(values)
    return col


def is_attribute_array(name: str) -> bool:
    return name.startswith(_ARRAY_PREFIX)
