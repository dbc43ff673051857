"""MultiVectorIndex sharded like the other types: token sets routed by document id, Chamfer top-k
merged; equal to the single-node index when every document is a candidate."""

from __future__ import annotations

import numpy as np
import pytest
from ray_helpers import ray_session  # noqa: F401  (the session-wide Ray fixture)

import vecsearch
from vecsearch.benchmark.evaluation import recall_at_k
from vecsearch.distributed import ShardedIndex, shard_of
from vecsearch.distributed.batches import TokenSets, take_rows
from vecsearch.distributed.shard import build_index, spec_takes_vectors

K = 10
SPEC = "MultiVectorFDE,Flat"
FDE = {"reps": 4, "k_sim": 3, "d_proj": 16}


def test_token_sets_are_cut_by_rows_with_their_tokens():
    vectors = np.arange(12, dtype=np.float32).reshape(6, 2)
    batch = TokenSets(vectors, np.array([0, 1, 3, 6], np.int64))  # sets of 1, 2 and 3 tokens
    part = take_rows(batch, np.array([2, 0]))
    assert part.offsets.tolist() == [0, 3, 4]
    np.testing.assert_array_equal(part.vectors, vectors[[3, 4, 5, 0]])


def test_multivector_types_are_recognised_without_a_dimension():
    assert spec_takes_vectors("HNSW32") and spec_takes_vectors(vecsearch.FlatIndex)
    assert not spec_takes_vectors("MultiVectorTokens,HNSW16")
    assert not spec_takes_vectors(vecsearch.MultiVectorIndex)
    index = build_index(vecsearch.MultiVectorIndex, 32, "ip", {"inner": "flat", "fde": FDE})
    assert isinstance(index, vecsearch.MultiVectorIndex)
    with pytest.raises(ValueError, match="metric"):
        build_index(vecsearch.MultiVectorIndex, 32, "l2", {})


@pytest.mark.usefixtures("ray_session")
def test_sharded_multivector_equals_the_single_node_index(wordnet_multivector):
    docs = (wordnet_multivector["doc_vecs"], wordnet_multivector["doc_offsets"])
    queries = (wordnet_multivector["query_vecs"], wordnet_multivector["query_offsets"])
    n_docs = docs[1].shape[0] - 1
    lengths = np.diff(docs[1])
    attributes = {"long": lengths > np.median(lengths)}
    single = vecsearch.index_factory(384, SPEC, "ip", fde=FDE)
    single.add(docs, attributes=attributes)
    sharded = ShardedIndex(
        SPEC, n_shards=2, fde=FDE
    )  # dim and metric ("ip") from the type and data
    assert sharded.metric == "ip"
    assert sharded.add(docs, attributes=attributes).tolist() == list(range(n_docs))
    assert sharded.ntotal == n_docs
    assert sharded.shard_sizes() == np.bincount(shard_of(np.arange(n_docs), 2)).tolist()
    # Every document a candidate: both are exact Chamfer top-k, so ids and distances agree.
    for where in (None, {"long": True}):
        got = sharded.search(queries, K, where=where, candidates=n_docs)
        want = single.search(queries, K, where=where, candidates=n_docs)
        np.testing.assert_array_equal(got.ids, want.ids)
        np.testing.assert_allclose(got.distances, want.distances, rtol=1e-6)
    # Fewer candidates: each shard keeps its own best FDE candidates, a superset of the single
    # node's on that shard, so recall against exact Chamfer is at least as high.
    exact = single.search_exact(queries, K).ids
    r_sharded = recall_at_k(sharded.search(queries, K, candidates=20).ids, exact)
    r_single = recall_at_k(single.search(queries, K, candidates=20).ids, exact)
    assert r_sharded >= r_single, (r_sharded, r_single)
    # The list-of-arrays form, a single query, and removes route by document id like vectors.
    as_list = [docs[0][docs[1][i] : docs[1][i + 1]] for i in range(3)]
    one = sharded.search(as_list[:1], K, candidates=n_docs)
    assert one.ids[0, 0] == 0
    assert sharded.remove([0, 1, 2, 10**6]) == 3 and single.remove([0, 1, 2]) == 3
    got = sharded.search(queries, K, candidates=n_docs)
    np.testing.assert_array_equal(got.ids, single.search(queries, K, candidates=n_docs).ids)
    with pytest.raises(ValueError, match="queries"):
        sharded.search([np.ones((2, 5), np.float32)], K)
    with pytest.raises(TypeError, match="train"):
        sharded.train(docs[0])
    sharded.close()
