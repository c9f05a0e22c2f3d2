"""A health check of training data before spending hours training on it.

:func:`check_data` reads a source the way training will (:func:`load_training_data`, but keeping
bad rows as findings instead of stopping at the first) and reports, each with a severity:

* **error** - rows that cannot be used (empty text, bad label, malformed JSON, an unterminated
  CSV quote, text a tokenizer cannot take...), a negative that is also a positive of the same
  query, one pair labelled both 1 and 0, and evaluation queries that also appear in the training
  data (leakage: the score would be inflated);
* **warning** - repeated rows (the same texts by :func:`~ragtune.data.identity.text_identity`),
  near-duplicate queries or documents (equal once case, whitespace and punctuation are
  ignored), one document being the positive of several queries (in-batch negatives then push a
  query away from its own answer), a query identical to its document,
  training positives that are relevant documents of the evaluation set, texts the model would
  truncate;
* **info** - counts, positives per query, label balance, token-length percentiles.

The token counter is passed in (``count_tokens(texts) -> lengths``) so that this module never
loads a model; the CLI builds one from the model's tokenizer.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ragtune.data.beir import is_beir_folder, load_beir
from ragtune.data.findings import (
    CountTokens,
    Finding,
    Severity,
    consistency,
    documents_of,
    duplicates,
    invalid_rows,
    lengths,
    overlap,
)
from ragtune.data.identity import text_identity
from ragtune.data.readers import load_training_data, read_examples
from ragtune.data.records import ColumnMap, ReadStats, Record, Shape
from ragtune.data.schema import LabelledPair

__all__ = ["CheckReport", "CountTokens", "Finding", "Severity", "check_data"]

_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


@dataclass
class CheckReport:
    """Counts and findings; ``errors`` decide the exit code of ``ragtune data check``."""

    source: str
    counts: dict[str, Any]
    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "counts": self.counts,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [asdict(f) for f in self.findings],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def render(self) -> Group:
        """Two rich tables: counts, then findings (errors first)."""
        counts = Table(title=Text(f"data check: {self.source}"), show_header=False)
        for key, value in self.counts.items():
            counts.add_row(key, str(value))
        # Text() cells: data may hold "[...]" that rich would otherwise read as markup.
        findings = Table("severity", "check", "count", "details")
        order = {"error": 0, "warning": 1, "info": 2}
        for f in sorted(self.findings, key=lambda f: order[f.severity]):
            details = "\n".join([f.message] + [f"  e.g. {e}" for e in f.examples])
            severity = Text(f.severity, style=_STYLE[f.severity])
            findings.add_row(severity, f.code, str(f.count), Text(details))
        return Group(counts, findings)


def check_data(
    source: str | os.PathLike[str],
    *,
    eval_source: str | os.PathLike[str] | None = None,
    count_tokens: CountTokens | None = None,
    max_seq_length: int | None = None,
    columns: ColumnMap = ColumnMap(),
    shape: Shape | None = None,
    split: str = "train",
    eval_split: str = "test",
) -> CheckReport:
    """Check training data (and its overlap with ``eval_source``); see the module docstring."""
    records, stats = _load(source, columns, shape, split)
    findings = invalid_rows(stats)
    queries = [r.query for r in records]
    documents = [d for r in records for d in documents_of(r)]
    counts: dict[str, Any] = {
        "shape": stats.shape,
        "rows": stats.rows,
        "usable rows": len(records),
        "unique queries": len({text_identity(q) for q in queries}),
        "unique documents": len({text_identity(d) for d in documents}),
    }
    if not records:
        findings.append(Finding("error", "no_rows", "no usable rows"))
    findings += duplicates(records, queries, documents)
    findings += consistency(records)
    if eval_source is not None:
        findings += overlap(records, *_eval_texts(eval_source, columns, eval_split))
    if count_tokens is not None:
        findings += lengths("queries", sorted(set(queries)), count_tokens, max_seq_length)
        findings += lengths("documents", sorted(set(documents)), count_tokens, max_seq_length)
    return CheckReport(source=os.fspath(source), counts=counts, findings=findings)


def _load(
    source: str | os.PathLike[str], columns: ColumnMap, shape: Shape | None, split: str
) -> tuple[list[Record], ReadStats]:
    if os.fspath(source) == "-" or Path(source).is_file():  # keep bad rows as findings
        reader = read_examples(source, columns, shape=shape, skip_invalid=True)
        return list(reader), reader.stats
    data = load_training_data(source, columns, shape=shape, skip_invalid=True, split=split)
    return data.records, data.stats


def _eval_texts(
    eval_source: str | os.PathLike[str], columns: ColumnMap, eval_split: str
) -> tuple[list[str], list[str]]:
    """Queries and relevant documents of the evaluation data (a BEIR folder or a file)."""
    if is_beir_folder(eval_source):
        es = load_beir(eval_source, eval_split)
        docs = [
            es.corpus[d].full_text()
            for rel in es.qrels.values()
            for d, score in rel.items()
            if score > 0
        ]
        return list(es.queries.values()), docs
    records = load_training_data(eval_source, columns, split=eval_split).records
    docs = [documents_of(r)[0] for r in records if not isinstance(r, LabelledPair) or r.label > 0]
    return [r.query for r in records], docs
