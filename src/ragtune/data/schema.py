"""The shapes data takes inside ragtune.

Training data is a sequence of :class:`Example` (a query with one positive and zero or more
negatives: pairs, triplets and n-tuples are all this one type) or of :class:`LabelledPair`
(a query, a document and a label: the 1/0 pairs of contrastive and cosine losses).
Evaluation data is an :class:`EvalSet`: queries, a corpus and graded relevance judgements (qrels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Qrels = dict[str, dict[str, int]]
"""query id -> {document id -> graded relevance (> 0 means relevant)}"""


@dataclass(frozen=True)
class Example:
    """A query, its positive document, and optionally negatives (hard or random)."""

    query: str
    positive: str
    negatives: tuple[str, ...] = ()
    query_id: str | None = None
    positive_id: str | None = None
    negative_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelledPair:
    """A query-document pair with a label: 1/0 for relevant/irrelevant, or a float score."""

    query: str
    document: str
    label: float
    query_id: str | None = None
    document_id: str | None = None


@dataclass(frozen=True)
class Document:
    """A corpus entry; ``metadata`` holds provenance: ``path``, ``start_line``, ``end_line``."""

    id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def full_text(self, separator: str = " ") -> str:
        """Title and text joined the way BEIR evaluation does (title first, when present)."""
        return f"{self.title}{separator}{self.text}" if self.title else self.text


@dataclass
class EvalSet:
    """Queries, a corpus and qrels: what retrieval evaluation needs."""

    queries: dict[str, str]
    corpus: dict[str, Document]
    qrels: Qrels
    name: str = "eval"
    strata: dict[str, str] = field(default_factory=dict)
    """Optional ``{query id: kind}`` (say the generator of a pseudo-query): the significance
    gate (train/gate.py) then asks for a gain on every kind, not only pooled."""
    unjudged: dict[str, frozenset[str]] = field(default_factory=dict)
    """Optional ``{query id: document ids left out of its ranking}``: documents that are neither
    its answer nor a wrong one. A held-out sentence's passage is the answer to the sentence, and
    the same passage kept whole for another pseudo-query holds the sentence word for word: judged
    irrelevant it would rank first for every system and cap the answer at rank 2
    (:func:`ragtune.tune.evalsets.pseudo_evalset`). Every score drops these hits, as it drops a
    query's own id (:func:`ragtune.evaluation.evaluate.without_identical_ids`)."""

    def __post_init__(self) -> None:
        # Evaluate only queries that have at least one relevant document (BEIR's convention).
        self.queries = {
            qid: text
            for qid, text in self.queries.items()
            if any(rel > 0 for rel in self.qrels.get(qid, {}).values())
        }
