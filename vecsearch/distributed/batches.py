"""Batches the sharded index ships: vectors ``(n, dim)`` or token sets (MultiVector) in CSR form.

Validation in the driver (so no shard rejects its slice after another stored its own), cutting a
batch into rows (per shard, per replica), and putting it where the shard actors can reach it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..codecs.fde import as_token_sets
from ..validation import as_vectors
from .remote import ray_module

# Batches smaller than this travel inline with each call (no object-store round trip: the one-query
# latency); larger ones are put in the object store once and shared by every shard / replica.
INLINE_BYTES = 64 * 1024


class TokenSets(NamedTuple):
    """A batch of token sets (MultiVector documents or queries) in CSR form.

    ``vectors`` float32 ``(N, dim)`` holds every set's tokens one after another; ``offsets`` int64
    ``(n + 1,)`` delimits set ``i`` as ``vectors[offsets[i]:offsets[i + 1]]``. It is a 2-tuple, the
    form ``MultiVectorIndex.add`` / ``search`` accept.
    """

    vectors: np.ndarray
    offsets: np.ndarray


def batch_rows(batch: np.ndarray | TokenSets) -> int:
    """Number of rows (vectors, or token sets) of a batch."""
    if isinstance(batch, TokenSets):
        return int(batch.offsets.shape[0] - 1)
    return int(batch.shape[0])


def take_rows(batch: np.ndarray | TokenSets, rows: np.ndarray) -> np.ndarray | TokenSets:
    """Rows ``rows`` (int64, any order) of a vector batch ``(n, dim)`` or of token sets, same form."""
    if not isinstance(batch, TokenSets):
        return np.ascontiguousarray(batch[rows])
    starts, stops = batch.offsets[rows], batch.offsets[rows + 1]
    lengths = stops - starts
    offsets = np.zeros(rows.shape[0] + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # Token row of every output token: its set's start plus its place inside the set.
    token_rows = np.repeat(starts - offsets[:-1], lengths) + np.arange(
        int(offsets[-1]), dtype=np.int64
    )
    return TokenSets(np.ascontiguousarray(batch.vectors[token_rows]), offsets)


def share(batch: Any) -> Any:
    """``batch`` itself when small, else an ObjectRef from one ``ray.put`` shared by all receivers."""
    if isinstance(batch, TokenSets):
        nbytes = batch.vectors.nbytes + batch.offsets.nbytes
    else:
        nbytes = batch.nbytes
    return batch if nbytes < INLINE_BYTES else ray_module().put(batch)


def batch_dim(x: Any, takes_vectors: bool, name: str, offsets: Any) -> int:
    """The dimension of a first batch (vectors ``(n, dim)`` or token sets), checking its shape."""
    if takes_vectors:
        arr = np.asarray(x)
        if arr.ndim != 2:
            raise ValueError(f"{name}: expected shape (n, dim), got {arr.ndim}-D shape {arr.shape}")
        return int(arr.shape[1])
    return int(as_token_sets(x, None, name, offsets)[0].shape[1])


def as_batch(
    x: Any,
    dim: int,
    takes_vectors: bool,
    name: str,
    offsets: Any = None,
    *,
    allow_single: bool = False,
) -> np.ndarray | TokenSets:
    """Validated float32 vectors ``(n, dim)``, or :class:`TokenSets` for a multi-vector index type."""
    if takes_vectors:
        if offsets is not None:
            raise TypeError(
                f"offsets: only multi-vector index types take token sets, got offsets for {name}"
            )
        return as_vectors(x, dim, name, allow_single=allow_single)
    return TokenSets(*as_token_sets(x, dim, name, offsets))


def query_count(queries: Any, takes_vectors: bool, offsets: Any) -> int:
    """Number of queries in ``queries`` (vectors ``(nq, dim)`` / ``(dim,)``, or token sets), unvalidated otherwise."""
    if not takes_vectors:
        return int(as_token_sets(queries, None, "queries", offsets)[1].shape[0] - 1)
    arr = np.asarray(queries)
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"queries: expected shape (nq, dim) or (dim,), got {arr.ndim}-D shape {arr.shape}"
        )
    return 1 if arr.ndim == 1 else int(arr.shape[0])
