"""Small helpers shared by the command modules: reading texts, printing JSON and tables, and the
old spellings of renamed options."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table

from ragtune.data.valid_text import text_problem
from ragtune.errors import DataError, RagtuneError

T = TypeVar("T")

out = Console()  # tables for people go to stdout; progress and logs go to stderr


def read_texts(source: str, field: str = "text") -> list[str]:
    """Texts from a file or stdin (``-``): plain lines, or JSONL objects with ``field``."""
    if source == "-":
        name = "<stdin>"
        raw = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read()
        try:
            lines = (raw.decode("utf-8") if isinstance(raw, bytes) else raw).splitlines()
        except UnicodeDecodeError as exc:
            raise DataError(
                f"not valid UTF-8 ({exc.reason} at byte {exc.start})", path=name
            ) from None
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError("file not found", path=source)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise DataError(
                f"not valid UTF-8 ({exc.reason} at byte {exc.start})", path=source
            ) from None
        name = source
    texts: list[str] = []
    is_jsonl = name.endswith(".jsonl")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if is_jsonl:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"malformed JSON ({exc.msg})", path=name, line=number) from None
            if not isinstance(obj, dict) or not isinstance(obj.get(field), str):
                raise DataError(
                    "missing or non-string text",
                    path=name,
                    line=number,
                    field=field,
                    hint="choose the field with --field",
                )
            text = obj[field]
        else:
            text = line
        if problem := text_problem(text):
            raise DataError(
                problem.message,
                path=name,
                line=number,
                field=field if is_jsonl else None,
                hint=problem.hint,
            )
        texts.append(text)
    return texts


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def key_value_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in rows.items():
        table.add_row(
            key,
            f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value),
        )
    return table


def renamed(value: T | None, old_value: T | None, name: str, old_name: str) -> T | None:
    """The value of option ``name`` given either as ``name`` or under its old spelling.

    Every concept has one flag across commands (``--out`` for what a command writes, ``-k`` for a
    number of hits, ...); the old spellings are hidden options that keep scripts working, quietly
    (stderr stays the one line of an error, if any). Giving both is refused rather than picking
    one silently.
    """
    if old_value is None:
        return value
    if value is not None:
        raise RagtuneError(f"{old_name} is the old name of {name}; pass {name} only")
    return old_value


def renamed_choice(value: str, old_values: dict[str, str], option: str) -> str:
    """``value`` of a closed-choice option, with a deprecated choice name mapped to its current one
    (``--dense-search flat`` -> ``exact``), saying so on stderr."""
    new = old_values.get(value)
    if new is None:
        return value
    from ragtune.progress import console

    console.print(f"note: {option} {value} is now called {option} {new}", highlight=False)
    return new
