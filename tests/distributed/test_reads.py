"""Balanced reads: queries spread over a shard's replicas (counted inside the actors), large batches
split across them, and a slow replica hedged around instead of holding queries hostage."""

from __future__ import annotations

import numpy as np
import pytest
import ray
from ray_helpers import actor_calls, ray_session  # noqa: F401  (the session-wide Ray fixture)

import vecsearch
from vecsearch.distributed import ShardedIndex

K = 10
pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.fixture(scope="module")
def single(wordnet_train):
    index = vecsearch.FlatIndex(384, "cosine")
    index.add(wordnet_train[:2000])
    return index


@pytest.fixture(scope="module")
def replicated(wordnet_train):
    """One shard, two replicas; batches of 100+ queries split in two."""
    index = ShardedIndex(
        "Flat",
        n_shards=1,
        replicas=2,
        dim=384,
        metric="cosine",
        min_split_rows=50,
        slow_cooldown_s=120.0,
    )
    index.add(wordnet_train[:2000])
    yield index
    index.close()


def _search_calls(index) -> list[int]:
    return [actor_calls(actor, "search") for actor in index.shard_actors[0]]


def test_one_query_calls_take_turns_on_the_two_replicas(replicated, single, wordnet_queries_id):
    before = _search_calls(replicated)
    for q in wordnet_queries_id[:20]:
        got = replicated.search(q, K)
        np.testing.assert_array_equal(got.ids, single.search(q, K).ids)
    served = [after - b for after, b in zip(_search_calls(replicated), before)]
    # Sequential calls: each finds both replicas idle, and equally loaded replicas take turns.
    assert sum(served) == 20 and min(served) == 10, served


def test_a_large_batch_is_split_over_both_replicas(replicated, single, wordnet_queries_id):
    before = _search_calls(replicated)
    got = replicated.search(wordnet_queries_id, K)  # 200 rows >= 2 * min_split_rows
    assert [after - b for after, b in zip(_search_calls(replicated), before)] == [1, 1]
    want = single.search(wordnet_queries_id, K)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.distances, want.distances)
    small_before = _search_calls(replicated)
    replicated.search(wordnet_queries_id[:60], K)  # below 2 * min_split_rows: one call
    assert sum(_search_calls(replicated)) - sum(small_before) == 1


def test_a_slow_replica_is_hedged_and_then_left_alone(replicated, single, wordnet_queries_id):
    """Every query returns the exact answer; the slow replica is overtaken once by a hedged read,
    then gets no reads during its cooldown (counted by the driver: the slow actor itself is busy)."""
    slow, fast = replicated.shard_actors[0]
    slow_name = replicated.replica_status()[0]["replicas"][0]["name"]
    ray.get(slow.inject_delay.remote("search", 5.0), timeout=60)
    sent_before = {r["name"]: r["reads_sent"] for r in replicated.replica_status()[0]["replicas"]}
    for q in wordnet_queries_id[:10]:
        np.testing.assert_array_equal(replicated.search(q, K).ids, single.search(q, K).ids)
    got = replicated.search(wordnet_queries_id, K)  # a split batch avoids the slow replica too
    np.testing.assert_array_equal(got.ids, single.search(wordnet_queries_id, K).ids)
    status = {r["name"]: r for r in replicated.replica_status()[0]["replicas"]}
    assert status[slow_name]["slow"]
    assert status[slow_name]["reads_sent"] - sent_before[slow_name] == 1
    assert replicated.read_stats["hedges_won"] >= 1
    assert actor_calls(fast, "search") >= 11
    slow.inject_delay.remote("search", 0.0)  # not waited for: it queues behind the slow search
