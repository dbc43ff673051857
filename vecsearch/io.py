"""Persistence, bytes on disk only: a directory with ``manifest.json`` and one ``.npy`` file per array.

Layout (``format_version`` 2)::

    manifest.json         format, version, generation, the state header (type, dim, metric, params,
                          ...), per array its file, dtype, shape, byte size and CRC-32, and a CRC-32
                          of the manifest itself (``manifest_checksum``)
    <array>.g<gen>.npy    the arrays of generation <gen> (``<array>.npy`` for a directory's first save)
    .vecsearch.lock       advisory lock: held exclusively by a save (and load's clean-up of leftovers),
                          shared by a load

**Saves are atomic for the path** (the SQLite / LMDB way): the directory stays; a save writes the
arrays of a new generation under new names, fsyncs them, writes the manifest to a temporary name,
fsyncs it and renames it over ``manifest.json`` (one atomic rename), then deletes the previous
generation's files. Killed at any point, the path holds a complete index: the old one before the
rename, the new one after; files of a killed save are removed by the next save (or load). ``save``
refuses a path that is a regular file, or a directory that is not a vecsearch index (anything but
an empty directory, a directory with our manifest, or only our own files).

**Loads trust nothing** (:func:`read_manifest`, :func:`read_arrays`): the manifest's own checksum,
its size and nesting, every array entry (a plain file name inside the directory, a numeric dtype
from a fixed list, a shape whose size matches the file exactly: a header claiming 1e11 rows is
refused before anything is allocated), the ``.npy`` header against the manifest, and the CRC-32 of
every array. Every failure is :class:`IndexFileError` naming the file and the field. What the
arrays *contain* is checked by the index types' ``from_state`` (:mod:`vecsearch.base`).

Format version 1 (one ``<array>.npy`` per array, no manifest checksum) is still read.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

try:  # advisory locks between processes (POSIX); elsewhere saves are not serialized across processes
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

FORMAT_NAME = "vecsearch-index"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
LOCK_FILE = ".vecsearch.lock"
MAX_MANIFEST_BYTES = 16 << 20
MAX_JSON_DEPTH = 32
MAX_ARRAY_NDIM = 4
_CHECKSUM_KEY = "manifest_checksum"
_ENTRY_KEYS = frozenset({"file", "dtype", "shape", "nbytes", "checksum"})
# Array files: <identifier>.npy (version 1) or <identifier>.g<generation>.npy (version 2).
_ARRAY_FILE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,200}(?:\.g(\d{1,18}))?\.npy")
_GEN_FILE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,200}\.g(\d{1,18})\.npy")
_MANIFEST_TMP = re.compile(r"manifest\.json\.g\d{1,18}\.tmp")
_CHECKSUM = re.compile(r"crc32:[0-9a-f]{8}")
# dtypes an array may have on disk: native little-endian numbers and bools, and the fixed-width
# unicode strings of version-1 attribute vocabularies. Anything else (object, structured,
# big-endian) is refused: no pickle, and the kernels compile for native numbers only.
_DTYPES = frozenset(
    ["|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4", "<f8"]
)
_UNICODE_DTYPE = re.compile(r"<U\d{1,6}")


class IndexFileError(ValueError):
    """A saved index is missing, truncated, edited or of an unknown format."""


def copy_on_write(arr: np.ndarray) -> np.ndarray:
    """A writable stand-in for a read-only array from ``load(mmap=True)``.

    numba compiles a separate specialization of a kernel for read-only arrays (the graph walks
    take tens of seconds each to compile on a 2-core machine). A ``mode="c"`` mapping of the same
    file is writable, shares the file's pages until written and never writes to the file, so an
    index sees one array type whether it was built, loaded or mapped. Writable arrays are returned
    as they are; other read-only arrays are copied.
    """
    if arr.flags.writeable:
        return arr
    if isinstance(arr, np.memmap) and arr.filename is not None and arr.size:
        mapped = np.memmap(arr.filename, dtype=arr.dtype, mode="c", shape=arr.shape, offset=arr.offset, order="C")
        return np.asarray(mapped)
    return np.array(arr)


def _checksum(arr: np.ndarray) -> str:
    crc = 0
    flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
    step = 1 << 26
    for start in range(0, flat.shape[0], step):
        crc = zlib.crc32(flat[start : start + step], crc)
    return f"crc32:{crc:08x}"


def manifest_checksum(manifest: dict[str, Any]) -> str:
    """CRC-32 of ``manifest`` without its ``manifest_checksum`` key, over canonical JSON (sorted keys,
    no spaces): any edit of any value changes it."""
    body = {key: value for key, value in manifest.items() if key != _CHECKSUM_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return f"crc32:{zlib.crc32(text.encode()):08x}"


def fsync_dir(path: Path) -> None:
    """fsync a directory so that renames and new entries in it are durable (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---- locking and ownership ------------------------------------------------------------------------
@contextlib.contextmanager
def _dir_lock(directory: Path, *, blocking: bool, shared: bool = False) -> Iterator[bool]:
    """Hold the directory's advisory lock (exclusive, or ``shared`` for readers); yields False (and
    holds nothing) when ``blocking`` is off and it is taken, or when there is no lock to take: a
    shared lock never creates the lock file (read-only media), an exclusive one does."""
    if fcntl is None:
        yield True
        return
    try:
        fd = os.open(directory / LOCK_FILE, os.O_RDONLY if shared else os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        if blocking and not shared:
            raise
        yield False
        return
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


def _is_own_file(name: str) -> bool:
    """Names a save writes (array files of some generation, manifest temporaries, the lock)."""
    return name == LOCK_FILE or bool(_GEN_FILE.fullmatch(name) or _MANIFEST_TMP.fullmatch(name))


def _peek_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest in ``directory`` if it parses as one of ours (any version), else None."""
    try:
        manifest = _parse_json(directory / MANIFEST)
    except (IndexFileError, OSError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT_NAME else None


def _referenced(manifest: dict[str, Any] | None) -> set[str]:
    """File names the arrays of ``manifest`` point to (plain names only)."""
    arrays = manifest.get("arrays") if manifest else None
    if not isinstance(arrays, dict):
        return set()
    names = {entry.get("file") for entry in arrays.values() if isinstance(entry, dict)}
    return {n for n in names if isinstance(n, str) and _ARRAY_FILE.fullmatch(n)}


def check_save_target(path: str | os.PathLike) -> None:
    """Raise ``FileExistsError`` naming ``path`` unless it is absent, an empty directory, or a
    directory holding a vecsearch index (or only files a vecsearch save writes)."""
    target = Path(path)
    if not target.exists():
        if target.is_symlink():
            raise FileExistsError(f"path: {str(target)!r} is a dangling symbolic link; refusing to save through it")
        return
    if not target.is_dir():
        raise FileExistsError(
            f"path: {str(target)!r} exists and is not a directory; refusing to replace it with an index"
        )
    names = sorted(os.listdir(target))
    if MANIFEST in names and _peek_manifest(target) is not None:
        return  # an index of ours; files it does not name are left alone
    # No readable manifest: ours if a save created it (its lock file is there, with at most array
    # files of a killed save and a damaged manifest), or if it holds only generation files.
    locked = LOCK_FILE in names
    foreign = [n for n in names if n != MANIFEST and not _is_own_file(n) and not (locked and _ARRAY_FILE.fullmatch(n))]
    evidence = locked or any(_GEN_FILE.fullmatch(n) for n in names)
    if foreign or (MANIFEST in names and not evidence):
        foreign = foreign or [MANIFEST]
        raise FileExistsError(
            f"path: {str(target)!r} is a directory that is not a vecsearch index (it holds {foreign[:3]}); "
            "refusing to write into it: choose a new or empty directory"
        )


def _remove_leftovers(directory: Path, keep: set[str], also: frozenset[str] | set[str] = frozenset()) -> int:
    """Delete array files of any generation and manifest temporaries not in ``keep``, and the
    files named in ``also`` (the previous generation); returns how many were removed."""
    removed = 0
    for name in os.listdir(directory):
        if name in keep or name == LOCK_FILE or name == MANIFEST:
            continue
        if _GEN_FILE.fullmatch(name) or _MANIFEST_TMP.fullmatch(name) or name in also:
            try:
                (directory / name).unlink()
                removed += 1
            except OSError:
                pass
    return removed


def _remove_old_siblings(target: Path) -> None:
    """Temporary sibling directories of killed saves of format version 1 (``.<name>.tmp-*``)."""
    prefix = f".{target.name}.tmp-"
    with contextlib.suppress(OSError):
        for entry in target.parent.iterdir():
            if entry.name.startswith(prefix) and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)


# ---- writing ---------------------------------------------------------------------------------------
def _write_npy(file: Path, arr: np.ndarray) -> None:
    with open(file, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


def write_directory(path: str | os.PathLike, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Atomically write ``arrays`` and a manifest built from ``header`` to directory ``path`` (see
    the module docstring); ``FileExistsError`` for a path that is not ours to write."""
    target = Path(path)
    check_save_target(target)
    for name, arr in arrays.items():
        if not (isinstance(name, str) and name.isidentifier() and len(name) <= 200 and name.isascii()):
            raise ValueError(f"array name {name!r} is not a plain ASCII identifier")
        if np.asarray(arr).dtype == object:
            raise TypeError(f"array {name!r}: object arrays are not persisted (no pickle)")
    target.mkdir(parents=True, exist_ok=True)
    _remove_old_siblings(target)
    with _dir_lock(target, blocking=True):
        check_save_target(target)  # another process may have written into it meanwhile
        previous = _peek_manifest(target)
        old_files = _referenced(previous)
        names = os.listdir(target)
        # files of killed saves (with no manifest at all, also the plain names of a first save)
        first_leftovers = set() if previous else {n for n in names if _ARRAY_FILE.fullmatch(n)}
        _remove_leftovers(target, keep=old_files, also=first_leftovers)
        gens = [int(m.group(1)) for n in names if (m := _GEN_FILE.fullmatch(n))]
        gen = max([*gens, _generation(previous)]) + 1
        # The first save into a directory names files <array>.npy (what tools and older vecsearch
        # versions expect of a fresh index); later saves need new names: <array>.g<gen>.npy.
        fresh = previous is None and not gens
        written: list[Path] = []
        committed = False
        try:
            entries = {}
            for name, arr in arrays.items():
                arr = np.ascontiguousarray(arr)
                file = target / (f"{name}.npy" if fresh else f"{name}.g{gen}.npy")
                written.append(file)
                _write_npy(file, arr)
                entries[name] = {"file": file.name, "dtype": arr.dtype.str, "shape": list(arr.shape),
                                 "nbytes": int(arr.nbytes), "checksum": _checksum(arr)}
            manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "generation": gen,
                        **header, "arrays": entries}
            manifest[_CHECKSUM_KEY] = manifest_checksum(manifest)
            tmp = target / f"{MANIFEST}.g{gen}.tmp"
            written.append(tmp)
            with open(tmp, "w") as fh:
                json.dump(manifest, fh, indent=2, sort_keys=True, allow_nan=False)
                fh.flush()
                os.fsync(fh.fileno())
            fsync_dir(target)  # the array files' entries are durable before the manifest names them
            os.replace(tmp, target / MANIFEST)
            committed = True
            fsync_dir(target)
        except BaseException:
            if not committed:
                for file in written:
                    with contextlib.suppress(OSError):
                        file.unlink()
            raise
        new_files: set[str] = {str(entry["file"]) for entry in entries.values()}
        _remove_leftovers(target, keep=new_files, also=old_files - new_files)
        fsync_dir(target)


def _generation(manifest: dict[str, Any] | None) -> int:
    gen = manifest.get("generation") if manifest else None
    return gen if isinstance(gen, int) and not isinstance(gen, bool) and 0 <= gen < 10**18 else 0


def publish_directory(tmp: Path, target: Path) -> None:
    """Rename the complete directory ``tmp`` to ``target``; an existing ``target`` is replaced only then.

    (Used by the sharded index's directory of shards; single indexes save with
    :func:`write_directory`, which keeps the directory and swaps its manifest.)
    """
    if target.exists():
        backup = target.parent / f".{target.name}.old-{os.getpid()}-{os.urandom(4).hex()}"
        os.replace(target, backup)
        os.replace(tmp, target)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(tmp, target)
    fsync_dir(target.parent)


# ---- reading ---------------------------------------------------------------------------------------
def _reject_constant(name: str) -> Any:
    raise ValueError(f"the non-standard constant {name} is not allowed")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of parsed JSON, stopping (and returning limit + 1) beyond ``limit``."""
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return depth
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _parse_json(file: Path) -> Any:
    """Parse a JSON file: bounded size and nesting, no duplicate keys, no NaN/Infinity."""
    try:
        size = file.stat().st_size
    except OSError as exc:
        raise IndexFileError(f"{file}: unreadable ({exc})") from None
    if size > MAX_MANIFEST_BYTES:
        raise IndexFileError(f"{file}: {size} bytes, more than a manifest can be ({MAX_MANIFEST_BYTES})")
    try:
        with open(file, "rb") as fh:
            text = fh.read(MAX_MANIFEST_BYTES + 1).decode("utf-8")
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError, OSError) as exc:
        raise IndexFileError(f"{file}: not valid JSON ({type(exc).__name__}: {str(exc)[:200]})") from None
    if _depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise IndexFileError(f"{file}: nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def read_format_manifest(manifest_file: Path, format_name: str, format_version: int) -> dict[str, Any]:
    """Parse a JSON manifest and check its ``format`` and ``format_version`` (<= ``format_version``)."""
    if not manifest_file.is_file():
        raise IndexFileError(f"{manifest_file}: missing manifest")
    manifest = _parse_json(manifest_file)
    if not isinstance(manifest, dict) or manifest.get("format") != format_name:
        raise IndexFileError(f"{manifest_file}: not a {format_name} manifest")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= format_version:
        raise IndexFileError(
            f"{manifest_file}: format_version {version!r} is not supported (this vecsearch reads 1..{format_version})"
        )
    return manifest


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check the manifest of a saved index directory (its own checksum included)."""
    directory = Path(path)
    if not directory.is_dir():
        raise IndexFileError(f"path: {str(directory)!r} is not an index directory")
    manifest_file = directory / MANIFEST
    manifest = read_format_manifest(manifest_file, FORMAT_NAME, FORMAT_VERSION)
    if manifest["format_version"] >= 2:
        stored = manifest.get(_CHECKSUM_KEY)
        if not isinstance(stored, str) or not _CHECKSUM.fullmatch(stored):
            raise IndexFileError(f"{manifest_file}: manifest_checksum is missing or malformed")
        if manifest_checksum(manifest) != stored:
            raise IndexFileError(f"{manifest_file}: manifest_checksum mismatch (manifest edited or corrupted)")
        gen = manifest.get("generation")
        if isinstance(gen, bool) or not isinstance(gen, int) or _generation(manifest) != gen:
            raise IndexFileError(f"{manifest_file}: generation: expected a non-negative integer, got {gen!r}")
    elif _CHECKSUM_KEY in manifest or "generation" in manifest:
        raise IndexFileError(f"{manifest_file}: format_version 1 manifests have no checksum or generation")
    if not isinstance(manifest.get("arrays"), dict):
        raise IndexFileError(f"{manifest_file}: 'arrays' entry missing or malformed")
    return manifest


def _check_entry(manifest_file: Path, name: Any, entry: Any) -> tuple[str, np.dtype, tuple[int, ...], int, str]:
    """``(file name, dtype, shape, nbytes, checksum)`` of one array entry, every field checked."""
    where = f"{manifest_file}: arrays[{name!r}]"
    if not (isinstance(name, str) and name.isidentifier() and name.isascii() and len(name) <= 200):
        raise IndexFileError(f"{where}: the array name is not a plain identifier")
    if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
        got = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise IndexFileError(f"{where}: expected the keys {sorted(_ENTRY_KEYS)}, got {got}")
    file, dtype, shape, nbytes, checksum = (entry[k] for k in ("file", "dtype", "shape", "nbytes", "checksum"))
    if not isinstance(file, str) or not _ARRAY_FILE.fullmatch(file):
        raise IndexFileError(f"{where}.file: expected a plain .npy file name inside the index directory, got {file!r}")
    if not isinstance(dtype, str) or not (dtype in _DTYPES or _UNICODE_DTYPE.fullmatch(dtype)):
        raise IndexFileError(f"{where}.dtype: expected a native numeric or bool dtype, got {dtype!r}")
    if (not isinstance(shape, list) or len(shape) > MAX_ARRAY_NDIM
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**40 for s in shape)):
        raise IndexFileError(f"{where}.shape: expected up to {MAX_ARRAY_NDIM} non-negative integers, got {shape!r}")
    np_dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=object)) * np_dtype.itemsize
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes != size:
        raise IndexFileError(f"{where}.nbytes: expected {size} for dtype {dtype} shape {shape}, got {nbytes!r}")
    if not isinstance(checksum, str) or not _CHECKSUM.fullmatch(checksum):
        raise IndexFileError(f"{where}.checksum: expected 'crc32:' and 8 hex digits, got {checksum!r}")
    return file, np_dtype, tuple(shape), size, checksum


