"""Every hostile input of the corpus gets one clear line, damages nothing and leaves nothing.

The CLI cases run in this process through ``ragtune.cli.main.main`` (its own error handling, so
the output is what a user sees); commands that would serve forever, and the kill -9 steps, run as
subprocesses. The HTTP cases go to one real ``ragtune serve`` on 127.0.0.1. The grader itself is
tested first, so that a GOOD from the corpus means something.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.corpus import CASES, HTTP_CASES, build_fixtures
from tests.reliability.harness import (
    Case,
    Fixtures,
    HttpCase,
    Outcome,
    Runner,
    Step,
    expand,
    grade_files,
    grade_step,
    run_case,
    run_http_case,
    run_in_process,
    run_subprocess,
    serving,
)

PREFIX = (sys.executable, "-m", "ragtune.cli.main")


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Fixtures:
    return build_fixtures(tmp_path_factory.mktemp("hostile") / "fixtures")


def runner_for(case: Case) -> Runner:
    """In this process, except for serve (it would not return) and kill -9 steps."""

    def run(step: Step, root: Path, fx: Fixtures, timeout: float) -> Outcome:
        argv = expand(step.argv, fx)
        if case.subprocess or step.kill_at:
            return run_subprocess(PREFIX, argv, root, step.stdin, timeout, step.kill_at)
        return run_in_process(argv, root, step.stdin, timeout)

    return run


# --- the grader -------------------------------------------------------------------------------

REFUSE = Step(("train", "--data", "pairs.jsonl"), 1, ("pairs.jsonl:2", "query"))


def test_a_one_line_error_naming_file_line_and_field_is_good():
    line = "error: pairs.jsonl:2: missing or non-string text (field 'query')\n"
    assert grade_step(REFUSE, Outcome(1, "", line)) == ("GOOD", "")


def test_exit_0_on_bad_input_a_traceback_or_a_hang_is_bad():
    assert grade_step(REFUSE, Outcome(0, "done", "")) == (
        "BAD",
        "exit 0 (expected 1): stdout: done",
    )
    crash = "Traceback (most recent call last):\n  File x\nValueError: nan\n"
    assert grade_step(REFUSE, Outcome(1, "", crash)) == ("BAD", "traceback: ValueError: nan")
    assert grade_step(REFUSE, Outcome(124, "", "", timed_out=True, seconds=30)) == (
        "BAD",
        "hang: no exit after 30 s",
    )


def test_a_message_missing_the_line_or_spanning_lines_is_weak():
    assert grade_step(REFUSE, Outcome(1, "", "error: pairs.jsonl: bad query\n")) == (
        "WEAK",
        "message misses ['pairs.jsonl:2']: error: pairs.jsonl: bad query",
    )
    two = "loading model\nerror: pairs.jsonl:2: bad query\n"
    assert grade_step(REFUSE, Outcome(1, "", two)) == (
        "WEAK",
        "2 lines on stderr: error: pairs.jsonl:2: bad query",
    )


def test_a_refused_command_must_leave_the_folder_as_it_was():
    case = Case("c", "output", lambda root, fx: None, (REFUSE,))
    before = {"mine": "<dir>", "mine/notes.txt": "aaa"}
    assert grade_files(case, before, dict(before)) == ("GOOD", "")
    assert grade_files(case, before, {"mine": "<dir>", "mine/notes.txt": "bbb"}) == (
        "BAD",
        "user file changed: mine/notes.txt",
    )
    assert grade_files(case, before, {"mine": "<dir>"}) == (
        "BAD",
        "user path removed: mine/notes.txt",
    )
    assert grade_files(case, before, {**before, "out": "<dir>"}) == (
        "BAD",
        "left behind by a refused command: out",
    )
    rerun = Case("r", "kill", lambda root, fx: None, (Step(("index",), 0),))
    assert grade_files(rerun, before, {**before, "idx.tmp-1": "<dir>"}) == (
        "BAD",
        "half-written artefact left: idx.tmp-1",
    )


def test_a_kill_step_dies_by_sigkill_before_its_first_rename(fixtures: Fixtures, tmp_path):
    argv = ["encode", "-", "--model", str(fixtures.model), "--out", "v.npy"]
    outcome = run_subprocess(PREFIX, argv, tmp_path, "hello\n", 300, kill_at=1)
    assert outcome.code == -signal.SIGKILL
    assert not (tmp_path / "v.npy").exists()


def test_in_process_runs_show_what_the_console_script_shows(tmp_path):
    (tmp_path / "texts.jsonl").write_text('{"text": "ok"}\n{"text": \n')
    outcome = run_in_process(["encode", "texts.jsonl"], tmp_path, None, 120)
    assert (outcome.code, outcome.stderr) == (
        1,
        "error: texts.jsonl:2: malformed JSON (Expecting value)\n",
    )


# --- the corpus -------------------------------------------------------------------------------


def test_the_corpus_is_large_and_names_are_unique():
    names = [c.name for c in CASES] + [c.name for c in HTTP_CASES]
    assert len(CASES) + len(HTTP_CASES) >= 130
    assert len(names) == len(set(names))


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.area}/{c.name}")
def test_hostile_input_is_refused_cleanly(case: Case, fixtures: Fixtures, tmp_path: Path):
    verdict = run_case(case, fixtures, tmp_path / "work", runner_for(case))
    assert verdict.grade == "GOOD", f"{verdict.grade}: {verdict.reason}"


@pytest.fixture(scope="module")
def server(fixtures: Fixtures, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(PREFIX, fixtures.index, tmp_path_factory.mktemp("serve")) as url:
        yield url


@pytest.mark.parametrize("case", HTTP_CASES, ids=lambda c: f"server/{c.name}")
def test_hostile_request_fails_alone_with_json(case: HttpCase, server: str):
    verdict = run_http_case(case, server)
    assert verdict.grade == "GOOD", f"{verdict.grade}: {verdict.reason}"
