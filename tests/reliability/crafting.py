"""Crafted and damaged index files for every registered index type, and a child process that loads them.

``build(type_name, variant, path)`` saves a small index (ids, removals and every attribute kind
included); ``cases(path, type_name)`` lists the mutations of its files, each with what loading it
must give:

* ``"error"``: ``vs.IndexFileError`` at load, nothing else;
* ``"safe"``: either ``vs.IndexFileError`` at load, or an index that then searches (also filtered),
  removes, adds and searches again without any exception and with well-formed results (shapes,
  ids stored or -1, no duplicates, sorted finite distances, exact distances where the type
  returns them, filters obeyed).

Categories: ``manifest-edit`` (any value changed, manifest checksum not updated: must be refused),
``manifest-crafted`` (values changed and the checksum recomputed, as a deliberate crafter would),
``array-damage`` (bytes flipped, files truncated, extended, replaced, linked out of the directory,
headers claiming 1e11 rows) and ``array-crafted`` (contents, shapes and dtypes changed with CRCs
and the manifest recomputed: a CRC proves integrity, not validity).

Run as a script (``python crafting.py TYPE BASE_DIR WORK_DIR [SKIP]``) it runs every case (from
the SKIP-th on) of the index saved at BASE_DIR, printing ``BEGIN <n>`` before and one JSON line after each, so that the parent
(``test_crafted_files.py``) can tell a segfault in case n from a failure and resume after it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

DIM = 12
N = 300
# Per saved index and category, a seeded sample when there are more (0: every case; the closing
# counts of the reliability issue were taken with VECSEARCH_CRAFTED_CASES=0).
CASES_PER_CATEGORY = int(os.environ.get("VECSEARCH_CRAFTED_CASES", "80"))
_DELETE = object()


# ---- building -----------------------------------------------------------------------------------
VARIANTS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "flat": [("cosine", {"metric": "cosine"})],
    "ivfpq": [("opq-nbits4-refine", {"opq": True, "nbits": 4, "keep_vectors": True})],
    "multivector": [("fde-hnsw", {"inner": "hnsw", "M": 8})],
}


def variants(type_name: str) -> list[str]:
    return [label for label, _ in VARIANTS.get(type_name, [("default", {})])]


def data() -> np.ndarray:
    """(N, DIM) float32 on a low-dimensional subspace plus noise (searches mean something)."""
    rng = np.random.default_rng(7)
    return (rng.standard_normal((N, 4)) @ rng.standard_normal((4, DIM)) + 0.1 * rng.standard_normal((N, DIM))).astype(np.float32)


def attributes(n: int, offset: int = 0) -> dict[str, list[Any]]:
    i = np.arange(offset, offset + n)
    return {
        "ts": [int(2**62 + v) for v in i],
        "price": [float(v) / 7 for v in i],
        "flag": [bool(v % 2) for v in i],
        "lang": [("en", "de", "abc\x00")[v % 3] for v in i],
        "tags": [["a", "b"][: v % 3] for v in i],
    }


def documents(x: np.ndarray) -> list[np.ndarray]:
    return [x[i : i + 1 + i % 3] for i in range(0, x.shape[0] - 3, 3)]


def build(type_name: str, variant: str, path: Path) -> None:
    """Save a small index of registered type ``type_name`` (options of ``variant``) to ``path``."""
    import vecsearch as vs
    from vecsearch import registry

    record = registry.get(type_name)
    options = dict(dict(VARIANTS.get(type_name, [("default", {})]))[variant])
    x = data()
    if record.vector_input:
        metric = options.pop("metric", "l2")
        index = record.cls(DIM, metric, **{**record.cls.suggested_params(N, DIM), **options})
        if record.requires_training:
            index.train(x)
        ids = np.arange(N, dtype=np.int64) * 3 + 5
        index.add(x, ids=ids, attributes=attributes(N))
    else:
        docs = documents(x)
        index = record.cls(DIM, fde=vs.FDEConfig(reps=2, k_sim=2, d_proj=4), **options)
        ids = np.arange(len(docs), dtype=np.int64) * 3 + 5
        index.add(docs, ids=ids, attributes=attributes(len(docs)))
    index.remove(ids[::7])
    index.save(path)


# ---- file primitives ----------------------------------------------------------------------------
def crc(arr: np.ndarray) -> str:
    return f"crc32:{zlib.crc32(np.ascontiguousarray(arr).reshape(-1).view(np.uint8)):08x}"


def read_manifest(d: Path) -> dict[str, Any]:
    return json.loads((d / "manifest.json").read_text())


def write_manifest(d: Path, manifest: dict[str, Any], fix_checksum: bool = True) -> None:
    if fix_checksum and "manifest_checksum" in manifest:
        from vecsearch.io import manifest_checksum

        manifest["manifest_checksum"] = manifest_checksum(manifest)
    (d / "manifest.json").write_text(json.dumps(manifest))


def array_file(d: Path, name: str) -> Path:
    """The file of array ``name``, made private to ``d`` first (cases start from hard links)."""
    file = d / read_manifest(d)["arrays"][name]["file"]
    if file.is_file() and not file.is_symlink() and file.stat().st_nlink > 1:
        raw = file.read_bytes()
        file.unlink()
        file.write_bytes(raw)
    return file


def replace_array(d: Path, name: str, arr: np.ndarray) -> None:
    """Write ``arr`` as array ``name`` with a consistent header, manifest entry and CRC."""
    manifest = read_manifest(d)
    entry = manifest["arrays"][name]
    arr = np.ascontiguousarray(arr)
    with open(array_file(d, name), "wb") as fh:
        np.save(fh, arr, allow_pickle=False)
    entry.update(dtype=arr.dtype.str, shape=list(arr.shape), nbytes=int(arr.nbytes), checksum=crc(arr))
    write_manifest(d, manifest)


def write_raw_npy(file: Path, header: dict[str, Any], payload: bytes) -> None:
    """An .npy file with an arbitrary header dict (numpy's writer refuses some of them)."""
    text = repr(header).encode("latin1")
    text += b" " * (63 - (len(text) + 10) % 64) + b"\n"
    file.write_bytes(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + payload)


def _npy_payload(file: Path) -> tuple[dict[str, Any], bytes]:
    raw = file.read_bytes()
    header_len = int.from_bytes(raw[8:10], "little")
    import ast

    return ast.literal_eval(raw[10 : 10 + header_len].decode("latin1")), raw[10 + header_len :]


# ---- manifest mutations -------------------------------------------------------------------------
def leaves(value: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """``(path, value)`` of every node below the root (dict keys and list indices)."""
    out = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        if path == () and key == "manifest_checksum":
            continue
        out.append((path + (key,), child))
        out.extend(leaves(child, path + (key,)))
    return out


def set_path(root: Any, path: tuple, value: Any) -> None:
    node = root
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


def replacements(value: Any) -> list[Any]:
    """Other values to put where ``value`` is (type changes, boundaries, deletion)."""
    out: list[Any] = [_DELETE, None, "x"]
    if isinstance(value, bool):
        out += [not value, 1]
    elif isinstance(value, int):
        out += [value + 1, -1, 0, 10**6, 2**63, 1.5, True]
    elif isinstance(value, float):
        out += [value * 2 + 1, -1.0, 1e308]
    elif isinstance(value, str):
        out += ["", value + "x", 7]
    elif isinstance(value, list):
        out += [[], value + value[-1:] if value else [0], {}]
    elif isinstance(value, dict):
        out += [{}, [], {**value, "unexpected": 1}]
    return out


def _label(value: Any) -> str:
    return "<delete>" if value is _DELETE else repr(value)[:40]


Case = tuple[str, str, str, Callable[[Path], None]]  # (category, label, expect, mutate)


def manifest_cases(base: Path) -> list[Case]:
    manifest = read_manifest(base)
    edit, crafted = [], []
    for path, value in leaves(manifest):
        for new in replacements(value):
            def mutate(d: Path, path=path, new=new, fix=True) -> None:
                m = read_manifest(d)
                set_path(m, path, new)
                write_manifest(d, m, fix_checksum=fix)
            if new is not _DELETE and json.dumps(new) == json.dumps(value):
                continue  # not an edit
            label = f"{'.'.join(map(str, path))}={_label(new)}"
            edit.append(("manifest-edit", label, "error", lambda d, mutate=mutate: mutate(d, fix=False)))
            structural = path[0] in ("arrays", "format", "format_version") or (
                isinstance(new, dict) and "unexpected" in new)
            if path[0] == "arrays" and len(path) == 2 and new is _DELETE and not _required(manifest, path[1]):
                structural = False  # a graph type may rebuild a derived array (codes) from the others
            if path == ("format_version",) and new == 1:
                continue  # a version-1 manifest with a checksum: covered by manifest-edit
            crafted.append(("manifest-crafted", label, "error" if structural else "safe", mutate))
    return edit + crafted


def targeted_manifest_cases(base: Path) -> list[Case]:
    """The manifest cases of the issue's findings (entry points, levels, escaping file names,
    hostile JSON): run in full, never sampled."""
    manifest = read_manifest(base)
    crafted: list[Case] = []
    for path, value in leaves(manifest):
        # graph entry points and levels (also a MultiVector's inner index's): out of range must be refused
        if path[0] == "params" and path[-1] in ("entry", "max_level") and isinstance(value, int):
            for bad in ((10**6, -2) if path[-1] == "entry" else (40, 10**6)):
                crafted.append(("manifest-crafted", f"{'.'.join(path)}={bad}", "error",
                                lambda d, path=path, bad=bad: _set_fixed(d, path, bad)))
    for name in manifest["arrays"]:
        for file in ("../escape.npy", "/etc/hostname", "sub/x.npy", "..", "manifest.json",
                     next(iter(manifest["arrays"].values()))["file"]):
            if file == manifest["arrays"][name]["file"]:
                continue
            crafted.append(("manifest-crafted", f"arrays.{name}.file={file}", "error",
                            lambda d, name=name, file=file: _set_fixed(d, ("arrays", name, "file"), file)))
    nested: Any = 1
    for _ in range(100):
        nested = [nested]
    crafted += [
        ("manifest-crafted", "deep nesting in params", "error", lambda d: _set_fixed(d, ("params", "deep"), nested)),
        ("manifest-crafted", "17 MB manifest", "error", lambda d: _set_fixed(d, ("pad",), "x" * (17 << 20))),
        ("manifest-crafted", "duplicate key", "error", lambda d: (d / "manifest.json").write_text(
            (d / "manifest.json").read_text().replace("{", '{"dim": 3, ', 1))),
        ("manifest-crafted", "NaN constant", "error", lambda d: (d / "manifest.json").write_text(
            (d / "manifest.json").read_text().replace("{", '{"nan": NaN, ', 1))),
        ("manifest-crafted", "not UTF-8", "error", lambda d: (d / "manifest.json").write_bytes(b"\xff\xfe{}")),
        ("manifest-crafted", "empty", "error", lambda d: (d / "manifest.json").write_bytes(b"")),
        ("manifest-crafted", "truncated", "error", lambda d: (d / "manifest.json").write_bytes(
            (d / "manifest.json").read_bytes()[:100])),
        ("manifest-crafted", "missing", "error", lambda d: (d / "manifest.json").unlink()),
        ("manifest-crafted", "a directory", "error", lambda d: ((d / "manifest.json").unlink(), (d / "manifest.json").mkdir())),
        ("manifest-crafted", "version 1 layout", "safe", _as_version_1),
    ]
    return crafted


def _required(manifest: dict[str, Any], name: str) -> bool:
    """Whether array ``name`` may not be left out: ids, attributes, and every array of the types
    whose formats are checked in full here (graph types may derive some arrays from others)."""
    inner = manifest.get("params", {}).get("inner_index") if isinstance(manifest.get("params"), dict) else None
    owner = inner.get("type") if name.startswith("inner_") and isinstance(inner, dict) else manifest.get("type")
    plain = _plain_name(name)
    return owner in _MINE or plain in ("slot_to_id", "deleted") or plain.startswith("attr__")


def _set_fixed(d: Path, path: tuple, value: Any) -> None:
    m = read_manifest(d)
    set_path(m, path, value)
    write_manifest(d, m)


def _as_version_1(d: Path) -> None:
    m = read_manifest(d)
    m.pop("manifest_checksum", None)
    m.pop("generation", None)
    m["format_version"] = 1
    (d / "manifest.json").write_text(json.dumps(m))


# ---- array mutations ----------------------------------------------------------------------------
def _damage_cases(name: str, entry: dict[str, Any]) -> list[Case]:
    """Bytes changed without fixing any checksum: every one must be refused."""
    def on_file(fn: Callable[[Path], None]) -> Callable[[Path], None]:
        return lambda d: fn(array_file(d, name))

    def flip(offset: int) -> Callable[[Path], None]:
        def run(f: Path) -> None:
            raw = bytearray(f.read_bytes())
            raw[offset if offset >= 0 else len(raw) + offset] ^= 0xFF
            f.write_bytes(bytes(raw))
        return run

    def header(change: Callable[[dict[str, Any]], None], manifest_too: bool = False) -> Callable[[Path], None]:
        def run(d: Path) -> None:
            f = array_file(d, name)
            head, payload = _npy_payload(f)
            change(head)
            write_raw_npy(f, head, payload)
            if manifest_too:
                m = read_manifest(d)
                m["arrays"][name]["shape"] = list(head["shape"])
                m["arrays"][name]["nbytes"] = int(np.prod(head["shape"], dtype=object)) * np.dtype(head["descr"]).itemsize
                write_manifest(d, m)
        return run

    def outside(d: Path) -> None:
        f = array_file(d, name)
        copy = d.parent / f"outside-{f.name}"
        shutil.copy(f, copy)
        f.unlink()
        f.symlink_to(copy)

    shape = entry["shape"]
    huge = [10**11] + shape[1:]
    out = [
        ("flip header byte 20", on_file(flip(20))), ("flip header byte 50", on_file(flip(50))),
        ("truncate 1 byte", on_file(lambda f: f.write_bytes(f.read_bytes()[:-1]))),
        ("truncate to 64 bytes", on_file(lambda f: f.write_bytes(f.read_bytes()[:64]))),
        ("empty file", on_file(lambda f: f.write_bytes(b""))),
        ("append 1 byte", on_file(lambda f: f.write_bytes(f.read_bytes() + b"\0"))),
        ("append 4 KiB", on_file(lambda f: f.write_bytes(f.read_bytes() + bytes(4096)))),
        ("deleted", on_file(lambda f: f.unlink())),
        ("a directory", on_file(lambda f: (f.unlink(), f.mkdir()))),
        ("symlink out of the directory", outside),
        ("header claims 1e11 rows", header(lambda h: h.update(shape=tuple(huge)))),
        ("header and manifest claim 1e11 rows", header(lambda h: h.update(shape=tuple(huge)), manifest_too=True)),
        ("object dtype in header", header(lambda h: h.update(descr="|O"))),
    ]
    if np.dtype(entry["dtype"]).itemsize > 1:
        out.append(("big-endian dtype in header", header(lambda h: h.update(descr=np.dtype(h["descr"]).newbyteorder(">").str))))
    if entry["nbytes"]:
        out.append(("flip last data byte", on_file(flip(-1))))
    if len(shape) > 1:
        out.append(("Fortran order", header(lambda h: h.update(fortran_order=True))))
    return [("array-damage", f"{name}: {label}", "error", fn) for label, fn in out]


_FLOAT_CHECKED = ("vectors", "centroids", "codebooks", "rotation", "token_vectors")
_MINE = ("flat", "ivfpq", "multivector")  # types whose every array content is checked in full here
_COMPACTING = ("flat", "ivfpq")  # remove() compacts: no slot is ever flagged removed


def _plain_name(name: str) -> str:
    while name.startswith("inner_"):
        name = name[len("inner_"):]
    return name


def _refused_value(plain: str, pos: int, value: int, old: int, arr: np.ndarray, n_slots: int, live: np.ndarray) -> bool:
    """Whether writing ``value`` over ``old`` at ``pos`` of integer array ``plain`` breaks an
    invariant every reader relies on (the edit must then be refused at load)."""
    last = pos == arr.size - 1
    if value == old:
        return False
    if plain == "slot_to_id":
        return value < 0 and bool(live[pos])  # a live slot with a negative id
    if plain.endswith(("__offsets", "__vocab_offsets")) or plain in ("list_offsets", "token_offsets"):
        return pos == 0 or last  # CSR offsets start at 0 and end at the data's length
    if plain == "list_slots":
        return True  # every slot sits in exactly one list position
    if plain.endswith("__codes"):  # tag codes index the field's vocabulary (shorter than n_slots)
        return value < 0 or value >= n_slots
    if plain.endswith("__values") and arr.dtype == np.int32:  # str codes, -1 for null
        return value < -1 or value >= n_slots
    if plain in ("entry", "entry_sample"):
        return value < 0 or value >= n_slots
    return False


def _content_cases(name: str, arr: np.ndarray, live: np.ndarray, eff_type: str) -> list[Case]:
    """Contents edited with CRCs and the manifest recomputed (valid files, crafted values)."""
    plain = _plain_name(name)
    n_slots = live.shape[0]
    attr = plain.startswith("attr__")
    strict = eff_type in _MINE or attr or plain in ("slot_to_id", "deleted")
    edits: list[tuple[str, Callable[[np.ndarray], np.ndarray], bool]] = []  # (label, edit, must be refused)

    def at(pos: int, value: Any) -> Callable[[np.ndarray], np.ndarray]:
        def run(a: np.ndarray) -> np.ndarray:
            b = a.copy()
            b.reshape(-1)[pos] = value
            return b
        return run

    kind = arr.dtype.kind
    if arr.size and kind in "iu":
        info = np.iinfo(arr.dtype)
        values = [v for v in (-1, -2, n_slots, 2**31 - 1, int(info.max), int(info.min)) if info.min <= v <= info.max]
        for v in dict.fromkeys(values):
            for pos in dict.fromkeys((0, arr.size - 1)):
                old = int(arr.reshape(-1)[pos])
                edits.append((f"[{pos}]={v}", at(pos, v), _refused_value(plain, pos, v, old, arr, n_slots, live)))
        edits += [("all zero", np.zeros_like, False), ("reversed", lambda a: a[::-1].copy(), False),
                  ("plus one", lambda a: a + np.asarray(1, a.dtype), False)]
    elif arr.size and kind == "f":
        checked = eff_type in _MINE and plain in _FLOAT_CHECKED
        for v in (np.nan, np.inf, -np.inf, 3e38):
            edits.append((f"[0]={v}", at(0, v), checked))
        edits += [("times 1e30", lambda a: (a * np.asarray(1e30, a.dtype)).astype(a.dtype), checked),
                  ("all zero", np.zeros_like, False), ("negated", lambda a: -a, False)]
    elif arr.size and kind == "b":
        compacted = plain == "deleted" and eff_type in _COMPACTING
        edits += [("first flipped", lambda a: np.concatenate([~a.reshape(-1)[:1], a.reshape(-1)[1:]]).reshape(a.shape), compacted),
                  ("all true", np.ones_like, compacted), ("all false", np.zeros_like, False)]
    if arr.ndim and arr.shape[0]:
        edits.append(("last row dropped", lambda a: a[:-1].copy(), strict))
        # (a repeated last vocabulary offset is one more, empty, string: still valid)
        edits.append(("last row repeated", lambda a: np.concatenate([a, a[-1:]]), strict and not plain.endswith("vocab_offsets")))
        edits.append(("no rows", lambda a: a[:0].copy(), strict))
    widened = {"i": np.int64 if arr.dtype != np.int64 else np.int32, "u": np.int64,
               "f": np.float64 if arr.dtype != np.float64 else np.float32, "b": np.uint8}.get(kind)
    if widened is not None:
        edits.append((f"as {np.dtype(widened)}", lambda a, t=widened: a.astype(t), strict))
    return [("array-crafted", f"{name}: {label}", "error" if refused else "safe",
             lambda d, fn=fn: replace_array(d, name, fn(np.load(array_file(d, name)))))
            for label, fn, refused in edits]


def array_cases(base: Path, type_name: str) -> list[Case]:
    manifest = read_manifest(base)
    inner = manifest["params"].get("inner_index") if isinstance(manifest.get("params"), dict) else None
    out: list[Case] = []
    for name, entry in manifest["arrays"].items():
        header = inner if name.startswith("inner_") and isinstance(inner, dict) else manifest
        prefix = "inner_" if header is inner else ""
        live = ~np.load(base / manifest["arrays"][prefix + "deleted"]["file"])
        out += _damage_cases(name, entry)
        out += _content_cases(name, np.load(base / entry["file"]), live, header.get("type", type_name))
    return out


# Arrays whose crafted contents crashed kernels in the probe (HNSW links0/counts0, IVF-PQ
# list_slots, LeanVec neighbors/degrees/entry_sample, now the graph engine's links0/counts0):
# their array-crafted cases always run in full.
TARGETED_ARRAYS = ("links0", "counts0", "list_slots", "entry_sample")


def _targeted_array(case: Case) -> bool:
    return case[0] == "array-crafted" and _plain_name(case[1].split(":")[0]) in TARGETED_ARRAYS


def cases(base: Path, type_name: str) -> list[Case]:
    """Every case for the index saved at ``base``: all of the targeted ones, a seeded sample of
    at most CASES_PER_CATEGORY of the others per category."""
    arrays = array_cases(base, type_name)
    generic = manifest_cases(base) + [c for c in arrays if not _targeted_array(c)]
    targeted = targeted_manifest_cases(base) + [c for c in arrays if _targeted_array(c)]
    rng = random.Random(f"{type_name}:{base.name}")
    out: list[Case] = []
    for category in ("manifest-edit", "manifest-crafted", "array-damage", "array-crafted"):
        pool = [c for c in generic if c[0] == category]
        if 0 < CASES_PER_CATEGORY < len(pool):
            pool = [pool[i] for i in sorted(rng.sample(range(len(pool)), CASES_PER_CATEGORY))]
        out += pool + [c for c in targeted if c[0] == category]
    return out


# ---- the child: load and use each case ----------------------------------------------------------
EXACT_DISTANCES = ("flat", "hnsw")  # types whose search distances are exact for their stored vectors


class CaseFailure(Exception):
    pass


def _check_result(index: Any, res: Any, nq: int, k: int, known: set[int], where: Any = None) -> None:
    ids, dist = res.ids, res.distances
    if ids.shape != (nq, k) or dist.shape != (nq, k) or ids.dtype != np.int64 or dist.dtype != np.float32:
        raise CaseFailure(f"result shapes/dtypes {ids.shape} {ids.dtype} {dist.shape} {dist.dtype}")
    for row_ids, row_d in zip(ids, dist):
        found = row_ids[row_ids >= 0]
        if (row_ids < -1).any() or not set(found.tolist()) <= known:
            raise CaseFailure(f"unknown ids returned: {sorted(set(found.tolist()) - known)[:5]}")
        if len(set(found.tolist())) != found.size:
            raise CaseFailure("an id returned twice in one row")
        if not np.array_equal(row_ids >= 0, np.isfinite(row_d)) or np.isnan(row_d).any():
            raise CaseFailure(f"padding and distances disagree: {row_ids.tolist()} {row_d.tolist()}")
        if (np.diff(row_d[np.isfinite(row_d)]) < -1e-4 * (1 + np.abs(row_d[:-1][np.isfinite(row_d[:-1])]))).any():
            raise CaseFailure(f"distances not sorted: {row_d.tolist()}")
        if where is not None:
            for i in found.tolist():
                if not index.get_attributes(i).get("flag"):
                    raise CaseFailure(f"id {i} returned by a filter it fails")


def _exact_check(index: Any, queries: np.ndarray, res: Any) -> None:
    if index.type_name not in EXACT_DISTANCES:
        return
    for qi in range(queries.shape[0]):
        ids = res.ids[qi][res.ids[qi] >= 0]
        if ids.size == 0:
            continue
        x = index.reconstruct(ids).astype(np.float64)
        q = queries[qi].astype(np.float64)
        if index.metric == "cosine":
            q = q / np.linalg.norm(q)
            want = 1 - x @ q
        elif index.metric == "ip":
            want = -(x @ q)
        else:
            want = ((x - q) ** 2).sum(axis=1)
        got = res.distances[qi][: ids.size]
        if not np.allclose(got, want, rtol=1e-3, atol=1e-3 * (1 + np.abs(want).max())):
            raise CaseFailure(f"distances {got[:3]} are not the stored vectors' {want[:3]}")


def exercise(index: Any) -> None:
    """Search (plain, filtered), remove, add and search again; raise CaseFailure on anything odd."""
    x = data()
    multi = not index.vector_input
    queries = documents(x[:12]) if multi else x[:3] + 0.01
    nq = len(queries) if multi else queries.shape[0]
    known = set(index.ids().tolist())
    res = index.search(queries, 5)
    _check_result(index, res, nq, 5, known)
    if not multi:
        _exact_check(index, queries, res)
    if "flag" in (index.get_attributes(next(iter(known))) if known else {}):
        where = {"flag": True}
        _check_result(index, index.search(queries, 5, where=where), nq, 5, known, where)
    if known:
        victim = sorted(known)[len(known) // 2]
        if index.remove([victim]) != 1:
            raise CaseFailure("remove of a live id did not remove it")
        known.discard(victim)
        res = index.search(queries, 5)
        _check_result(index, res, nq, 5, known)
    new_id = 1_000_003
    while new_id in known:
        new_id += 1
    new = documents(x[20:26])[:1] if multi else x[20:21]
    index.add(new, ids=[new_id], attributes={"flag": [True]})
    known.add(new_id)
    res = index.search(new if multi else new[0], 3)
    _check_result(index, res, 1, 3, known)


def run_case(case: Case, base: Path, work: Path) -> dict[str, Any]:
    import vecsearch as vs

    mutate = case[3]
    target = work / "idx"
    shutil.rmtree(work, ignore_errors=True)
    target.mkdir(parents=True)
    for file in base.iterdir():  # hard links: array_file() unshares the one a case edits
        if file.name == "manifest.json":
            shutil.copyfile(file, target / file.name)
        else:
            os.link(file, target / file.name)
    mutate(target)
    try:
        index = vs.load(target)
    except vs.IndexFileError as exc:
        return {"outcome": "error", "detail": str(exc)[-300:]}
    except Exception as exc:  # noqa: BLE001
        return {"outcome": "fail", "detail": f"load raised {type(exc).__name__}: {str(exc)[:300]}"}
    try:
        exercise(index)
    except Exception as exc:  # noqa: BLE001
        return {"outcome": "fail", "detail": f"after a successful load: {type(exc).__name__}: {str(exc)[:300]}"}
    return {"outcome": "ok", "detail": ""}


def main(argv: list[str]) -> None:
    type_name, base, work, skip = argv[0], Path(argv[1]), Path(argv[2]), int(argv[3]) if len(argv) > 3 else 0
    import tempfile

    import vecsearch  # noqa: F401  (and numba's cached kernels) before the first BEGIN

    all_cases = cases(base, type_name)
    # Thousands of small directories: on a RAM file system when there is one (rmdir on the test
    # machine's disk took 3 ms, on /dev/shm 20 us).
    shm = Path("/dev/shm")
    scratch = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() and os.access(shm, os.W_OK) else work
    try:
        if scratch != work:
            shutil.copytree(base, scratch / "base")
            base, work = scratch / "base", scratch / "work"
        for n, case in enumerate(all_cases):
            if n < skip:
                continue
            print(f"BEGIN {n}", flush=True)
            result = run_case(case, base, work)
            print(json.dumps({"n": n, "category": case[0], "label": case[1], "expect": case[2], **result}), flush=True)
    finally:
        if scratch != work:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
