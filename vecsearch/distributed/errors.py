"""Errors of the sharded index; each names the shard that failed."""

from __future__ import annotations


class ShardError(RuntimeError):
    """A shard of a :class:`~vecsearch.distributed.ShardedIndex` could not serve a call."""

    def __init__(self, shard: int, message: str):
        super().__init__(message)
        self.shard = shard


class ShardUnavailableError(ShardError):
    """Every replica of shard ``shard`` is dead (its Ray actor died or was killed)."""


class ShardTimeoutError(ShardError, TimeoutError):
    """Shard ``shard`` did not answer within ``timeout_s`` seconds."""


class HealError(ShardError):
    """A new replica of shard ``shard`` could not be started or brought up to date."""


class WriteSequenceError(RuntimeError):
    """Raised inside a shard actor given a write out of order: it missed a write.

    Every write to a shard carries the shard's next sequence number; a replica that receives
    write ``n + 2`` after ``n`` has diverged from its peers and is replaced.
    """
