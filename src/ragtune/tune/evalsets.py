"""Evaluation sets from held-out pseudo-pairs and from the user's questions.

Held-out pseudo-pairs: each pair's positive is its own document (the code without its
docstring, the passage without its held-out sentence; the chunk itself when the generator keeps
it whole), and the split's other chunks are the distractors. A chunk that gave a positive is not
also a distractor (it would hold the query's words and be judged irrelevant), and a query is not
judged on the other documents of its own chunk, for the same reason (``EvalSet.unjudged``).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from ragtune.data.schema import Document, EvalSet
from ragtune.pseudo.pairs import PseudoPair, chunk_id
from ragtune.search.chunking import Chunk
from ragtune.tune.inputs import Question


def positive_id(pair: PseudoPair) -> str:
    """The id of a pair's positive document (its chunk's id when it is the whole chunk)."""
    if not pair.document:
        return pair.chunk_id
    return f"{pair.chunk_id}#{hashlib.sha256(pair.document.encode()).hexdigest()[:10]}"


def sample(pairs: Sequence[PseudoPair], n: int, seed: int) -> list[PseudoPair]:
    """At most ``n`` pairs, a seeded sample in input order."""
    if len(pairs) <= n:
        return list(pairs)
    keep = sorted(random.Random(seed).sample(range(len(pairs)), n))
    return [pairs[i] for i in keep]


def pseudo_evalset(
    pairs: Sequence[PseudoPair], chunks: Sequence[Chunk], name: str, paths: set[str]
) -> EvalSet:
    """Queries = the pairs; corpus = their positives + the chunks of ``paths`` that gave none;
    strata = each query's generator (the gate asks for a gain on every one, train/gate.py)."""
    by_id = {chunk_id(c): c for c in chunks}
    corpus: dict[str, Document] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    strata: dict[str, str] = {}
    used = {p.chunk_id for p in pairs}
    for i, pair in enumerate(pairs):
        doc = positive_id(pair)
        text = pair.document or by_id[pair.chunk_id].text
        corpus[doc] = Document(
            doc, text, metadata=_where(pair.path, pair.start_line, pair.end_line)
        )
        qid = f"q{i}"
        queries[qid] = pair.query
        qrels[qid] = {doc: 1}
        strata[qid] = pair.generator
    for cid, chunk in by_id.items():
        if chunk.path in paths and cid not in used:
            corpus[cid] = Document(
                cid, chunk.text, metadata=_where(chunk.path, chunk.start_line, chunk.end_line)
            )
    # A chunk's other documents (the chunk whole, or less another sentence or docstring) hold
    # a query's words verbatim without being its answer: they are not judged for it.
    of_chunk: dict[str, set[str]] = {}
    for pair in pairs:
        of_chunk.setdefault(pair.chunk_id, set()).add(positive_id(pair))
    unjudged = {}
    for i, pair in enumerate(pairs):
        others = of_chunk[pair.chunk_id] - {positive_id(pair)}
        if others:
            unjudged[f"q{i}"] = frozenset(others)
    return EvalSet(queries, corpus, qrels, name=name, strata=strata, unjudged=unjudged)


def question_evalset(
    questions: Sequence[Question], chunks: Sequence[Chunk], name: str = "questions"
) -> EvalSet:
    """The user's questions over every chunk; relevant: the chunks of the path (at the line)."""
    corpus = {
        chunk_id(c): Document(
            chunk_id(c), c.text, metadata=_where(c.path, c.start_line, c.end_line)
        )
        for c in chunks
    }
    queries, qrels = {}, {}
    for i, q in enumerate(questions):
        relevant = {
            chunk_id(c): 1
            for c in chunks
            if c.path == q.path and (q.line == 0 or c.start_line <= q.line <= c.end_line)
        }
        queries[f"u{i}"] = q.query
        qrels[f"u{i}"] = relevant
    return EvalSet(queries, corpus, qrels, name=name)


def _where(path: str, start: int, end: int) -> dict[str, object]:
    return {"path": path, "start_line": start, "end_line": end}


__all__ = ["positive_id", "pseudo_evalset", "question_evalset", "sample"]
