"""KeywordIndex.get_state / from_state: round trips give identical results; crafted states are rejected."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vecsearch.store.keyword import KeywordIndex, Tokenizer

TEXTS = ["the quick brown fox", "jumps over the lazy dog", "Über café naïve", "", None, "dog dog dog", "fox and dog"]
QUERIES = ["dog", "fox dog", "cafe", "über", "lazy brown", "the"]


def churned_index(**kwargs) -> KeywordIndex:
    """An index with dead documents, a tail, out-of-order ids and a re-added id."""
    index = KeywordIndex(**kwargs)
    index.add(np.array([10, 11, 12, 13, 14]), TEXTS[:5])
    index.compact()
    index.add(np.array([15, 3]), TEXTS[5:])
    index.remove(np.array([11]))
    index.add(np.array([11]), ["a lazy brown dog"])
    return index


def results(index: KeywordIndex) -> list:
    return [tuple(a.tolist() for a in index.search(q, 10)) for q in QUERIES]


def test_round_trip_gives_identical_results():
    index = churned_index(k1=1.5, b=0.6, tokenizer=Tokenizer(stopwords=["and"]))
    header, arrays = index.get_state()
    json.dumps(header)  # the header must be JSON (it goes into a manifest)
    restored = KeywordIndex.from_state(header, arrays)
    assert results(restored) == results(index)
    assert restored.doc_ids().tolist() == index.doc_ids().tolist()
    assert (restored.k1, restored.b, restored.tokenizer) == (1.5, 0.6, index.tokenizer)
    assert len(restored) == len(index)
    assert header["n_documents"] == len(index)
    # Terms used only by removed documents ("jumps", "over") are not in the state.
    assert "jumps" in index._vocab and "jumps" not in restored._vocab
    assert restored.n_terms == index.n_terms - 2
    # The restored index keeps working: add, remove, state again.
    restored.add(np.array([99]), ["quick fox"])
    restored.remove(np.array([15]))
    again = KeywordIndex.from_state(*restored.get_state())
    assert results(again) == results(restored)


def test_get_state_does_not_mutate():
    index = churned_index()
    before = results(index)
    tail, dead, slots = index._tail_next.size, index._dead_slots, index._slot_ids.size
    index.get_state()
    assert (index._tail_next.size, index._dead_slots, index._slot_ids.size) == (tail, dead, slots)
    assert results(index) == before


def test_empty_index_round_trip():
    header, arrays = KeywordIndex().get_state()
    restored = KeywordIndex.from_state(header, arrays)
    assert len(restored) == 0 and restored.search("x", 3)[0].size == 0


def test_custom_tokenizer_must_be_given_again():
    def split(text: str) -> list[str]:
        return text.split()

    index = KeywordIndex(tokenizer=split)
    index.add(np.arange(2), ["A b", "b C"])
    header, arrays = index.get_state()
    assert header["tokenizer"] == {"kind": "custom"}
    with pytest.raises(ValueError, match="custom tokenizer"):
        KeywordIndex.from_state(header, arrays)
    restored = KeywordIndex.from_state(header, arrays, tokenizer=split)
    assert restored.search("C", 5)[0].tolist() == [1]
    builtin_header, builtin_arrays = KeywordIndex().get_state()
    with pytest.raises(ValueError, match="built-in tokenizer"):
        KeywordIndex.from_state(builtin_header, builtin_arrays, tokenizer=split)


def _state():
    index = KeywordIndex()
    index.add(np.arange(4), ["red fox", "blue fox jumps", "red red dog", "cat"])
    return index.get_state()


def _edit(fn):
    header, arrays = _state()
    header = json.loads(json.dumps(header))
    arrays = {k: v.copy() for k, v in arrays.items()}
    fn(header, arrays)
    return header, arrays


def _set(name, pos, value):
    def fn(h, a):
        a[name][pos] = value

    return fn


CRAFTED = {
    "offsets not monotone": (_set("doc_offsets", 2, 0), "doc_offsets"),
    "offsets past the end": (_set("doc_offsets", -1, 1000), "doc_offsets"),
    "offsets not from 0": (_set("doc_offsets", 0, 1), "doc_offsets"),
    "term id out of range": (_set("doc_terms", 0, 999), "out of range"),
    "negative term id": (_set("doc_terms", 1, -1), "out of range"),
    "repeated term in a row": (lambda h, a: a["doc_terms"].__setitem__(1, a["doc_terms"][0]), "repeated term"),
    "zero frequency": (_set("doc_tf", 0, 0), "frequency"),
    "duplicate doc ids": (_set("doc_ids", 1, 0), "duplicate ids"),
    "negative doc id": (_set("doc_ids", 0, -5), "non-negative"),
    "term offsets broken": (_set("term_offsets", 1, 10_000), "term_offsets"),
    "invalid utf-8": (_set("term_bytes", 0, 0xFF), "UTF-8"),
    "duplicate terms": (lambda h, a: a["term_bytes"].__setitem__(slice(0, 3), np.frombuffer(b"fox", np.uint8)), "duplicate terms"),
    "wrong dtype": (lambda h, a: a.__setitem__("doc_terms", a["doc_terms"].astype(np.int64)), "int32"),
    "2-D array": (lambda h, a: a.__setitem__("doc_ids", a["doc_ids"].reshape(1, -1)), "1-D"),
    "missing array": (lambda h, a: a.pop("doc_tf"), "doc_tf"),
    "tf length": (lambda h, a: a.__setitem__("doc_tf", a["doc_tf"][:-1]), "doc_tf"),
    "count mismatch": (lambda h, a: h.__setitem__("n_documents", 7), "n_documents"),
    "wrong format": (lambda h, a: h.__setitem__("format", "other"), "format"),
    "future version": (lambda h, a: h.__setitem__("format_version", 99), "format_version"),
    "negative k1": (lambda h, a: h.__setitem__("k1", -1.0), "k1"),
    "missing b": (lambda h, a: h.pop("b"), "b"),
    "unknown tokenizer setting": (lambda h, a: h["tokenizer"].__setitem__("stemmer", "porter"), "tokenizer"),
    "bad normalization": (lambda h, a: h["tokenizer"].__setitem__("normalization", "NFX"), "normalization"),
}


def test_unedited_state_loads():
    KeywordIndex.from_state(*_edit(lambda h, a: None))


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_state_is_rejected(case):
    edit, match = CRAFTED[case]
    header, arrays = _edit(edit)
    with pytest.raises(ValueError, match=match):
        KeywordIndex.from_state(header, arrays)


def test_non_dict_inputs_are_rejected():
    header, arrays = _state()
    with pytest.raises(ValueError, match="header"):
        KeywordIndex.from_state([header], arrays)
    with pytest.raises(ValueError, match="arrays"):
        KeywordIndex.from_state(header, list(arrays.values()))
