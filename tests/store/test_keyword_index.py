"""KeywordIndex: BM25 scores equal a plain-Python reference through adds, removes, re-adds and rebuilds."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from vecsearch.store import keyword
from vecsearch.store.keyword import KeywordIndex, Tokenizer

WORDS = [f"w{i}" for i in range(60)]


def zipf_corpus(n: int, seed: int) -> list[str]:
    """Documents of 0..25 words drawn with Zipf-like frequencies (common words, rare words, empty docs)."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, len(WORDS) + 1)
    p /= p.sum()
    return [" ".join(rng.choice(WORDS, size=rng.integers(0, 26), p=p)) for _ in range(n)]


def reference_bm25(docs: dict[int, str], query: str, k1: float = 1.2, b: float = 0.75,
                   tokenizer=None, allowed=None) -> list[tuple[int, float]]:
    """Plain-Python BM25 over the live documents: [(id, score)] with score > 0, best first, ties by id."""
    tokenize = tokenizer or Tokenizer()
    toks = {d: tokenize(t) if t is not None else [] for d, t in docs.items()}
    scored = {d: t for d, t in toks.items() if t}
    if not scored:
        return []
    n = len(scored)
    avgdl = sum(len(t) for t in scored.values()) / n
    df = Counter(term for t in scored.values() for term in set(t))
    out = []
    for d, t in scored.items():
        if allowed is not None and d not in allowed:
            continue
        tf = Counter(t)
        s = 0.0
        for q in tokenize(query):  # every query token counts, repeats included
            if q in tf:
                idf = math.log(1 + (n - df[q] + 0.5) / (df[q] + 0.5))
                s += idf * tf[q] * (k1 + 1) / (tf[q] + k1 * (1 - b + b * len(t) / avgdl))
        if s > 0:
            out.append((d, s))
    return sorted(out, key=lambda x: (-x[1], x[0]))


def assert_matches_reference(ids, scores, ref, k):
    """Same length, same scores (float32 tolerance), and each returned id carries its reference score.

    Ids are compared through their scores so that near-ties (float32 vs float64) cannot flip the test.
    """
    ref_scores = dict(ref)
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    assert len(ids) == min(k, len(ref))
    np.testing.assert_allclose(scores, [s for _, s in ref[: len(ids)]], rtol=2e-5)
    for i, s in zip(ids.tolist(), scores.tolist()):
        assert i in ref_scores
        assert math.isclose(ref_scores[i], s, rel_tol=2e-5)
    assert np.all(np.diff(scores) <= 0)


QUERIES = ["w0", "w1 w7", "w3 w3 w20", "w59", "w58 w0 w1 w2", "nothing here", "W5, w6!"]


@pytest.mark.parametrize("k1,b", [(1.2, 0.75), (0.0, 0.75), (2.0, 0.0), (1.5, 1.0)])
def test_scores_match_plain_python_reference(k1, b):
    texts = zipf_corpus(300, seed=1)
    index = KeywordIndex(k1=k1, b=b)
    index.add(np.arange(300), texts)
    docs = dict(enumerate(texts))
    for q in QUERIES:
        for k in (1, 10, 500):
            ids, scores = index.search(q, k)
            assert_matches_reference(ids, scores, reference_bm25(docs, q, k1, b), k)


def test_results_identical_whichever_level_holds_the_postings():
    # Each document has one posting per term, in main, recent or tail, and terms are summed in
    # query order: the layout must not change a single bit of the scores.
    texts = zipf_corpus(400, seed=2)
    index = KeywordIndex()
    index.add(np.arange(150), texts[:150])
    index.compact()  # main: 0..149
    index.add(np.arange(150, 300), texts[150:300])
    index._fold_tail()  # recent: 150..299
    for i in range(300, 400):
        index.add(np.array([i]), [texts[i]])  # tail: 300..399
    assert index._inv_slots.size and index._recent_slots.size and index._tail_next.size
    before = [index.search(q, 50) for q in QUERIES]
    index.compact()
    assert index._tail_next.size == index._recent_slots.size == 0
    after = [index.search(q, 50) for q in QUERIES]
    for (i1, s1), (i2, s2) in zip(before, after):
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(s1, s2)
    docs = dict(enumerate(texts))
    for q, (ids, scores) in zip(QUERIES, before):
        assert_matches_reference(ids, scores, reference_bm25(docs, q), 50)