def _open_array(file: Path, dtype: np.dtype, shape: tuple[int, ...], nbytes: int, mmap: bool) -> np.ndarray:
    """The array in ``file``, after checking its ``.npy`` header and size against the manifest."""
    try:
        with open(file, "rb") as fh:
            try:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    header = np.lib.format.read_array_header_1_0(fh)
                elif version == (2, 0):
                    header = np.lib.format.read_array_header_2_0(fh)
                else:
                    raise ValueError(f"unsupported .npy version {version}")
            except Exception as exc:  # noqa: BLE001
                # numpy's header parser raises many kinds (TokenError, SyntaxError, MemoryError, ...)
                raise IndexFileError(f"{file}: unreadable .npy header ({type(exc).__name__}: {str(exc)[:200]})") from None
            got_shape, fortran, got_dtype = header
            if got_dtype != dtype or tuple(got_shape) != shape or (fortran and len(shape) > 1):
                raise IndexFileError(f"{file}: expected dtype {dtype} shape {shape} from the manifest, got dtype "
                                     f"{got_dtype} shape {tuple(got_shape)}{' (Fortran order)' if fortran else ''}")
            offset = fh.tell()
            size = os.fstat(fh.fileno()).st_size
            if size != offset + nbytes:
                raise IndexFileError(f"{file}: {size} bytes, expected {offset + nbytes} for dtype {dtype} shape "
                                     f"{shape} (truncated or extended)")
            if mmap and nbytes and shape:
                return np.memmap(file, dtype=dtype, mode="r", offset=offset, shape=shape)
            arr = np.empty(shape, dtype)
            if nbytes and fh.readinto(arr.reshape(-1).view(np.uint8).data) != nbytes:
                raise IndexFileError(f"{file}: shorter than its header says (changed while reading?)")
            return arr
    except OSError as exc:
        raise IndexFileError(f"{file}: unreadable ({exc})") from None


