"""On-disk layout of a sharded index: ``shard_00000/`` ... (one vecsearch index directory per shard)
plus ``manifest.json``, assembled beside the target and renamed into place."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..io import IndexFileError, fsync_dir, publish_directory, read_format_manifest

FORMAT_NAME = "vecsearch-sharded-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ROUTING = "splitmix64-mod"


def shard_dir_name(shard: int) -> str:
    return f"shard_{shard:05d}"


def write_sharded(
    path: str | os.PathLike,
    n_shards: int,
    write_shards: Callable[[list[str]], dict[int, int]],
    header: dict[str, Any],
) -> None:
    """Write a sharded index to directory ``path`` atomically.

    ``write_shards(dirs)`` saves shard ``s`` into ``dirs[s]`` (absolute paths inside a temporary
    sibling of ``path``) and returns ``{shard: ntotal}``. The manifest (``header`` plus format,
    routing and the shard list) is written last, then the directory is renamed into place; an
    existing index at ``path`` is replaced only once the new one is complete.
    """
    target = Path(path).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        names = [shard_dir_name(s) for s in range(n_shards)]
        sizes = write_shards([str(tmp / name) for name in names])
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "routing": ROUTING,
            **header,
            "n_shards": n_shards,
            "shards": [{"dir": names[s], "ntotal": int(sizes[s])} for s in range(n_shards)],
        }
        partial = tmp / (MANIFEST + ".partial")
        with open(partial, "w") as fh:
            json.dump(manifest, fh, indent=2, sort_keys=True, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, tmp / MANIFEST)
        fsync_dir(tmp)
        publish_directory(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_sharded(path: str | os.PathLike) -> tuple[dict[str, Any], list[str]]:
    """The checked manifest of a sharded index directory and the absolute path of each shard directory."""
    directory = Path(path).absolute()
    manifest_file = directory / MANIFEST
    manifest = read_format_manifest(manifest_file, FORMAT_NAME, FORMAT_VERSION)
    if manifest.get("routing") != ROUTING:
        raise IndexFileError(f"{manifest_file}: unknown routing {manifest.get('routing')!r}")
    for key in ("spec", "dim", "metric", "next_id"):
        if key not in manifest:
            raise IndexFileError(f"{manifest_file}: entry {key!r} is missing")
    shards = manifest.get("shards")
    if not isinstance(shards, list) or len(shards) != manifest.get("n_shards") or not shards:
        raise IndexFileError(f"{manifest_file}: 'shards' does not list n_shards entries")
    dirs = []
    for s, entry in enumerate(shards):
        shard_dir = directory / str(entry.get("dir", "")) if isinstance(entry, dict) else None
        if shard_dir is None or not entry.get("dir") or not shard_dir.is_dir():
            raise IndexFileError(f"{directory}: missing directory of shard {s}")
        dirs.append(str(shard_dir))
    return manifest, dirs
