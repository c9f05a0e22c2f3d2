"""Held-out pseudo-queries as an evaluation set: a query is judged on its answer and on the other
chunks, never on its own chunk's other documents, which hold its words without being its answer."""

from __future__ import annotations

import pytest

from ragtune.evaluation.evaluate import evaluate_bm25
from ragtune.pseudo.pairs import PseudoPair, chunk_id
from ragtune.search.chunking import Chunk
from ragtune.tune.evalsets import positive_id, pseudo_evalset

PASSAGE = Chunk("notes.md", 1, 2, "Alpha sentence one.\nBeta sentence two.")
OTHER = Chunk("other.md", 1, 1, "Gamma delta epsilon.")


def pairs() -> list[PseudoPair]:
    where = chunk_id(PASSAGE)
    return [
        # inverse cloze: the sentence held out, the rest of the passage is the answer
        PseudoPair("Alpha sentence one.", where, "notes.md", 1, 2, "cloze", "Beta sentence two."),
        # keywords: the passage whole is the answer (and holds the sentence word for word)
        PseudoPair("alpha beta", where, "notes.md", 1, 2, "keywords"),
    ]


def test_a_query_is_not_judged_on_its_own_chunks_other_documents():
    evalset = pseudo_evalset(pairs(), [PASSAGE, OTHER], "dev", {"notes.md", "other.md"})
    cloze, keywords = (positive_id(p) for p in pairs())
    assert set(evalset.corpus) == {cloze, keywords, chunk_id(OTHER)}
    assert evalset.unjudged == {"q0": frozenset({keywords}), "q1": frozenset({cloze})}

    scores = evaluate_bm25(evalset).per_query
    # BM25 ranks the whole passage first for the sentence; it is left out, not counted wrong
    assert scores["q0"]["nDCG@10"] == pytest.approx(1.0)
    assert scores["q1"]["nDCG@10"] == pytest.approx(1.0)


def test_judged_on_everything_the_sentence_would_find_its_answer_second():
    # the same set with nothing left out: the rank the filter-free scoring used to give
    evalset = pseudo_evalset(pairs(), [PASSAGE, OTHER], "dev", {"notes.md", "other.md"})
    evalset.unjudged = {}
    assert evaluate_bm25(evalset).per_query["q0"]["nDCG@10"] == pytest.approx(1 / 1.5849625, 1e-5)
