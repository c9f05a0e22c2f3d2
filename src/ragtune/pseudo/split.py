"""Split pseudo-pairs by file: no file's chunks are in two of train, dev and test.

Why by file: chunks of one file share names, imports and phrasing; a test query whose
neighbouring chunk was trained on measures memory, not retrieval (the demo splits the standard
library by module for the same reason). Files are ordered by a SHA-256 hash of ``seed:path``, so
the split is the same on every machine; test and dev are then filled, in that order, until they
hold their share of the pairs (so adding a file moves only a few files near the share boundaries).

Example::

    splits = split_by_file(pairs, fractions=(0.8, 0.1, 0.1))
    splits.test    # pairs whose path no train or dev pair has
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from ragtune.pseudo.pairs import PseudoPair


@dataclass
class Splits:
    train: list[PseudoPair] = field(default_factory=list)
    dev: list[PseudoPair] = field(default_factory=list)
    test: list[PseudoPair] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    """path -> split name."""


def split_by_file(
    pairs: Sequence[PseudoPair],
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> Splits:
    """Assign whole files to train/dev/test so each split holds about its share of the pairs."""
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three shares summing to 1, got {fractions}")
    per_file = Counter(p.path for p in pairs)
    order = sorted(per_file, key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).hexdigest())
    total = len(pairs)
    goals = [("test", fractions[2] * total), ("dev", fractions[1] * total)]
    files: dict[str, str] = {}
    filled = {"test": 0, "dev": 0}
    i = 0
    for n, (name, goal) in enumerate(goals):
        # leave a file for train and for each split still to fill: with three files or more,
        # no split that has a share ends empty (test must not take the file dev needs)
        keep = 1 + sum(later > 0 for _, later in goals[n + 1 :])
        while i < len(order) and goal > 0 and filled[name] < goal and len(order) - i > keep:
            files[order[i]] = name
            filled[name] += per_file[order[i]]
            i += 1
    for path in order[i:]:
        files[path] = "train"
    out = Splits(files=files)
    for pair in pairs:
        getattr(out, files[pair.path]).append(pair)
    return out


__all__ = ["Splits", "split_by_file"]