def read_arrays(path: str | os.PathLike, manifest: dict[str, Any], *, mmap: bool = False, verify: bool = True) -> dict[str, np.ndarray]:
    """Load every array of the manifest, checking entry, file name, header, size and checksum."""
    directory = Path(path)
    root = directory.resolve()
    manifest_file = directory / MANIFEST
    arrays = {}
    seen: set[str] = set()
    for name, entry in manifest["arrays"].items():
        file_name, dtype, shape, nbytes, checksum = _check_entry(manifest_file, name, entry)
        if file_name in seen:
            raise IndexFileError(f"{manifest_file}: arrays[{name!r}].file: {file_name!r} is used by two arrays")
        seen.add(file_name)
        file = directory / file_name
        if not file.is_file():
            raise IndexFileError(f"{file}: missing array file for {name!r}")
        if file.resolve().parent != root:
            raise IndexFileError(f"{file}: a link that leads outside the index directory")
        arr = _open_array(file, dtype, shape, nbytes, mmap)
        if verify and _checksum(arr) != checksum:
            raise IndexFileError(f"{file}: checksum mismatch (file edited or corrupted)")
        arrays[name] = arr
    return arrays


def _clean_after_load(directory: Path) -> None:
    """Best effort: remove files of killed saves that the current manifest does not name (only when
    there are some, and only when no save holds the lock)."""
    with contextlib.suppress(OSError):
        if not any(_GEN_FILE.fullmatch(n) or _MANIFEST_TMP.fullmatch(n) for n in os.listdir(directory)):
            return
        with _dir_lock(directory, blocking=False) as locked:
            if not locked:
                return
            current = _peek_manifest(directory)
            if current is not None:
                _remove_leftovers(directory, keep=_referenced(current))


