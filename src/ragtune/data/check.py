"""A health check of training data before spending hours training on it.

:func:`check_data` reads a source the way training will (:func:`load_training_data`, but keeping
bad rows as findings instead of stopping at the first) and reports, each with a severity:

* **error** - rows that cannot be used (empty text, bad label, malformed JSON...), a negative
  that is also a positive of the same query, one pair labelled both 1 and 0, and evaluation
  queries that also appear in the training data (leakage: the score would be inflated);
* **warning** - repeated rows, near-duplicate queries or documents (equal once case, whitespace
  and punctuation are ignored), one document being the positive of several queries (in-batch
  negatives then push a query away from its own answer), a query identical to its document,
  training positives that are relevant documents of the evaluation set, texts the model would
  truncate;
* **info** - counts, positives per query, label balance, token-length percentiles.

The token counter is passed in (``count_tokens(texts) -> lengths``) so that this module never
loads a model; the CLI builds one from the model's tokenizer.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Group
from rich.table import Table

from ragtune.data.beir import is_beir_folder, load_beir
from ragtune.data.readers import load_training_data, read_examples
from ragtune.data.records import ColumnMap, ReadStats, Record, Shape
from ragtune.data.schema import Example, LabelledPair

Severity = Literal["error", "warning", "info"]
CountTokens = Callable[[list[str]], list[int]]
_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}
_SHOWN = 3  # examples kept per finding


@dataclass
class Finding:
    severity: Severity
    code: str  # stable name for scripts, e.g. "near_duplicate_queries"
    message: str
    count: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
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
        counts = Table(title=f"data check: {self.source}", show_header=False)
        for key, value in self.counts.items():
            counts.add_row(key, str(value))
        findings = Table("severity", "check", "count", "details")
        order = {"error": 0, "warning": 1, "info": 2}
        for f in sorted(self.findings, key=lambda f: order[f.severity]):
            details = "\n".join([f.message] + [f"  e.g. {e}" for e in f.examples])
            findings.add_row(f"[{_STYLE[f.severity]}]{f.severity}", f.code, str(f.count), details)
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
    findings = _invalid_rows(stats)
    queries = [r.query for r in records]
    documents = [d for r in records for d in _documents(r)]
    counts: dict[str, Any] = {
        "shape": stats.shape,
        "rows": stats.rows,
        "usable rows": len(records),
        "unique queries": len(set(queries)),
        "unique documents": len(set(documents)),
    }
    if not records:
        findings.append(Finding("error", "no_rows", "no usable rows"))
    findings += _duplicates(records, queries, documents)
    findings += _consistency(records)
    if eval_source is not None:
        findings += _leakage(records, eval_source, columns, eval_split)
    if count_tokens is not None:
        findings += _lengths("queries", sorted(set(queries)), count_tokens, max_seq_length)
        findings += _lengths("documents", sorted(set(documents)), count_tokens, max_seq_length)
    return CheckReport(source=os.fspath(source), counts=counts, findings=findings)


def normalise(text: str) -> str:
    """Case, punctuation and whitespace removed: the key of near-duplicate detection."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def _load(
    source: str | os.PathLike[str], columns: ColumnMap, shape: Shape | None, split: str
) -> tuple[list[Record], ReadStats]:
    if Path(source).is_file():  # read every row, keeping the bad ones as findings
        reader = read_examples(source, columns, shape=shape, skip_invalid=True)
        return list(reader), reader.stats
    data = load_training_data(source, columns, shape=shape, skip_invalid=True, split=split)
    return data.records, data.stats


def _documents(record: Record) -> list[str]:
    if isinstance(record, LabelledPair):
        return [record.document]
    return [record.positive, *record.negatives]


def _invalid_rows(stats: ReadStats) -> list[Finding]:
    return [
        Finding(
            "error",
            problem,
            f"{n} row(s) cannot be used ({problem.replace('_', ' ')})",
            n,
            stats.examples.get(problem, [])[:_SHOWN],
        )
        for problem, n in sorted(stats.problems.items())
    ]


