"""Re-replication: a dead or diverged replica is replaced by a copy of a live one (ids and attributes
included), writes made during the copy are replayed on it, and searches stay exact throughout."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import ray
from ray_helpers import kill_and_wait, ray_session  # noqa: F401  (the session-wide Ray fixture)

import vecsearch
from vecsearch.distributed import ShardedIndex

K = 10
pytestmark = pytest.mark.usefixtures("ray_session")


def _pid(actor) -> int:
    return int(ray.get(actor.stats.remote(), timeout=60)["pid"])


class Mirror:
    """A ShardedIndex and a single-node FlatIndex given the same acknowledged writes."""

    def __init__(self, index, train, attrs):
        self.index, self.train, self.attrs = index, train, attrs
        self.single = vecsearch.FlatIndex(384, "cosine")

    def add(self, lo: int, hi: int) -> None:
        columns = {"pos": self.attrs["pos"][lo:hi], "lexfile": self.attrs["lexfile"][lo:hi]}
        # Sequential ids (lo .. hi - 1 here): no duplicate-id check, so the add is one pure write.
        ids = self.index.add(self.train[lo:hi], attributes=columns)
        np.testing.assert_array_equal(ids, np.arange(lo, hi))
        self.single.add(self.train[lo:hi], ids=ids, attributes=columns)

    def remove(self, ids) -> None:
        assert self.index.remove(ids) == self.single.remove(ids)

    def assert_same_results(self, queries) -> None:
        """Unfiltered and filtered (attributes must have been copied too) searches are identical."""
        for where in (None, vecsearch.F.pos == "v", vecsearch.F.lexfile.isin([29, 31])):
            got = self.index.search(queries, K, where=where)
            want = self.single.search(queries, K, where=where)
            np.testing.assert_array_equal(got.ids, want.ids)
            np.testing.assert_array_equal(got.distances, want.distances)


def test_killing_every_replica_of_a_shard_one_at_a_time_heals_and_searches_stay_exact(
    wordnet_train, wordnet_attrs, wordnet_queries_id
):
    queries = wordnet_queries_id[:40]
    index = ShardedIndex("Flat", n_shards=2, replicas=2, dim=384, metric="cosine", timeout_s=60)
    mirror = Mirror(index, wordnet_train, wordnet_attrs)
    mirror.add(0, 1500)
    mirror.assert_same_results(queries)
    original_pids = {_pid(a) for a in index.shard_actors[1]}
    for round_number in range(3):
        kill_and_wait(index.shard_actors[1][0])
        lo = 1500 + 500 * round_number
        mirror.add(lo, lo + 500)  # acknowledged by the survivor; the dead replica is noticed here
        mirror.assert_same_results(queries)  # served by the survivor while the heal runs
        index.heal(timeout_s=120)
        assert index.replica_counts() == [2, 2]
        mirror.assert_same_results(queries)
    # Both replicas of shard 1 are copies made by heals (copies of copies), and they serve exactly.
    assert not original_pids & {_pid(a) for a in index.shard_actors[1]}
    mirror.remove(np.arange(0, 3000, 7))
    mirror.assert_same_results(queries)
    events = [e for e in index.heal_events if e["shard"] == 1]
    assert len(events) == 3 and all(e["state_bytes"] > 1000 * 384 * 4 for e in events)
    assert {d["reason"] for d in index.dropped_replicas} == {"its actor died"}
    index.close()


def test_writes_made_during_a_slow_copy_are_replayed_on_the_new_replica(
    wordnet_train, wordnet_attrs, wordnet_queries_id
):
    index = ShardedIndex(
        "Flat", n_shards=1, replicas=2, dim=384, metric="cosine", timeout_s=60, auto_heal=False
    )
    mirror = Mirror(index, wordnet_train, wordnet_attrs)
    mirror.add(0, 1000)
    source, victim = index.shard_actors[0]
    ray.get(source.inject_delay.remote("snapshot", 1.5), timeout=60)
    kill_and_wait(victim)
    healer = threading.Thread(target=index.heal, kwargs={"timeout_s": 120})
    healer.start()
    deadline = time.monotonic() + 60
    while not index.replica_status()[0]["copying"]:  # the snapshot has been asked for
        assert time.monotonic() < deadline, "the heal never started copying"
        time.sleep(0.02)
    # Sent after the snapshot call, these wait behind it on the source and are not in the snapshot.
    mirror.remove(np.arange(0, 100))
    mirror.add(1000, 1200)
    mirror.add(1200, 1300)
    healer.join(120)
    assert index.replica_counts() == [2]
    # The new replica replayed at least the first of them from the log (the later ones may have
    # reached it directly, once it had joined the shard's write set).
    assert index.heal_events[-1]["caught_up_writes"] >= 1, index.heal_events[-1]
    # Only the new replica is left: it holds the snapshot plus the replayed writes.
    kill_and_wait(source)
    assert index.ntotal == mirror.single.ntotal == 1200
    mirror.assert_same_results(wordnet_queries_id[:40])
    index.close()


def test_a_replica_that_missed_a_write_is_replaced(
    wordnet_train, wordnet_attrs, wordnet_queries_id
):
    index = ShardedIndex(
        "Flat", n_shards=1, replicas=2, dim=384, metric="cosine", timeout_s=60, auto_heal=False
    )
    mirror = Mirror(index, wordnet_train, wordnet_attrs)
    mirror.add(0, 600)
    keeper, diverged = index.shard_actors[0]
    # The second replica applies a write the driver never sent: its write sequence no longer
    # matches the shard's, so the next write finds it out of order.
    write_seq = index.replica_status()[0]["write_seq"]
    ray.get(diverged.apply.remote(write_seq + 1, "remove", np.arange(10)), timeout=60)
    mirror.add(600, 700)
    assert "missed a write" in index.dropped_replicas[-1]["reason"]
    assert index.replica_counts() == [1]
    index.heal(timeout_s=120)
    assert index.replica_counts() == [2] and diverged not in index.shard_actors[0]
    kill_and_wait(keeper)  # the healed copy alone: ids 0..9 are back, as on the single node
    mirror.assert_same_results(wordnet_queries_id[:40])
    index.close()


def test_the_health_probe_finds_a_dead_replica_and_heals_it_without_any_call(
    wordnet_train, wordnet_attrs, wordnet_queries_id
):
    """No call touches the shard after the kill: the background healer's periodic probe notices
    the dead actor and brings the shard back to its target on its own."""
    index = ShardedIndex(
        "Flat", n_shards=1, replicas=2, dim=384, metric="cosine", timeout_s=60, health_check_s=0.5
    )
    mirror = Mirror(index, wordnet_train, wordnet_attrs)
    mirror.add(0, 800)
    victim = index.shard_actors[0][1]
    kill_and_wait(victim)
    deadline = time.monotonic() + 120  # a bound on the wait, not a performance assertion
    while not index.heal_events:  # replica_counts / heal_events read driver state: no Ray call
        assert time.monotonic() < deadline, (index.replica_status(), index.dropped_replicas)
        time.sleep(0.1)
    assert index.dropped_replicas == [
        {"shard": 0, "replica": "shard0/replica1", "reason": "its actor died"}
    ]
    assert index.replica_counts() == [2] and victim not in index.shard_actors[0]
    kill_and_wait(index.shard_actors[0][0])  # the original survivor: the copy serves alone
    mirror.assert_same_results(wordnet_queries_id[:40])
    index.close()
