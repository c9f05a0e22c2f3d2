"""What an index is built from, streamed: a folder's chunks, or the documents of a corpus file.

Sources (:func:`source_kind` decides from the path):

* ``folder``: text files under a folder, chunked as :func:`ragtune.search.build.build_index`
  does (one unit = one file, giving one or more chunks);
* ``jsonl``: a BEIR ``corpus.jsonl`` (or a BEIR folder holding one), or any JSON Lines file with
  ``_id`` (or ``id``), ``text`` and an optional ``title`` per line (one unit = one document);
* ``parquet``: the same columns in a Parquet file, read in record batches.

Corpus files are read line by line (Parquet batch by batch), never whole, so memory does not grow
with the corpus. A folder walk holds the folder's text (as ``ragtune index DIR`` always has).

Every unit has a number, its position in the stream; :func:`iter_records` with ``shard=(i, n)``
yields only the units whose number is ``i`` modulo ``n`` (round robin: shards stay balanced
without counting the corpus first), so ``n`` processes split a corpus without coordinating. A
document becomes one chunk: ``path`` is its id, lines 1 to its line count, and it is embedded as
``title + " " + text`` (:meth:`ragtune.data.schema.Document.full_text`).

Example::

    for r in iter_records("scifact/corpus.jsonl", shard=(0, 2)):
        r.unit, r.path, r.embed_text     # 0, "4983", "Microstructural ... "
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ragtune.data.jsonl import iter_jsonl_rows
from ragtune.data.parquet import iter_parquet_rows
from ragtune.data.valid_text import text_problem
from ragtune.errors import DataError, RagtuneError

SourceKind = Literal["folder", "jsonl", "parquet"]
Chunker = Callable[[str, str], tuple[list[Any], str]]
"""``(path, text) -> (chunks with start_line/end_line/text, header)``: a FileChunker."""


@dataclass(frozen=True)
class Record:
    """One chunk to embed and store."""

    unit: int
    """Position of its file or document in the stream (0-based): decides shard and order."""
    path: str
    """The file's path, or the document's id."""
    start_line: int
    end_line: int
    text: str
    """What is stored and shown."""
    embed_text: str
    """What is embedded (path header + chunk, or title + text)."""
    sha256: str
    """Of the whole file or document."""


def source_kind(source: str | os.PathLike[str]) -> SourceKind:
    """``folder``, ``jsonl`` or ``parquet`` for ``source``; anything else is a one-line error."""
    path = Path(source)
    if path.is_dir():
        return "jsonl" if (path / "corpus.jsonl").is_file() else "folder"
    if not path.exists():
        raise RagtuneError(f"{path}: no such file or folder")
    name = path.name.lower()
    if name.endswith(".jsonl"):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    raise RagtuneError(
        f"{path}: not a folder, .jsonl or .parquet corpus; index a folder, a BEIR folder or "
        "corpus.jsonl, or a .jsonl/.parquet file with _id and text fields"
    )


def corpus_file(source: str | os.PathLike[str]) -> Path:
    """The file a corpus source is read from (a BEIR folder's ``corpus.jsonl``)."""
    path = Path(source)
    return path / "corpus.jsonl" if path.is_dir() else path


def iter_records(
    source: str | os.PathLike[str],
    *,
    chunker: Chunker | None = None,
    files: Any = None,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[Record]:
    """The chunks of ``source`` whose unit number is ``shard[0]`` modulo ``shard[1]``, in order.

    Args:
        chunker: how a folder's files are chunked (required for a folder).
        files: the folder's files (a :class:`ragtune.search.files.Walk`'s ``files``), walked by
            the caller so that its skip counts and exclusions are reported.
        shard: ``(index, count)``.
    """
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise RagtuneError(f"shard {index}/{count}: need 0 <= index < count")
    kind = source_kind(source)
    if kind == "folder":
        if chunker is None or files is None:
            raise RagtuneError("indexing a folder needs its walked files and a chunker")
        for unit, f in enumerate(files):
            if unit % count != index:
                continue
            chunks, header = chunker(f.path, f.text)
            for c in chunks:
                yield Record(
                    unit, f.path, c.start_line, c.end_line, c.text, header + c.text, f.sha256
                )
        return
    path = corpus_file(source)
    rows = iter_jsonl_rows(path) if kind == "jsonl" else iter_parquet_rows(path)
    unit = -1
    for line, row in rows:
        if isinstance(row, DataError):
            raise row
        unit += 1
        if unit % count != index:
            continue
        doc_id = _doc_id(row, str(path), line)
        text = _text(row, "text", str(path), line, required=True)
        title = _text(row, "title", str(path), line, required=False)
        full = f"{title} {text}" if title else text
        digest = hashlib.sha256(full.encode("utf-8")).hexdigest()
        lines = full.count("\n") + 1
        yield Record(unit, doc_id, 1, lines, full, full, digest)


def _doc_id(row: Mapping[str, Any], source: str, line: int) -> str:
    name = "_id" if "_id" in row else "id"
    value = row.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
        raise DataError(
            "missing or invalid document id",
            path=source,
            line=line,
            field="_id",
            hint='every row needs a non-empty "_id" (or "id")',
        )
    return _checked(str(value), name, source, line)


def _text(row: Mapping[str, Any], name: str, source: str, line: int, *, required: bool) -> str:
    value = row.get(name)
    if value is None:
        if required:
            raise DataError("missing field", path=source, line=line, field=name)
        return ""
    if not isinstance(value, str):
        raise DataError(
            f"expected text, got {type(value).__name__}", path=source, line=line, field=name
        )
    return _checked(value, name, source, line)


def _checked(value: str, name: str, source: str, line: int) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise DataError(problem.message, path=source, line=line, field=name, hint=problem.hint)
    return value
