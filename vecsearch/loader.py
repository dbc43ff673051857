"""``vs.load(path)``: restore any saved index (every index type is registered by importing ``indexes``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import indexes  # noqa: F401  (defines, and so registers, every index type)
from .base import Index
from .io import MANIFEST, IndexFileError, read_directory


def load(path: str | os.PathLike, mmap: bool = False, *, verify: bool = True) -> Any:
    """Restore any index saved with ``index.save(path)``; ``mmap=True`` maps arrays read-only.

    ``verify`` checks every array's checksum (reads the whole file once, also with mmap). A file
    that is missing, truncated, edited or inconsistent raises :class:`vecsearch.IndexFileError`
    naming the file and the field.
    """
    header, arrays = read_directory(path, mmap=mmap, verify=verify)
    try:
        return Index.from_state(header, arrays)
    except (ValueError, TypeError, KeyError) as exc:
        raise IndexFileError(f"{Path(path) / MANIFEST}: {exc}") from None
