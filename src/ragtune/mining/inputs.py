"""What to mine for: the (query, positive) pairs, grouped by query, and the corpus to mine from.

Records arrive as :class:`Example` pairs or as :class:`LabelledPair` (label > 0.5 is a positive;
a query with only negative labels has nothing to mine against and is counted, not mined).
Examples are grouped by ``query_id``, or by query text where there is none, so a query with
several positives never gets any of them as a negative. Without a corpus, the distinct positives
are the corpus (the same pool :func:`ragtune.data.negatives.pairs_to_triplets` draws from).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ragtune.data.schema import Document, Example, LabelledPair
from ragtune.errors import DataError
from ragtune.mining.filters import normalise_text


@dataclass
class Query:
    """One distinct query, the examples that ask it and everything relevant to it."""

    text: str
    examples: list[int] = field(default_factory=list)
    positive_ids: set[str] = field(default_factory=set)
    positive_texts: set[str] = field(default_factory=set)  # normalised


def corpus_from_positives(pairs: Sequence[Example]) -> dict[str, Document]:
    """The distinct positives as a corpus: their ids where given, ``positive:<n>`` otherwise."""
    corpus: dict[str, Document] = {}
    texts: set[str] = set()
    for e in pairs:
        key = normalise_text(e.positive)
        if e.positive_id is not None:
            known = corpus.get(e.positive_id)
            if known is not None and normalise_text(known.text) != key:
                raise DataError(
                    f"positive id {e.positive_id!r} is given two different texts",
                    hint="ids must name one document",
                )
            corpus.setdefault(e.positive_id, Document(e.positive_id, e.positive))
        elif key not in texts:
            doc_id = f"positive:{len(corpus)}"
            corpus[doc_id] = Document(doc_id, e.positive)
        texts.add(key)
    return corpus


def positive_pairs(records: Sequence[Example | LabelledPair]) -> tuple[list[Example], int]:
    """The (query, positive) examples, and how many queries have no positive at all."""
    pairs: list[Example] = []
    asked: set[tuple[str, str]] = set()
    for r in records:
        if isinstance(r, LabelledPair):
            asked.add(_key(r.query_id, r.query))
            if r.label > 0.5 and r.document.strip():
                pairs.append(
                    Example(r.query, r.document, query_id=r.query_id, positive_id=r.document_id)
                )
        elif isinstance(r, Example):
            asked.add(_key(r.query_id, r.query))
            if r.positive.strip():
                pairs.append(r)
        else:
            raise DataError(f"expected Example or LabelledPair records, got {type(r).__name__}")
    without = len(asked - {_key(e.query_id, e.query) for e in pairs})
    if not pairs:
        raise DataError(
            f"none of the {len(asked):,} queries has a positive to mine against",
            hint="give (query, positive) pairs, or labelled pairs with label 1",
        )
    return pairs, without


def _key(query_id: str | None, query: str) -> tuple[str, str]:
    return ("id", query_id) if query_id is not None else ("text", query)


def group_by_query(pairs: Sequence[Example]) -> list[Query]:
    """One :class:`Query` per distinct query, in order of first appearance."""
    groups: dict[tuple[str, str], Query] = {}
    for i, e in enumerate(pairs):
        q = groups.setdefault(_key(e.query_id, e.query), Query(e.query))
        q.examples.append(i)
        q.positive_texts.add(normalise_text(e.positive))
        if e.positive_id is not None:
            q.positive_ids.add(e.positive_id)
    return list(groups.values())


def positives_in_corpus(
    q: Query, id_position: Mapping[str, int], text_positions: Mapping[str, list[int]]
) -> int:
    """How many corpus documents are ``q``'s positives (by id or text): the extra search depth."""
    found = {id_position[d] for d in q.positive_ids if d in id_position}
    for text in q.positive_texts:
        found.update(text_positions.get(text, ()))
    return len(found)
