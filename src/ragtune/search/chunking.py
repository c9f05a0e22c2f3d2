"""Cut a file into token-bounded chunks along natural boundaries, keeping exact line numbers.

Every chunk is a range of whole lines ``start_line..end_line`` (1-based, inclusive), so a hit can
be cited as ``path:start-end`` and opened in an editor. Lines are counted as git and editors do:
split on ``\\n`` only (a form feed or ``\\u2028`` inside a line does not start a new one).

Boundaries, strongest first:

* ``SECTION`` (2): a Markdown heading (outside fenced code), or a top-level ``def`` / ``class`` /
  ``function`` / ``fn`` / ``struct`` ... line in source code, moved up over the decorators and
  comment lines right above it so they stay with their definition;
* ``PARAGRAPH`` (1): the first line after a blank line;
* ``LINE`` (0): any line.

Algorithm: a range longer than the token budget is split at its strongest boundaries, and each
part that is still too long at the next weaker ones, down to single lines (a single line longer
than the budget is cut into token windows that all cite that line). The parts are then merged
greedily, in order, while the merged chunk fits the budget; a section boundary is only crossed
while the chunk so far is smaller than ``min_tokens`` (so a lone heading joins the text under it,
but two full functions stay apart). A chunk that starts inside a section (its first line is not a
section boundary) is prefixed with up to ``overlap_lines`` lines from the chunk before, as the
budget allows; blank lines at either end of a chunk are dropped.

Token counts are per line (``line + "\\n"``, no special tokens) summed over the chunk, which is
an upper bound for WordPiece and byte-level BPE tokenizers, where tokens never span a newline.

Example::

    counter = HFTokenCounter(encoder.tokenizer)
    chunks = chunk_text("src/http.py", source, counter, max_tokens=200, overlap_lines=2)
    chunks[0]   # Chunk(path='src/http.py', start_line=1, end_line=31, text='import re\\n...')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Protocol

LINE, PARAGRAPH, SECTION = 0, 1, 2

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdx"})
CODE_SUFFIXES = frozenset(
    {
        ".py",
        ".pyi",
        ".js",
        ".jsx",
        ".mjs",
        ".cjs",
        ".ts",
        ".tsx",
        ".go",
        ".rs",
        ".java",
        ".kt",
        ".kts",
        ".scala",
        ".swift",
        ".cs",
        ".rb",
        ".php",
        ".lua",
        ".jl",
        ".ex",
        ".exs",
        ".r",
        ".sh",
        ".bash",
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".hpp",
        ".m",
        ".mm",
        ".dart",
        ".zig",
        ".sql",
    }
)

_HEADING = re.compile(r"^ {0,3}#{1,6}(?:\s|$)")
_FENCE = re.compile(r"^ {0,3}(?:```|~~~)")
_MODIFIERS = (
    r"(?:(?:export|default|pub(?:\([^)]*\))?|async|public|private|protected|internal|"
    r"static|abstract|final|sealed|open|unsafe|extern|inline|data|case)\s+)*"
)
_DEFINITION = re.compile(
    rf"^{_MODIFIERS}(?:def|class|function\*?|func|fn|impl|struct|enum|union|trait|interface|"
    r"type|module|object|namespace|macro_rules!|mod|sub|defmodule|defp?)\b"
)
_DECORATOR_OR_COMMENT = re.compile(r"^(?:@|#(?!!)|//|/\*|\*|--|;)|^\s+\*|^\s*\*/")


@dataclass(frozen=True)
class Chunk:
    """Lines ``start_line..end_line`` (1-based, inclusive) of the file at ``path``."""

    path: str
    start_line: int
    end_line: int
    text: str
    part: int = 0
    """1, 2, ... for the token windows of one line too long for a chunk (they share its line
    number); 0 for every other chunk."""


class TokenCounter(Protocol):
    """How many tokens lines take, and how to cut one over-long line into token windows."""

    def count(self, lines: Sequence[str]) -> list[int]: ...

    def split(self, line: str, max_tokens: int) -> list[str]: ...


class HFTokenCounter:
    """A :class:`TokenCounter` over a Hugging Face (fast) tokenizer."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def count(self, lines: Sequence[str]) -> list[int]:
        if not lines:
            return []
        ids = self.tokenizer(
            [line + "\n" for line in lines],
            add_special_tokens=False,
            verbose=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        return [len(x) for x in ids]

    def split(self, line: str, max_tokens: int) -> list[str]:
        offsets = self.tokenizer(
            line, add_special_tokens=False, verbose=False, return_offsets_mapping=True
        )["offset_mapping"]
        cuts = [0] + [offsets[i][0] for i in range(max_tokens, len(offsets), max_tokens)]
        return [line[a:b] for a, b in pairwise([*cuts, len(line)]) if line[a:b].strip()]

    def prompt_tokens(self, text: str) -> int:
        """Tokens ``text`` adds in front of a document (a prompt or a path header)."""
        return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])


