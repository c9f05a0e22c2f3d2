"""Rows of JSON Lines files (streamed line by line) and of JSON array files.

Each yields ``(line, row)`` pairs for :class:`~ragtune.data.records.RecordReader`; a line that
is not valid UTF-8, not valid JSON or not an object becomes a :class:`RowError` for that line so
that one bad line can be skipped (``skip_invalid=True``) without losing the rest of the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ragtune.data.records import Row, RowError
from ragtune.errors import DataError

_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def iter_jsonl_rows(path: Path) -> Iterator[tuple[int, Row | RowError]]:
    """Stream a JSON Lines file: one object per line; blank lines are ignored."""
    with open_binary(path) as f:
        yield from iter_jsonl_stream(f, str(path))


def iter_jsonl_stream(f: BinaryIO, source: str) -> Iterator[tuple[int, Row | RowError]]:
    """Rows of JSON Lines read from an open binary stream (a file, or stdin for ``-``)."""
    for line_no, raw in enumerate(f, start=1):
        if line_no == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield (
                line_no,
                _encoding_error(source, line_no, exc, f"at byte {exc.start} of the line"),
            )
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield (
                line_no,
                RowError(
                    "bad_json",
                    f"malformed JSON: {exc.msg} (column {exc.colno})",
                    path=source,
                    line=line_no,
                    hint="each line must hold one complete JSON object",
                ),
            )
            continue
        if not isinstance(obj, dict):
            yield (
                line_no,
                RowError(
                    "not_an_object",
                    f"expected a JSON object, got {type(obj).__name__}",
                    path=source,
                    line=line_no,
                    hint='write rows as {"query": ..., "positive": ...}',
                ),
            )
            continue
        yield line_no, obj


def iter_json_array_rows(path: Path) -> Iterator[tuple[int, Row | RowError]]:
    """Rows of a ``.json`` file holding one array of objects (read whole: use JSONL for big data).

    Items are decoded one by one so every row knows the line it starts on.
    """
    source = str(path)
    with open_binary(path) as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise _encoding_error(source, line, exc, f"at byte {exc.start} of the file") from None
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if not text.startswith("[", pos):
        raise DataError(
            "expected a JSON array of objects",
            path=source,
            line=_line_of(text, pos),
            hint="a .json file is either one array or JSON Lines",
        )
    pos = _skip_ws(text, pos + 1)
    if text.startswith("]", pos):
        return
    while True:
        line = _line_of(text, pos)
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"malformed JSON: {exc.msg} (column {exc.colno})", path=source, line=exc.lineno
            ) from None
        if isinstance(obj, dict):
            yield line, obj
        else:
            yield (
                line,
                RowError(
                    "not_an_object",
                    f"expected a JSON object, got {type(obj).__name__}",
                    path=source,
                    line=line,
                ),
            )
        pos = _skip_ws(text, pos)
        if text.startswith("]", pos):
            return
        if not text.startswith(",", pos):
            raise DataError(
                "malformed JSON: expected ',' or ']' after an item",
                path=source,
                line=_line_of(text, pos),
            )
        pos = _skip_ws(text, pos + 1)


def looks_like_json_array(path: Path) -> bool:
    """True when the first non-blank byte of the file is ``[``."""
    with open_binary(path) as f:
        head = f.read(4096).lstrip(_BOM).lstrip()
    return head.startswith(b"[")


def open_binary(path: Path) -> BinaryIO:
    """Open a data file for reading; a UTF-16 file is refused here, before any line is read."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - returned open, closed by the caller's with
    except FileNotFoundError:
        raise DataError("file not found", path=str(path)) from None
    except IsADirectoryError:
        raise DataError("expected a file, found a folder", path=str(path)) from None
    if f.peek(2)[:2] in _UTF16_BOMS:  # every other byte NUL: UTF-8 decoding would mislead
        f.close()
        raise DataError(
            "the file is UTF-16 (it starts with a UTF-16 byte order mark), not UTF-8",
            path=str(path),
            line=1,
            hint="save it as UTF-8 (e.g. iconv -f utf-16 -t utf-8)",
        )
    return f


def _encoding_error(source: str, line: int, exc: UnicodeDecodeError, where: str) -> RowError:
    return RowError(
        "bad_encoding",
        f"invalid UTF-8 {where}: {exc.object[exc.start : exc.end]!r}",
        path=source,
        line=line,
        hint="save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
    )


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1
