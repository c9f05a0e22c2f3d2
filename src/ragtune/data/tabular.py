"""Rows of CSV/TSV files (streamed; the first row is the header) and of Parquet files.

CSV is decoded line by line so that invalid UTF-8 is reported on its own line; a row whose field
count differs from the header's is a :class:`RowError` (``ragged_row``). Parquet needs ``pyarrow``,
imported only here and only when a Parquet file is read (``pip install 'ragtune[parquet]'``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragtune.data.jsonl import open_binary
from ragtune.data.records import Row, RowError
from ragtune.errors import DataError, RagtuneError

# Documents can be long (whole functions, articles): lift csv's default 128 KiB field limit.
_FIELD_LIMIT = 2**31 - 1


def iter_csv_rows(path: Path, delimiter: str) -> Iterator[tuple[int, Row | RowError]]:
    """Stream a CSV (``delimiter=","``) or TSV (``"\\t"``) file with a header row."""
    source = str(path)
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    bad_lines: dict[int, UnicodeDecodeError] = {}

    def decoded_lines(f: Any) -> Iterator[str]:
        for line_no, raw in enumerate(f, start=1):
            if line_no == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad_lines[line_no] = exc
                yield raw.decode("utf-8", errors="replace")

    with open_binary(path) as f:
        reader = csv.reader(decoded_lines(f), delimiter=delimiter)
        header: list[str] | None = None
        last_line = 0
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise DataError(
                    f"unreadable CSV: {exc}",
                    path=source,
                    line=reader.line_num,
                    hint="check the quoting around this line",
                ) from None
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
                yield (
                    first_line,
                    RowError(
                        "ragged_row",
                        f"row has {len(cells)} fields but the header has {len(header)} "
                        f"({', '.join(header)})",
                        path=source,
                        line=first_line,
                        hint="quote fields that contain the delimiter or a line break",
                    ),
                )
            else:
                yield first_line, dict(zip(header, cells, strict=True))
        if header is None:
            raise DataError(
                "empty file: expected a header row",
                path=source,
                hint="the first row names the columns, e.g. query,positive",
            )


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


def iter_parquet_rows(path: Path, batch_size: int = 1024) -> Iterator[tuple[int, Row | RowError]]:
    """Stream a Parquet file in record batches; the "line" of a row is its 1-based row number."""
    pq = import_pyarrow_parquet()
    source = str(path)
    if not path.is_file():
        raise DataError("file not found", path=source)
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError... for unreadable files
        raise DataError(f"not a readable Parquet file: {exc}", path=source) from None
    row = 0
    batches = parquet.iter_batches(batch_size=batch_size)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except Exception as exc:  # a corrupt page surfaces only when its batch is decoded
            raise DataError(
                f"unreadable Parquet data after row {row}: {exc}", path=source
            ) from None
        for item in batch.to_pylist():
            row += 1
            yield row, item


def import_pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise RagtuneError(
            "reading Parquet files needs pyarrow: pip install 'ragtune[parquet]'"
        ) from None
    return pq
