"""Identifier queries: a definition's name split into words -> the chunk that defines it.

``parse_status_line`` and ``parseStatusLine`` become "parse status line": the words a user types
when looking for the code by what it is called. Only names of two words or more are used (a
one-word name is too vague to be a query), at most ``max_per_chunk`` per chunk, and a class name
is prefixed to the methods that follow it in the same chunk ("http response read chunked").

Why: identifiers are the densest description code has of itself, and the only one undocumented
code has. The positive is the whole chunk (the name stays in it), so these pairs teach the model
to match split words to joined identifiers, which a WordPiece vocabulary cuts differently.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence

from ragtune.pseudo.code import is_code
from ragtune.pseudo.generators import GeneratorOptions, register
from ragtune.pseudo.pairs import PseudoPair, pair_for
from ragtune.search.chunking import Chunk

_NAMED = re.compile(
    r"^\s*(?:(?:export|default|pub|async|public|private|protected|static)\s+)*"
    r"(def|class|function|func|fn|struct|enum|trait|interface)\s+\*?\s*([A-Za-z_][A-Za-z0-9_]*)"
)
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def split_identifier(name: str) -> list[str]:
    """``"parseHTTPStatus_line2"`` -> ``["parse", "http", "status", "line", "2"]``."""
    return [w.lower() for w in _WORD.findall(name)]


class IdentifierGenerator:
    """Definition names split into words -> the chunk defining them."""

    name = "identifier"

    def __init__(self, options: GeneratorOptions = GeneratorOptions(), min_words: int = 2) -> None:
        self.options = options
        self.min_words = min_words
        self.skipped: Counter[str] = Counter()

    def generate(self, chunks: Sequence[Chunk]) -> Iterator[PseudoPair]:
        for chunk in chunks:
            if not is_code(chunk.path):
                continue
            made, owner = 0, ""
            for offset, line in enumerate(chunk.text.split("\n")):
                m = _NAMED.match(line)
                if m is None:
                    continue
                kind, name = m.groups()
                words = split_identifier(name)
                if kind in ("class", "struct", "trait", "interface", "enum"):
                    owner = " ".join(words)
                elif line[: len(line) - len(line.lstrip())] and owner:
                    words = [*owner.split(), *words]  # an indented method of the class above
                if name.startswith("__") and name.endswith("__"):
                    self.skipped["dunder"] += 1
                    continue
                if len(split_identifier(name)) < self.min_words:
                    self.skipped["one_word"] += 1
                    continue
                if made >= self.options.max_per_chunk:
                    self.skipped["chunk_cap"] += 1
                    continue
                made += 1
                yield pair_for(
                    chunk,
                    " ".join(words),
                    self.name,
                    start_line=chunk.start_line + offset,
                    end_line=chunk.end_line,
                )


register("identifier", IdentifierGenerator)

__all__ = ["IdentifierGenerator", "split_identifier"]
