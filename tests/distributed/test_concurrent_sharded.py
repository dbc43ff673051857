"""Adds and searches from different threads through one ShardedIndex: a search sees each shard in
one state (never half of an add's slice on a shard), and always every add acknowledged before it --
also while a replica is killed and re-replicated under that load."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import ray
from ray_helpers import kill_and_wait, ray_session  # noqa: F401  (the session-wide Ray fixture)

import vecsearch
from vecsearch.distributed import ShardedIndex, shard_of

COPIES = 8  # each add: COPIES copies of one direction, ids spread over both shards
BATCHES = 30
FIRST_ID = 1000  # the base holds ids 0..999; the batches get the ids the index assigns next
pytestmark = pytest.mark.usefixtures("ray_session")


def _run_adds_and_searches(index, base, directions, after_batch=None, action=None):
    """Add BATCHES batches from a thread while the caller's thread searches, checking every search;
    ``action()`` runs in the adder thread once batch ``after_batch`` is acknowledged. Returns
    ``(batch_ids, searches)``."""
    batch_ids = [FIRST_ID + COPIES * b + np.arange(COPIES) for b in range(BATCHES)]
    # Per batch and shard, the ids that an add puts on that shard: present all together or not at all.
    on_shard = [[ids[shard_of(ids, 2) == s] for s in range(2)] for ids in batch_ids]
    assert all(part.size for parts in on_shard for part in parts)
    acknowledged = [0]
    errors = []

    def adder():
        try:
            for b in range(BATCHES):
                # Ids assigned by the index (no duplicate-id check): each add is one pure write.
                ids = index.add(np.repeat(directions[b : b + 1], COPIES, axis=0))
                np.testing.assert_array_equal(ids, batch_ids[b])
                acknowledged[0] = b + 1
                if b == after_batch:
                    action()
        except Exception as exc:  # noqa: BLE001 - surfaced by the main thread
            errors.append(exc)

    thread = threading.Thread(target=adder)
    thread.start()
    searches = 0
    while thread.is_alive() or searches < 3:
        acked_before = acknowledged[0]
        # 30 query rows, split over the two replicas of each shard (min_split_rows=8).
        result = index.search(directions, COPIES)
        searches += 1
        for b in range(BATCHES):
            found = set(result.ids[b].tolist())
            for part in on_shard[b]:
                present = found.intersection(part.tolist())
                assert len(present) in (0, part.size), (b, sorted(present), part.tolist())
            if b < acked_before:  # acknowledged before this search began: fully visible
                assert found == set(batch_ids[b].tolist()), (b, sorted(found))
    thread.join()
    assert not errors, errors
    assert searches >= 3
    return batch_ids, searches


def _assert_equals_single_node(index, base, directions, batch_ids):
    single = vecsearch.FlatIndex(384, "cosine")
    single.add(base)
    for b in range(BATCHES):
        single.add(np.repeat(directions[b : b + 1], COPIES, axis=0), ids=batch_ids[b])
    final, want = index.search(directions, COPIES), single.search(directions, COPIES)
    # The copies tie: the sharded merge orders ties by id, the single node by its slot order.
    np.testing.assert_array_equal(np.sort(final.ids, axis=1), np.sort(want.ids, axis=1))
    np.testing.assert_array_equal(final.distances, want.distances)
    # Base vectors as queries, where no tied copy reaches the top 10: exact order and distances.
    got, want = index.search(base[:50], 10), single.search(base[:50], 10)
    rows = want.ids.max(axis=1) < FIRST_ID
    assert rows.sum() >= 25, rows.sum()
    np.testing.assert_array_equal(got.ids[rows], want.ids[rows])
    np.testing.assert_array_equal(got.distances[rows], want.distances[rows])


def test_concurrent_adds_and_searches_never_see_a_torn_shard(wordnet_train):
    base = wordnet_train[:FIRST_ID]
    directions = wordnet_train[1000 : 1000 + BATCHES]
    index = ShardedIndex(
        "Flat", n_shards=2, replicas=2, dim=384, metric="cosine", min_split_rows=8, timeout_s=60
    )
    assert index.add(base).tolist() == list(range(FIRST_ID))
    batch_ids, _ = _run_adds_and_searches(index, base, directions)
    _assert_equals_single_node(index, base, directions, batch_ids)
    index.close()


def test_a_replica_healed_under_concurrent_adds_and_searches_stays_exact(wordnet_train):
    """A third of the way through, a replica of shard 0 is killed and the survivor's snapshot made
    slow; the background healer copies the survivor while adds and searches go on, and the adds
    sent during the copy are replayed on the new replica. Every search meanwhile is whole and
    complete; at the end the shard is back to 2 replicas and the healed copy alone answers exactly
    like the single node."""
    base = wordnet_train[:FIRST_ID]
    directions = wordnet_train[2000 : 2000 + BATCHES]
    index = ShardedIndex(
        "Flat", n_shards=2, replicas=2, dim=384, metric="cosine", min_split_rows=8, timeout_s=60
    )
    assert index.add(base).tolist() == list(range(FIRST_ID))
    survivor, victim = index.shard_actors[0]

    def kill_and_wait_for_the_copy():
        ray.get(survivor.inject_delay.remote("snapshot", 1.0), timeout=60)
        kill_and_wait(victim)
        # The main thread's searches notice the death and wake the healer; the remaining adds
        # are then sent while the copy runs (a bound on the wait, not a performance assertion).
        deadline = time.monotonic() + 120
        while not index.replica_status()[0]["copying"]:
            assert time.monotonic() < deadline, index.replica_status()
            time.sleep(0.02)

    batch_ids, _ = _run_adds_and_searches(
        index, base, directions, after_batch=BATCHES // 3, action=kill_and_wait_for_the_copy
    )
    index.heal(timeout_s=120)  # waits for the background heal
    assert index.replica_counts() == [2, 2] and victim not in index.shard_actors[0]
    events = [e for e in index.heal_events if e["shard"] == 0]
    assert len(events) == 1 and events[0]["caught_up_writes"] >= 1, events
    _assert_equals_single_node(index, base, directions, batch_ids)
    kill_and_wait(survivor)  # the healed copy alone (snapshot + replayed adds) must be complete
    all_ids = np.concatenate([np.arange(FIRST_ID), *batch_ids])
    assert index.shard_sizes()[0] == int(np.sum(shard_of(all_ids, 2) == 0))
    _assert_equals_single_node(index, base, directions, batch_ids)
    index.close()
