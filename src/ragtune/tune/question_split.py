"""The user's real questions split into dev (decides publishing) and test (only reported).

With few questions a split leaves two sets too small to say anything: below ``min_questions``
(40 by default) every question is dev, and the test of the run is the held-out pseudo-queries
(the report says so). With enough, whole files go to one side, as in the pseudo-pair split
(:mod:`ragtune.pseudo.split`): questions about one file share its vocabulary, and a test
question whose file decided publishing is no longer held out. Files are ordered by a SHA-256
hash of ``seed:path`` and the test side is filled to half of the questions; when the questions
name fewer than ``min_files`` files, a split by file would put one file's worth on a side, so the
questions themselves are hashed instead. Either way the split is the same on every machine.

Why 40: 20 questions a side is about the fewest on which a difference of a few points of
nDCG@10 is told apart from the noise of which questions were asked (Voorhees & Buckley 2002,
"The effect of topic set size on retrieval experiment error"); it is a judgement, not a measurement
of this code.

Example::

    split = split_questions(questions)
    split.dev, split.test, split.by    # by: "file", "question" or "none" (all dev)
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ragtune.tune.inputs import Question

SplitBy = Literal["file", "question", "none"]


@dataclass
class QuestionSplit:
    dev: list[Question] = field(default_factory=list)
    test: list[Question] = field(default_factory=list)
    by: SplitBy = "none"


def split_questions(
    questions: Sequence[Question], seed: int = 0, min_questions: int = 40, min_files: int = 4
) -> QuestionSplit:
    """Half of the questions (by file when they name enough files) as test, the rest as dev."""
    if len(questions) < min_questions:
        return QuestionSplit(list(questions), [], "none")
    per_file = Counter(q.path for q in questions)
    by: SplitBy = "file" if len(per_file) >= min_files else "question"

    def group(q: Question) -> str:
        return q.path if by == "file" else f"{q.path}\0{q.line}\0{q.query}"

    sizes = Counter(group(q) for q in questions)
    order = sorted(sizes, key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest())
    test_groups: set[str] = set()
    filled = 0
    for g in order[:-1]:  # the last group always stays dev: neither side may be empty
        if filled >= len(questions) / 2:
            break
        test_groups.add(g)
        filled += sizes[g]
    out = QuestionSplit(by=by)
    for q in questions:
        (out.test if group(q) in test_groups else out.dev).append(q)
    return out


__all__ = ["QuestionSplit", "SplitBy", "split_questions"]
