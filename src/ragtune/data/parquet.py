"""Rows of Parquet files, streamed in record batches; the "line" of a row is its 1-based number.

Parquet needs ``pyarrow``, imported only here and only when a Parquet file is read
(``pip install 'ragtune[parquet]'``). A string column holding bytes that are not UTF-8 (pyarrow
checks what it writes, other writers may not) is a row error naming the row and the column.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragtune.data.records import Row, RowError
from ragtune.errors import DataError, RagtuneError


def iter_parquet_rows(path: Path, batch_size: int = 1024) -> Iterator[tuple[int, Row | RowError]]:
    """Stream a Parquet file; every row is a dict of its columns."""
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
        yield from _batch_rows(batch, row, source)
        row += batch.num_rows


def _batch_rows(batch: Any, before: int, source: str) -> Iterator[tuple[int, Row | RowError]]:
    """The rows of one batch; one that does not decode becomes a RowError and the rest still go."""
    try:
        items = batch.to_pylist()
    except UnicodeDecodeError:
        items = None
    if items is not None:
        yield from enumerate(items, start=before + 1)
        return
    for i in range(batch.num_rows):  # find the rows (and columns) that do not decode
        row: dict[str, Any] = {}
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            try:
                row[name] = column[i].as_py()
            except UnicodeDecodeError as exc:
                yield (
                    before + i + 1,
                    RowError(
                        "bad_encoding",
                        f"invalid UTF-8 in a text column: {exc.object[exc.start : exc.end]!r}",
                        path=source,
                        line=before + i + 1,
                        field=name,
                        hint="rewrite the column as UTF-8 text",
                    ),
                )
                break
        else:
            yield before + i + 1, row


def import_pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise RagtuneError(
            "reading Parquet files needs pyarrow: pip install 'ragtune[parquet]'"
        ) from None
    return pq
