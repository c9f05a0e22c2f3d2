"""What a ``tune`` run counts for its report: pairs per generator and filter, files without any.

Why per generator and filter: a generator whose pairs the round-trip filter mostly removes, or
that no split uses, is noise or dead weight for this folder; the counts say which, before any
score does.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ragtune.pseudo.code import is_code, suffix
from ragtune.pseudo.pairs import PseudoPair
from ragtune.search.chunking import Chunk


def code_files_without_pairs(chunks: list[Chunk], pairs: list[PseudoPair]) -> dict[str, int]:
    """Code files no generator found anything in (no docstring, doc comment or definition), by
    suffix: for other languages than Python only doc comments above definitions are read."""
    used = {p.path for p in pairs}
    files = {c.path for c in chunks if is_code(c.path)} - used
    return dict(sorted(Counter(suffix(f) for f in files).items()))


def pair_counts(
    names: tuple[str, ...],
    made: Counter[str],
    duplicates: Counter[str],
    removed: dict[str, int],
    kept: list[PseudoPair],
    split: dict[str, list[PseudoPair]],
) -> dict[str, dict[str, int]]:
    """Per generator: pairs made, removed by each filter, kept, and used in each split."""
    passed = Counter(p.generator for p in kept)
    used = {s: Counter(p.generator for p in pairs) for s, pairs in split.items()}
    return {
        n: {
            "generated": made[n],
            "duplicates": duplicates[n],
            "round_trip_removed": int(removed.get(n, 0)),
            "kept": passed[n],
            **{s: used[s][n] for s in ("train", "dev", "test")},
        }
        for n in names
    }


def example_queries(pairs: list[PseudoPair], n: int = 3) -> list[dict[str, Any]]:
    """The first ``n`` pairs of distinct files: the query and where it points."""
    out, seen = [], set()
    for p in pairs:
        if p.path not in seen:
            seen.add(p.path)
            out.append({"query": p.query, "at": f"{p.path}:{p.start_line}-{p.end_line}"})
        if len(out) == n:
            break
    return out


__all__ = ["code_files_without_pairs", "example_queries", "pair_counts"]
