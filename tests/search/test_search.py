"""Dense and hybrid search over an index, reciprocal rank fusion and the BM25 tokenizer."""

from __future__ import annotations

import numpy as np
import pytest

from ragtune.errors import RagtuneError
from ragtune.search import Searcher, reciprocal_rank_fusion
from ragtune.search.analysis import term_spans, terms, words
from ragtune.search.bm25 import BM25Retriever


def test_rrf_matches_hand_computed_scores():
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]])
    # 1: 1/61 + 1/62 = 0.032522   3: 1/63 + 1/61 = 0.032266   2: 1/62 = 0.016129
    assert [doc for doc, _ in fused] == [1, 3, 2]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[1][1] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2][1] == pytest.approx(1 / 62)
    # equal scores: the lower id first
    assert reciprocal_rank_fusion([[5, 4], [4, 5]]) == [
        (4, pytest.approx(1 / 61 + 1 / 62)),
        (5, pytest.approx(1 / 61 + 1 / 62)),
    ]


def test_words_split_identifiers_so_plain_questions_match_code():
    assert words("parseHTTPStatus(x_y)") == ["parse", "http", "status", "parsehttpstatus", "x", "y",
                                             "x_y"]  # fmt: skip
    assert terms("Where is the status line parsed?") == ["where", "status", "line", "pars"]
    text = "def parse_status_line(line):"
    spans = term_spans(text, "status line parsing")
    assert [text[a:b] for a, b in spans] == ["parse", "status", "line", "line"]


def test_bm25_ranks_the_chunk_with_the_rare_identifier_first():
    texts = ["def frobnicate_widget(x): pass", "widget docs", "unrelated text"]
    bm25 = BM25Retriever.build(texts, tokenizer="code")
    scores, positions = bm25.search(["how do I frobnicate a widget"], k=3, unmatched="drop")
    assert positions[0].tolist() == [0, 1, -1]  # the third shares no term and is left out
    assert scores[0, 0] > scores[0, 1] > 0
    assert bm25.search(["nothing matches here"], k=3, unmatched="drop")[1][0].tolist() == [-1] * 3


def test_the_english_analyzer_does_not_split_identifiers():
    texts = ["def frobnicate_widget(x): pass", "widget docs"]
    english = BM25Retriever.build(texts)
    assert english.search(["frobnicate"], k=2, unmatched="drop")[1][0].tolist() == [-1, -1]
    code = BM25Retriever.build(texts, tokenizer="code")
    assert code.search(["frobnicate"], k=2, unmatched="drop")[1][0].tolist() == [0, -1]


@pytest.fixture(scope="module")
def searcher(sample_index):
    s = Searcher.open(sample_index, device="cpu")
    yield s
    s.close()


def test_dense_search_equals_brute_force_over_the_stored_vectors(searcher):
    query = "where is the HTTP status line parsed?"
    q = searcher.encoder.encode_queries([query])[0]  # (D,)
    vectors = np.asarray(searcher.store.vectors)  # (N, D)
    scores = vectors @ q
    order = np.argsort(-scores, kind="stable")[:4]
    hits = searcher.search(query, k=4)
    chunks = searcher.store.chunks(order.tolist())
    assert [(h.path, h.start_line, h.end_line) for h in hits] == [
        (c.path, c.start_line, c.end_line) for c in chunks
    ]
    np.testing.assert_allclose([h.score for h in hits], scores[order], atol=1e-5)
    assert [h.rank for h in hits] == [1, 2, 3, 4]


def test_hybrid_puts_the_exact_word_match_first_even_with_a_random_model(searcher):
    # The tiny model is random, so the dense ranking is arbitrary. Only notes.txt contains
    # "exponential backoff", so BM25 finds it alone; the dense ranking holds all 8 chunks
    # (depth 50), so its fused score is 1/61 + 1/(60 + dense rank) while every other chunk has
    # only a dense rank, worth at most 1/61.
    hits = searcher.search("exponential backoff", k=3, hybrid=True)
    assert hits[0].location == "notes.txt:1-2"
    assert hits[0].score > 1 / 61


def test_bad_queries_are_clear_errors(searcher):
    with pytest.raises(RagtuneError, match="empty"):
        searcher.search("   ")
    with pytest.raises(RagtuneError, match="k must be at least 1"):
        searcher.search("status", k=0)
