"""Random negatives that are never relevant: (query, positive) pairs to labelled pairs or triplets.

A naive sampler (``random.choice(corpus)``) can hand a query its own positive as a "negative",
or a copy of it under another id, teaching the model the opposite of the truth. Here a document
is *eligible* as a negative for a query only if

* its id is not the id of any of that query's positives, and
* its text is not the text of any of that query's positives (the same text by
  :func:`~ragtune.data.identity.text_identity`: spacing and Unicode form aside).

Queries are grouped by ``query_id`` when it is set, by query text otherwise, so a query with several
positives never gets any of them as a negative. Draws use ``random.Random(seed)``: the same pairs,
pool and seed give the same negatives on every run. Mined hard negatives arrive in the same
types (``Example.negatives`` / ``LabelledPair`` with label 0) from :mod:`ragtune.mining`.

Example::

    triplets = pairs_to_triplets(pairs, negatives_per_query=1, seed=0)
    labelled = pairs_to_labelled(pairs, negatives_per_query=3, corpus=eval_set.corpus)
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ragtune.data.identity import text_identity
from ragtune.data.schema import Document, Example, LabelledPair
from ragtune.errors import DataError

Candidate = tuple[str | None, str]  # (document id if known, text)


def pairs_to_labelled(
    pairs: Sequence[Example],
    negatives_per_query: int = 1,
    corpus: Mapping[str, Document] | None = None,
    seed: int = 0,
) -> list[LabelledPair]:
    """Label 1 for each positive, label 0 for ``negatives_per_query`` random negatives per query.

    The negative pool is ``corpus`` (title and text joined, see :meth:`Document.full_text`) or,
    by default, the positives of all the other queries. Output order: per query in order of
    first appearance, its positives then its negatives.
    """
    groups = _group(pairs, negatives_per_query)
    sampler = NegativeSampler(_pool(pairs, corpus), seed)
    out: list[LabelledPair] = []
    for group in groups.values():
        for ex in group.examples:
            out.append(LabelledPair(ex.query, ex.positive, 1.0, ex.query_id, ex.positive_id))
        first = group.examples[0]
        for doc_id, text in sampler.draw(group, negatives_per_query):
            out.append(LabelledPair(first.query, text, 0.0, first.query_id, doc_id))
    return out


def pairs_to_triplets(
    pairs: Sequence[Example],
    negatives_per_query: int = 1,
    corpus: Mapping[str, Document] | None = None,
    seed: int = 0,
) -> list[Example]:
    """Each pair with ``negatives_per_query`` random negatives appended to its ``negatives``.

    Negatives an example already has are kept first and never drawn again. ``negative_ids`` is
    filled when every negative's id is known (pool documents with ids), left empty otherwise.
    """
    groups = _group(pairs, negatives_per_query)
    sampler = NegativeSampler(_pool(pairs, corpus), seed)
    out: list[Example] = []
    for ex in pairs:
        drawn = sampler.draw(groups[_key(ex)], negatives_per_query, also_exclude=ex.negatives)
        ids = [doc_id for doc_id, _ in drawn]
        known_ids = len(ex.negative_ids) == len(ex.negatives) and all(i is not None for i in ids)
        out.append(
            Example(
                query=ex.query,
                positive=ex.positive,
                negatives=ex.negatives + tuple(text for _, text in drawn),
                query_id=ex.query_id,
                positive_id=ex.positive_id,
                negative_ids=ex.negative_ids + tuple(i for i in ids if i is not None)
                if known_ids
                else (),
            )
        )
    return out


@dataclass
class _Group:
    """One query and everything relevant to it."""

    examples: list[Example] = field(default_factory=list)
    relevant_ids: set[str] = field(default_factory=set)
    relevant_texts: set[str] = field(default_factory=set)


class NegativeSampler:
    """Draws distinct eligible negatives from a fixed pool with a seeded generator."""

    def __init__(self, pool: Sequence[Candidate], seed: int = 0) -> None:
        self.pool = list(pool)
        self._norm = [text_identity(text) for _, text in self.pool]
        self.rng = random.Random(seed)

    def draw(self, group: _Group, k: int, also_exclude: Sequence[str] = ()) -> list[Candidate]:
        """``k`` distinct candidates, none relevant to ``group`` (nor in ``also_exclude``)."""
        if k == 0:
            return []
        banned_texts = group.relevant_texts | {text_identity(t) for t in also_exclude}

        def eligible(i: int) -> bool:
            doc_id = self.pool[i][0]
            return (doc_id is None or doc_id not in group.relevant_ids) and (
                self._norm[i] not in banned_texts
            )

        # Rejection sampling is O(k) when most of the pool is eligible (the usual case) ...
        chosen: list[int] = []
        chosen_texts: set[str] = set()
        for _ in range(4 * k + 16 if self.pool else 0):
            i = self.rng.randrange(len(self.pool))
            if eligible(i) and self._norm[i] not in chosen_texts:
                chosen.append(i)
                chosen_texts.add(self._norm[i])
                if len(chosen) == k:
                    return [self.pool[j] for j in chosen]
        # ... and when it is not, list the eligible candidates (one per distinct text) and sample.
        by_text: dict[str, int] = {}
        for i in range(len(self.pool)):
            if eligible(i):
                by_text.setdefault(self._norm[i], i)
        if len(by_text) < k:
            query = group.examples[0].query
            raise DataError(
                f"query {query[:60]!r} has {len(by_text)} eligible negative(s) in a pool of "
                f"{len(self.pool)} documents, {k} needed (documents relevant to it are excluded)",
                hint="pass a bigger corpus=... or lower negatives_per_query",
            )
        return [self.pool[i] for i in self.rng.sample(sorted(by_text.values()), k)]


def _group(pairs: Sequence[Example], k: int) -> dict[tuple[str, str], _Group]:
    if k < 0:
        raise DataError(f"negatives_per_query must be >= 0, got {k}")
    groups: dict[tuple[str, str], _Group] = {}
    for ex in pairs:
        if not isinstance(ex, Example):
            raise DataError(
                f"expected Example (query, positive) records, got {type(ex).__name__}",
                hint="labelled pairs already carry their negatives",
            )
        group = groups.setdefault(_key(ex), _Group())
        group.examples.append(ex)
        group.relevant_texts.add(text_identity(ex.positive))
        if ex.positive_id is not None:
            group.relevant_ids.add(ex.positive_id)
    return groups


def _pool(pairs: Sequence[Example], corpus: Mapping[str, Document] | None) -> list[Candidate]:
    if corpus is not None:
        return [(doc_id, doc.full_text()) for doc_id, doc in corpus.items()]
    seen: set[str] = set()
    pool: list[Candidate] = []
    for ex in pairs:
        norm = text_identity(ex.positive)
        if norm not in seen:
            seen.add(norm)
            pool.append((ex.positive_id, ex.positive))
    return pool


def _key(ex: Example) -> tuple[str, str]:
    return ("id", ex.query_id) if ex.query_id is not None else ("text", ex.query)
