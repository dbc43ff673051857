"""Storage layer of :class:`~vecsearch.store.collection.Collection`: on-disk layout, reader-writer lock, record validation.

A collection directory holds::

    collection.json     format, dim, metric, index spec and params (written once, atomically)
    LOCK                an advisory ``flock`` held by the one process that has it open
    snap-<G>/           snapshot generation G: ``index/`` (``Index.save``) + ``records/`` (ids,
                        documents, metadata) + ``keyword/`` (the BM25 index's forward postings,
                        :meth:`KeywordIndex.get_state`), each a checksummed vecsearch.io directory
    wal-<G>.log         every change made after snapshot G (:mod:`vecsearch.store.wal`)

A snapshot is written to a hidden temporary directory and renamed to ``snap-<G>`` only when
complete, then ``wal-<G>.log`` is created and the previous generation deleted. Opening picks the
highest complete ``snap-<G>`` (none: generation 0, empty state), replays ``wal-<G>.log`` and
removes leftovers (older generations, unfinished temporary snapshots), so a crash at any point
between those steps reopens to the last committed state.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..io import IndexFileError, fsync_dir, read_arrays, read_manifest, write_directory
from ..loader import load
from ..validation import as_vectors, check_dim, check_metric, normalize_rows

CONFIG = "collection.json"
FORMAT_NAME = "vecsearch-collection"
FORMAT_VERSION = 1
_SNAP = re.compile(r"snap-(\d+)\Z")
_WAL = re.compile(r"wal-(\d+)\.log\Z")

try:  # POSIX advisory locks; on other platforms the directory is simply not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


class CollectionDir:
    """The files of one collection directory (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock_fd: int | None = None

    # ---- lock ------------------------------------------------------------------------------------
    def lock(self) -> None:
        """Create the directory if needed and take its exclusive lock (``ValueError`` if another process has it)."""
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"path: {str(self.path)!r} exists and is not a directory")
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise ValueError(f"path: collection {str(self.path)!r} is open in another process or object") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    # ---- config ----------------------------------------------------------------------------------
    def read_config(self) -> dict[str, Any] | None:
        file = self.path / CONFIG
        if not file.exists():
            return None
        try:
            config = json.loads(file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IndexFileError(f"{file}: not valid JSON ({exc})") from None
        if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
            raise IndexFileError(f"{file}: not a {FORMAT_NAME} config")
        if not isinstance(config.get("format_version"), int) or config["format_version"] > FORMAT_VERSION:
            raise IndexFileError(f"{file}: format_version {config.get('format_version')!r} is not supported")
        return config

    def write_config(self, config: dict[str, Any]) -> None:
        body = json.dumps({"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **config}, indent=2, sort_keys=True)
        fd, tmp = tempfile.mkstemp(prefix=".collection.json.tmp-", dir=self.path)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path / CONFIG)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        fsync_dir(self.path)

    # ---- generations -----------------------------------------------------------------------------
    def snapshot_dir(self, gen: int) -> Path:
        return self.path / f"snap-{gen}"

    def wal_path(self, gen: int) -> Path:
        return self.path / f"wal-{gen}.log"

    def latest_generation(self) -> int:
        """Highest complete snapshot generation (0 when there is none)."""
        gens = [int(m.group(1)) for p in self.path.iterdir() if (m := _SNAP.match(p.name)) and p.is_dir()]
        return max(gens, default=0)

    def remove_stale(self, gen: int) -> None:
        """Delete generations older than ``gen`` and unfinished temporary snapshots."""
        for p in self.path.iterdir():
            snap, wal = _SNAP.match(p.name), _WAL.match(p.name)
            if (snap and int(snap.group(1)) < gen) or p.name.startswith(".snap-"):
                shutil.rmtree(p, ignore_errors=True)
            elif wal and int(wal.group(1)) < gen or p.name.startswith(".collection.json.tmp-"):
                p.unlink(missing_ok=True)
        fsync_dir(self.path)

    def write_snapshot(self, gen: int, index: Any, header: dict[str, Any], arrays: dict[str, np.ndarray],
                       keyword: tuple[dict[str, Any], dict[str, np.ndarray]] | None = None) -> None:
        """Write ``snap-<gen>`` atomically: ``index/`` (if any), ``records/`` and ``keyword/`` (the
        keyword index state ``(header, arrays)``, if given) in a temp dir, then rename."""
        tmp = Path(tempfile.mkdtemp(prefix=f".snap-{gen}.tmp-", dir=self.path))
        try:
            if index is not None:
                index.save(str(tmp / "index"))
            write_directory(tmp / "records", {"collection": header}, arrays)
            if keyword is not None:
                write_directory(tmp / "keyword", {"keyword": keyword[0]}, keyword[1])
            fsync_dir(tmp)
            os.replace(tmp, self.snapshot_dir(gen))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(self.path)

    def snapshot_bytes(self, gen: int) -> int:
        """Total size of the files of ``snap-<gen>``."""
        return sum(f.stat().st_size for f in self.snapshot_dir(gen).rglob("*") if f.is_file())

    def discard_snapshot(self, gen: int) -> None:
        """Withdraw ``snap-<gen>`` (renamed out of the way atomically, then deleted)."""
        snap = self.snapshot_dir(gen)
        if snap.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".snap-{gen}.discard-", dir=self.path))
            trash.rmdir()
            os.replace(snap, trash)
            fsync_dir(self.path)
            shutil.rmtree(trash, ignore_errors=True)

    def read_snapshot(self, gen: int) -> tuple[Any, dict[str, Any], dict[str, np.ndarray], Any]:
        """``(index or None, records header, records arrays, keyword state or None)`` of
        ``snap-<gen>``, checksums verified. The keyword state is ``(header, arrays)`` for
        :meth:`KeywordIndex.from_state`; None in snapshots written before the keyword index existed."""
        snap = self.snapshot_dir(gen)
        manifest = read_manifest(snap / "records")
        arrays = read_arrays(snap / "records", manifest)
        header = manifest.get("collection")
        if not isinstance(header, dict):
            raise IndexFileError(f"{snap / 'records'}: the 'collection' header is missing")
        index = load(str(snap / "index")) if (snap / "index").exists() else None
        keyword = None
        if (snap / "keyword").exists():
            kw_manifest = read_manifest(snap / "keyword")
            keyword = (kw_manifest.get("keyword"), read_arrays(snap / "keyword", kw_manifest))
        return index, header, arrays, keyword