def read_directory(path: str | os.PathLike, *, mmap: bool = False, verify: bool = True
                   ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(header, arrays)`` of a saved index directory (the manifest without its bookkeeping keys).

    ``mmap`` maps the arrays read-only; ``verify`` checks every array's checksum (reads each file
    once, also with mmap). Reading holds the directory's lock shared, so a concurrent save (which
    holds it exclusively) is either complete before or starts after; without a lock file (an index
    written by an older version, or read-only media) a read that a save overtakes is retried on
    the new manifest.
    """
    directory = Path(path)
    for attempt in range(3):
        # A save holds the lock exclusively from its first file to its last deletion: a shared
        # hold keeps the files this manifest names in place while they are read (or mapped).
        with _dir_lock(directory, blocking=True, shared=True) if directory.is_dir() else contextlib.nullcontext():
            manifest = read_manifest(path)
            try:
                arrays = read_arrays(path, manifest, mmap=mmap, verify=verify)
                break
            except IndexFileError:
                again = _peek_manifest(directory)
                if attempt == 2 or again is None or _generation(again) == _generation(manifest):
                    raise
    _clean_after_load(Path(path))
    bookkeeping = ("format", "format_version", "arrays", "generation", _CHECKSUM_KEY)
    header = {key: value for key, value in manifest.items() if key not in bookkeeping}
    return header, arrays