def test_repeated_query_term_counts_once_per_occurrence():
    index = KeywordIndex()
    index.add(np.arange(3), ["apple pie", "apple", "pear"])
    one = dict(zip(*[a.tolist() for a in index.search("apple", 5)]))
    two = dict(zip(*[a.tolist() for a in index.search("apple apple", 5)]))
    assert two.keys() == one.keys() == {0, 1}
    for d, score in one.items():
        assert two[d] == pytest.approx(2 * score, rel=1e-6)


def test_remove_gives_the_scores_of_an_index_built_without_them():
    texts = zipf_corpus(300, seed=3)
    index = KeywordIndex()
    index.add(np.arange(300), texts)
    gone = np.arange(0, 300, 3)
    assert index.remove(gone) == gone.size
    assert index.remove(gone) == 0  # already removed: ignored
    assert index.remove(np.array([10_000])) == 0  # unknown: ignored
    fresh = KeywordIndex()
    keep = np.setdiff1d(np.arange(300), gone)
    fresh.add(keep, [texts[i] for i in keep])
    assert len(index) == len(fresh) == keep.size
    docs = {int(i): texts[i] for i in keep}
    for q in QUERIES:
        ids, scores = index.search(q, 30)
        f_ids, f_scores = fresh.search(q, 30)
        np.testing.assert_array_equal(ids, f_ids)
        np.testing.assert_array_equal(scores, f_scores)
        assert not np.isin(ids, gone).any()
        assert_matches_reference(ids, scores, reference_bm25(docs, q), 30)


def test_re_added_id_gets_its_new_text():
    index = KeywordIndex()
    index.add(np.arange(5), ["red fox", "blue fox", "green fox", "fox", "owl"])
    index.remove(np.array([1]))
    index.add(np.array([1]), ["blue whale"])  # an id smaller than the last: ids are out of order now
    assert 1 in index and len(index) == 5
    ids, _ = index.search("whale", 10)
    assert ids.tolist() == [1]
    assert 1 not in index.search("fox", 10)[0].tolist()
    assert index.document_terms(1) == {"blue": 1, "whale": 1}
    docs = {0: "red fox", 1: "blue whale", 2: "green fox", 3: "fox", 4: "owl"}
    for q in ("fox", "blue", "whale owl"):
        assert_matches_reference(*index.search(q, 10), reference_bm25(docs, q), 10)


def test_ids_in_any_order_are_found():
    index = KeywordIndex()
    index.add(np.array([50, 7, 900]), ["alpha beta", "beta", "gamma"])
    index.add(np.array([3]), ["beta gamma"])
    assert index._id_to_slot is not None  # out-of-order ids switched to the dict lookup
    assert [i in index for i in (50, 7, 900, 3, 4)] == [True, True, True, True, False]
    with pytest.raises(ValueError, match="already in the index"):
        index.add(np.array([7]), ["again"])
    index.remove(np.array([900]))
    assert set(index.search("beta gamma", 10)[0].tolist()) == {50, 7, 3}
    assert index.doc_ids().tolist() == [50, 7, 3]


def test_increasing_ids_need_no_dict():
    index = KeywordIndex()
    index.add(np.array([2, 5]), ["a b", "b c"])
    index.add(np.array([9]), ["c d"])
    assert index._id_to_slot is None
    assert [i in index for i in (2, 5, 9, 3, 10, 0)] == [True, True, True, False, False, False]
    with pytest.raises(ValueError, match="already in the index"):
        index.add(np.array([5]), ["x"])


def test_allowed_restricts_results_without_changing_scores():
    texts = zipf_corpus(300, seed=4)
    index = KeywordIndex()
    index.add(np.arange(300), texts)
    index.remove(np.array([4, 6]))
    docs = {i: t for i, t in enumerate(texts) if i not in (4, 6)}
    allowed = set(range(0, 300, 4))  # contains the removed id 4: removed stays removed
    for q in QUERIES:
        for arg in (np.array(sorted(allowed) + [99_999]), allowed, sorted(allowed)):
            ids, scores = index.search(q, 20, allowed=arg)
            assert set(ids.tolist()) <= allowed - {4}
            # Statistics (N, df, avgdl) stay those of the whole index: only the results are restricted.
            assert_matches_reference(ids, scores, reference_bm25(docs, q, allowed=allowed), 20)
    assert index.search("w0", 10, allowed=np.array([], np.int64))[0].size == 0
    assert index.search("w0", 10, allowed=[4])[0].size == 0