def encode_records(records: dict[int, tuple[str, str | None, dict[str, Any] | None]]) -> dict[str, np.ndarray]:
    """The ``records/`` arrays of a snapshot: ``iids`` int64 (n,) and ``payload`` (JSON of the string
    ids, documents and metadata, uint8) from ``{iid: (id, document, metadata)}``."""
    iids = np.fromiter(records, np.int64, len(records))
    values = list(records.values())
    payload = {"ids": [r[0] for r in values], "documents": [r[1] for r in values], "metadatas": [r[2] for r in values]}
    return {"iids": iids, "payload": encode_json_array(payload)}


def decode_records(arrays: dict[str, np.ndarray]) -> list[tuple[int, str, str | None, dict[str, Any] | None]]:
    """Inverse of :func:`encode_records`: ``[(iid, id, document, metadata), ...]``."""
    payload = decode_json_array(arrays["payload"])
    return list(zip(arrays["iids"].tolist(), payload["ids"], payload["documents"], payload["metadatas"]))


def encode_json_array(value: Any) -> np.ndarray:
    """JSON-serialize ``value`` into a uint8 array (so it is checksummed like any other array)."""
    return np.frombuffer(json.dumps(value, separators=(",", ":"), allow_nan=False).encode(), np.uint8)


def decode_json_array(arr: np.ndarray) -> Any:
    """Inverse of :func:`encode_json_array`."""
    return json.loads(np.asarray(arr, np.uint8).tobytes().decode())


