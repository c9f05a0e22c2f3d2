"""The user's questions: dev decides publishing, test is held out by file when there are enough."""

from __future__ import annotations

from ragtune.tune.inputs import Question
from ragtune.tune.question_split import split_questions


def questions(n: int, files: int) -> list[Question]:
    return [Question(f"question {i}", f"src/f{i % files}.py", i) for i in range(n)]


def test_few_questions_are_all_dev():
    split = split_questions(questions(39, 10))
    assert (len(split.dev), split.test, split.by) == (39, [], "none")


def test_enough_questions_split_by_file_about_half_and_half_the_same_every_time():
    qs = questions(80, 10)
    split = split_questions(qs)
    assert split.by == "file"
    dev_files = {q.path for q in split.dev}
    test_files = {q.path for q in split.test}
    assert not dev_files & test_files  # no file on both sides
    assert len(split.test) == 40 and len(split.dev) == 40  # 8 questions per file
    assert split_questions(list(reversed(qs))).test == list(reversed(split.test))
    assert split_questions(qs, seed=1).test != split.test


def test_questions_about_few_files_split_by_question():
    split = split_questions(questions(40, 2))
    assert split.by == "question"
    assert len(split.test) == 20 and len(split.dev) == 20
    assert set(split.dev).isdisjoint(split.test)
