"""Pure-numpy helpers of the sharded index: id -> shard routing, splitting a batch, merging top-k.

Nothing here imports Ray, so these pieces are unit-testable and usable by any transport.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64(ids: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer of int64 ``ids`` (n,) as uint64 (n,): a stable, well-mixed hash.

    Stable across processes, machines and numpy versions (pure integer arithmetic modulo 2**64),
    so a saved sharded index routes every id to the same shard after loading.
    """
    z = np.asarray(ids, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = z + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def shard_of(ids: np.ndarray, n_shards: int) -> np.ndarray:
    """Shard number of each id: ``splitmix64(id) % n_shards``, int64 (n,)."""
    return (splitmix64(ids) % np.uint64(n_shards)).astype(np.int64)


def split_rows(shards: np.ndarray, n_shards: int) -> list[np.ndarray]:
    """Row numbers (int64, ascending) of the batch that go to each shard."""
    order = np.argsort(shards, kind="stable")
    bounds = np.searchsorted(shards[order], np.arange(n_shards + 1))
    return [order[bounds[s] : bounds[s + 1]] for s in range(n_shards)]


def contiguous_parts(n_rows: int, n_parts: int) -> list[np.ndarray]:
    """Row numbers ``0 .. n_rows - 1`` cut into ``n_parts`` contiguous, near-equal, non-empty parts."""
    n_parts = max(1, min(n_parts, n_rows))
    bounds = np.linspace(0, n_rows, n_parts + 1).round().astype(np.int64)
    return [np.arange(bounds[p], bounds[p + 1], dtype=np.int64) for p in range(n_parts)]


def attribute_rows(attributes: Any, n: int) -> int:
    """Validate the shape of ``attributes`` against ``n`` rows; return ``n``.

    Accepted (the forms of ``Index.add(attributes=...)``): a dict of columns, each a sequence of
    ``n`` values, or a list of ``n`` per-row dicts.
    """
    if isinstance(attributes, dict):
        for field, column in attributes.items():
            try:
                length = len(column)
            except TypeError:
                raise TypeError(
                    f"attributes[{field!r}]: expected a sequence of {n} values, got {type(column).__name__}"
                ) from None
            if length != n:
                raise ValueError(
                    f"attributes[{field!r}]: expected {n} values (one per vector), got {length}"
                )
        return n
    if isinstance(attributes, (list, tuple)):
        if len(attributes) != n:
            raise ValueError(
                f"attributes: expected {n} per-row dicts (one per vector), got {len(attributes)}"
            )
        return n
    raise TypeError(
        f"attributes: expected a dict of columns or a list of per-row dicts, got {type(attributes).__name__}"
    )


def take_attributes(attributes: Any, rows: np.ndarray) -> Any:
    """The attributes of ``rows`` (int64), in the same form as given (dict of columns or list of dicts)."""
    if isinstance(attributes, dict):
        out = {}
        for field, column in attributes.items():
            if isinstance(column, np.ndarray):
                out[field] = column[rows]
            else:
                out[field] = [column[i] for i in rows.tolist()]
        return out
    return [attributes[i] for i in rows.tolist()]


def merge_topk(
    ids_list: list[np.ndarray], dist_list: list[np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-shard results (each ids int64 (nq, k_s), distances float32 (nq, k_s)) into the top ``k``.

    Returns ``(ids int64 (nq, k), distances float32 (nq, k))`` sorted by distance ascending; equal
    distances are ordered by ascending id (so the order never depends on the shard layout);
    padding (id -1, +inf) goes last and fills missing places.
    """
    ids = np.concatenate(ids_list, axis=1)
    dists = np.concatenate(dist_list, axis=1).astype(np.float32, copy=False)
    nq = ids.shape[0]
    # Padding last whatever its distance; then distance; then id.
    tie_key = np.where(ids < 0, np.iinfo(np.int64).max, ids)
    pad_key = ids < 0
    order = np.lexsort((tie_key, dists, pad_key), axis=1)
    keep = order[:, :k]
    out_ids = np.take_along_axis(ids, keep, axis=1)
    out_dists = np.take_along_axis(dists, keep, axis=1)
    if out_ids.shape[1] < k:
        pad = k - out_ids.shape[1]
        out_ids = np.concatenate([out_ids, np.full((nq, pad), -1, np.int64)], axis=1)
        out_dists = np.concatenate([out_dists, np.full((nq, pad), np.inf, np.float32)], axis=1)
    out_dists = np.where(out_ids >= 0, out_dists, np.float32(np.inf)).astype(np.float32, copy=False)
    return np.ascontiguousarray(out_ids, dtype=np.int64), np.ascontiguousarray(out_dists)
