"""The rules of the data health check (:mod:`ragtune.data.check`): records in, findings out.

Pure functions over in-memory records; nothing here reads files or loads a model. "The same text"
is :func:`~ragtune.data.identity.text_identity` (what training masks and mining excludes), so a
repeated row or a negative that is a positive is reported exactly when training would treat it
as one; near duplicates and leakage use the looser
:func:`~ragtune.data.identity.near_duplicate_key`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ragtune.data.identity import near_duplicate_key, text_identity
from ragtune.data.records import ReadStats, Record
from ragtune.data.schema import Example, LabelledPair

Severity = Literal["error", "warning", "info"]
CountTokens = Callable[[list[str]], list[int]]
SHOWN = 3  # examples kept per finding


@dataclass
class Finding:
    severity: Severity
    code: str  # stable name for scripts, e.g. "near_duplicate_queries"
    message: str
    count: int = 0
    examples: list[str] = field(default_factory=list)


def documents_of(record: Record) -> list[str]:
    if isinstance(record, LabelledPair):
        return [record.document]
    return [record.positive, *record.negatives]


def invalid_rows(stats: ReadStats) -> list[Finding]:
    return [
        Finding(
            "error",
            problem,
            f"{n} row(s) cannot be used ({problem.replace('_', ' ')})",
            n,
            stats.examples.get(problem, [])[:SHOWN],
        )
        for problem, n in sorted(stats.problems.items())
    ]


def duplicates(
    records: Sequence[Record], queries: list[str], documents: list[str]
) -> list[Finding]:
    findings = []
    repeats: Counter[tuple[object, ...]] = Counter()
    query_of: dict[tuple[object, ...], str] = {}  # a row's key -> its query as first written
    for record in records:
        key = _row_identity(record)
        repeats[key] += 1
        query_of.setdefault(key, record.query)
    extra = sum(n - 1 for n in repeats.values())
    if extra:
        shown = [query_of[key] for key, n in repeats.items() if n > 1][:SHOWN]
        findings.append(
            Finding(
                "warning",
                "duplicate_rows",
                f"{extra} row(s) repeat an earlier row (the same texts, spacing aside)",
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
                    [" ~ ".join(repr(t[:60]) for t in g[:2]) for g in groups[:SHOWN]],
                )
            )
    return findings


def _row_identity(record: Record) -> tuple[object, ...]:
    """A row's texts as text identities, with its ids and label: equal keys are one row twice."""
    if isinstance(record, LabelledPair):
        return (
            "labelled",
            text_identity(record.query),
            text_identity(record.document),
            record.label,
            record.query_id,
            record.document_id,
        )
    return (
        "example",
        text_identity(record.query),
        text_identity(record.positive),
        tuple(text_identity(n) for n in record.negatives),
        record.query_id,
        record.positive_id,
    )


def _near_duplicates(texts: Iterable[str]) -> list[list[str]]:
    by_key: dict[str, set[str]] = defaultdict(set)
    for text in texts:
        by_key[near_duplicate_key(text)].add(text)
    return [sorted(group) for group in by_key.values() if len(group) > 1]


def consistency(records: Sequence[Record]) -> list[Finding]:
    findings = []
    examples = [r for r in records if isinstance(r, Example)]
    positives: dict[str, set[str]] = defaultdict(set)  # query -> its positives (text identities)
    queries_of: dict[str, set[str]] = defaultdict(set)  # positive -> queries
    shown_as: dict[str, str] = {}  # a positive's identity -> its text as first written
    for ex in examples:
        query, positive = text_identity(ex.query), text_identity(ex.positive)
        positives[query].add(positive)
        queries_of[positive].add(query)
        shown_as.setdefault(positive, ex.positive)
    clashes = [
        ex.query
        for ex in examples
        if any(text_identity(n) in positives[text_identity(ex.query)] for n in ex.negatives)
    ]
    if clashes:
        findings.append(
            Finding(
                "error",
                "negative_is_positive",
                f"{len(clashes)} row(s) have a negative that is a positive of the same query",
                len(clashes),
                clashes[:SHOWN],
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
                [shown_as[d][:80] for d in shared[:SHOWN]],
            )
        )
    same = [
        r.query
        for r in records
        if near_duplicate_key(r.query) == near_duplicate_key(documents_of(r)[0])
    ]
    if same:
        findings.append(
            Finding(
                "warning",
                "query_equals_document",
                f"{len(same)} row(s) have a query equal to its document",
                len(same),
                same[:SHOWN],
            )
        )
    if positives:
        findings.append(_positives_per_query(positives))
    labelled = [r for r in records if isinstance(r, LabelledPair)]
    if labelled:
        labels: dict[tuple[str, str], set[float]] = defaultdict(set)
        first_query: dict[str, str] = {}  # a query's identity -> its text as first written
        for p in labelled:
            query = text_identity(p.query)
            labels[(query, text_identity(p.document))].add(p.label)
            first_query.setdefault(query, p.query)
        conflicts = [first_query[q] for (q, _), ls in labels.items() if len(ls) > 1]
        if conflicts:
            findings.append(
                Finding(
                    "error",
                    "conflicting_labels",
                    f"{len(conflicts)} query-document pair(s) carry different labels",
                    len(conflicts),
                    conflicts[:SHOWN],
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
        [f"{len(positives[q])} positives: {q[:60]}" for q in many[:SHOWN]],
    )


def overlap(
    records: Sequence[Record], eval_queries: list[str], eval_docs: list[str]
) -> list[Finding]:
    """Train queries that are eval queries (error); positives relevant in eval (warning)."""
    eq = {near_duplicate_key(q) for q in eval_queries}
    ed = {near_duplicate_key(d) for d in eval_docs}
    train_q = sorted({r.query for r in records if near_duplicate_key(r.query) in eq})
    train_d = sorted(
        {
            d
            for r in records
            if (d := documents_of(r)[0])
            and near_duplicate_key(d) in ed
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
                train_q[:SHOWN],
            )
        )
    if train_d:
        findings.append(
            Finding(
                "warning",
                "eval_document_overlap",
                f"{len(train_d)} training positives are relevant documents of the evaluation set",
                len(train_d),
                [d[:80] for d in train_d[:SHOWN]],
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


def lengths(
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
                    [t[:60] for t in over[:SHOWN]],
                )
            )
    return findings
