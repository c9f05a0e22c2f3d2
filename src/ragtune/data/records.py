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
* A bad row raises :class:`RowError` (a :class:`~ragtune.errors.DataError` naming file, line and
  field) unless ``skip_invalid=True``; skipped rows are counted by problem in :class:`ReadStats`.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from ragtune.data.schema import Example, LabelledPair
from ragtune.errors import DataError

Shape = Literal["pairs", "tuples", "labelled"]
SHAPES: tuple[str, ...] = get_args(Shape)
Record = Example | LabelledPair
Row = Mapping[str, Any]

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


class RowError(DataError):
    """One bad row; ``problem`` is a short code (``empty_text``, ``bad_label``...) for counting."""

    def __init__(
        self,
        problem: str,
        message: str,
        *,
        path: str,
        line: int | None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, path=path, line=line, field=field, hint=hint)
        self.problem = problem


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
        get = _Getter(row, self.source, line)
        if self.stats.shape == "labelled":
            return LabelledPair(
                query=get.text(c.query),
                document=get.text(c.document),
                label=get.label(c.label, self.cells_are_text),
                query_id=get.optional_id(c.query_id),
                document_id=get.optional_id(c.document_id),
            )
        negatives: list[str] = []
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


@dataclass
class _Getter:
    """Field access with one clear error per problem."""

    row: Row
    path: str
    line: int

    def _error(self, problem: str, message: str, name: str, hint: str | None = None) -> RowError:
        return RowError(problem, message, path=self.path, line=self.line, field=name, hint=hint)

    def text(self, name: str) -> str:
        value = self.row.get(name)
        if value is None:
            raise self._error(
                "missing_field",
                "missing required field",
                name,
                hint=f"fields in this row: {sorted(self.row)}",
            )
        if not isinstance(value, str):
            raise self._error(
                "bad_type", f"expected text, got {type(value).__name__} {_short(value)}", name
            )
        if not value.strip():
            raise self._error(
                "empty_text", "empty text", name, hint="remove the row or pass skip_invalid=True"
            )
        return value

    def text_list(self, name: str, cells_are_text: bool) -> list[str]:
        value = self.row[name]
        if cells_are_text and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise self._error(
                    "bad_type",
                    "expected a JSON list of texts",
                    name,
                    hint='in CSV write the list as JSON, e.g. "[""text one"", ""text two""]"',
                ) from None
        if not isinstance(value, list | tuple):
            raise self._error("bad_type", f"expected a list of texts, got {_short(value)}", name)
        texts = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self._error("bad_type", f"item {i} is not text: {_short(item)}", name)
            if not item.strip():
                raise self._error("empty_text", f"item {i} is empty text", name)
            texts.append(item)
        return texts

    def label(self, name: str, cells_are_text: bool) -> float:
        value = self.row.get(name)
        hint = "a label is 1 (relevant), 0 (irrelevant) or a score in [0, 1]"
        if value is None or (cells_are_text and value == ""):
            raise self._error("missing_field", "missing label", name, hint=hint)
        if isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise self._error(
                    "bad_label", f"label {value!r} is not a number", name, hint
                ) from None
        if not isinstance(value, int | float) or math.isnan(value):
            raise self._error("bad_label", f"label {_short(value)} is not a number", name, hint)
        if not 0.0 <= value <= 1.0:
            raise self._error(
                "label_out_of_range",
                f"label {value} is outside [0, 1]",
                name,
                hint=hint + "; rescale scores first (e.g. divide 0-5 similarity ratings by 5)",
            )
        return float(value)

    def optional_id(self, name: str) -> str | None:
        value = self.row.get(name)
        if value is None or value == "":
            return None
        return str(value)


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
