"""Reads over replicas: balanced placement, batch splitting, hedging, and one state per shard.

* **Placement.** Each read goes to the readable replica of its shard with the fewest reads in
  flight from this driver (least outstanding); equally loaded replicas take turns. A query batch of
  at least ``2 * min_split_rows`` rows is cut into contiguous parts, one per replica, so one caller's
  batch uses every replica's cores.
* **Hedging.** A part not answered after the hedge delay is sent to another replica too; the first
  answer wins, the other call is cancelled (dropped if still queued). The replica that was overtaken
  gets no reads for ``slow_cooldown_s`` while another can serve, so a slow replica delays at most one
  read per cooldown instead of every other read. The delay is ``hedge_after_s`` when given, else
  adaptive: ``HEDGE_FACTOR`` times the shard's recent answer time scaled to the part's rows, at least
  ``HEDGE_MIN_S``.
* **One state per shard.** The parts of one shard are sent in one critical section of the shard's
  lock, which every write of that shard also takes to send itself, and each answer carries the
  write sequence number of the state it searched. Parts that still disagree (a hedge or retry sent
  after a write) make that shard's whole batch run again as one call on one replica.
* A dead replica is dropped (and healed) and its part sent to another replica; every read is
  bounded by ``timeout_s`` (:class:`~vecsearch.distributed.errors.ShardTimeoutError`).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ShardTimeoutError
from .remote import cancel_quietly, get_answer, raise_if_init_failed, ray_module
from .replicas import Replica, ReplicaGroup
from .replication import Replication
from .routing import contiguous_parts

# Adaptive hedge delay: this many times the expected answer time, and never less than HEDGE_MIN_S.
HEDGE_FACTOR = 3.0
HEDGE_MIN_S = 0.05
# Before a shard has answered anything, hedge after this long (capped at half the timeout).
HEDGE_UNKNOWN_S = 1.0
LATENCY_SAMPLES = 32


class LatencyModel:
    """Recent answer times of one shard: ``expected(rows)`` is the median of each sample's seconds
    scaled linearly to ``rows`` (None before any answer)."""

    def __init__(self) -> None:
        self.samples: deque[tuple[int, float]] = deque(maxlen=LATENCY_SAMPLES)

    def record(self, rows: int, seconds: float) -> None:
        self.samples.append((max(1, rows), seconds))

    def expected(self, rows: int) -> float | None:
        if not self.samples:
            return None
        return float(np.median([seconds * max(1, rows) / n for n, seconds in list(self.samples)]))


@dataclass(eq=False)
class Part:
    """One call of a read: to shard ``shard`` with ``args``, over ``rows`` query rows."""

    shard: int
    args: tuple
    rows: int
    attempts: dict[Any, tuple[Replica, float]] = field(
        default_factory=dict
    )  # ref -> (replica, sent at)
    tried: set[int] = field(default_factory=set)
    answer: Any = None
    done: bool = False
    hedge_at: float = math.inf


class ReadRouter:
    """Sends the reads of a :class:`ShardedIndex` (placement, hedging, failover) and gathers them."""

    def __init__(
        self,
        replication: Replication,
        *,
        timeout_s: float,
        hedge_after_s: float | None,
        min_split_rows: int,
        slow_cooldown_s: float,
    ):
        self.replication = replication
        self.timeout_s = timeout_s
        self.hedge_after_s = hedge_after_s
        self.min_split_rows = min_split_rows
        self.slow_cooldown_s = slow_cooldown_s
        self.latency = [LatencyModel() for _ in replication.groups]
        self.hedges_sent = 0
        self.hedges_won = 0

    # ---- public entry points --------------------------------------------------------------------------
    def call(self, method: str, args_by_shard: dict[int, tuple]) -> dict[int, Any]:
        """``method(*args)`` on one readable replica of each shard; ``{shard: answer}``.

        Not hedged (``save`` must not run twice into one directory); a dead replica fails over.
        """
        parts = {s: [Part(s, args, 1)] for s, args in args_by_shard.items()}
        self._run(method, parts, hedge=False)
        return {s: shard_parts[0].answer for s, shard_parts in parts.items()}

    def search(
        self,
        queries: Any,
        n_rows: int,
        take: Any,
        share: Any,
        k: int,
        where: Any,
        params: dict[str, Any],
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Every shard's ``(ids, distances)`` for the ``n_rows`` queries, each shard searched in one state.

        ``take(queries, rows)`` cuts a batch into rows; ``share(batch)`` puts it where every shard's
        call can reach it (inline or the object store).
        """
        groups = self.replication.groups
        shared: dict[int, list[tuple[np.ndarray, Any]]] = {}

        def cut(n_parts: int) -> list[tuple[np.ndarray, Any]]:
            if n_parts not in shared:
                shared[n_parts] = [
                    (rows, share(queries if n_parts == 1 else take(queries, rows)))
                    for rows in contiguous_parts(n_rows, n_parts)
                ]
            return shared[n_parts]

        parts: dict[int, list[Part]] = {}
        for group in groups:
            n_parts = max(
                1, min(group.readable_count(fast_only=True), n_rows // self.min_split_rows)
            )
            parts[group.shard] = [
                Part(group.shard, (batch, k, where, params), rows.shape[0])
                for rows, batch in cut(n_parts)
            ]
        self._run("search", parts, hedge=True)
        out = {}
        for s, shard_parts in parts.items():
            if len({p.answer[2] for p in shard_parts}) > 1:
                # The parts saw different writes: search this shard's whole batch in one call.
                whole = [Part(s, (cut(1)[0][1], k, where, params), n_rows)]
                self._run("search", {s: whole}, hedge=True)
                shard_parts = whole
            out[s] = (
                np.concatenate([p.answer[0] for p in shard_parts]),
                np.concatenate([p.answer[1] for p in shard_parts]),
            )
        return out

    # ---- the event loop -----------------------------------------------------------------------------------
    def _hedge_delay(self, shard: int, rows: int) -> float:
        if self.hedge_after_s is not None:
            return self.hedge_after_s
        expected = self.latency[shard].expected(rows)
        if expected is None:
            return min(HEDGE_UNKNOWN_S, self.timeout_s / 2)
        return max(HEDGE_MIN_S, HEDGE_FACTOR * expected)

    def _send(self, method: str, group: ReplicaGroup, shard_parts: list[Part], hedge: bool) -> None:
        """Send ``shard_parts`` (all of one shard, in one critical section) to distinct replicas when possible."""
        sent = group.submit_reads(method, [p.args for p in shard_parts], exclude=set())
        now = time.monotonic()
        for part, placed in zip(shard_parts, sent):
            if placed is None:
                raise group.unavailable()
            replica, ref = placed
            part.attempts[ref] = (replica, now)
            part.tried.add(id(replica))
            part.hedge_at = now + self._hedge_delay(part.shard, part.rows) if hedge else math.inf

    def _resend(self, method: str, group: ReplicaGroup, part: Part, *, hedge: bool) -> bool:
        """Send ``part`` to a replica it has not tried; False when there is none."""
        placed = group.submit_reads(method, [part.args], exclude=part.tried)[0]
        now = time.monotonic()
        if placed is None:
            part.hedge_at = math.inf
            return False
        replica, ref = placed
        part.attempts[ref] = (replica, now)
        part.tried.add(id(replica))
        part.hedge_at = now + self._hedge_delay(part.shard, part.rows)
        if hedge:
            self.hedges_sent += 1
        return True

    def _run(self, method: str, parts: dict[int, list[Part]], *, hedge: bool) -> None:
        """Send every part, hedge (when ``hedge``) and fail over until each has an answer; raise the
        first real error."""
        ray = ray_module()
        groups = self.replication.groups
        n_shards = self.replication.n_shards
        deadline = time.monotonic() + self.timeout_s
        limit = f"timeout_s={self.timeout_s:g}"
        flat = [p for shard_parts in parts.values() for p in shard_parts]
        try:
            for s, shard_parts in parts.items():
                self._send(method, groups[s], shard_parts, hedge)
            while True:
                waiting = {ref: part for part in flat if not part.done for ref in part.attempts}
                if not waiting:
                    return
                now = time.monotonic()
                if now >= deadline:
                    late = next(p for p in flat if not p.done)
                    raise ShardTimeoutError(
                        late.shard,
                        f"shard {late.shard} of {n_shards} did not answer within {limit} s",
                    )
                wake = min([deadline] + [p.hedge_at for p in flat if hedge and not p.done])
                ready, _ = ray.wait(list(waiting), num_returns=1, timeout=max(0.0, wake - now))
                for ref in ready:
                    self._answered(method, waiting[ref], ref, deadline, limit, hedge)
                now = time.monotonic()
                for part in flat:
                    if hedge and not part.done and part.hedge_at <= now:
                        self._resend(method, groups[part.shard], part, hedge=True)
        finally:
            for part in flat:
                for ref, (replica, _) in list(part.attempts.items()):
                    cancel_quietly(ref)
                    groups[part.shard].finish_read(replica)
                part.attempts.clear()

    def _answered(
        self, method: str, part: Part, ref: Any, deadline: float, limit: str, hedge: bool
    ) -> None:
        """Take the answer of ``ref`` for ``part``: the winner, a dead replica (resend), or an error."""
        ray = ray_module()
        group = self.replication.groups[part.shard]
        replica, sent_at = part.attempts.pop(ref)
        group.finish_read(replica)
        try:
            answer = get_answer(part.shard, self.replication.n_shards, ref, deadline, limit)
        except ray.exceptions.RayActorError as exc:
            raise_if_init_failed(part.shard, self.replication.n_shards, exc)
            self.replication.lose(group, replica, "its actor died")
            if not part.attempts and not self._resend(method, group, part, hedge=False):
                raise group.unavailable() from None
            return
        part.answer, part.done = answer, True
        now = time.monotonic()
        if hedge:
            self.latency[part.shard].record(part.rows, now - sent_at)
        overtaken = False
        for other_ref, (other, other_sent_at) in part.attempts.items():
            cancel_quietly(other_ref)
            # Sent before the winner and still not answered: slow. Sent after: just late to start.
            earlier = other_sent_at < sent_at
            overtaken |= earlier
            group.finish_read(
                other, overtaken_until=now + self.slow_cooldown_s if earlier else None
            )
        part.attempts.clear()
        if overtaken:
            self.hedges_won += 1
