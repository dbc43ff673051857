"""Tokenizer: Unicode-aware word split, case folding, normalization, stopwords, settings round trip."""

from __future__ import annotations

import pytest

from vecsearch.store.tokenizer import ENGLISH_STOPWORDS, Tokenizer


def test_lowercases_and_splits_on_punctuation_and_spaces():
    tok = Tokenizer()
    assert tok("Hot-dog, HOT dog: a Frankfurter's bun!") == ["hot", "dog", "hot", "dog", "a", "frankfurter", "s", "bun"]
    assert tok("snake_case x2 2024") == ["snake_case", "x2", "2024"]  # \w keeps underscores and digits
    assert tok("") == [] and tok("  ... ") == []


def test_no_stemming_by_default():
    assert Tokenizer()("running runs ran") == ["running", "runs", "ran"]


def test_words_with_combining_marks_stay_whole():
    tok = Tokenizer()
    # Python's \w alone would cut these at the vowel signs / virama (combining marks).
    assert tok("हिन्दी भाषा") == ["हिन्दी", "भाषा"]
    assert tok("தமிழ்") == ["தமிழ்"]
    # Decomposed and composed accents give the same term (NFKC composes "e" + U+0301).
    assert tok("cafe\u0301") == tok("café") == ["café"]


def test_case_folding_and_compatibility_forms():
    tok = Tokenizer()
    assert tok("Straße STRASSE") == ["strasse", "strasse"]
    assert tok("ΣΊΣΥΦΟΣ σίσυφος") == [tok("σίσυφος")[0]] * 2
    assert tok("ｆｕｌｌ ﬁne") == ["full", "fine"]  # full-width letters, ligature


def test_options():
    assert Tokenizer(lowercase=False)("Dog dog") == ["Dog", "dog"]
    assert Tokenizer(normalization=None)("cafe\u0301") == ["cafe\u0301"]
    assert Tokenizer(stopwords="english")("The dog and THE cat") == ["dog", "cat"]
    assert Tokenizer(stopwords=["Dog"])("dog cat DOG") == ["cat"]  # stopwords are folded like text
    assert Tokenizer(pattern=r"[a-z]+")("abc123def") == ["abc", "def"]
    assert "the" in ENGLISH_STOPWORDS and len(ENGLISH_STOPWORDS) == 33


@pytest.mark.parametrize("kwargs", [{"stopwords": "english"}, {"lowercase": False, "normalization": "NFC"},
                                    {"pattern": r"\S+", "stopwords": ["a", "b"]}, {}])
def test_config_round_trip(kwargs):
    tok = Tokenizer(**kwargs)
    again = Tokenizer.from_config(tok.config())
    assert again == tok
    assert again("The Cafe\u0301, a b!") == tok("The Cafe\u0301, a b!")


def test_bad_options_raise():
    with pytest.raises(ValueError, match="normalization"):
        Tokenizer(normalization="NFX")
    with pytest.raises(ValueError, match="pattern"):
        Tokenizer(pattern="(unclosed")
    with pytest.raises(ValueError, match="capturing groups"):
        Tokenizer(pattern=r"(\w)+")
    with pytest.raises(TypeError, match="stopwords"):
        Tokenizer(stopwords="french")
    with pytest.raises(TypeError, match=r"stopwords\[1\]"):
        Tokenizer(stopwords=["a", 3])
    with pytest.raises(TypeError, match="lowercase"):
        Tokenizer(lowercase="yes")
    with pytest.raises(ValueError, match="tokenizer"):
        Tokenizer.from_config({"kind": "custom"})
