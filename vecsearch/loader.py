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
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    for name, flag in (("mmap", mmap), ("verify", verify)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name}: expected True or False, got {type(flag).__name__} {flag!r}")
    header, arrays = read_directory(path, mmap=mmap, verify=verify)
    try:
        return Index.from_state(header, arrays)
    except IndexFileError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise IndexFileError(f"{Path(path) / MANIFEST}: {exc}") from None
    except Exception as exc:
        # the net under the checks: a content no check foresaw is still a file error
        raise IndexFileError(f"{Path(path) / MANIFEST}: inconsistent contents ({type(exc).__name__}: {exc})") from exc
