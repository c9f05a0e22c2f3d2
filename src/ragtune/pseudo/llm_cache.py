"""The on-disk cache of LLM answers: what makes a killed generation run resume where it stopped.

One append-only JSONL file. The first line is a header naming the format; every further line is
one answer, written as one complete line and fsync'd before the next request's answer is counted
as done::

    {"format": "ragtune-llm-cache", "version": 1}
    {"key": "3f9a...", "questions": ["how do I retry on 429?", "what does backoff_s do?"]}

The key is the sha256 of (model, prompt version, chunk text as sent, questions asked for), see
:func:`cache_key`: the same chunk asked of the same model with the same prompt is never asked
twice, while a new model, a changed chunk or a new prompt version asks again.

Why one JSONL file rather than one file per key: a folder of 100,000 tiny files is slow to list,
copy and delete, and appending a line costs one ``write`` and one ``fsync`` (5.4 ms median, 15 ms
p99 on the 2-core build machine, ``benchmarks/llm_generator.py``; an LLM answer takes seconds),
while loading 100,000 answers (17 MB) back takes 1.4 s. Why it survives a kill: a line is
written with a single ``write`` on a file opened ``O_APPEND``, so a kill leaves at most the last
line cut short; loading ignores a line that is not complete JSON, and the next append starts on a
fresh line. Failures are not cached, so a resumed run asks again for the chunks that failed.

A file whose first line is not the header is refused: the cache only ever appends to a file it
created.

Example::

    cache = LlmCache(out / "llm-cache.jsonl")
    key = cache_key("qwen2.5:7b", 1, chunk.text, 3)
    if (questions := cache.get(key)) is None:
        questions = ask(chunk)
        cache.put(key, questions)
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from ragtune.errors import RagtuneError

FORMAT = "ragtune-llm-cache"
VERSION = 1
_HEADER = (json.dumps({"format": FORMAT, "version": VERSION}) + "\n").encode()


def cache_key(model: str, prompt_version: int, text: str, n: int) -> str:
    """sha256 (hex) of what determines an answer: model, prompt version, chunk text, count."""
    payload = json.dumps([model, prompt_version, text, n], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class LlmCache:
    """Answers by key, loaded from ``path`` (if it exists) and appended to as they come.

    Safe to share between threads; ``damaged_lines`` counts the lines skipped on load (a line cut
    short by a kill, or edited by hand).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.damaged_lines = 0
        self._answers: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._needs_newline = False  # the file ends inside a line cut short by a kill
        self._needs_header = True
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        if self.path.is_dir():
            raise RagtuneError(f"{self.path}: the LLM cache path is a folder, not a file")
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise RagtuneError(f"{self.path}: cannot read the LLM cache ({exc.strerror})") from None
        if not data or (b"\n" not in data and _HEADER.startswith(data)):
            # empty, or only part of the header: killed while creating it
            self._needs_newline = bool(data)
            return
        lines = data.split(b"\n")
        if lines[0] + b"\n" != _HEADER:
            raise RagtuneError(
                f"{self.path}: not a ragtune LLM cache (its first line is not "
                f'{{"format": "{FORMAT}", ...}}); pass a new cache path'
            )
        self._needs_header = False
        self._needs_newline = not data.endswith(b"\n")
        for line in lines[1:]:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key, questions = record["key"], record["questions"]
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
                self.damaged_lines += 1
                continue
            if not isinstance(key, str) or not (
                isinstance(questions, list) and all(isinstance(q, str) for q in questions)
            ):
                self.damaged_lines += 1
                continue
            self._answers[key] = questions

    def __len__(self) -> int:
        return len(self._answers)

    def __contains__(self, key: object) -> bool:
        return key in self._answers

    def get(self, key: str) -> list[str] | None:
        """The questions stored for ``key``, None when it was never answered."""
        with self._lock:
            found = self._answers.get(key)
            return None if found is None else list(found)

    def put(self, key: str, questions: list[str]) -> None:
        """Store ``questions`` for ``key``: in memory, and on disk before this returns."""
        line = json.dumps({"key": key, "questions": questions}, ensure_ascii=False) + "\n"
        with self._lock:
            fd = self._open()
            _write_all(fd, line.encode("utf-8"))
            os.fsync(fd)
            self._answers[key] = list(questions)

    def _open(self) -> int:
        if self._fd is not None:
            return self._fd
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        if self._needs_header:
            # Read what is there now (another run may have created the file since _load).
            size = os.fstat(fd).st_size
            head = os.pread(fd, len(_HEADER), 0)
            if head == _HEADER:
                self._needs_header = False
                self._needs_newline = os.pread(fd, 1, size - 1) != b"\n"
            elif size < len(_HEADER) and _HEADER.startswith(head):
                os.ftruncate(fd, 0)  # only our own cut-short header: start the file again
                self._needs_newline = False
            else:
                os.close(fd)
                raise RagtuneError(f"{self.path}: not a ragtune LLM cache; pass a new cache path")
        if self._needs_header:
            _write_all(fd, _HEADER)
            self._needs_header = False
        elif self._needs_newline:
            _write_all(fd, b"\n")  # end the cut-short line so that it stays one damaged line
        self._needs_newline = False
        os.fsync(fd)
        if new:
            _fsync_dir(self.path.parent)
        self._fd = fd
        return fd

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> LlmCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = ["FORMAT", "VERSION", "LlmCache", "cache_key"]