# ---- concurrency ----------------------------------------------------------------------------------
class RWLock:
    """Many readers or one writer; a waiting writer blocks new readers (no writer starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


# ---- record validation (before anything is logged or applied) -----------------------------------
def json_default(value: Any) -> Any:
    """``json.dumps`` hook: numpy scalars and arrays become plain Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def filterable(meta: dict[str, Any] | None) -> dict[str, Any]:
    """The part of one metadata dict that becomes index attributes (ints as floats, see module doc)."""
    out: dict[str, Any] = {}
    for key, value in (meta or {}).items():
        if isinstance(value, (bool, str)):
            out[key] = value
        elif isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                continue
            out[key] = float(value)
        elif isinstance(value, list) and all(isinstance(t, str) for t in value):
            out[key] = value
    return out


def check_config(dim: Any, metric: Any, index: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The collection settings given to the constructor (None ones left out), validated."""
    out: dict[str, Any] = {}
    if dim is not None:
        out["dim"] = check_dim(dim)
    if metric is not None:
        out["metric"] = check_metric(metric)
    if index is not None:
        if not isinstance(index, str):
            raise TypeError(f"index: expected 'hnsw', 'flat', 'muvera' or a factory string, got {type(index).__name__}")
        out["index"] = index
    if params:
        try:
            json.dumps(params, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"index_params: expected JSON-serializable values, got {params!r} ({exc})") from None
        out["index_params"] = dict(params)
    return out


def check_ids(ids: Any, unique: bool) -> list[str]:
    """Record ids: a str or a sequence of non-empty str (distinct when ``unique``)."""
    if isinstance(ids, str):
        ids = [ids]
    if isinstance(ids, (bytes, dict)) or not hasattr(ids, "__iter__"):
        raise TypeError(f"ids: expected a list of str, got {type(ids).__name__}")
    out = list(ids)
    for i, value in enumerate(out):
        if not isinstance(value, str):
            raise TypeError(f"ids[{i}]: expected str, got {type(value).__name__} {value!r}")
        if not value:
            raise ValueError(f"ids[{i}]: expected a non-empty string")
    if unique and len(set(out)) != len(out):
        dup = next(v for v in out if out.count(v) > 1)
        raise ValueError(f"ids: duplicate id {dup!r} within one call")
    return out

def check_include(include: Any, allowed: tuple[str, ...]) -> list[str]:
    """``include`` field names, each one of ``allowed``."""
    if isinstance(include, str) or not hasattr(include, "__iter__"):
        raise TypeError(f"include: expected a list of field names from {allowed}, got {include!r}")
    fields = list(include)
    for field in fields:
        if field not in allowed:
            raise ValueError(f"include: expected fields from {allowed}, got {field!r}")
    return fields


def check_embeddings(embeddings: Any, n: int, dim: int | None, metric: str, multivector: bool) -> tuple[dict[str, np.ndarray], int]:
    """Validate embeddings for ``n`` records -> (arrays to log, dim). Raises before any change."""
    if multivector:
        if (isinstance(embeddings, np.ndarray) and embeddings.ndim == 3) or isinstance(embeddings, (list, tuple)):
            mats = list(embeddings)
        else:
            raise TypeError(f"embeddings: expected a list of (tokens, dim) matrices for index='muvera', got {type(embeddings).__name__}")
        if len(mats) != n:
            raise ValueError(f"embeddings: expected {n} matrices (one per id), got {len(mats)}")
        checked = []
        for i, m in enumerate(mats):
            arr = np.asarray(m)
            if arr.ndim != 2 or arr.shape[0] == 0:
                raise ValueError(f"embeddings[{i}]: expected a non-empty (tokens, dim) matrix, got shape {arr.shape}")
            dim = arr.shape[1] if dim is None else dim
            arr = as_vectors(arr, dim, f"embeddings[{i}]")
            if metric == "cosine":
                normalize_rows(arr, f"embeddings[{i}]")
            checked.append(arr)
        tokens = np.concatenate(checked) if checked else np.empty((0, dim or 1), np.float32)
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum([a.shape[0] for a in checked], out=offsets[1:])
        return {"tokens": tokens, "offsets": offsets}, int(dim or 1)
    arr = np.asarray(embeddings) if not isinstance(embeddings, np.ndarray) else embeddings
    if arr.ndim != 2:
        raise ValueError(f"embeddings: expected shape (n, dim), got {arr.ndim}-D shape {arr.shape}")
    dim = dim if dim is not None else int(arr.shape[1])
    vectors = as_vectors(arr, dim, "embeddings")
    if vectors.shape[0] != n:
        raise ValueError(f"embeddings: expected {n} rows (one per id), got {vectors.shape[0]}")
    if metric == "cosine":
        normalize_rows(vectors, "embeddings")
    return {"vectors": vectors}, dim


def check_column(values: Any, n: int, name: str, kind: type) -> list[Any]:
    """``values``: None (all None) or ``n`` entries, each ``kind`` or None."""
    if values is None:
        return [None] * n
    if isinstance(values, (str, dict)) or not hasattr(values, "__len__"):
        raise TypeError(f"{name}: expected a list of {n} {kind.__name__} or None, got {type(values).__name__}")
    out = list(values)
    if len(out) != n:
        raise ValueError(f"{name}: expected {n} entries (one per id), got {len(out)}")
    for i, v in enumerate(out):
        if v is not None and not isinstance(v, kind):
            raise TypeError(f"{name}[{i}]: expected {kind.__name__} or None, got {type(v).__name__}")
    return out

def merge_metadata(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any] | None:
    """Chroma's ``update`` of one record's metadata: keys of ``new`` overwrite, a ``None`` value deletes
    the key, other keys stay; ``new`` None keeps ``old``. An empty result is None."""
    if new is None:
        return old
    merged = dict(old or {})
    for key, value in new.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged or None


def check_metadatas(metadatas: Any, n: int) -> list[dict[str, Any] | None]:
    """Metadata dicts with str keys and JSON values, returned JSON round-tripped (what a reopen returns)."""
    metas = check_column(metadatas, n, "metadatas", dict)
    out = []
    for i, meta in enumerate(metas):
        if meta is None:
            out.append(None)
            continue
        for key in meta:
            if not isinstance(key, str):
                raise TypeError(f"metadatas[{i}]: keys must be str, got {key!r}")
        try:
            # Round trip now so memory holds exactly what the log and a reopen will hold.
            out.append(json.loads(json.dumps(meta, default=json_default, allow_nan=False)))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"metadatas[{i}]: expected JSON-serializable values, got {meta!r} ({exc})") from None
    return out


def select_rows(arrays: dict[str, np.ndarray], rows: list[int], multivector: bool) -> dict[str, np.ndarray]:
    """Rows ``rows`` of validated embedding arrays (``vectors``, or CSR ``tokens`` + ``offsets``)."""
    if not multivector:
        return {"vectors": arrays["vectors"][rows]}
    offsets, tokens = arrays["offsets"], arrays["tokens"]
    mats = [tokens[offsets[r] : offsets[r + 1]] for r in rows]
    new_offsets = np.zeros(len(rows) + 1, np.int64)
    np.cumsum([m.shape[0] for m in mats], out=new_offsets[1:])
    return {"tokens": np.concatenate(mats) if mats else tokens[:0], "offsets": new_offsets}


def warn_skipped(op: str, sids: list[str], why: str) -> None:
    """Warn (``UserWarning``) that ``op`` skipped records ``sids`` (the first few named), pointing at
    the line that called the Collection method."""
    shown = ", ".join(repr(i) for i in sids[:3]) + (f" and {len(sids) - 3} more" if len(sids) > 3 else "")
    warnings.warn(f"{op}: {why}: {shown}", UserWarning, stacklevel=4)
