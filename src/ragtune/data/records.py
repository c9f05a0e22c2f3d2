"""One row of a file (a dict of named columns) -> an :class:`Example` or a :class:`LabelledPair`.

Every reader (JSONL, CSV/TSV, Parquet, Hugging Face ``datasets``) produces rows as dicts and hands
them to :class:`RecordReader`, so the rules below are the same whatever the format:

* The **shape** is told by the columns of the first row (or given explicitly):

  ========== ============================================================ ==================
  shape      columns                                                      record
  ========== ============================================================ ==================
  pairs      ``query, positive``                                          Example
  tuples     ``query, positive`` and ``negative[, negative_2 ...]`` and/or Example with
             a ``negatives`` list                                         negatives
  labelled   ``query, document, label`` (label 1/0 or a score in [0, 1])  LabelledPair
  ========== ============================================================ ==================

* Column names are mapped with :class:`ColumnMap` (``ColumnMap(query="question")``).
* Optional id columns (``query_id``, ``positive_id``, ``document_id``) are kept when present.
* Every negative a row holds is kept: a ``negatives`` list and ``negative``, ``negative_2``, ...
  columns together, in that order. A row with negatives in a file read as pairs because its first
  row has none is an error rather than a silent drop (``shape="pairs"`` drops them on purpose).
* Texts and ids a tokenizer cannot take (:func:`~ragtune.data.valid_text.text_problem`: lone
  surrogates, NUL characters) are refused with the field that holds them.
* A bad row raises :class:`RowError` (a :class:`~ragtune.errors.DataError` naming file, line and
  field) unless ``skip_invalid=True``; skipped rows are counted by problem in :class:`ReadStats`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from ragtune.data.fields import FieldReader, Row, RowError
from ragtune.data.schema import Example, LabelledPair
from ragtune.errors import DataError

__all__ = [
    "SHAPES",
    "ColumnMap",
    "ReadStats",
    "Record",
    "RecordReader",
    "Row",
    "RowError",
    "Shape",
    "detect_shape",
]

Shape = Literal["pairs", "tuples", "labelled"]
SHAPES: tuple[str, ...] = get_args(Shape)
Record = Example | LabelledPair

MAX_REASONS = 5  # skipped-row messages kept verbatim in ReadStats; the rest are only counted
MAX_EXAMPLES_PER_PROBLEM = 3


@dataclass(frozen=True)
class ColumnMap:
    """Which column holds what. Defaults match the names ragtune writes itself."""

    query: str = "query"
    positive: str = "positive"
    negative: str = "negative"
    negatives: str = "negatives"
    document: str = "document"
    label: str = "label"
    query_id: str = "query_id"
    positive_id: str = "positive_id"
    document_id: str = "document_id"

    def negative_columns(self, names: Iterable[str]) -> list[str]:
        """The single-negative columns among ``names``: ``negative``, ``negative_2``, ... in order.

        ``negative`` counts as number 1; ``negative_<n>`` columns are ordered by ``n``.
        """
        pattern = re.compile(rf"{re.escape(self.negative)}(?:_(\d+))?")
        found = []
        for name in names:
            m = pattern.fullmatch(name)
            if m:
                found.append((int(m.group(1) or 1), name))
        return [name for _, name in sorted(found)]


@dataclass
class ReadStats:
    """What a reader saw: rows read, kept and skipped (by problem, with the first few messages)."""

    source: str
    shape: Shape | None = None
    rows: int = 0
    kept: int = 0
    skipped: int = 0
    problems: Counter[str] = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)
    examples: dict[str, list[str]] = field(default_factory=dict)  # problem -> first messages

    def record_skip(self, error: RowError) -> None:
        self.skipped += 1
        self.problems[error.problem] += 1
        if len(self.first_errors) < MAX_REASONS:
            self.first_errors.append(str(error))
        shown = self.examples.setdefault(error.problem, [])
        if len(shown) < MAX_EXAMPLES_PER_PROBLEM:
            shown.append(str(error))

    def summary(self) -> str:
        """One line for logs, e.g. ``kept 98 of 100 rows (skipped 2: empty_text 2)``."""
        text = f"{self.source}: kept {self.kept} of {self.rows} rows"
        if self.skipped:
            by_problem = ", ".join(f"{p} {n}" for p, n in sorted(self.problems.items()))
            text += f" (skipped {self.skipped}: {by_problem})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "shape": self.shape,
            "rows": self.rows,
            "kept": self.kept,
            "skipped": self.skipped,
            "problems": dict(sorted(self.problems.items())),
            "first_errors": list(self.first_errors),
        }


def detect_shape(names: Iterable[str], columns: ColumnMap, *, path: str, line: int | None) -> Shape:
    """Tell the shape from the column names present (see the module docstring for the rule)."""
    names = list(names)
    present = set(names)
    has_pair = {columns.query, columns.positive} <= present
    has_labelled = {columns.query, columns.document, columns.label} <= present
    if has_pair and has_labelled:
        raise DataError(
            f"both pair columns ({columns.query}, {columns.positive}) and labelled columns "
            f"({columns.query}, {columns.document}, {columns.label}) are present",
            path=path,
            line=line,
            hint="say which shape to read: shape='pairs' or shape='labelled'",
        )
    if has_labelled:
        return "labelled"
    if has_pair:
        negs = columns.negatives in present or columns.negative_columns(names)
        return "tuples" if negs else "pairs"
    raise DataError(
        f"cannot tell the data shape from the columns {sorted(present)}: expected "
        f"'{columns.query}, {columns.positive}' (pairs), plus '{columns.negative}[, "
        f"{columns.negative}_2 ...]' or '{columns.negatives}' (tuples), or "
        f"'{columns.query}, {columns.document}, {columns.label}' (labelled)",
        path=path,
        line=line,
        hint="map your column names, e.g. ColumnMap(query='question') or --query-column question",
    )


class RecordReader(Iterator[Record]):
    """Rows in, records out, lazily; ``stats`` is up to date after every record.

    ``rows`` yields ``(line, row)`` where ``row`` is a dict, or a :class:`RowError` the format
    reader already found (malformed JSON, invalid UTF-8, a ragged CSV row).
    """

    def __init__(
        self,
        rows: Iterable[tuple[int, Row | RowError]],
        *,
        source: str,
        columns: ColumnMap = ColumnMap(),
        shape: Shape | None = None,
        skip_invalid: bool = False,
        cells_are_text: bool = False,
    ) -> None:
        if shape is not None and shape not in SHAPES:
            raise DataError(f"unknown shape {shape!r}; valid shapes: {', '.join(SHAPES)}")
        self.source = source
        self.columns = columns
        self.skip_invalid = skip_invalid
        self.cells_are_text = cells_are_text  # CSV: labels and lists arrive as text
        self.stats = ReadStats(source=source, shape=shape)
        self.shape_given = shape is not None  # shape="pairs" given: negatives dropped on purpose
        self._rows = iter(rows)

    def __iter__(self) -> RecordReader:
        return self

    def __next__(self) -> Record:
        while True:
            line, row = next(self._rows)
            self.stats.rows += 1
            try:
                if isinstance(row, RowError):
                    raise row
                record = self._convert(row, line)
            except RowError as err:
                if not self.skip_invalid:
                    raise
                self.stats.record_skip(err)
                continue
            self.stats.kept += 1
            return record

    def _convert(self, row: Row, line: int) -> Record:
        if self.stats.shape is None:
            self.stats.shape = detect_shape(row.keys(), self.columns, path=self.source, line=line)
        c = self.columns
        get = FieldReader(row, self.source, line)
        if self.stats.shape == "labelled":
            return LabelledPair(
                query=get.text(c.query),
                document=get.text(c.document),
                label=get.label(c.label, self.cells_are_text),
                query_id=get.optional_id(c.query_id),
                document_id=get.optional_id(c.document_id),
            )
        negatives: list[str] = []
        if self.stats.shape == "pairs" and not self.shape_given:
            _refuse_negatives_in_pairs(row, c, self.source, line)
        if self.stats.shape == "tuples":
            if c.negatives in row and row[c.negatives] is not None:
                negatives += get.text_list(c.negatives, self.cells_are_text)
            negatives += [get.text(name) for name in c.negative_columns(row.keys())]
            if not negatives:
                raise RowError(
                    "missing_field",
                    "row has no negatives",
                    path=self.source,
                    line=line,
                    field=c.negative,
                    hint=f"give '{c.negative}' or a '{c.negatives}' list",
                )
        return Example(
            query=get.text(c.query),
            positive=get.text(c.positive),
            negatives=tuple(negatives),
            query_id=get.optional_id(c.query_id),
            positive_id=get.optional_id(c.positive_id),
        )


def _refuse_negatives_in_pairs(row: Row, columns: ColumnMap, source: str, line: int) -> None:
    """A row of a pairs file that carries negatives: reading on would drop them without a word."""
    names = [n for n in columns.negative_columns(row.keys()) if row[n] not in (None, "")]
    if row.get(columns.negatives) not in (None, "", [], ()):
        names.insert(0, columns.negatives)
    if names:
        raise RowError(
            "unexpected_negatives",
            "row has negatives but the file is read as pairs (its first row has none), "
            "so they would be dropped",
            path=source,
            line=line,
            field=names[0],
            hint="give every row its negatives (the first row decides the shape), "
            "or drop them on purpose with shape='pairs'",
        )
