"""One pseudo-query and the chunk it was generated from: the unit every label-free stage passes on.

A pseudo-pair stands in for the labelled (question, passage) pair a user does not have: a
generator reads a chunk (``path:start_line-end_line``) and writes a query it should answer. The
``generator`` name travels with the pair so the report can count, filter and ablate by source.

Why ``chunk_id`` as well as the line range: the chunk is the retrieval unit (what the round-trip
filter ranks and what training uses as the positive), while the line range is what a generator
points at inside it (a function, a section, a held-out sentence), which may be narrower.

Example::

    pair = PseudoPair("parse the status line", "http/client.py:120-160", "http/client.py",
                      121, 158, "docstring")
    pair.to_json()   # {"query": "parse the status line", "chunk_id": ..., "generator": ...}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ragtune.search.chunking import Chunk


def chunk_id(chunk: Chunk) -> str:
    """The stable id of a chunk: ``path:start-end``, and ``~part`` for the windows of one
    over-long line (unique within one chunking of a folder)."""
    where = f"{chunk.path}:{chunk.start_line}-{chunk.end_line}"
    return f"{where}~{chunk.part}" if chunk.part else where


@dataclass(frozen=True)
class PseudoPair:
    """A generated query for the chunk ``chunk_id``, pointing at lines ``start_line..end_line``.

    ``document`` is the text to train on as the positive when it is not the whole chunk (the
    code without its docstring, a passage without its held-out sentence); empty means the chunk's
    text. Keeping the query's own words out of the positive is what makes these pairs teach
    retrieval rather than string matching (Lee et al. 2019, the inverse cloze task).
    """

    query: str
    chunk_id: str
    path: str
    start_line: int
    end_line: int
    generator: str
    document: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> PseudoPair:
        return cls(
            query=str(record["query"]),
            chunk_id=str(record["chunk_id"]),
            path=str(record["path"]),
            start_line=int(record["start_line"]),
            end_line=int(record["end_line"]),
            generator=str(record["generator"]),
            document=str(record.get("document", "")),
        )


def pair_for(
    chunk: Chunk,
    query: str,
    generator: str,
    *,
    start_line: int | None = None,
    end_line: int | None = None,
    document: str = "",
) -> PseudoPair:
    """A pair for ``chunk``, pointing at the whole chunk unless a narrower range is given."""
    return PseudoPair(
        query=query,
        chunk_id=chunk_id(chunk),
        path=chunk.path,
        start_line=chunk.start_line if start_line is None else start_line,
        end_line=chunk.end_line if end_line is None else end_line,
        generator=generator,
        document=document,
    )


__all__ = ["PseudoPair", "chunk_id", "pair_for"]
