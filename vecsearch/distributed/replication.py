"""Replicas of each shard: membership, writes in one order, and healing (re-replication).

**Writes in one order.** Every write to a shard (``add``, ``remove``, a trained state) takes the
shard's next sequence number and is sent to every replica while the shard's lock is held, so all
replicas receive the writes in the same order (Ray runs one caller's calls to a synchronous actor
in the order they were sent) and apply them in that order; an HNSW graph grows identically on every
replica. A replica handed a number out of order missed a write: it raises
:class:`~vecsearch.distributed.errors.WriteSequenceError` and is replaced, like one that rejects a
write its peers applied.

**Healing.** ``replicas`` is a target. When a replica dies (or missed a write) a new actor is
started and restored from a live replica's state (``Index.get_state`` / ``Index.from_state``: ids
and attributes included), then brought up to date:

1. the shard starts logging its writes (each log entry keeps the references of the write's
   arguments, which are already in Ray's object store);
2. the live replica's snapshot is taken in write order (it holds writes ``1 .. S`` exactly) and goes
   from the source's object store into the new actor without passing through the driver;
3. the new actor replays the logged writes after ``S`` while writes go on, in rounds, until the
   remaining tail is short; then, under the shard's lock (a few microseconds of sending, no waiting),
   the tail is sent and the new actor joins the shard's write set; it serves reads once it has
   applied the tail.

Why a log and not a write pause: the copy takes seconds per GB (measured in docs/distributed.md),
and a pause would stall every add and remove to that shard for the whole copy. The log costs
nothing when no heal runs and, during one, only references to arguments the object store holds
anyway. The price is one more code path (the replay), checked by the sequence numbers: a replayed
write out of order fails the heal instead of corrupting the replica.

A background thread (``auto_heal``) heals as soon as a call notices a dead replica, and probes
every replica every ``health_check_s`` seconds; :meth:`Replication.heal` does the same on demand
and waits. A shard whose every replica died has nothing to copy from: it stays unavailable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import HealError, ShardTimeoutError, WriteSequenceError
from .remote import get_answer, init_failure, raise_if_init_failed, ray_module
from .replicas import LoggedWrite, Replica, ReplicaGroup

logger = logging.getLogger(__name__)

# Catch-up rounds end when at most this many logged writes remain (sent under the shard's lock).
FINAL_TAIL_WRITES = 4
# After this many rounds the tail is sent whatever its length (writes outpacing the replay).
MAX_CATCH_UP_ROUNDS = 8
# How long a health probe waits for replicas to answer; a busy one that does not is left alone.
PROBE_WAIT_S = 1.0


@dataclass
class HealEvent:
    """One replica brought back: sizes and the time of each step (seconds)."""

    shard: int
    replica: str
    source: str
    state_bytes: int
    start_s: float  # new actor process up
    copy_s: float  # snapshot + object-store transfer + Index.from_state
    catch_up_s: float  # replay of the writes logged during the copy
    caught_up_writes: int
    total_s: float
    loadavg: list[float] | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Replication:
    """Every shard's :class:`ReplicaGroup`, the write path, and healing back to the replica target.

    ``start_actor(shard)`` starts one new, empty shard actor (not waited for).
    """

    def __init__(
        self,
        groups: list[ReplicaGroup],
        start_actor: Callable[[int], Any],
        *,
        timeout_s: float,
        start_timeout_s: float,
        auto_heal: bool,
        health_check_s: float,
    ):
        self.groups = groups
        self.n_shards = len(groups)
        self.start_actor = start_actor
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.closed = False
        self.events: list[HealEvent] = []
        self.lost: list[dict[str, Any]] = []  # replicas dropped: shard, name, reason
        self.last_heal_error: str | None = None
        self._healer = None
        if auto_heal and any(g.target > 1 for g in groups):
            self._healer = Healer(self, health_check_s)

    # ---- losing replicas ----------------------------------------------------------------------------
    def lose(
        self, group: ReplicaGroup, replica: Replica, reason: str, *, kill: bool = False
    ) -> None:
        """Drop a dead or diverged replica (killing it when ``kill``) and wake the healer."""
        if kill:
            with contextlib.suppress(Exception):
                ray_module().kill(replica.actor)
        if group.remove(replica):
            self.lost.append({"shard": group.shard, "replica": replica.name, "reason": reason})
            logger.warning("vecsearch: %s dropped (%s)", replica.name, reason)
            if self._healer is not None:
                self._healer.wake()

    def probe(self) -> None:
        """Ping every replica; drop those whose actor is dead (busy ones that do not answer in time stay)."""
        ray = ray_module()
        pings = {}
        for group in self.groups:
            for replica in group.live():
                pings[replica.actor.__ray_ready__.remote()] = (group, replica)
        if not pings:
            return
        ready, _ = ray.wait(list(pings), num_returns=len(pings), timeout=PROBE_WAIT_S)
        for ref in ready:
            try:
                ray.get(ref, timeout=0)
            except ray.exceptions.RayActorError:
                group, replica = pings[ref]
                self.lose(group, replica, "its actor died")
            except Exception:  # noqa: BLE001, S110 - a ping that failed otherwise says nothing about death
                pass

    # ---- writes ---------------------------------------------------------------------------------------
    def write(
        self, method: str, args_by_shard: dict[int, tuple], timeout_s: float | None = None
    ) -> dict[int, Any]:
        """Apply a write to every replica of each shard in ``args_by_shard``; returns one answer per shard.

        A replica that dies is dropped (the heal replaces it); one that missed a write or rejects a
        write its peers applied is killed and replaced. Raises the shard's error when every replica
        rejected the write (they agree: the index is unchanged everywhere), ``ShardUnavailableError``
        when none is left, ``ShardTimeoutError`` past ``timeout_s`` (the write then still applies,
        in order, when the replica gets to it).
        """
        ray = ray_module()
        limit = self.timeout_s if timeout_s is None else timeout_s
        sent = []
        for s, args in args_by_shard.items():
            group = self.groups[s]
            replicas, entry = group.submit_write(method, args)
            sent.append((group, replicas, entry, time.monotonic() + limit))
        results: dict[int, Any] = {}
        first_error: BaseException | None = None
        for group, replicas, entry, deadline in sent:
            applied, rejected = [], []
            for replica, ref in replicas:
                try:
                    applied.append(
                        get_answer(
                            group.shard, self.n_shards, ref, deadline, f"timeout_s={limit:g}"
                        )
                    )
                except ray.exceptions.RayActorError as exc:
                    raise_if_init_failed(group.shard, self.n_shards, exc)
                    self.lose(group, replica, "its actor died")
                except WriteSequenceError as exc:
                    self.lose(group, replica, f"it missed a write ({exc})", kill=True)
                except Exception as exc:  # noqa: BLE001 - sorted out below, once every replica answered
                    rejected.append((replica, exc))
            if applied:
                for replica, exc in rejected:
                    # A replica past the deadline is slow, not diverged: it applies the write in order.
                    if not isinstance(exc, ShardTimeoutError):
                        reason = f"it rejected a write its peers applied ({exc})"
                        self.lose(group, replica, reason, kill=True)
                results[group.shard] = applied[0]
            elif first_error is None:
                first_error = rejected[0][1] if rejected else group.unavailable()
            if entry is not None:
                timed_out = any(isinstance(exc, ShardTimeoutError) for _, exc in rejected)
                entry.failed = None if (timed_out and not applied) else not applied
                entry.settled.set()
        if first_error is not None:
            raise first_error
        return results

    # ---- healing --------------------------------------------------------------------------------------
    def heal(self, timeout_s: float | None = None) -> list[HealEvent]:
        """Probe every replica now and bring every shard back to its replica target; wait for it.

        Returns the heals completed while it ran (a heal the background thread had under way is
        waited for, not repeated). Raises :class:`ShardUnavailableError` for a shard with no replica
        left, :class:`HealError` when a new replica cannot be brought up, :class:`ShardTimeoutError`
        when a heal under way is not done within ``timeout_s`` (each step of a heal is bounded by
        ``start_timeout_s`` / ``timeout_s`` itself).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        first = len(self.events)
        self.probe()
        for group in self.groups:
            wait = -1 if deadline is None else max(0.0, deadline - time.monotonic())
            if not group.heal_lock.acquire(timeout=wait):
                raise ShardTimeoutError(
                    group.shard, f"shard {group.shard}: heal not finished within {timeout_s} s"
                )
            try:
                self._heal_group(group)
            finally:
                group.heal_lock.release()
        return self.events[first:]

    def heal_in_background(self) -> None:
        """The healer thread's round: probe, then heal every shard that is below target and has a source."""
        self.probe()
        for group in self.groups:
            with group.lock:
                needed = 0 < len(group.members) < group.target
            if not needed or not group.heal_lock.acquire(blocking=False):
                continue
            try:
                self._heal_group(group)
                self.last_heal_error = None
            except Exception as exc:  # noqa: BLE001 - retried at the next round; kept for heal()/users
                if self.closed:
                    return
                self.last_heal_error = f"shard {group.shard}: {type(exc).__name__}: {exc}"
                logger.warning("vecsearch: heal failed, will retry: %s", self.last_heal_error)
            finally:
                group.heal_lock.release()

    def _heal_group(self, group: ReplicaGroup) -> None:
        """Add replicas to ``group`` until it reaches its target (heal_lock held)."""
        while not self.closed:
            with group.lock:
                count = len(group.members)
            if count >= group.target:
                break
            if count == 0:
                raise group.unavailable()
            self.events.append(self._add_replica(group))

    def _add_replica(self, group: ReplicaGroup) -> HealEvent:
        """Start a new actor, restore it from a live replica, replay the writes logged meanwhile, join it."""
        ray = ray_module()
        t0 = time.perf_counter()
        name = group.next_name()
        actor = self.start_actor(group.shard)
        try:
            try:
                ray.get(actor.__ray_ready__.remote(), timeout=self.start_timeout_s)
            except ray.exceptions.GetTimeoutError:
                raise HealError(
                    group.shard,
                    f"{name}: the new actor did not start within "
                    f"start_timeout_s={self.start_timeout_s:g} s",
                ) from None
            except ray.exceptions.RayActorError as exc:
                cause = init_failure(exc) or "it died"
                raise HealError(
                    group.shard, f"{name}: the new actor failed to start: {cause}"
                ) from None
            t_started = time.perf_counter()
            seq, state_bytes, source = self._restore_from_live(group, actor, name)
            t_copied = time.perf_counter()
            replayed = self._catch_up(group, actor, name, seq)
            t_done = time.perf_counter()
        except BaseException:
            with group.lock:
                group.log = None
            with contextlib.suppress(Exception):
                ray.kill(actor)
            raise
        if self.closed:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        return HealEvent(
            group.shard,
            name,
            source,
            state_bytes,
            t_started - t0,
            t_copied - t_started,
            t_done - t_copied,
            replayed,
            t_done - t0,
            _loadavg(),
        )

    def _restore_from_live(
        self, group: ReplicaGroup, actor: Any, name: str
    ) -> tuple[int, int, str]:
        """Copy a live replica's snapshot into ``actor``; ``(snapshot seq, state bytes, source name)``.

        The log starts in the same critical section that sends the snapshot call, so every write
        not in the snapshot is in the log. A source that dies meanwhile is dropped and another tried.
        """
        ray = ray_module()
        while True:
            with group.lock:
                sources = [r for r in group.members if r.readable]
                if not sources:
                    raise group.unavailable()
                source = min(sources, key=lambda r: r.outstanding)
                if group.log is None:
                    group.log = []
                snapshot = source.actor.snapshot.remote()
            deadline = time.monotonic() + self.timeout_s
            try:
                restored = get_answer(
                    group.shard,
                    self.n_shards,
                    actor.restore.remote(snapshot),
                    deadline,
                    f"timeout_s={self.timeout_s:g}",
                )
                return int(restored["seq"]), int(restored["nbytes"]), source.name
            except ray.exceptions.RayActorError:
                if not _answers(actor):
                    raise HealError(
                        group.shard, f"{name}: the new actor died during the copy"
                    ) from None
                self.lose(group, source, "its actor died during a snapshot")

    def _catch_up(self, group: ReplicaGroup, actor: Any, name: str, seq: int) -> int:
        """Replay the logged writes after ``seq`` on ``actor`` and join it to the shard; returns how
        many writes were replayed. On failure the actor is out of the shard again."""
        replayed, count = seq, 0
        for round_number in range(MAX_CATCH_UP_ROUNDS + 1):
            with group.lock:
                if self.closed:
                    raise HealError(group.shard, f"{name}: the index was closed during the heal")
                tail = [w for w in (group.log or []) if w.seq > replayed]
                final = len(tail) <= FINAL_TAIL_WRITES or round_number == MAX_CATCH_UP_ROUNDS
                sent = [(w, actor.apply.remote(w.seq, w.method, *w.args)) for w in tail]
                if final:
                    # Later writes go to it directly, after the tail; reads once the tail is applied.
                    replica = Replica(actor, name, readable=False)
                    group.members.append(replica)
                    group.log = None
            count += len(sent)
            if not final:
                self._check_replayed(group, name, sent)
                replayed = tail[-1].seq if tail else replayed
                continue
            try:
                self._check_replayed(group, name, sent)
            except BaseException:
                group.remove(replica)
                raise
            with group.lock:
                replica.readable = True
            return count
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_replayed(
        self, group: ReplicaGroup, name: str, sent: list[tuple[LoggedWrite, Any]]
    ) -> None:
        """Wait for replayed writes; each must end as it ended on the other replicas."""
        ray = ray_module()
        for entry, ref in sent:
            deadline = time.monotonic() + self.timeout_s
            try:
                get_answer(
                    group.shard, self.n_shards, ref, deadline, f"timeout_s={self.timeout_s:g}"
                )
                continue
            except ray.exceptions.RayActorError:
                raise HealError(
                    group.shard, f"{name}: the new actor died while catching up"
                ) from None
            except WriteSequenceError as exc:
                raise HealError(group.shard, f"{name}: replay out of order ({exc})") from None
            except Exception as exc:  # noqa: BLE001 - fine when the other replicas rejected it too
                entry.settled.wait(self.timeout_s)
                if entry.failed is not True:
                    raise HealError(
                        group.shard,
                        f"{name}: replayed write {entry.seq} failed where "
                        f"its peers applied it ({exc})",
                    ) from None

    def status(self) -> list[dict[str, Any]]:
        return [group.status() for group in self.groups]

    def close(self) -> None:
        """Stop healing and kill every replica (their in-memory data is gone)."""
        self.closed = True
        if self._healer is not None:
            self._healer.stop()
        ray = ray_module()
        for group in self.groups:
            for replica in group.live():
                with contextlib.suppress(Exception):  # already dead or disconnected
                    ray.kill(replica.actor)
            with group.lock:
                group.members = []


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _answers(actor: Any) -> bool:
    """Whether ``actor`` is alive (answers a ping within the probe wait)."""
    ray = ray_module()
    try:
        ray.get(actor.__ray_ready__.remote(), timeout=PROBE_WAIT_S)
    except ray.exceptions.RayActorError:
        return False
    except Exception:  # noqa: BLE001 - busy, not dead
        return True
    return True


class Healer:
    """The background thread that heals: woken when a replica is dropped, and every ``interval_s``.

    It holds only a weak reference to the :class:`Replication`, so an index dropped without
    ``close()`` is still freed (its actors then die with their handles).
    """

    def __init__(self, replication: Replication, interval_s: float):
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=_heal_loop,
            args=(weakref.ref(replication), self._wake, self._stop, interval_s),
            name="vecsearch-healer",
            daemon=True,
        )
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()


def _heal_loop(
    ref: weakref.ref, wake: threading.Event, stop: threading.Event, interval_s: float
) -> None:
    while not stop.is_set():
        wake.wait(interval_s)
        wake.clear()
        replication = ref()
        if stop.is_set() or replication is None or replication.closed:
            return
        try:
            replication.heal_in_background()
        except Exception:
            logger.exception("vecsearch: heal round failed")
        del replication
