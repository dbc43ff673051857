"""Scale-out: :class:`ShardedIndex`, a vecsearch index split over Ray actors (``pip install 'vecsearch[distributed]'``).

Importing this package does not import Ray; Ray is imported when the first ``ShardedIndex``
is created.
"""

from __future__ import annotations

from .errors import (
    HealError,
    ShardError,
    ShardTimeoutError,
    ShardUnavailableError,
    WriteSequenceError,
)
from .remote import connect
from .routing import merge_topk, shard_of, splitmix64
from .sharded import ShardedIndex

__all__ = [
    "HealError",
    "ShardError",
    "ShardTimeoutError",
    "ShardUnavailableError",
    "ShardedIndex",
    "WriteSequenceError",
    "connect",
    "merge_topk",
    "shard_of",
    "splitmix64",
]