def test_fewer_than_k_and_no_match_are_normal():
    index = KeywordIndex()
    assert index.search("anything", 5)[0].size == 0  # empty index
    index.add(np.arange(3), ["cat", "dog", None])
    ids, scores = index.search("cat", 10)
    assert ids.tolist() == [0] and scores.shape == (1,)
    ids, scores = index.search("zebra", 10)
    assert ids.shape == (0,) and ids.dtype == np.int64 and scores.dtype == np.float32
    assert index.search("", 10)[0].size == 0
    assert index.search("!!!", 10)[0].size == 0


def test_documents_without_terms_are_kept_but_not_counted():
    index = KeywordIndex()
    index.add(np.arange(4), ["cat sat", None, "", "the dog"])
    assert len(index) == 4 and 1 in index and 2 in index
    assert index._n_scored == 2  # N counts documents with at least one term
    docs = {0: "cat sat", 3: "the dog"}
    assert_matches_reference(*index.search("cat dog", 5), reference_bm25(docs, "cat dog"), 5)
    assert index.remove(np.array([1, 2])) == 2
    assert len(index) == 2


def test_ties_are_ordered_by_id():
    index = KeywordIndex()
    index.add(np.array([30, 10, 20]), ["same words", "same words", "same words"])
    ids, scores = index.search("words", 3)
    assert ids.tolist() == [10, 20, 30]
    assert scores[0] == scores[1] == scores[2]


def test_automatic_rebuilds_keep_results(monkeypatch):
    monkeypatch.setattr(keyword, "MIN_REBUILD_POSTINGS", 64)
    monkeypatch.setattr(keyword, "TAIL_POSTINGS", 8)
    rng = np.random.default_rng(5)
    texts = zipf_corpus(600, seed=5)
    index = KeywordIndex()
    live: dict[int, str] = {}
    next_id = 0
    rebuilds = folds = 0
    for step in range(300):
        if live and rng.random() < 0.35:
            victims = rng.choice(sorted(live), size=min(len(live), int(rng.integers(1, 4))), replace=False)
            index.remove(victims)
            for v in victims.tolist():
                del live[v]
        else:
            m = int(rng.integers(1, 4))
            ids = np.arange(next_id, next_id + m)
            index.add(ids, texts[next_id : next_id + m])
            live.update({int(i): texts[i] for i in ids})
            next_id += m
        rebuilds += index._recent_slots.size == index._tail_next.size == 0
        folds += index._tail_next.size == 0 and index._recent_slots.size > 0
        # Bounded tail, recent level and tombstones: the triggers hold after every call.
        assert index._tail_next.size <= 8
        assert index._recent_slots.size + index._tail_next.size <= max(64, 0.25 * index._inv_slots.size)
        assert index._dead_postings + index._dead_slots <= max(64, 0.25 * (index.n_postings + index._slot_ids.size))
        if step % 25 == 0:
            for q in QUERIES[:4]:
                assert_matches_reference(*index.search(q, 15), reference_bm25(live, q), 15)
    assert rebuilds > 3 and folds > 3  # the small thresholds made the index fold and rebuild itself
    assert len(index) == len(live)


def test_vocabulary_drops_terms_of_removed_documents_at_rebuild():
    index = KeywordIndex()
    index.add(np.arange(2), ["keep this", "drop unique"])
    index.remove(np.array([1]))
    assert index.search("unique", 5)[0].size == 0
    index.compact()
    assert index.n_terms == 2
    assert index.search("keep", 5)[0].tolist() == [0]


def test_custom_tokenizer_callable():
    def chars(text: str) -> list[str]:
        return list(text.replace(" ", ""))

    index = KeywordIndex(tokenizer=chars)
    index.add(np.arange(3), ["abc", "aab", "xyz"])
    docs = {0: "abc", 1: "aab", 2: "xyz"}
    assert_matches_reference(*index.search("a", 5), reference_bm25(docs, "a", tokenizer=chars), 5)


