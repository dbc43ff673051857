"""Write-ahead log: an append-only file of checksummed records, fsynced per append, replayed on open.

Record layout (little-endian)::

    magic    b"VSW1"        4 bytes
    length   uint32         4 bytes   payload size in bytes
    crc      uint32         4 bytes   CRC-32 of the payload
    head_crc uint32         4 bytes   CRC-32 of the 12 bytes above (a damaged length is caught,
                                      not mistaken for a record running past the end of the file)
    payload                 length bytes

A payload is ``uint32 header_len | header JSON (utf-8) | raw array bytes...``: the JSON header
carries the operation and, under ``"arrays"``, the name, dtype and shape of each array whose bytes
follow in that order (no pickle).

Torn writes: a crash can only damage the *last* record (records are appended and fsynced one at a
time). Replay stops at the first record that is incomplete or fails its checksum *and reaches the
end of the file*; that tail is discarded (and truncated away before the next append). A damaged
record followed by further data is not a torn write but corruption: :class:`WALCorruptError`.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..io import IndexFileError, fsync_dir

MAGIC = b"VSW1"
_HEAD = struct.Struct("<4sIII")
_HEAD_BODY = struct.Struct("<4sII")
_U32 = struct.Struct("<I")


class WALCorruptError(IndexFileError):
    """A write-ahead log holds a damaged record that is not a torn tail (data after it)."""


def encode_record(header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> bytes:
    """Serialize one operation: JSON ``header`` plus named numeric ``arrays`` -> framed record bytes."""
    arrays = arrays or {}
    specs, blobs = [], []
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        if arr.dtype == object:
            raise TypeError(f"array {name!r}: object arrays cannot be logged")
        specs.append([name, arr.dtype.str, list(arr.shape)])
        blobs.append(arr.tobytes())
    head = json.dumps({**header, "arrays": specs}, separators=(",", ":"), allow_nan=False).encode()
    payload = b"".join([_U32.pack(len(head)), head, *blobs])
    body = _HEAD_BODY.pack(MAGIC, len(payload), zlib.crc32(payload))
    return body + struct.pack("<I", zlib.crc32(body)) + payload


def decode_payload(payload: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Inverse of :func:`encode_record` for a checksummed payload -> ``(header, arrays)``."""
    (head_len,) = _U32.unpack_from(payload, 0)
    header = json.loads(payload[4 : 4 + head_len].decode())
    pos = 4 + head_len
    arrays = {}
    for name, dtype_str, shape in header.pop("arrays"):
        dtype = np.dtype(dtype_str)
        count = int(np.prod(shape, dtype=np.int64))
        arr = np.frombuffer(payload, dtype=dtype, count=count, offset=pos).reshape(shape)
        arrays[name] = arr.copy()
        pos += count * dtype.itemsize
    return header, arrays


def scan(data: bytes, name: str = "wal") -> tuple[list[bytes], int]:
    """Split log bytes into payloads; returns ``(payloads, good_length)`` (bytes up to the last whole record).

    Raises :class:`WALCorruptError` for a damaged record that is followed by more data.
    """
    payloads, pos, end = [], 0, len(data)
    while pos < end:
        if end - pos < _HEAD.size:
            break  # torn header at the tail
        magic, length, crc, head_crc = _HEAD.unpack_from(data, pos)
        if magic != MAGIC or zlib.crc32(data[pos : pos + _HEAD_BODY.size]) != head_crc:
            if not any(data[pos:]):
                break  # zero-filled tail left by a crash during an extending write
            raise WALCorruptError(f"{name}: damaged record header at byte {pos} (not a torn tail: data follows)")
        stop = pos + _HEAD.size + length
        if stop > end:
            break  # torn payload at the tail
        payload = data[pos + _HEAD.size : stop]
        if zlib.crc32(payload) != crc:
            if stop == end or not any(data[stop:]):
                break  # the last record was torn
            raise WALCorruptError(f"{name}: checksum mismatch in the record at byte {pos} (data follows)")
        payloads.append(payload)
        pos = stop
    return payloads, pos


class WriteAheadLog:
    """One log file: :meth:`replay` its whole records, then :meth:`append` new ones (fsync each)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None
        self.size = 0

    def replay(self) -> Iterator[tuple[dict[str, Any], dict[str, np.ndarray]]]:
        """Decode every whole record; a torn tail is cut off the file so appends follow good data."""
        if not self.path.exists():
            return iter(())
        data = self.path.read_bytes()
        payloads, good = scan(data, str(self.path))
        if good < len(data):
            with open(self.path, "r+b") as fh:
                fh.truncate(good)
                fh.flush()
                os.fsync(fh.fileno())
        self.size = good
        return (decode_payload(p) for p in payloads)

    def open(self) -> None:
        """Open for appending (creating the file and fsyncing its directory entry if new)."""
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.size = os.fstat(self._fd).st_size
        if created:
            fsync_dir(self.path.parent)

    def append(self, record: bytes) -> None:
        """Write one framed record and fsync: durable when this returns."""
        if self._fd is None:
            raise ValueError(f"{self.path}: the log is closed")
        view = memoryview(record)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except BaseException:
            # A half-written record followed by later appends would read as corruption: cut it off.
            try:
                os.ftruncate(self._fd, self.size)
            except OSError:
                pass
            raise
        self.size += len(record)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

