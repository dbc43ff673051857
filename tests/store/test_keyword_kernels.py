"""BM25 kernels (vecsearch.kernels.bm25) against plain-numpy references."""

from __future__ import annotations

import numpy as np
import pytest

from vecsearch.kernels.bm25 import (
    append_documents,
    bm25_top_k,
    check_forward,
    mark_allowed,
    row_sums,
    transpose_forward,
)


def random_forward(n_slots: int, n_terms: int, seed: int):
    rng = np.random.default_rng(seed)
    rows = [np.sort(rng.choice(n_terms, size=rng.integers(0, min(8, n_terms) + 1), replace=False)) for _ in range(n_slots)]
    offsets = np.zeros(n_slots + 1, np.int64)
    np.cumsum([r.size for r in rows], out=offsets[1:])
    terms = np.concatenate(rows).astype(np.int32) if rows else np.empty(0, np.int32)
    tf = rng.integers(1, 5, size=terms.size).astype(np.int32)
    return offsets, terms, tf


@pytest.mark.parametrize("n_slots,n_terms,first", [(0, 3, 0), (1, 1, 0), (57, 13, 0), (400, 97, 0), (400, 97, 123),
                                                    (57, 13, 57)])
def test_transpose_forward_is_the_inverted_csr(n_slots, n_terms, first):
    """Rows ``first..n_slots-1`` transposed; their slots keep their absolute numbers."""
    offsets, terms, tf = random_forward(n_slots, n_terms, seed=n_slots)
    inv_offsets, inv_slots, inv_tf = transpose_forward(offsets[first:], terms, tf, n_terms, first)
    slot_of = np.repeat(np.arange(n_slots), np.diff(offsets))
    assert inv_offsets.shape == (n_terms + 1,) and inv_slots.size == offsets[-1] - offsets[first]
    for t in range(n_terms):
        sel = (terms == t) & (slot_of >= first)
        got = slice(inv_offsets[t], inv_offsets[t + 1])
        np.testing.assert_array_equal(inv_slots[got], slot_of[sel])  # sorted by slot
        np.testing.assert_array_equal(inv_tf[got], tf[sel])


def test_check_forward_codes():
    offsets = np.array([0, 2, 3], np.int64)
    assert check_forward(offsets, np.array([0, 1, 1], np.int32), np.array([1, 2, 3], np.int32), 2) == (0, -1)
    assert check_forward(offsets, np.array([0, 2, 1], np.int32), np.array([1, 1, 1], np.int32), 2) == (1, 0)
    assert check_forward(offsets, np.array([1, 1, 0], np.int32), np.array([1, 1, 1], np.int32), 2) == (2, 0)
    assert check_forward(offsets, np.array([0, 1, 1], np.int32), np.array([1, 1, 0], np.int32), 2) == (3, 1)


def test_row_sums():
    offsets = np.array([0, 0, 3, 4], np.int64)
    assert row_sums(offsets, np.array([1, 2, 3, 9], np.int32)).tolist() == [0, 6, 9]


def test_append_documents_counts_distinct_terms_and_links_the_tail():
    token_ids = np.array([2, 0, 2, 2, 1, 1], np.int32)  # doc A: 2 0 2 2 ; doc B: 1 1
    token_offsets = np.array([0, 4, 6], np.int64)
    cap = 16
    slot_ids, doc_len, live = np.zeros(cap, np.int64), np.zeros(cap, np.int32), np.zeros(cap, np.bool_)
    fwd_offsets = np.zeros(cap + 1, np.int64)
    fwd_terms, fwd_tf = np.zeros(cap, np.int32), np.zeros(cap, np.int32)
    df, head = np.zeros(3, np.int64), np.full(3, -1, np.int64)
    nxt, t_slot, t_tf = np.zeros(cap, np.int64), np.zeros(cap, np.int32), np.zeros(cap, np.int32)
    added = append_documents(token_ids, token_offsets, np.array([70, 71], np.int64), 0, 0, slot_ids, doc_len, live,
                             fwd_offsets, fwd_terms, fwd_tf, df, head, nxt, t_slot, t_tf)
    assert added == 3
    assert fwd_offsets[:3].tolist() == [0, 2, 3]
    assert fwd_terms[:3].tolist() == [0, 2, 1] and fwd_tf[:3].tolist() == [1, 3, 2]
    assert slot_ids[:2].tolist() == [70, 71] and doc_len[:2].tolist() == [4, 2] and live[:2].all()
    assert df.tolist() == [1, 1, 1]
    chains = {}
    for t in range(3):
        p, chain = head[t], []
        while p >= 0:
            chain.append((int(t_slot[p]), int(t_tf[p])))
            p = nxt[p]
        chains[t] = chain
    assert chains == {0: [(0, 1)], 1: [(1, 2)], 2: [(0, 3)]}


