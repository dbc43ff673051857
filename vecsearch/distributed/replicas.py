"""The replicas of one shard as the driver sees them: membership, the write sequence, read placement.

:class:`ReplicaGroup` is the one place that sends calls to a shard's actors while holding the
shard's lock: writes (each with the next sequence number, to every member) and the parts of a read
(spread over the readable members). Because both send inside the same critical section, every
replica receives the writes in one order, and the parts of one read land between the same two
writes. Healing (:mod:`.replication`) and read routing (:mod:`.reads`) build on it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import ShardUnavailableError


@dataclass(eq=False)
class Replica:
    """One actor of a shard, as the driver tracks it.

    ``readable``: serves reads (False while a new replica replays its last writes);
    ``outstanding``: reads sent and not yet answered (least-outstanding balancing);
    ``reads_sent``: reads sent in total; ``slow_until``: ``time.monotonic`` until which the replica
    gets reads only when no other one can serve (set when a hedged read overtook it).
    """

    actor: Any
    name: str
    readable: bool = True
    outstanding: int = 0
    reads_sent: int = 0
    slow_until: float = 0.0


@dataclass(eq=False)
class LoggedWrite:
    """A write sent while a heal was copying: replayed on the new replica after its snapshot."""

    seq: int
    method: str
    args: tuple
    failed: bool | None = None  # known once every replica answered: True when all rejected it
    settled: threading.Event = field(default_factory=threading.Event)


class ReplicaGroup:
    """The replicas of one shard: membership, the write sequence, and read placement."""

    def __init__(self, shard: int, n_shards: int, target: int, actors: list[Any]):
        self.shard = shard
        self.n_shards = n_shards
        self.target = target
        self.lock = threading.Lock()  # members, seq, log and the counters below
        self.heal_lock = threading.Lock()  # one heal of this shard at a time
        self.members = [Replica(actor, self._new_name(i)) for i, actor in enumerate(actors)]
        self.generation = len(actors)
        self.seq = 0  # last write sequence number handed out
        self.log: list[LoggedWrite] | None = None  # writes since a heal's snapshot began
        self._turn = 0  # round-robin among equally loaded replicas

    def _new_name(self, number: int) -> str:
        return f"shard{self.shard}/replica{number}"

    def next_name(self) -> str:
        with self.lock:
            name = self._new_name(self.generation)
            self.generation += 1
        return name

    def unavailable(self) -> ShardUnavailableError:
        return ShardUnavailableError(
            self.shard,
            f"shard {self.shard} of {self.n_shards} is unavailable: all its replica actor(s) are dead",
        )

    def live(self) -> list[Replica]:
        with self.lock:
            return list(self.members)

    def readable_count(self, *, fast_only: bool = False) -> int:
        """Replicas that serve reads (``fast_only``: not marked slow by a hedge), at least 1 if any serve."""
        now = time.monotonic()
        with self.lock:
            readable = [r for r in self.members if r.readable]
            fast = [r for r in readable if r.slow_until <= now]
            return len(fast) if fast_only and fast else len(readable)

    def remove(self, replica: Replica) -> bool:
        """Drop ``replica`` from the shard; False when it was already gone."""
        with self.lock:
            if replica in self.members:
                self.members.remove(replica)
                return True
        return False

    # ---- writes ---------------------------------------------------------------------------------------
    def submit_write(
        self, method: str, args: tuple
    ) -> tuple[list[tuple[Replica, Any]], LoggedWrite | None]:
        """Give the write the next sequence number and send it to every member, in one critical section."""
        with self.lock:
            if not self.members:
                raise self.unavailable()
            self.seq += 1
            sent = [(r, r.actor.apply.remote(self.seq, method, *args)) for r in self.members]
            entry = None
            if self.log is not None:
                entry = LoggedWrite(self.seq, method, args)
                self.log.append(entry)
        return sent, entry

    # ---- reads -----------------------------------------------------------------------------------------
    def _pick(self, exclude: set[int], now: float) -> Replica | None:
        """The readable replica to read from: not slow, least outstanding, ties in turn (lock held)."""
        candidates = [r for r in self.members if r.readable and id(r) not in exclude]
        if not candidates:
            return None
        fast = [r for r in candidates if r.slow_until <= now] or candidates
        fewest = min(r.outstanding for r in fast)
        tied = [r for r in fast if r.outstanding == fewest]
        self._turn += 1
        return tied[self._turn % len(tied)]

    def submit_reads(
        self, method: str, args_list: list[tuple], exclude: set[int] | None = None
    ) -> list[tuple[Replica, Any] | None]:
        """Send ``method(*args)`` for each entry of ``args_list``, spreading them over the readable
        replicas, in one critical section: no write of this shard lands between them, so the parts
        of one batch see the same state. ``None`` where no replica (outside ``exclude``) can serve."""
        out: list[tuple[Replica, Any] | None] = []
        now = time.monotonic()
        with self.lock:
            for args in args_list:
                replica = self._pick(exclude or set(), now)
                if replica is None:
                    out.append(None)
                    continue
                replica.outstanding += 1
                replica.reads_sent += 1
                out.append((replica, getattr(replica.actor, method).remote(*args)))
        return out

    def finish_read(self, replica: Replica, overtaken_until: float | None = None) -> None:
        """A read of ``replica`` answered or was abandoned; ``overtaken_until`` marks it slow until then."""
        with self.lock:
            replica.outstanding = max(0, replica.outstanding - 1)
            if overtaken_until is not None:
                replica.slow_until = max(replica.slow_until, overtaken_until)

    def status(self) -> dict[str, Any]:
        """The shard's replica target, last write sequence number, whether a heal is copying, and
        per replica: name, readable, reads in flight, reads sent, marked slow."""
        now = time.monotonic()
        with self.lock:
            return {
                "shard": self.shard,
                "target": self.target,
                "write_seq": self.seq,
                "copying": self.log is not None,
                "replicas": [
                    {
                        "name": r.name,
                        "readable": r.readable,
                        "outstanding": r.outstanding,
                        "reads_sent": r.reads_sent,
                        "slow": r.slow_until > now,
                    }
                    for r in self.members
                ],
            }
