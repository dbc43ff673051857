"""Adds and searches from different threads through one ShardedIndex: a search sees each shard in
one state (never half of an add's slice on a shard), and always every add acknowledged before it."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from ray_helpers import ray_session  # noqa: F401  (the session-wide Ray fixture)

import vecsearch
from vecsearch.distributed import ShardedIndex, shard_of

COPIES = 8  # each add: COPIES copies of one direction, ids spread over both shards
BATCHES = 30
FIRST_ID = 100_000
pytestmark = pytest.mark.usefixtures("ray_session")


def test_concurrent_adds_and_searches_never_see_a_torn_shard(wordnet_train):
    base = wordnet_train[:1000]
    directions = wordnet_train[1000 : 1000 + BATCHES]
    index = ShardedIndex(
        "Flat", n_shards=2, replicas=2, dim=384, metric="cosine", min_split_rows=8, timeout_s=60
    )
    index.add(base)
    batch_ids = [FIRST_ID + COPIES * b + np.arange(COPIES) for b in range(BATCHES)]
    # Per batch and shard, the ids that an add puts on that shard: present all together or not at all.
    on_shard = [[ids[shard_of(ids, 2) == s] for s in range(2)] for ids in batch_ids]
    assert all(part.size for parts in on_shard for part in parts)
    acknowledged = [0]
    errors = []

    def adder():
        try:
            for b in range(BATCHES):
                index.add(np.repeat(directions[b : b + 1], COPIES, axis=0), ids=batch_ids[b])
                acknowledged[0] = b + 1
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
    single = vecsearch.FlatIndex(384, "cosine")
    single.add(base)
    for b in range(BATCHES):
        single.add(np.repeat(directions[b : b + 1], COPIES, axis=0), ids=batch_ids[b])
    final, want = index.search(directions, COPIES), single.search(directions, COPIES)
    # The copies tie: the sharded merge orders ties by id, the single node by its slot order.
    np.testing.assert_array_equal(np.sort(final.ids, axis=1), np.sort(want.ids, axis=1))
    np.testing.assert_array_equal(final.distances, want.distances)
    index.close()
