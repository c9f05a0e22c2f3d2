"""What ``tune`` reads: the chunks of a folder or of a BEIR corpus, and the user's questions.

A folder is walked and chunked exactly as ``ragtune index`` does (:class:`FileChunker`), so the
chunks trained on are the chunks served. A BEIR ``corpus.jsonl`` gives one chunk per record,
``path`` = the record's id, its title (when present) as line 1 and its text below: a document is
one record, which is what the title and cloze generators need.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ragtune.data.beir import iter_corpus
from ragtune.errors import DataError, RagtuneError
from ragtune.search.build import FileChunker, IndexConfig
from ragtune.search.chunking import Chunk, split_lines
from ragtune.search.files import walk_text_files


@dataclass
class Chunked:
    chunks: list[Chunk]
    files: int
    skipped: Counter[str] = field(default_factory=Counter)
    is_folder: bool = True


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
    chunks = []
    for f in walk.files:
        chunks.extend(chunker(f.path, f.text)[0])
    return Chunked(chunks, len(walk.files), Counter(walk.skipped), is_folder=True)


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
        if where and line.isdigit():
            found.append(Question(obj["query"], where, int(line)))
        else:
            found.append(Question(obj["query"], obj["path"]))
    if not found:
        raise DataError("no questions in the file", path=path)
    return found


__all__ = ["Chunked", "Question", "load_chunks", "read_questions"]