def _duplicates(
    records: Sequence[Record], queries: list[str], documents: list[str]
) -> list[Finding]:
    findings = []
    repeats = Counter(records)
    extra = sum(n - 1 for n in repeats.values())
    if extra:
        shown = [r.query for r, n in repeats.items() if n > 1][:_SHOWN]
        findings.append(
            Finding(
                "warning",
                "duplicate_rows",
                f"{extra} row(s) repeat an earlier row exactly",
                extra,
                shown,
            )
        )
    for kind, texts in (("queries", queries), ("documents", documents)):
        groups = _near_duplicates(texts)
        if groups:
            findings.append(
                Finding(
                    "warning",
                    f"near_duplicate_{kind}",
                    f"{len(groups)} group(s) of {kind} differ only in case, spacing or punctuation",
                    len(groups),
                    [" ~ ".join(repr(t[:60]) for t in g[:2]) for g in groups[:_SHOWN]],
                )
            )
    return findings


def _near_duplicates(texts: Iterable[str]) -> list[list[str]]:
    by_key: dict[str, set[str]] = defaultdict(set)
    for text in texts:
        by_key[normalise(text)].add(text)
    return [sorted(group) for group in by_key.values() if len(group) > 1]


def _consistency(records: Sequence[Record]) -> list[Finding]:
    findings = []
    examples = [r for r in records if isinstance(r, Example)]
    positives: dict[str, set[str]] = defaultdict(set)  # query -> its positives
    queries_of: dict[str, set[str]] = defaultdict(set)  # positive -> queries
    for ex in examples:
        positives[ex.query].add(ex.positive)
        queries_of[ex.positive].add(ex.query)
    clashes = [ex.query for ex in examples if any(n in positives[ex.query] for n in ex.negatives)]
    if clashes:
        findings.append(
            Finding(
                "error",
                "negative_is_positive",
                f"{len(clashes)} row(s) have a negative that is a positive of the same query",
                len(clashes),
                clashes[:_SHOWN],
            )
        )
    shared = [doc for doc, qs in queries_of.items() if len(qs) > 1]
    if shared:
        findings.append(
            Finding(
                "warning",
                "shared_positives",
                f"{len(shared)} document(s) are the positive of several queries: in-batch "
                "negatives will push those queries apart from a correct answer (batch them apart)",
                len(shared),
                [d[:80] for d in shared[:_SHOWN]],
            )
        )
    same = [r.query for r in records if normalise(r.query) == normalise(_documents(r)[0])]
    if same:
        findings.append(
            Finding(
                "warning",
                "query_equals_document",
                f"{len(same)} row(s) have a query equal to its document",
                len(same),
                same[:_SHOWN],
            )
        )
    if positives:
        findings.append(_positives_per_query(positives))
    labelled = [r for r in records if isinstance(r, LabelledPair)]
    if labelled:
        labels: dict[tuple[str, str], set[float]] = defaultdict(set)
        for p in labelled:
            labels[(p.query, p.document)].add(p.label)
        conflicts = [q for (q, _), ls in labels.items() if len(ls) > 1]
        if conflicts:
            findings.append(
                Finding(
                    "error",
                    "conflicting_labels",
                    f"{len(conflicts)} query-document pair(s) carry different labels",
                    len(conflicts),
                    conflicts[:_SHOWN],
                )
            )
        ones = sum(p.label == 1.0 for p in labelled)
        zeros = sum(p.label == 0.0 for p in labelled)
        findings.append(
            Finding(
                "info",
                "labels",
                f"label 1: {ones}, label 0: {zeros}, other scores: {len(labelled) - ones - zeros}",
                len(labelled),
            )
        )
    return findings


