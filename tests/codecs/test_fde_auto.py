"""FDE chosen from the data (vecsearch.codecs.fde_auto): exact truth, pseudo-queries, the choice rule."""

from __future__ import annotations

import numpy as np
import pytest

from vecsearch.codecs.fde import FDEConfig
from vecsearch.codecs.fde_auto import (
    AUTO_GRID,
    MEAN_POOLED,
    MIN_DOCS_TO_MEASURE,
    choose_fde,
    config_label,
    exact_chamfer_matrix,
    fit_to_dim,
    pseudo_queries,
)
from vecsearch.indexes.multivector import chamfer_scores


@pytest.fixture(scope="module")
def docs(wordnet_multivector):
    m = wordnet_multivector
    return np.ascontiguousarray(m["doc_vecs"], np.float32), m["doc_offsets"].astype(np.int64)


def test_exact_chamfer_matrix_equals_the_chamfer_kernel(docs, wordnet_multivector):
    qv = np.ascontiguousarray(wordnet_multivector["query_vecs"], np.float32)
    qo = wordnet_multivector["query_offsets"].astype(np.int64)
    n = docs[1].shape[0] - 1
    got = exact_chamfer_matrix(qv, qo, *docs)
    want = chamfer_scores(
        qv, qo, *docs, np.ascontiguousarray(np.broadcast_to(np.arange(n), (qo.size - 1, n)))
    )
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_pseudo_queries_are_short_runs_then_whole_documents_of_their_source(docs):
    vecs, offs = docs
    qv, qo, source = pseudo_queries(vecs, offs, 20, np.random.default_rng(3))
    assert qo.shape == (21,) and source.shape == (20,) and qv.dtype == np.float32
    for i, d in enumerate(source):
        q, doc = qv[qo[i] : qo[i + 1]], vecs[offs[d] : offs[d + 1]]
        if i < 10:  # a contiguous run of 1-3 tokens of its document
            assert 1 <= q.shape[0] <= 3
            starts = [
                s
                for s in range(doc.shape[0] - q.shape[0] + 1)
                if np.array_equal(doc[s : s + q.shape[0]], q)
            ]
            assert starts
        else:
            np.testing.assert_array_equal(q, doc)
    again = pseudo_queries(vecs, offs, 20, np.random.default_rng(3))
    np.testing.assert_array_equal(again[0], qv)


def test_choice_is_deterministic_and_reaches_its_target_on_the_test_slice(docs):
    first = choose_fde(*docs, n_queries=64)
    second = choose_fde(*docs, n_queries=64)
    assert first.config == second.config and first.candidates == second.candidates
    assert first.recall == second.recall
    assert first.reached and first.n_docs == docs[1].shape[0] - 1 == first.n_eval_docs
    assert 10 <= first.candidates <= first.n_docs
    curve = first.recall[config_label(first.config)]
    assert max(curve.values()) >= first.target
    assert set(first.recall) == {config_label(fit_to_dim(c, 384)) for c in AUTO_GRID}
    assert first.as_dict()["config"] == first.config.model_dump()


def test_choice_takes_the_cheapest_configuration_that_reaches_the_target(docs):
    paper, mean = FDEConfig(), MEAN_POOLED
    # every configuration reaches a zero target at the smallest count: the smaller vector wins
    easy = choose_fde(*docs, target=0.0, grid=(paper, mean), n_queries=32)
    assert easy.reached and easy.config == fit_to_dim(mean, 384) and easy.candidates == 10
    # nothing reaches an impossible target: the best recall at the largest count measured, flagged
    hard = choose_fde(*docs, target=1.5, grid=(paper, mean), n_queries=32)
    assert not hard.reached
    best = max(hard.recall, key=lambda label: hard.recall[label][max(hard.recall[label])])
    assert config_label(hard.config) == best


def test_too_few_documents_take_the_first_grid_entry_without_measuring(docs):
    vecs, offs = docs
    n = MIN_DOCS_TO_MEASURE - 1
    choice = choose_fde(vecs[: offs[n]], offs[: n + 1])
    assert choice.config == AUTO_GRID[0] and choice.candidates is None and not choice.reached
    assert choice.recall == {}


def test_grid_entries_are_fitted_to_small_token_dimensions():
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((MIN_DOCS_TO_MEASURE * 3, 8)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    offs = np.arange(0, vecs.shape[0] + 1, 3, dtype=np.int64)
    choice = choose_fde(vecs, offs, n_queries=16)
    assert choice.config.d_proj <= 8
    assert fit_to_dim(MEAN_POOLED, 8).d_proj == 8
