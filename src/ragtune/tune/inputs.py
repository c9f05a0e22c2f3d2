"""What ``tune`` reads: the chunks of a folder or of a BEIR corpus, and the user's questions.

A folder is walked and chunked exactly as ``ragtune index`` does (:class:`FileChunker`), so the
chunks trained on are the chunks served, and each file's ``"<path>\n"`` header is kept: the index
embeds every chunk behind it, so the filter, the hard negatives, the training positives and every
evaluation read the chunks as :func:`served` gives them, the text the served model reads. A BEIR
``corpus.jsonl`` gives one chunk per record, ``path`` = the record's id (no header: an id is not
a name a question would use), its title (when present) as line 1 and its text below: a document
is one record, which is what the title and cloze generators need.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ragtune.data.beir import iter_corpus
from ragtune.errors import DataError, RagtuneError
from ragtune.pseudo.pairs import PseudoPair
from ragtune.search.build import FileChunker, IndexConfig
from ragtune.search.chunking import Chunk, split_lines
from ragtune.search.files import walk_text_files


@dataclass
class Chunked:
    chunks: list[Chunk]
    files: int
    skipped: Counter[str] = field(default_factory=Counter)
    is_folder: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    """``{path: the header the index embeds its chunks behind}`` (empty: none, a corpus.jsonl)."""


@dataclass(frozen=True)
class Question:
    """A real question and where its answer is: a file, or a line of it (``line`` 0: any)."""

    query: str
    path: str
    line: int = 0


def load_chunks(source: str, encoder: object, exclude: tuple[str, ...] = ()) -> Chunked:
    """The chunks of ``source`` (a folder or a ``corpus.jsonl``)."""
    path = Path(source)
    if path.is_file() and path.name.endswith(".jsonl"):
        chunks = []
        for _, doc in iter_corpus(path):
            text = f"{doc.title}\n{doc.text}" if doc.title else doc.text
            lines = split_lines(text)
            if any(line.strip() for line in lines):
                chunks.append(Chunk(doc.id, 1, len(lines), "\n".join(lines)))
        return Chunked(chunks, len(chunks), Counter(), is_folder=False)
    if not path.is_dir():
        raise RagtuneError(f"{source}: not a folder nor a corpus.jsonl file")
    walk = walk_text_files(path, exclude=exclude)
    chunker = FileChunker(encoder, IndexConfig(exclude=exclude))  # type: ignore[arg-type]
    chunks, headers = [], {}
    for f in walk.files:
        made, header = chunker(f.path, f.text)
        chunks.extend(made)
        if made and header:
            headers[f.path] = header
    return Chunked(chunks, len(walk.files), Counter(walk.skipped), True, headers)


def served(chunks: Sequence[Chunk], headers: Mapping[str, str]) -> list[Chunk]:
    """The chunks as the index embeds them: each behind its file's header (ids and lines kept)."""
    return [replace(c, text=headers[c.path] + c.text) if c.path in headers else c for c in chunks]


def served_pairs(pairs: Sequence[PseudoPair], headers: Mapping[str, str]) -> list[PseudoPair]:
    """The pairs with their own positive text (code without its docstring) behind the header of
    its file, as the served index would embed it; a pair whose positive is its chunk is kept."""
    return [
        replace(p, document=headers[p.path] + p.document) if p.document and p.path in headers else p
        for p in pairs
    ]


def read_questions(path: str) -> list[Question]:
    """Questions from JSONL: ``query`` and ``path`` (``"a.py"`` or ``"a.py:12"``) per line."""
    found = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read questions: {exc}", path=path) from None
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(f"not JSON: {exc.msg}", path=path, line=n) from None
        if not isinstance(obj, dict):
            raise DataError("each line must be a JSON object", path=path, line=n)
        for key in ("query", "path"):
            if not isinstance(obj.get(key), str) or not obj[key].strip():
                raise DataError("missing or empty", path=path, line=n, field=key)
        where, _, line = obj["path"].rpartition(":")
        if where and line.isascii() and line.isdigit():  # not "²": int() refuses it
            found.append(Question(obj["query"], where, int(line)))
        else:
            found.append(Question(obj["query"], obj["path"]))
    if not found:
        raise DataError("no questions in the file", path=path)
    return found


__all__ = ["Chunked", "Question", "load_chunks", "read_questions"]
