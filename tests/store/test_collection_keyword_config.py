"""Collection BM25 settings (``keyword=``: k1, b, tokenizer): used by the keyword leg, saved with the
collection, restored by a reopen (snapshot or log replay), checked against what a reopen asks for."""

from __future__ import annotations

import numpy as np
import pytest

from vecsearch.io import IndexFileError
from vecsearch.store.collection import Collection
from vecsearch.store.keyword import KeywordIndex
from vecsearch.store.records import RecordTable
from vecsearch.store.tokenizer import Tokenizer

DIM = 8
DOCS = ["the cat and the hat", "a dog in the fog", "The Dog, the cat", "cats and dogs", "the the the owl",
        "hat trick", "dog dog dog", "an owl and a cat in a hat", "fog", "Über den Hund"]
IDS = [f"d{i}" for i in range(len(DOCS))]
QUERIES = ["the cat", "dog hat", "owl the", "hund", "the"]
SETTINGS = {"k1": 2.0, "b": 0.3, "tokenizer": Tokenizer(stopwords="english")}


def _vectors() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(len(DOCS), DIM)).astype(np.float32)


def _reference(k1: float, b: float, tokenizer: Tokenizer) -> list[list[tuple[str, float]]]:
    index = KeywordIndex(k1=k1, b=b, tokenizer=tokenizer)
    index.add(np.arange(len(DOCS)), DOCS)
    out = []
    for text in QUERIES:
        rows, scores = index.search(text, len(DOCS))
        out.append([(IDS[r], round(float(s), 5)) for r, s in zip(rows, scores)])
    return out


def _keyword_hits(col: Collection) -> list[list[tuple[str, float]]]:
    res = col.query(search_text=QUERIES, n_results=len(DOCS), include=["scores"])
    return [[(i, round(h["keyword_score"], 5)) for i, h in zip(ids, hits)] for ids, hits in zip(res["ids"], res["scores"])]


def test_settings_reach_the_keyword_leg_and_differ_from_the_defaults():
    col = Collection(index="flat", metric="l2", keyword=SETTINGS)
    col.add(IDS, _vectors(), documents=DOCS)
    got = _keyword_hits(col)
    assert got == _reference(2.0, 0.3, Tokenizer(stopwords="english"))
    assert got[-1] == []  # "the" is a stopword now
    default = Collection(index="flat", metric="l2")
    default.add(IDS, _vectors(), documents=DOCS)
    assert _keyword_hits(default) == _reference(1.2, 0.75, Tokenizer())
    assert _keyword_hits(default) != got
    assert col.keyword == {"k1": 2.0, "b": 0.3, "tokenizer": Tokenizer(stopwords="english").config()}
    # the tokenizer may also be given as its config dict
    as_dict = Collection(index="flat", metric="l2", keyword={**SETTINGS, "tokenizer": SETTINGS["tokenizer"].config()})
    as_dict.add(IDS, _vectors(), documents=DOCS)
    assert _keyword_hits(as_dict) == got


@pytest.mark.parametrize("checkpoint", [False, True])
def test_settings_are_saved_and_used_by_log_replay_and_snapshots(tmp_path, checkpoint):
    path = str(tmp_path / "col")
    col = Collection(path, index="flat", metric="l2", keyword=SETTINGS)
    col.add(IDS[:5], _vectors()[:5], documents=DOCS[:5])
    if checkpoint:
        col.checkpoint()
    col.add(IDS[5:], _vectors()[5:], documents=DOCS[5:])  # in the log only
    want = _keyword_hits(col)
    col._wal.close()  # crash: no final snapshot
    col._dir.unlock()
    again = Collection(path)  # settings not given: the saved ones apply, to the replay too
    assert again.keyword == col.keyword
    assert _keyword_hits(again) == want == _reference(2.0, 0.3, Tokenizer(stopwords="english"))
    again.close()
    with pytest.raises(ValueError, match="keyword"):
        Collection(path, keyword={"k1": 1.2})
    third = Collection(path, keyword=SETTINGS)  # the same settings are accepted
    assert _keyword_hits(third) == want
    third.close()


def test_keyword_state_made_with_other_settings_is_reported():
    table = RecordTable()
    table.insert(np.arange(3, dtype=np.int64), IDS[:3], DOCS[:3], [None] * 3)
    header, arrays, keyword = table.get_state()
    other = {"k1": 1.2, "b": 0.75, "tokenizer": Tokenizer(stopwords="english").config()}
    with pytest.raises(IndexFileError, match="k1, b or tokenizer"):
        RecordTable.from_state(header, arrays, keyword, other)
    assert RecordTable.from_state(header, arrays, keyword, None).keyword_search("cat", 3, None)[0].size == 2


@pytest.mark.parametrize(("keyword", "error", "message"), [
    ("bm25", TypeError, "keyword: expected a dict"),
    ({"k2": 1.0}, ValueError, "keyword: unknown settings"),
    ({"b": 2.0}, ValueError, "b: expected a finite value"),
    ({"k1": "high"}, TypeError, "k1: expected a float"),
    ({"tokenizer": str.split}, TypeError, r"keyword\['tokenizer'\]"),
    ({"tokenizer": {"kind": "custom"}}, ValueError, r"keyword\['tokenizer'\]"),
])
def test_bad_settings_raise_naming_the_argument(keyword, error, message):
    with pytest.raises(error, match=message):
        Collection(keyword=keyword)