def _positives_per_query(positives: dict[str, set[str]]) -> Finding:
    sizes = Counter(len(p) for p in positives.values())
    bins = {
        "1": sizes[1],
        "2-5": sum(n for k, n in sizes.items() if 2 <= k <= 5),
        "6-10": sum(n for k, n in sizes.items() if 6 <= k <= 10),
        ">10": sum(n for k, n in sizes.items() if k > 10),
    }
    many = sorted(
        (q for q, p in positives.items() if len(p) > 10), key=lambda q: -len(positives[q])
    )
    text = ", ".join(f"{k}: {n}" for k, n in bins.items() if n)
    return Finding(
        "info",
        "positives_per_query",
        f"queries by number of positives: {text} (max {max(sizes)})",
        len(positives),
        [f"{len(positives[q])} positives: {q[:60]}" for q in many[:_SHOWN]],
    )


def _leakage(
    records: Sequence[Record],
    eval_source: str | os.PathLike[str],
    columns: ColumnMap,
    eval_split: str,
) -> list[Finding]:
    if is_beir_folder(eval_source):
        es = load_beir(eval_source, eval_split)
        eval_queries = list(es.queries.values())
        eval_docs = [
            es.corpus[d].full_text()
            for rel in es.qrels.values()
            for d, score in rel.items()
            if score > 0
        ]
    else:
        eval_records = load_training_data(eval_source, columns, split=eval_split).records
        eval_queries = [r.query for r in eval_records]
        eval_docs = [
            _documents(r)[0] for r in eval_records if not isinstance(r, LabelledPair) or r.label > 0
        ]
    eq = {normalise(q) for q in eval_queries}
    ed = {normalise(d) for d in eval_docs}
    train_q = sorted({r.query for r in records if normalise(r.query) in eq})
    train_d = sorted(
        {
            d
            for r in records
            if (d := _documents(r)[0])
            and normalise(d) in ed
            and (not isinstance(r, LabelledPair) or r.label > 0)
        }
    )
    findings = []
    if train_q:
        findings.append(
            Finding(
                "error",
                "eval_query_overlap",
                f"{len(train_q)} training queries are also evaluation queries "
                "(leakage: scores would be inflated)",
                len(train_q),
                train_q[:_SHOWN],
            )
        )
    if train_d:
        findings.append(
            Finding(
                "warning",
                "eval_document_overlap",
                f"{len(train_d)} training positives are relevant documents of the evaluation set",
                len(train_d),
                [d[:80] for d in train_d[:_SHOWN]],
            )
        )
    if not findings:
        findings.append(
            Finding(
                "info",
                "eval_overlap",
                f"no query or positive shared with the evaluation set ({len(eq)} queries)",
                0,
            )
        )
    return findings


def _lengths(
    kind: str, texts: list[str], count_tokens: CountTokens, max_seq_length: int | None
) -> list[Finding]:
    if not texts:
        return []
    counted = [n for i in range(0, len(texts), 1024) for n in count_tokens(texts[i : i + 1024])]
    lengths = sorted(counted)

    def pct(p: float) -> int:
        return lengths[min(len(lengths) - 1, int(p * len(lengths)))]

    findings = [
        Finding(
            "info",
            f"{kind}_tokens",
            f"{kind} tokens: p50 {pct(0.5)}, p90 {pct(0.9)}, p99 {pct(0.99)}, max {lengths[-1]}",
            len(lengths),
        )
    ]
    if max_seq_length is not None:
        over = [t for t, n in zip(texts, counted, strict=True) if n > max_seq_length]
        if over:
            findings.append(
                Finding(
                    "warning",
                    f"{kind}_truncated",
                    f"{len(over)} of {len(texts)} {kind} ({len(over) / len(texts):.0%}) are longer "
                    f"than max_seq_length {max_seq_length} tokens and will be truncated",
                    len(over),
                    [t[:60] for t in over[:_SHOWN]],
                )
            )
    return findings
