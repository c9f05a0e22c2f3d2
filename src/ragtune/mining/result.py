"""What mining returns: the mined n-tuples and a summary of what every step kept and removed.

:meth:`MiningResult.save` writes, each atomically::

    mined.jsonl          one n-tuple per line, read directly by `ragtune train`:
                         {"query", "positive", "negatives": [...], "query_id", "positive_id",
                          "negative_ids": [...], "positive_score", "negative_scores": [...],
                          "negative_sources": [{"dense": {"rank": 12, "score": 0.71},
                                                "bm25": {"rank": 40, "score": 13.2}}, ...]}
    mined.summary.json   the counts and score distributions below, and the config
    mined.scores.png     histograms of positive, kept-negative and removed-negative scores

``positive_score`` and ``negative_scores`` are the teacher's (dense model or cross-encoder); they
are null when BM25 mined alone without one. ``negative_sources`` keeps what each retriever said
about a negative: its rank (0-based, counted after the query's positives are taken out) and its
own score.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.data.schema import Example
from ragtune.io import atomic_write_json, atomic_write_text

COUNT_KEYS: tuple[str, ...] = (
    "retrieved",
    "positive_id",
    "positive_text",
    "above_range_min",
    "beyond_range_max",
    "in_window",
    "duplicate_text",
    "margin",
    "relative_margin",
    "max_score",
    "kept",
    "selected",
)
"""Candidate counts, summed over examples, in pipeline order. ``retrieved`` (distinct documents
any source returned) = ``positive_id + positive_text + above_range_min + beyond_range_max +
in_window``; ``in_window - duplicate_text - margin - relative_margin - max_score = kept``;
``selected`` of the ``kept`` were written."""


@dataclass(frozen=True)
class MinedExample:
    """One training example with its mined negatives, hardest (highest teacher score) first."""

    query: str
    positive: str
    negatives: tuple[str, ...]
    query_id: str | None
    positive_id: str | None
    negative_ids: tuple[str, ...]
    positive_score: float | None
    negative_scores: tuple[float | None, ...]
    negative_sources: tuple[dict[str, dict[str, float]], ...]

    def to_example(self) -> Example:
        return Example(
            self.query,
            self.positive,
            self.negatives,
            self.query_id,
            self.positive_id,
            self.negative_ids,
        )

    def to_row(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "positive": self.positive,
            "negatives": list(self.negatives),
            "query_id": self.query_id,
            "positive_id": self.positive_id,
            "negative_ids": list(self.negative_ids),
            "positive_score": self.positive_score,
            "negative_scores": list(self.negative_scores),
            "negative_sources": list(self.negative_sources),
        }


@dataclass
class MiningSummary:
    """Counts, warnings and score distributions of one mining run."""

    config: dict[str, Any]
    corpus_size: int
    examples: int
    """Input examples with a positive (one per query-positive pair)."""
    queries: int
    written: int
    queries_without_positives: int = 0
    short: int = 0
    """Examples that found at least one but fewer than ``num_negatives`` negatives."""
    empty: int = 0
    """Examples that found no negative at all (never written)."""
    fewest_found: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    positive_scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    kept_scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    """Teacher scores of the negatives written."""
    removed_scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    """Teacher scores of the candidates the false-negative filters dropped."""
    seconds: dict[str, float] = field(default_factory=dict)
    embeddings_from_cache: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from ragtune.mining.report import score_stats

        data = {k: v for k, v in self.__dict__.items() if not k.endswith("_scores")}
        data["scores"] = {
            "positive": score_stats(self.positive_scores),
            "kept": score_stats(self.kept_scores),
            "removed": score_stats(self.removed_scores),
        }
        return data


@dataclass
class MiningResult:
    """The mined examples (those written) and the run's summary."""

    examples: list[MinedExample]
    summary: MiningSummary

    def training_examples(self) -> list[Example]:
        """The mined n-tuples as :class:`Example` records, ready for ``ragtune.train.train``."""
        return [e.to_example() for e in self.examples]

    def save(self, path: str | os.PathLike[str], *, plot: bool = True) -> dict[str, Path]:
        """Write the JSONL, ``<stem>.summary.json`` and (``plot``) ``<stem>.scores.png``."""
        out = Path(path)
        lines = [json.dumps(e.to_row(), ensure_ascii=False) for e in self.examples]
        atomic_write_text(out, "".join(line + "\n" for line in lines))
        paths = {"data": out, "summary": out.with_name(out.stem + ".summary.json")}
        atomic_write_json(paths["summary"], self.summary.to_dict())
        if plot:
            from ragtune.mining.report import save_histogram

            paths["plot"] = out.with_name(out.stem + ".scores.png")
            save_histogram(self.summary, paths["plot"])
        return paths
