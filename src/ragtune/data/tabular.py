"""Rows of CSV/TSV files, streamed; the first row is the header.

CSV is decoded line by line so that invalid UTF-8 is reported on its own line; a row whose field
count differs from the header's is a :class:`RowError` (``ragged_row``).

Quotes are read strictly, because a missing quote does not fail loudly in CSV: it silently glues
the rows after it into one field. The rule:

* a quoted field may hold delimiters and line breaks (documents have paragraphs);
* a quote still open at the end of the file, or closed on a later line by a quote that is then
  followed by text instead of a delimiter (a quote meant to open a field of that later line), is an
  **unterminated quoted field**, reported at the line where the quote opened with the field's
  column name; the header, which never holds a line break, may not span lines at all;
* on a single line, text right after a closing quote (``"a"b``) is refused too: a quote inside a
  quoted field is written twice (``"a""b"``);
* a row that spans lines and has the wrong number of fields says which lines it spans.

Each of these is a row error (skippable with ``skip_invalid``); reading goes on at the next line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ragtune.data.jsonl import open_binary
from ragtune.data.records import Row, RowError
from ragtune.errors import DataError

# Documents can be long (whole functions, articles): lift csv's default 128 KiB field limit.
_FIELD_LIMIT = 2**31 - 1
_QUOTE = '"'
_DOUBLED = 'write a quote inside a quoted field twice: ""'


def iter_csv_rows(path: Path, delimiter: str) -> Iterator[tuple[int, Row | RowError]]:
    """Stream a CSV (``delimiter=","``) or TSV (``"\\t"``) file with a header row."""
    source = str(path)
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    bad_lines: dict[int, UnicodeDecodeError] = {}
    record: list[str] = []  # the physical lines of the record being parsed (csv reads no further)

    def decoded_lines(f: Iterator[bytes]) -> Iterator[str]:
        for line_no, raw in enumerate(f, start=1):
            if line_no == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad_lines[line_no] = exc
                text = raw.decode("utf-8", errors="replace")
            record.append(text)
            yield text

    with open_binary(path) as f:
        reader = csv.reader(decoded_lines(f), delimiter=delimiter, strict=True)
        header: list[str] | None = None
        last_line = 0
        while True:
            record.clear()
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                first_line, last_line = last_line + 1, reader.line_num
                error = _parse_error(exc, record, first_line, header, source, delimiter)
                if header is None:
                    raise error from None  # raised, not yielded: without a header nothing is read
                yield first_line, error
                continue
            first_line, last_line = last_line + 1, reader.line_num
            bad = [n for n in range(first_line, last_line + 1) if n in bad_lines]
            if header is None:
                if bad:
                    raise DataError(
                        "the header row is not valid UTF-8",
                        path=source,
                        line=bad[0],
                        hint="save the file as UTF-8",
                    )
                spanning = _scan(record, delimiter).first_spanning
                if spanning is not None:  # a header never holds a line break
                    raise _unterminated(spanning, 1, last_line, None, source)
                header = _check_header(cells, source, delimiter)
                continue
            if not cells:  # a blank line
                continue
            if bad:
                err = bad_lines[bad[0]]
                yield (
                    bad[0],
                    RowError(
                        "bad_encoding",
                        f"invalid UTF-8: {err.object[err.start : err.end]!r}",
                        path=source,
                        line=bad[0],
                        hint="save the file as UTF-8",
                    ),
                )
            elif len(cells) != len(header):
                yield first_line, _ragged(cells, header, first_line, last_line, source)
            else:
                yield first_line, dict(zip(header, cells, strict=True))
        if header is None:
            raise DataError(
                "empty file: expected a header row",
                path=source,
                hint="the first row names the columns, e.g. query,positive",
            )


@dataclass(frozen=True)
class _Scan:
    """Quotes of one record that go wrong, each as (line offset in the record, field index)."""

    first_spanning: tuple[int, int] | None = None  # the first quoted field holding a line break
    open_at_end: tuple[int, int] | None = None  # a quoted field never closed
    stray: tuple[int, int] | None = None  # where text follows a closing quote
    stray_opened: tuple[int, int] | None = None  # where that quoted field opened


def _scan(lines: list[str], delimiter: str) -> _Scan:
    """Follow csv's quoting rules (doubled quotes, strict) over the lines of one record."""
    field, state = 0, "start"
    opened: tuple[int, int] | None = None
    spanning: tuple[int, int] | None = None
    for li, line in enumerate(lines):
        for ch in line:
            if state == "quoted":
                if ch == _QUOTE:
                    state = "after_quote"
                elif ch in "\r\n" and spanning is None:
                    spanning = opened
            elif state == "after_quote" and ch == _QUOTE:
                state = "quoted"  # a doubled quote: one literal quote
            elif state == "after_quote" and ch not in f"{delimiter}\r\n":
                return _Scan(spanning, stray=(li, field), stray_opened=opened)
            elif ch == delimiter:
                field, state = field + 1, "start"
            elif state == "start" and ch == _QUOTE:
                state, opened = "quoted", (li, field)
            elif ch not in "\r\n":
                state = "unquoted"
    return _Scan(spanning, open_at_end=opened if state == "quoted" else None)


