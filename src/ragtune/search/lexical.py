"""BM25 over chunks of code and prose, for hybrid search, and the words to highlight in a hit.

Scoring is bm25s's Lucene variant (``k1=0.9, b=0.4``, as in
:mod:`ragtune.search.bm25`). The tokenizer differs on purpose: code names carry words, so
``parseStatusLine`` and ``parse_status_line`` are split into ``parse``, ``status`` and ``line``
(and the whole name is kept too), so a question in plain English matches the identifier. Words are
lowercased, English stop-words dropped, and stemmed with the Snowball stemmer (PyStemmer).

This is a separate, smaller index than :class:`ragtune.search.bm25.BM25Retriever` because
the server may not import the evaluation stage, and because of the identifier splitting above.

Example::

    bm25 = ChunkBM25(["def parse_status_line(line): ...", "## Install\\npip install x"])
    scores, positions = bm25.search("where is the status line parsed?", k=5)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from ragtune.search.topk import select_top_k

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


class ChunkBM25:
    """A BM25 index over chunk texts; results are positions in the list it was built from."""

    def __init__(self, texts: Sequence[str], *, k1: float = 0.9, b: float = 0.4) -> None:
        import bm25s

        self.size = len(texts)
        corpus = [terms(t) for t in texts]
        vocab: dict[str, int] = {}
        ids = [[vocab.setdefault(w, len(vocab)) for w in doc] for doc in corpus]
        self._vocab = vocab
        self._model = bm25s.BM25(k1=k1, b=b, method="lucene")
        if self.size:
            self._model.index((ids, vocab), show_progress=False)

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` chunks with a positive score: ``(scores (k',), positions (k',))``."""
        known = [self._vocab[t] for t in dict.fromkeys(terms(query)) if t in self._vocab]
        if not known or self.size == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        scores = np.asarray(self._model.get_scores(known), dtype=np.float32)  # (N,)
        top_s, top_i = select_top_k(scores[None, :], k)  # (1, k)
        keep = top_s[0] > 0
        return top_s[0][keep], top_i[0][keep]


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