@pytest.mark.parametrize("k", [1, 3, 10, 1000])
@pytest.mark.parametrize("q_terms", [[3], [3, 0, 17], list(range(0, 40, 3))], ids=["listed", "scan", "scan-many"])
def test_bm25_top_k_equals_sorting_all_scores(k, q_terms):
    """A one-term query takes the listed-slots path (few postings), longer ones scan every slot."""
    rng = np.random.default_rng(k)
    n_slots, n_terms = 300, 40
    offsets, terms, tf = random_forward(n_slots, n_terms, seed=7)
    main = transpose_forward(offsets[:151], terms, tf, n_terms, 0)  # slots 0..149
    recent = transpose_forward(offsets[150:], terms, tf, n_terms, 150)  # slots 150..299
    doc_len = (np.diff(offsets) * 2 + 1).astype(np.int32)
    mask = rng.random(n_slots) < 0.7
    slot_ids = rng.permutation(10 * n_slots)[:n_slots].astype(np.int64)
    q_terms = np.array(q_terms, np.int32)
    q_weights = (0.5 + np.arange(q_terms.size)).astype(np.float32)
    empty_tail = np.full(n_terms, -1, np.int64)
    ids, scores = bm25_top_k(q_terms, q_weights, *main, *recent, empty_tail,
                             np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.int32), doc_len, mask,
                             slot_ids, 1.2, 0.75, 4.0, k)
    # numpy reference over the dense (slot x term) tf matrix
    dense = np.zeros((n_slots, n_terms))
    dense[np.repeat(np.arange(n_slots), np.diff(offsets)), terms] = tf
    norm = 1.2 * (1 - 0.75 + 0.75 * doc_len / 4.0)
    ref = sum(w * dense[:, t] * 2.2 / (dense[:, t] + norm) for t, w in zip(q_terms, q_weights))
    hit = (ref > 0) & mask
    order = np.lexsort((slot_ids[hit], -ref[hit]))
    ref_ids, ref_scores = slot_ids[hit][order], ref[hit][order]
    r = min(k, hit.sum())
    assert ids.shape == (r,)
    np.testing.assert_allclose(scores, ref_scores[:r], rtol=1e-5)
    np.testing.assert_array_equal(ids, ref_ids[:r])


@pytest.mark.parametrize("order", ["ascending", "shuffled", "descending"])
def test_mark_allowed_equals_isin(order):
    rng = np.random.default_rng(11)
    slot_ids = np.unique(rng.integers(0, 5000, 800)).astype(np.int64)
    live = rng.random(slot_ids.size) < 0.8
    ids = rng.integers(-5, 5100, 300).astype(np.int64)  # some absent, some repeated, some past both ends
    ids = {"ascending": np.sort(ids), "shuffled": ids, "descending": np.sort(ids)[::-1].copy()}[order]
    mask = np.zeros(slot_ids.size, np.bool_)
    count = mark_allowed(slot_ids, live, ids, mask)
    expected = np.isin(slot_ids, ids) & live
    np.testing.assert_array_equal(mask, expected)
    assert count == expected.sum()
