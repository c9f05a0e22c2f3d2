"""Training rows grouped by query: epochs over queries, and every query's known positives.

Why: a BEIR qrels file becomes one (query, positive) row per relevant judgement, so a query with
40 graded positives is 40 rows. Pair-level epochs then show that query 40 times an epoch, and a
batch drawn from such data is full of documents relevant to *other* queries of the same batch,
used as their negatives: on a dataset with ~40 positives per query the loss of a default run
barely moved from log(batch size). Grouping fixes both halves:

* **an epoch is a pass over queries**: each distinct query (by
  :func:`~ragtune.data.identity.text_identity`) gives one row per epoch; the row used in epoch
  ``e`` cycles through the query's rows in an order shuffled per query, seeded by (seed, query),
  so over ``k`` epochs a query with ``k`` positives trains on each exactly once (hard negatives
  stay attached to their row);
* **known positives are never negatives**: every positive of a query's group, by text identity,
  is known relevant to it; the loss masks such a document wherever it appears as a candidate (an
  in-batch positive of another query, or a hard negative), see
  :class:`~ragtune.losses.infonce.InfoNCELoss`.

The identity rule is the one mining uses to keep a query's positives out of its hard negatives
(:mod:`ragtune.mining.filters`): negatives mined from the same pairs are not known positives
here, and a hand-written negative that is one is counted (:attr:`QueryGroups.known_negatives`)
and masked. (Mining groups a query by its id when it has one; two ids with the same query text
are one query here, which can only mask more.)

Everything is computed on identity ids (integers from the training set's token cache), never on
texts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

PAD = -1
"""Padding of :meth:`QueryGroups.known_positive_ids` rows: matches no text id."""


@dataclass(frozen=True)
class QueryGroups:
    """The rows of each distinct query and the positives known for it, by identity id."""

    rows: dict[int, tuple[int, ...]]
    """query identity id -> its row indices, in data order (queries in order of first row)."""
    positives: dict[int, tuple[int, ...]]
    """query identity id -> identity ids of its distinct positives, in order of first row."""
    known_negatives: int = 0
    """Hard negatives that are a known positive of their own row's query (false negatives)."""

    @property
    def num_queries(self) -> int:
        return len(self.rows)

    @property
    def max_positives(self) -> int:
        """The most distinct positives of one query: the width of known-positive id rows."""
        return max((len(p) for p in self.positives.values()), default=0)

    @property
    def multi_positive(self) -> int:
        """How many queries have more than one distinct positive."""
        return sum(len(p) > 1 for p in self.positives.values())

    def epoch_rows(self, seed: int, epoch: int) -> list[int]:
        """One row per query for ``epoch``, queries in order of first appearance.

        A query's rows are shuffled by ``random.Random(f"{seed}/{query}")`` (the same order in
        every epoch) and epoch ``e`` takes the ``e % k``-th: each of ``k`` rows once per ``k``
        epochs. A query with one row always gives it, so for single-positive data this is every
        row in data order, and the epoch's batches equal pair-level ones.
        """
        picked: list[int] = []
        for query, rows in self.rows.items():
            if len(rows) == 1:
                picked.append(rows[0])
                continue
            order = list(rows)
            random.Random(f"{seed}/{query}").shuffle(order)
            picked.append(order[epoch % len(order)])
        return picked

    def known_positive_ids(self, queries: Sequence[int]) -> torch.Tensor:
        """(B, K) long: each query's known positives, padded with :data:`PAD`; K = max_positives.

        K is fixed for the whole training set (not per batch), so every rank of a multi-process
        run passes the same shape and the rows can be gathered across devices.
        """
        width = max(self.max_positives, 1)
        out = torch.full((len(queries), width), PAD, dtype=torch.long)
        for i, query in enumerate(queries):
            known = self.positives.get(query, ())
            out[i, : len(known)] = torch.tensor(known, dtype=torch.long)
        return out

    def summary(self, num_rows: int, grouped: bool) -> str | None:
        """The line training prints about groups, or None when there is nothing to say.

        Something to say: a query with several positives, or a hard negative that is a known
        positive of its own query; ``grouped`` is ``group_by_query``.
        """
        if not self.multi_positive and not self.known_negatives:
            return None
        parts = [
            f"{self.num_queries:,} queries in {num_rows:,} training pairs, "
            f"{self.multi_positive:,} with more than one positive (up to {self.max_positives})"
        ]
        if self.known_negatives:
            verdict = "masked in the loss" if grouped else "used as negatives"
            parts.append(
                f"{self.known_negatives:,} hard negatives are known positives of their own "
                f"query ({verdict})"
            )
        if grouped:
            parts.append(
                "an epoch takes one positive per query and known positives are never negatives"
            )
        else:
            parts.append(
                "group_by_query is off: an epoch takes every pair, and only copies of a text "
                "are masked as false negatives"
            )
        return "; ".join(parts)


def group_queries(
    queries: Sequence[int],
    positives: Sequence[int],
    negatives: Sequence[Sequence[int]] = (),
) -> QueryGroups:
    """Group rows by query identity: ``queries[i]``, ``positives[i]``, ``negatives[i]`` of row i.

    All three hold identity ids (equal id = the same text); ``negatives`` may be empty (no row
    has negatives).

    >>> g = group_queries([7, 8, 7], [1, 2, 3], [(2,), (4,), (1,)])
    >>> g.rows, g.positives, g.known_negatives
    ({7: (0, 2), 8: (1,)}, {7: (1, 3), 8: (2,)}, 1)
    """
    rows: dict[int, list[int]] = {}
    known: dict[int, dict[int, None]] = {}  # an ordered set per query
    for i, (query, positive) in enumerate(zip(queries, positives, strict=True)):
        rows.setdefault(query, []).append(i)
        known.setdefault(query, {})[positive] = None
    false_negatives = sum(
        n in known[query] for query, row in zip(queries, negatives, strict=False) for n in row
    )
    return QueryGroups(
        rows={q: tuple(r) for q, r in rows.items()},
        positives={q: tuple(p) for q, p in known.items()},
        known_negatives=false_negatives,
    )
