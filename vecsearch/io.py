"""Persistence, bytes on disk only: a directory with ``manifest.json`` and one ``.npy`` file per array.

The manifest records the format name and version, the index type, dim, metric, the build
parameters and, per array, its dtype, shape, byte size and CRC-32 checksum. ``save`` writes
into a temporary sibling directory, fsyncs it and renames it into place, so a crash never leaves
a half-written index under the final name (an existing index at ``path`` is replaced only
after the new one is complete). ``load`` verifies everything and raises :class:`IndexFileError`
naming the file and what is wrong.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_NAME = "vecsearch-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


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


def write_directory(path: str | os.PathLike, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Atomically write ``arrays`` and a manifest built from ``header`` to directory ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        entries = {}
        for name, arr in arrays.items():
            if not name.isidentifier():
                raise ValueError(f"array name {name!r} is not a plain identifier")
            arr = np.ascontiguousarray(arr)
            if arr.dtype == object:
                raise TypeError(f"array {name!r}: object arrays are not persisted (no pickle)")
            file = tmp / f"{name}.npy"
            with open(file, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
            entries[name] = {
                "file": file.name,
                "dtype": arr.dtype.str,
                "shape": list(arr.shape),
                "nbytes": int(arr.nbytes),
                "checksum": _checksum(arr),
            }
        manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **header, "arrays": entries}
        with open(tmp / MANIFEST, "w") as fh:
            json.dump(manifest, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(tmp)
        publish_directory(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish_directory(tmp: Path, target: Path) -> None:
    """Rename the complete directory ``tmp`` to ``target``; an existing ``target`` is replaced only then."""
    if target.exists():
        backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        backup.rmdir()
        os.replace(target, backup)
        os.replace(tmp, target)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(tmp, target)
    fsync_dir(target.parent)


def read_format_manifest(manifest_file: Path, format_name: str, format_version: int) -> dict[str, Any]:
    """Parse a JSON manifest and check its ``format`` and ``format_version`` (<= ``format_version``)."""
    if not manifest_file.is_file():
        raise IndexFileError(f"{manifest_file}: missing manifest")
    try:
        manifest = json.loads(manifest_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexFileError(f"{manifest_file}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != format_name:
        raise IndexFileError(f"{manifest_file}: not a {format_name} manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > format_version:
        raise IndexFileError(
            f"{manifest_file}: format_version {version!r} is not supported (this vecsearch reads <= {format_version})"
        )
    return manifest


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check the manifest of a saved index directory."""
    directory = Path(path)
    if not directory.is_dir():
        raise IndexFileError(f"path: {str(directory)!r} is not an index directory")
    manifest_file = directory / MANIFEST
    manifest = read_format_manifest(manifest_file, FORMAT_NAME, FORMAT_VERSION)
    if not isinstance(manifest.get("arrays"), dict):
        raise IndexFileError(f"{manifest_file}: 'arrays' entry missing or malformed")
    return manifest


def read_arrays(path: str | os.PathLike, manifest: dict[str, Any], *, mmap: bool = False, verify: bool = True) -> dict[str, np.ndarray]:
    """Load every array of the manifest, checking dtype, shape, size and checksum."""
    directory = Path(path)
    arrays = {}
    for name, entry in manifest["arrays"].items():
        try:
            file = directory / entry["file"]
            dtype, shape, checksum = np.dtype(entry["dtype"]), tuple(entry["shape"]), entry["checksum"]
        except (KeyError, TypeError) as exc:
            raise IndexFileError(f"{directory / MANIFEST}: entry for array {name!r} is malformed ({exc})") from None
        if not file.is_file():
            raise IndexFileError(f"{file}: missing array file for {name!r}")
        try:
            arr = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise IndexFileError(f"{file}: unreadable or truncated ({exc})") from None
        if arr.dtype != dtype or arr.shape != shape:
            raise IndexFileError(
                f"{file}: expected dtype {dtype} shape {shape} from the manifest, got dtype {arr.dtype} shape {arr.shape}"
            )
        if verify and _checksum(arr) != checksum:
            raise IndexFileError(f"{file}: checksum mismatch (file edited or corrupted)")
        arrays[name] = arr
    return arrays


def read_directory(path: str | os.PathLike, *, mmap: bool = False, verify: bool = True
                   ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(header, arrays)`` of a saved index directory (the manifest without its bookkeeping keys).

    ``mmap`` maps the arrays read-only; ``verify`` checks every array's checksum (reads each file
    once, also with mmap).
    """
    manifest = read_manifest(path)
    arrays = read_arrays(path, manifest, mmap=mmap, verify=verify)
    header = {key: value for key, value in manifest.items() if key not in ("format", "format_version", "arrays")}
    return header, arrays
