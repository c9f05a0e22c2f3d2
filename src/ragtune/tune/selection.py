"""Which training examples a shortened run trains on: the queries the base model finds hardest.

Why: when ``--budget`` leaves room for only part of an epoch (tune/budget.py: 57 of 189 steps on
the standard library, 2 cores, 20 minutes), a random part spends most steps on pairs the base
model already gets right. On that run 26% of the held-out pseudo-queries had their chunk ranked
first by the base model, and keyword queries scored 0.87 nDCG@10 before training and 0.87 after:
an easy pair's InfoNCE loss is near zero, so it moves the model little. Data pruning keeps the
hard examples when the data outnumber what can be trained on (Sorscher et al. 2022, "Beyond
neural scaling laws: beating power law scaling via data pruning"), and the round-trip filter
(:mod:`ragtune.pseudo.roundtrip`) has already removed the pairs whose chunk BM25 and the base
model fused do not rank in their top k, which is where a hardness ranking would pick up noise.
Measured there (BENCHMARKS.md, "The standard library ... within 20 minutes", runs 3 and 4): 52
steps on the hardest queries scored 0.6569 nDCG@10 on the demo's test queries against 0.6429 for
57 steps on a random part, and keyword queries no longer lost (0.8735 base, 0.8675 -> 0.8837).
Run 4 ranked a query by its worst chunk; with the rule below and dropout off (runs 5 and 6) the
held-out pseudo-queries rose further (0.6483 and 0.6291 against 0.6194) and the demo's test
scored 0.6452 and 0.6518: one seed a run, differences of ~0.01 are within its noise.

The measure is the rank the base dense model gives a pair's chunk among every chunk of the folder,
as the round-trip filter computed it (0: below its depth, the hardest). A query with several
chunks is as hard as its best-ranked one: a query the base model already answers with one of its
chunks is not what it lacks, and ranking such a query by its worst chunk would favour the vaguest
queries (an identifier such as "init" that names many chunks: 291 of the 1,664 queries chosen
that way on the standard library had several chunks, up to 6). Queries are taken hardest first
(ties in a seeded random order) until the shortened schedule's queries are filled, and every pair
of a taken query comes with it (an epoch is a pass over queries,
:mod:`ragtune.train.query_groups`). The examples keep their order: training shuffles its batches.

Example::

    chosen = hardest_queries(examples, {("parse a url", "a.py:1-9"): 14}, queries=1824, seed=0)
    chosen.examples         # the examples of the 1,824 hardest queries
    chosen.describe()  # "trained on the 1,824 queries the base model ranks worst, of 5,526"
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ragtune.data.identity import text_identity
from ragtune.data.schema import Example

BELOW_DEPTH = 1_000_000
"""The hardness of a pair whose chunk was below the dense list's depth (rank 0)."""


@dataclass(frozen=True)
class Selection:
    """The examples a shortened run trains on, and what was left out."""

    examples: list[Example]
    queries: int
    """Distinct queries (by text identity) taken."""
    of_queries: int
    median_rank: float
    """Median base dense rank of the taken queries (``BELOW_DEPTH`` counted as below the list)."""
    unranked: int
    """Examples with no recorded rank (treated as the hardest)."""

    @property
    def selected(self) -> bool:
        return self.queries < self.of_queries

    def describe(self) -> str:
        return describe_selection(self.to_json())

    def to_json(self) -> dict[str, int | float | bool]:
        return {
            "queries": self.queries,
            "of_queries": self.of_queries,
            "examples": len(self.examples),
            "median_rank": self.median_rank,
            "unranked": self.unranked,
            "selected": self.selected,
        }


def hardest_queries(
    examples: Sequence[Example],
    ranks: Mapping[tuple[str, str], int],
    *,
    queries: int,
    seed: int = 0,
) -> Selection:
    """The examples of the ``queries`` distinct queries whose chunk the base model ranks worst.

    ``ranks`` maps ``(query, positive_id)`` to the base dense rank of the chunk (1-based, 0: below
    the list); an example without one counts as the hardest (nothing says it is easy).
    """
    hardness: dict[str, int] = {}
    rows: dict[str, list[int]] = {}
    unranked = 0
    for i, ex in enumerate(examples):
        key = text_identity(ex.query)
        rank = ranks.get((ex.query, ex.positive_id or ""))
        if rank is None:
            unranked += 1
        value = rank or BELOW_DEPTH
        hardness[key] = min(hardness.get(key, BELOW_DEPTH), value)
        rows.setdefault(key, []).append(i)
    order = list(rows)
    random.Random(seed).shuffle(order)  # ties in a seeded random order, not data order
    order.sort(key=lambda k: -hardness[k])  # stable: the shuffle breaks ties
    taken = order[: max(0, queries)]
    keep = sorted(i for k in taken for i in rows[k])
    values = sorted(hardness[k] for k in taken)
    median = float(values[len(values) // 2]) if values else 0.0
    return Selection([examples[i] for i in keep], len(taken), len(rows), median, unranked)


def describe_selection(row: dict[str, Any]) -> str:
    """One line for a :meth:`Selection.to_json` row (the report reads it back from tune.json)."""
    if not row["selected"]:
        return f"trained on all {row['of_queries']:,} queries"
    rank = float(row["median_rank"])
    median = "below the list" if rank >= BELOW_DEPTH else f"{rank:g}"
    return (
        f"trained on the {row['queries']:,} queries the base model ranks worst, of "
        f"{row['of_queries']:,} (median base rank of their chunk: {median})"
    )


def distinct_queries(examples: Sequence[Example]) -> int:
    """Distinct queries by text identity: the rows of one epoch (train/query_groups.py)."""
    return len({text_identity(ex.query) for ex in examples})


__all__ = [
    "BELOW_DEPTH",
    "Selection",
    "describe_selection",
    "distinct_queries",
    "hardest_queries",
]