# ---- validation --------------------------------------------------------------------------------
def test_bad_adds_raise_and_change_nothing():
    index = KeywordIndex()
    index.add(np.arange(2), ["one", "two"])
    state = index.get_state()
    bad_calls = [
        (ValueError, "duplicate id", lambda: index.add(np.array([5, 5]), ["a", "b"])),
        (ValueError, "already in the index", lambda: index.add(np.array([3, 1]), ["a", "b"])),
        (ValueError, "expected 2 entries", lambda: index.add(np.array([3, 4]), ["a"])),
        (TypeError, r"texts\[1\]", lambda: index.add(np.array([3, 4]), ["a", 7])),
        (TypeError, "texts", lambda: index.add(np.array([3]), "a")),
        (TypeError, "integer ids", lambda: index.add(np.array([1.5]), ["a"])),
        (ValueError, "non-negative", lambda: index.add(np.array([-2]), ["a"])),
        (ValueError, "1-D", lambda: index.add(np.zeros((1, 1), np.int64), ["a"])),
    ]
    for exc, match, call in bad_calls:
        with pytest.raises(exc, match=match):
            call()
    header, arrays = index.get_state()
    assert header == state[0]
    for name in arrays:
        np.testing.assert_array_equal(arrays[name], state[1][name])


def test_custom_tokenizer_errors_are_caught_before_any_change():
    index = KeywordIndex(tokenizer=lambda t: [t, 3] if "bad" in t else t.split())
    index.add(np.array([0]), ["fine text"])
    with pytest.raises(TypeError, match="tokenizer"):
        index.add(np.array([1, 2]), ["more text", "bad text"])
    assert len(index) == 1 and index.n_terms == 2


def test_bad_search_and_constructor_arguments():
    index = KeywordIndex()
    index.add(np.arange(2), ["a", "b"])
    with pytest.raises(ValueError, match="k"):
        index.search("a", 0)
    with pytest.raises(TypeError, match="k"):
        index.search("a", 2.0)
    with pytest.raises(TypeError, match="text"):
        index.search(["a"], 2)
    with pytest.raises(TypeError, match="allowed"):
        index.search("a", 2, allowed=np.array([0.5]))
    with pytest.raises(ValueError, match="k1"):
        KeywordIndex(k1=-1)
    with pytest.raises(ValueError, match="b"):
        KeywordIndex(b=1.5)
    with pytest.raises(TypeError, match="tokenizer"):
        KeywordIndex(tokenizer="english")


def test_nbytes_counts_the_postings():
    index = KeywordIndex()
    empty = index.nbytes()
    index.add(np.arange(300), zipf_corpus(300, seed=6))
    assert index.nbytes() > empty + 8 * index.n_postings


def test_failure_in_a_later_chunk_adds_no_document(monkeypatch):
    monkeypatch.setattr(keyword, "ADD_CHUNK", 2)
    index = KeywordIndex(tokenizer=lambda t: [t, 3] if "bad" in t else t.split())
    index.add(np.array([0]), ["fine text"])
    header, arrays = index.get_state()
    with pytest.raises(TypeError, match="tokenizer"):
        index.add(np.arange(1, 6), ["new words", "more words", "other", "bad text", "last"])
    assert len(index) == 1 and index.search("words", 5)[0].size == 0
    after_header, after_arrays = index.get_state()  # unused new terms are not part of the state
    assert after_header == header
    for name in arrays:
        np.testing.assert_array_equal(after_arrays[name], arrays[name])
    index.add(np.arange(1, 3), ["new words", "words"])  # and the index works on
    assert index.search("words", 5)[0].tolist() == [2, 1]


def test_large_batch_is_chunked_like_single_adds(monkeypatch):
    monkeypatch.setattr(keyword, "ADD_CHUNK", 7)
    texts = zipf_corpus(100, seed=8)
    chunked = KeywordIndex()
    chunked.add(np.arange(100), texts)
    single = KeywordIndex()
    for i, t in enumerate(texts):
        single.add(np.array([i]), [t])
    for q in QUERIES:
        for a, b in zip(chunked.search(q, 20), single.search(q, 20)):
            np.testing.assert_array_equal(a, b)
