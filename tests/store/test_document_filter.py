"""where_document: Chroma's semantics (case-sensitive substring, None documents) and validation."""

from __future__ import annotations

import re

import numpy as np
import pytest

from vecsearch.store.document_filter import And, Contains, Or, parse_where_document

DOCS = ["The Dog barked", "a dog and a cat", "concatenate", None, "", "hot dog: a frankfurter", "100% sure_thing"]


def matching(where_document, docs=DOCS):
    return parse_where_document(where_document).evaluate(docs).tolist()


def test_contains_is_a_case_sensitive_substring_match():
    assert matching({"$contains": "dog"}) == [False, True, False, False, False, True, False]
    assert matching({"$contains": "Dog"}) == [True, False, False, False, False, False, False]
    assert matching({"$contains": "cat"}) == [False, True, True, False, False, False, False]  # no tokenization
    assert matching({"$contains": "dog: a"}) == [False, False, False, False, False, True, False]  # punctuation is literal
    assert matching({"$contains": "%"}) == [False] * 6 + [True]  # no LIKE wildcards
    assert matching({"$contains": "_"}) == [False] * 6 + [True]


def test_missing_documents_fail_contains_and_pass_not_contains():
    assert parse_where_document({"$contains": "x"}).matches(None) is False
    assert parse_where_document({"$not_contains": "x"}).matches(None) is True
    assert matching({"$not_contains": "dog"}) == [True, False, True, True, True, False, True]
    assert parse_where_document({"$regex": ".*"}).matches(None) is False
    assert parse_where_document({"$not_regex": ".*"}).matches(None) is True


def test_regex_searches_anywhere():
    assert matching({"$regex": r"^a dog"}) == [False, True, False, False, False, False, False]
    assert matching({"$regex": r"d[oa]g|cat$"}) == [False, True, False, False, False, True, False]
    assert matching({"$not_regex": r"[0-9]"}) == [True, True, True, True, True, True, False]


def test_and_or_nest():
    where = {"$or": [{"$and": [{"$contains": "dog"}, {"$not_contains": "hot"}]}, {"$contains": "concat"}]}
    assert matching(where) == [False, True, True, False, False, False, False]


def evaluate_plainly(node, doc):
    if isinstance(node, Contains):
        hit = doc is not None and node.text in doc
        return not hit if node.negate else hit
    if isinstance(node, And):
        return all(evaluate_plainly(c, doc) for c in node.children)
    if isinstance(node, Or):
        return any(evaluate_plainly(c, doc) for c in node.children)
    raise TypeError(node)


def test_short_circuit_evaluation_matches_per_document_evaluation():
    rng = np.random.default_rng(0)
    letters = list("abcd")
    docs = ["".join(rng.choice(letters, size=int(rng.integers(0, 8)))) if rng.random() > 0.1 else None for _ in range(400)]

    def random_filter(depth):
        if depth == 0 or rng.random() < 0.4:
            op = "$contains" if rng.random() < 0.6 else "$not_contains"
            return {op: "".join(rng.choice(letters, size=int(rng.integers(1, 3))))}
        op = "$and" if rng.random() < 0.5 else "$or"
        return {op: [random_filter(depth - 1) for _ in range(int(rng.integers(2, 4)))]}

    for _ in range(50):
        flt = parse_where_document(random_filter(3))
        assert flt.evaluate(docs).tolist() == [evaluate_plainly(flt, d) for d in docs]


def test_select_keeps_ids_in_order():
    flt = parse_where_document({"$contains": "dog"})
    assert flt.select(np.array([70, 71, 72, 73, 74, 75, 76]), DOCS).tolist() == [71, 75]
    with pytest.raises(ValueError, match="doc_ids"):
        flt.select(np.array([1, 2]), DOCS)


def test_parsed_filter_is_accepted_as_is():
    flt = parse_where_document({"$contains": "a"})
    assert parse_where_document(flt) is flt


MALFORMED = [
    ("not a dict", r"where_document: expected a dict"),
    ({}, r"where_document: expected exactly one operator"),
    ({"$contains": "a", "$not_contains": "b"}, "exactly one operator"),
    ({"$like": "a"}, "unknown operator '\\$like'"),
    ({"contains": "a"}, "unknown operator"),
    ({"$contains": 3}, r"where_document\['\$contains'\]: expected a string"),
    ({"$contains": ""}, "non-empty"),
    ({"$and": {"$contains": "a"}}, r"where_document\['\$and'\]: expected a list"),
    ({"$or": [{"$contains": "a"}]}, "at least two"),
    ({"$and": [{"$contains": "a"}, {"$contains": None}]}, r"where_document\['\$and'\]\[1\]\['\$contains'\]"),
    ({"$and": [{"$contains": "a"}, {"$or": [{"$contains": "b"}, {"$bad": "c"}]}]}, r"\['\$or'\]\[1\]: unknown operator"),
    ({"$regex": "(unclosed"}, "not a valid regular expression"),
]


@pytest.mark.parametrize("where_document,message", MALFORMED, ids=[str(m[0]) for m in MALFORMED])
def test_malformed_filters_raise_value_error_naming_the_part(where_document, message):
    with pytest.raises(ValueError, match=message):
        parse_where_document(where_document)


def test_error_names_the_argument_given():
    with pytest.raises(ValueError, match=re.escape("where_document_filter['$contains']")):
        parse_where_document({"$contains": 1}, name="where_document_filter")
