"""Reading one field of a row: text, a list of texts, a label or an id, each with its own error.

A problem becomes a :class:`RowError` naming the file, the line and the field, with a short
``problem`` code (``missing_field``, ``bad_type``, ``empty_text``, ``bad_text``, ``bad_label``...)
that :class:`~ragtune.data.records.ReadStats` counts. Every text and id also passes
:func:`~ragtune.data.valid_text.text_problem`, so what a tokenizer cannot take is refused here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ragtune.data.valid_text import text_problem
from ragtune.errors import DataError

Row = Mapping[str, Any]


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
class FieldReader:
    """The fields of one row, each read with one clear error per problem."""

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
        return self._readable(value, name)

    def _readable(self, value: str, name: str, item: str = "") -> str:
        problem = text_problem(value)
        if problem is not None:
            raise self._error("bad_text", item + problem.message, name, hint=problem.hint)
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
            texts.append(self._readable(item, name, f"item {i}: "))
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
        return self._readable(str(value), name)


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