def _parse_error(
    exc: csv.Error,
    lines: list[str],
    first_line: int,
    header: list[str] | None,
    source: str,
    delimiter: str,
) -> RowError:
    """The csv module's error, told as the quote that caused it where there is one."""
    scan = _scan(lines, delimiter)
    last = first_line + len(lines) - 1
    if scan.open_at_end is not None:
        return _unterminated(scan.open_at_end, first_line, last, header, source)
    if scan.stray is not None and scan.stray_opened is not None:
        if scan.stray_opened[0] < scan.stray[0]:  # ran over a line break, closed by a later quote
            return _unterminated(scan.stray_opened, first_line, last, header, source)
        return RowError(
            "bad_quote",
            "text after the closing quote of a quoted field",
            path=source,
            line=first_line + scan.stray[0],
            field=_name(header, scan.stray[1]),
            hint=_DOUBLED,
        )
    if "NUL" in str(exc):  # Python 3.10's csv refuses NUL bytes itself
        return RowError(
            "bad_text",
            "text holds a NUL character (U+0000)",
            path=source,
            line=last,
            hint="NUL bytes usually mean a binary or UTF-16 file; save it as UTF-8 text",
        )
    return RowError(
        "bad_csv",
        f"unreadable CSV: {exc}",
        path=source,
        line=last,
        hint="quote fields that contain the delimiter or a line break",
    )


def _unterminated(
    opened: tuple[int, int], first_line: int, last_line: int, header: list[str] | None, source: str
) -> RowError:
    line = first_line + opened[0]
    runs = "is never closed" if last_line == line else f"runs on to line {last_line}"
    return RowError(
        "unterminated_quote",
        "unterminated quoted field",
        path=source,
        line=line,
        field=_name(header, opened[1]),
        hint=f"the quote that opens this field {runs}; close it, and {_DOUBLED}",
    )


def _ragged(
    cells: list[str], header: list[str], first_line: int, last_line: int, source: str
) -> RowError:
    where = "row" if last_line == first_line else f"row (lines {first_line}-{last_line})"
    hint = "quote fields that contain the delimiter or a line break"
    if last_line > first_line:
        hint = f"a quoted field runs over a line break here: check its closing quote; {hint}"
    return RowError(
        "ragged_row",
        f"{where} has {len(cells)} fields but the header has {len(header)} ({', '.join(header)})",
        path=source,
        line=first_line,
        hint=hint,
    )


def _name(header: list[str] | None, index: int) -> str | None:
    if header is None:
        return f"column {index + 1}"
    return header[index] if index < len(header) else f"column {index + 1}"


def _check_header(cells: list[str], source: str, delimiter: str) -> list[str]:
    names = [c.strip() for c in cells]
    if len(names) == 1 and delimiter == "," and "\t" in names[0]:
        raise DataError(
            "the header has one column but contains tabs",
            path=source,
            line=1,
            hint="name tab-separated files .tsv",
        )
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"duplicate column names in the header: {dupes}", path=source, line=1)
    return names