def split_lines(text: str) -> list[str]:
    """The file's lines as editors number them (``\\n`` only; a trailing ``\\r`` is dropped)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line does not start another one
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def boundary_strengths(lines: Sequence[str], suffix: str) -> list[int]:
    """``strengths[i]``: how natural it is to start a chunk at line ``i`` (0-based)."""
    n = len(lines)
    strength = [LINE] * n
    blank = [not line.strip() for line in lines]
    for i in range(1, n):
        if blank[i - 1] and not blank[i]:
            strength[i] = PARAGRAPH
    if suffix in MARKDOWN_SUFFIXES:
        in_fence = False
        for i, line in enumerate(lines):
            if _FENCE.match(line):
                in_fence = not in_fence
            elif not in_fence and _HEADING.match(line):
                strength[i] = SECTION
    elif suffix in CODE_SUFFIXES:
        for i, line in enumerate(lines):
            if _DEFINITION.match(line):
                start = i  # keep decorators and the comment block above with the definition
                while start > 0 and _DECORATOR_OR_COMMENT.match(lines[start - 1]):
                    start -= 1
                strength[start] = SECTION
    return strength


def chunk_text(
    path: str,
    text: str,
    counter: TokenCounter,
    *,
    max_tokens: int,
    overlap_lines: int = 2,
    min_tokens: int | None = None,
) -> list[Chunk]:
    """Chunks of at most ``max_tokens`` tokens covering every non-blank line of ``text``.

    Args:
        path: the file's path, kept on every chunk; its suffix picks the boundary rules.
        text: the file's content.
        counter: token counting (the encoder's tokenizer, see :class:`HFTokenCounter`).
        max_tokens: token budget of one chunk.
        overlap_lines: lines repeated from the previous chunk when a chunk starts mid-section.
        min_tokens: a chunk this small may grow across a section boundary
            (default ``max_tokens // 4``).
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    lines = split_lines(text)
    if not any(line.strip() for line in lines):
        return []
    small = max_tokens // 4 if min_tokens is None else min_tokens
    counts = counter.count(lines)
    cum = [0]
    for c in counts:
        cum.append(cum[-1] + c)
    strength = boundary_strengths(lines, _suffix(path))

    def tokens(lo: int, hi: int) -> int:
        return cum[hi] - cum[lo]

    def pieces(lo: int, hi: int, level: int) -> list[tuple[int, int]]:
        """Half-open line ranges that fit the budget (or single lines), split at ``<= level``."""
        if tokens(lo, hi) <= max_tokens or hi - lo == 1:
            return [(lo, hi)]
        for lvl in range(level, LINE - 1, -1):
            cuts = [i for i in range(lo + 1, hi) if strength[i] >= lvl]
            if cuts:
                return [p for a, b in pairwise([lo, *cuts, hi]) for p in pieces(a, b, lvl - 1)]
        return [(lo, hi)]  # unreachable: at LINE level every line is a cut

    ranges: list[tuple[int, int]] = []  # half-open line ranges of the chunks, in order
    oversized: dict[int, list[str]] = {}  # line -> its token windows, for lines over budget
    start: int | None = None
    end = 0
    for a, b in pieces(0, len(lines), SECTION):
        if b - a == 1 and tokens(a, b) > max_tokens:
            if start is not None:
                ranges.append((start, end))
                start = None
            oversized[a] = counter.split(lines[a], max_tokens)
            ranges.append((a, b))
            continue
        if start is not None:
            crossing = strength[a] >= SECTION and tokens(start, end) >= small
            if tokens(start, b) <= max_tokens and not crossing:
                end = b
                continue
            ranges.append((start, end))
        start = a
        if ranges and strength[a] < SECTION:
            # overlap: a few lines of the previous chunk, as many as the budget allows
            start = max(a - overlap_lines, ranges[-1][0] + 1, 0)
            while start < a and tokens(start, b) > max_tokens:
                start += 1
        end = b
    if start is not None:
        ranges.append((start, end))

    chunks: list[Chunk] = []
    for lo, hi in ranges:
        if lo in oversized:
            windows = oversized[lo]
            numbered = len(windows) > 1
            chunks.extend(
                Chunk(path, lo + 1, lo + 1, text, n if numbered else 0)
                for n, text in enumerate(windows, 1)
            )
            continue
        while lo < hi and not lines[lo].strip():
            lo += 1
        while hi > lo and not lines[hi - 1].strip():
            hi -= 1
        if lo < hi:
            chunks.append(Chunk(path, lo + 1, hi, "\n".join(lines[lo:hi])))
    return chunks


def _suffix(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
