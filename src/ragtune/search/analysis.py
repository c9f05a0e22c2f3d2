"""The code analyzer of BM25 (``tokenizer="code"``) and the words to highlight in a hit.

Code names carry words, so ``parseStatusLine`` and ``parse_status_line`` are split into
``parse``, ``status`` and ``line`` (and the whole name is kept too): a question in plain English
then matches the identifier. Words are lowercased, English stop-words dropped, and stemmed with
the Snowball stemmer (PyStemmer), as in the English analyzer of :mod:`ragtune.search.bm25`.

Example::

    terms("Where is the status line parsed?")          # ["where", "status", "line", "pars"]
    term_spans("def parse_status_line(line):", "status line parsing")   # what to highlight
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_WORD = re.compile(r"[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def words(text: str) -> list[str]:
    """Lowercase words of ``text``; identifiers give their parts and themselves.

    ``"parseHTTPStatus(x_y)"`` -> ``["parse", "http", "status", "parsehttpstatus", "x", "y",
    "x_y"]`` (one-letter parts are kept here and dropped by :func:`terms`).
    """
    out: list[str] = []
    for match in _WORD.finditer(text):
        name = match.group()
        parts = [p for piece in name.split("_") for p in _CAMEL.findall(piece)]
        out.extend(p.lower() for p in parts)
        if len(parts) > 1:
            out.append(name.lower())
    return out


def terms(text: str) -> list[str]:
    """BM25 terms: :func:`words` of two or more characters, minus stop-words, stemmed."""
    stop = _stopwords()
    kept = [w for w in words(text) if len(w) > 1 and w not in stop]
    return list(_stemmer().stemWords(kept)) if kept else []


def term_spans(text: str, query: str) -> list[tuple[int, int]]:
    """Character spans of the words of ``text`` (identifier parts included) that match a term
    of ``query`` after stemming: what to highlight in a hit."""
    wanted = set(terms(query))
    if not wanted:
        return []
    spans: list[tuple[int, int]] = []
    stemmer = _stemmer()
    for match in _WORD.finditer(text):
        offset = match.start()
        for piece in match.group().split("_"):
            for part in _CAMEL.finditer(piece):
                if stemmer.stemWord(part.group().lower()) in wanted:
                    spans.append((offset + part.start(), offset + part.end()))
            offset += len(piece) + 1
    return spans
