"""Tokenizer for the keyword (BM25) index: Unicode normalization, case folding, word split, stopwords.

::

    tok = Tokenizer()                                # NFKC, casefold, words, no stopwords, no stemming
    tok("Hot-dog, HOT dog: a Frankfurter's bun!")    # ['hot', 'dog', 'hot', 'dog', 'a', 'frankfurter', 's', 'bun']
    Tokenizer(stopwords="english").config()          # JSON-able; Tokenizer.from_config rebuilds it
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

# Lucene's classic English stop set (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET).
ENGLISH_STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not",
    "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was",
    "will", "with",
})
NORMALIZATIONS = ("NFC", "NFKC", "NFD", "NFKD")


@functools.lru_cache(maxsize=1)
def _word_pattern() -> re.Pattern[str]:
    r"""Runs of word characters (``\w``: letters, digits, underscore) and combining marks.

    Python's ``\w`` excludes combining marks (Unicode categories Mn, Mc, Me), which would cut
    Devanagari, Tamil or decomposed accents ("e" + U+0301) in the middle of a word. The marks sit
    in planes 0, 1 and 14; listing them takes ~10 ms, once per process, at the first tokenizer.
    """
    ranges: list[tuple[int, int]] = []
    for block in (range(0x20000), range(0xE0000, 0xE1000)):
        for cp in block:
            if unicodedata.category(chr(cp))[0] == "M":
                if ranges and ranges[-1][1] == cp - 1:
                    ranges[-1] = (ranges[-1][0], cp)
                else:
                    ranges.append((cp, cp))
    marks = "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)
    return re.compile(f"[\\w{marks}]+")


class Tokenizer:
    r"""Text -> list of terms: Unicode normalization, case folding, word split, optional stopwords.

    ``normalization``: ``"NFKC"`` (default: full-width letters, ligatures and composed/decomposed
    accents compare equal), another ``unicodedata`` form, or None. ``lowercase``: Unicode case
    folding (``str.casefold``: "Straße" and "STRASSE" both give "strasse"). Words are maximal runs
    of word characters and combining marks (``pattern`` replaces that regular expression:
    every match is a term). Punctuation splits words ("x-ray" -> "x", "ray"; "don't" -> "don", "t").
    No stemming. ``stopwords``: None, ``"english"`` (:data:`ENGLISH_STOPWORDS`) or an iterable of
    words (normalized and folded like the text). Scripts written without spaces (Chinese, Japanese,
    Thai) come out as one term per run: give :class:`KeywordIndex` your own ``tokenizer`` callable
    for them.
    """

    def __init__(self, *, lowercase: bool = True, normalization: str | None = "NFKC",
                 stopwords: str | Iterable[str] | None = None, pattern: str | None = None):
        if not isinstance(lowercase, bool):
            raise TypeError(f"lowercase: expected bool, got {type(lowercase).__name__}")
        if normalization is not None and normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization: expected one of {NORMALIZATIONS} or None, got {normalization!r}")
        if pattern is not None:
            if not isinstance(pattern, str) or not pattern:
                raise TypeError(f"pattern: expected a non-empty regular expression string, got {pattern!r}")
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern: not a valid regular expression ({exc})") from None
            if compiled.groups:
                raise ValueError(f"pattern: expected no capturing groups (use (?:...)), got {pattern!r}")
        self.lowercase = lowercase
        self.normalization = normalization
        self.pattern = pattern
        self._regex = compiled if pattern is not None else _word_pattern()
        if stopwords is None:
            words: list[str] = []
        elif stopwords == "english":
            words = sorted(ENGLISH_STOPWORDS)
        elif isinstance(stopwords, str) or not isinstance(stopwords, Iterable):
            raise TypeError(f"stopwords: expected None, 'english' or an iterable of str, got {stopwords!r}")
        else:
            words = list(stopwords)
            for i, w in enumerate(words):
                if not isinstance(w, str):
                    raise TypeError(f"stopwords[{i}]: expected str, got {type(w).__name__}")
        self.stopwords = frozenset(self._fold(w) for w in words)

    def _fold(self, text: str) -> str:
        if self.normalization is not None and not text.isascii():  # ASCII is its own normal form
            text = unicodedata.normalize(self.normalization, text)  # type: ignore[arg-type]  # checked in __init__
        return text.casefold() if self.lowercase else text

    def __call__(self, text: str) -> list[str]:
        terms = self._regex.findall(self._fold(text))
        if self.stopwords:
            stop = self.stopwords
            terms = [t for t in terms if t not in stop]
        return terms

    def config(self) -> dict[str, Any]:
        """JSON-able settings; :meth:`from_config` rebuilds an equal tokenizer."""
        return {"kind": "builtin", "lowercase": self.lowercase, "normalization": self.normalization,
                "stopwords": sorted(self.stopwords), "pattern": self.pattern}

    @classmethod
    def from_config(cls, config: Any, name: str = "tokenizer") -> Tokenizer:
        if not isinstance(config, dict) or config.get("kind") != "builtin":
            raise ValueError(f"{name}: expected a built-in tokenizer config, got {config!r}")
        extra = set(config) - {"kind", "lowercase", "normalization", "stopwords", "pattern"}
        if extra:
            raise ValueError(f"{name}: unknown tokenizer settings {sorted(extra)}")
        try:
            return cls(lowercase=config.get("lowercase", True), normalization=config.get("normalization", "NFKC"),
                       stopwords=config.get("stopwords"), pattern=config.get("pattern"))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: {exc}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.config() == other.config()

    def __hash__(self) -> int:
        return hash(repr(self.config()))

    def __repr__(self) -> str:
        return (f"Tokenizer(lowercase={self.lowercase}, normalization={self.normalization!r}, "
                f"stopwords={len(self.stopwords)} words, pattern={self.pattern!r})")
