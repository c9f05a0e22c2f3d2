"""The harness of the hostile-input corpus: run a case's commands, then grade what happened.

:func:`run_case` runs a :class:`Case` (in-process through ``ragtune.cli.main.main``, or as a
subprocess for serve and kill -9) and grades it (:func:`grade_step`, :func:`grade_files`) as a
:class:`Verdict`:

* GOOD: the expected exit code, one line on stderr naming what it must name, no traceback, user
  files intact, nothing left behind;
* WEAK: right exit code and no damage, but the message misses the file/line/field or spans lines;
* BAD: a traceback, a wrong exit code (0 on bad input), a hang, a changed or removed user file, or
  a half-written artefact left behind.

:func:`run_http_case` sends an :class:`HttpCase` to a real ``ragtune serve`` on 127.0.0.1. The
cases themselves are in :mod:`tests.reliability.corpus`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Grade = Literal["GOOD", "WEAK", "BAD"]
GRADES: tuple[Grade, ...] = ("GOOD", "WEAK", "BAD")

# A new path whose name looks like this is a half-written artefact of an interrupted write.
LEFTOVER = re.compile(r"(\.tmp|\.old|\.partial|\.publish|tmp-|-tmp|\.lock$)", re.IGNORECASE)

# Run by ``python -c``: die by SIGKILL just before the N-th rename (argv[1]), then run the CLI.
KILL_SOURCE = """\
import os, signal, sys
_limit, _calls = int(sys.argv.pop(1)), [0]
def _dying(real):
    def rename(*args, **kwargs):
        _calls[0] += 1
        if _calls[0] == _limit:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return rename
os.replace, os.rename = _dying(os.replace), _dying(os.rename)
sys.argv[0] = "ragtune"
from ragtune.cli.main import main
main()
"""


@dataclass(frozen=True)
class Fixtures:
    """Artefacts built once and copied into the cases that need them (never modified)."""

    model: Path  # the tiny random BERT of tests/conftest.py as a model folder
    onnx: Path  # the same model exported to ONNX
    repo: Path  # a small folder of text and code
    index: Path  # ``repo`` indexed with ``model``
    run: Path  # a model trained 4 steps on PAIRS (batch 4, checkpoints at steps 2 and 4)
    broken: dict[str, str] = field(default_factory=dict)
    """Fixtures that could not be built -> why; the cases that copy them are graded BAD."""


class FixtureError(Exception):
    """A case needs a fixture that could not be built (the CLI failed to make it)."""


Setup = Callable[[Path, Fixtures], None]


@dataclass(frozen=True)
class Step:
    """One command of a case. ``argv`` may hold ``{model}``, ``{onnx}`` and ``{port}``."""

    argv: tuple[str, ...]
    exit_code: int | tuple[int, ...] = 1
    names: tuple[str, ...] = ()
    """Words the message must contain (case-insensitive; ``a|b``: either)."""
    stdin: str | None = None
    report: bool = False
    """The command prints a report (``data check``): words are looked for in stdout too and the
    one-line rule does not apply."""
    kill_at: int = 0
    """> 0: run in a subprocess that SIGKILLs itself before its N-th rename; exit not graded."""


@dataclass(frozen=True)
class Case:
    name: str
    area: str
    setup: Setup
    steps: tuple[Step, ...]
    keep: tuple[str, ...] = ()
    """Paths (files or folders, relative) whose bytes must be the same after the steps. When every
    step must fail, the whole folder must be unchanged instead."""
    may_create: tuple[str, ...] = ()
    """Relative paths (and everything under them) a successful step may create."""
    subprocess: bool = False
    """Run by subprocess in the test too (the command serves forever when it does not refuse)."""
    timeout: float = 120.0


@dataclass(frozen=True)
class HttpCase:
    name: str
    path: str
    body: bytes | None
    status: tuple[int, ...]
    names: tuple[str, ...] = ()
    method: str = "POST"
    concurrent_good: int = 0
    """Send this many good requests to the same endpoint at the same time as this one."""
    area: str = "server"


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str
    timed_out: bool = False
    seconds: float = 0.0


@dataclass(frozen=True)
class Verdict:
    name: str
    area: str
    grade: Grade
    reason: str = ""
    seconds: float = 0.0


Runner = Callable[[Step, Path, Fixtures, float], Outcome]


# --- running commands -------------------------------------------------------------------------


class _Timeout(BaseException):
    """SIGALRM in an in-process run; a BaseException, so that no ``except Exception`` eats it."""


def expand(argv: Sequence[str], fx: Fixtures, port: int = 0) -> list[str]:
    values = {"{model}": str(fx.model), "{onnx}": str(fx.onnx), "{port}": str(port or free_port())}
    out = []
    for arg in argv:
        for key, value in values.items():
            arg = arg.replace(key, value)
        out.append(arg)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_in_process(argv: Sequence[str], cwd: Path, stdin: str | None, timeout: float) -> Outcome:
    """``ragtune ARGV`` through ``ragtune.cli.main.main`` in this process, as a user sees it: the
    CLI's own error handling, captured stdout/stderr, an uncaught exception as a traceback."""
    from typer.testing import CliRunner

    from ragtune.cli.main import main

    runner = CliRunner()
    old_cwd, old_argv = Path.cwd(), sys.argv
    start = time.perf_counter()
    code, timed_out, crash = 0, False, ""
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    try:
        os.chdir(cwd)
        with runner.isolation(input=stdin) as (stdout, stderr, _), warnings.catch_warnings():
            warnings.simplefilter("default")  # as the console script runs, not pytest's filters
            sys.argv = ["ragtune", *argv]
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except _Timeout:
                code, timed_out = 124, True
            except BaseException:  # what Python prints for an uncaught exception
                code, crash = 1, traceback.format_exc()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            sys.stdout.flush()
            sys.stderr.flush()
            out_text = stdout.getvalue().decode("utf-8", "replace")
            err_text = stderr.getvalue().decode("utf-8", "replace") + crash
    finally:
        signal.signal(signal.SIGALRM, previous)
        sys.argv = old_argv
        os.chdir(old_cwd)
    return Outcome(code, out_text, err_text, timed_out, time.perf_counter() - start)


def _raise_timeout(signum: int, frame: object) -> None:
    raise _Timeout()


def run_subprocess(
    prefix: Sequence[str],
    argv: Sequence[str],
    cwd: Path,
    stdin: str | None,
    timeout: float,
    kill_at: int = 0,
) -> Outcome:
    """``PREFIX ARGV`` in ``cwd`` (``prefix``: how to start the CLI, e.g. ``["ragtune"]``); with
    ``kill_at``, this interpreter runs the CLI under the SIGKILL-before-the-N-th-rename hook."""
    command = [*prefix, *argv]
    if kill_at:
        command = [sys.executable, "-c", KILL_SOURCE, str(kill_at), *argv]
    env = {**os.environ, "RAGTUNE_PROGRESS": "0", "HF_HUB_OFFLINE": "1"}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=env,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(stdin or "", timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        timed_out = True
    return Outcome(process.returncode, out, err, timed_out, time.perf_counter() - start)


# --- checking what happened -------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` -> the sha256 of its bytes (``<dir>`` for folders)."""
    state: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            state[rel] = "<link>"
        elif path.is_dir():
            state[rel] = "<dir>"
        else:
            state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def _under(rel: str, prefixes: Sequence[str]) -> bool:
    return any(rel == p or rel.startswith(p.rstrip("/") + "/") for p in prefixes)


def _has(text: str, word: str) -> bool:
    return any(alt.lower() in text.lower() for alt in word.split("|"))


def _first_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.lower().startswith("error"):
            return line.strip()
    return lines[-1].strip() if lines else "(nothing on stderr)"


def grade_step(step: Step, outcome: Outcome) -> tuple[Grade, str]:
    """The grade of one command's outcome against what its step expects."""
    expected = step.exit_code if isinstance(step.exit_code, tuple) else (step.exit_code,)
    if outcome.timed_out:
        return "BAD", f"hang: no exit after {outcome.seconds:.0f} s"
    if "Traceback (most recent call last)" in outcome.stderr:
        last = [line for line in outcome.stderr.splitlines() if line.strip()][-1]
        return "BAD", f"traceback: {last.strip()[:160]}"
    if outcome.code not in expected:
        return "BAD", f"exit {outcome.code} (expected {step.exit_code}): {_brief(outcome)}"
    text = outcome.stderr + (outcome.stdout if step.report else "")
    missing = [word for word in step.names if not _has(text, word)]
    if missing:
        return "WEAK", f"message misses {missing}: {_brief(outcome)}"
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    if not step.report and outcome.code == 1 and len(lines) != 1:
        return "WEAK", f"{len(lines)} lines on stderr: {_brief(outcome)}"
    return "GOOD", ""


def _brief(outcome: Outcome) -> str:
    text = _first_error(outcome.stderr)
    if text == "(nothing on stderr)" and outcome.stdout.strip():
        text = "stdout: " + outcome.stdout.strip().splitlines()[0]
    return text[:200]


def grade_files(
    case: Case, before: dict[str, str], after: dict[str, str], said: str = ""
) -> tuple[Grade, str]:
    """Damage and leftovers: a failing case must leave the folder exactly as it was. A leftover of
    an interrupted write is excused when a later command named it (``said``: their stderr)."""
    all_fail = all(
        s.kill_at == 0
        and 0 not in (s.exit_code if isinstance(s.exit_code, tuple) else (s.exit_code,))
        for s in case.steps
    )
    keep = list(before) if all_fail else [p for p in before if _under(p, case.keep)]
    for rel in keep:
        if rel not in after:
            return "BAD", f"user path removed: {rel}"
        if after[rel] != before[rel]:
            return "BAD", f"user file changed: {rel}"
    named: list[str] = []  # leftovers a command named: what is inside them is theirs too
    for rel in after:
        if rel in before or _under(rel, named):
            continue
        if LEFTOVER.search(Path(rel).name):
            if Path(rel).name not in said:
                return "BAD", f"half-written artefact left: {rel}"
            named.append(rel)
            continue
        if all_fail and not _under(rel, case.may_create):
            return "BAD", f"left behind by a refused command: {rel}"
    return "GOOD", ""


def run_case(case: Case, fx: Fixtures, root: Path, runner: Runner) -> Verdict:
    """Set the case up in ``root`` (empty), run its steps with ``runner`` and grade the result."""
    start = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    try:
        case.setup(root, fx)
    except FixtureError as exc:
        return Verdict(case.name, case.area, "BAD", str(exc))
    before = snapshot(root)
    worst: tuple[Grade, str] = ("GOOD", "")
    said = ""
    for number, step in enumerate(case.steps, start=1):
        outcome = runner(step, root, fx, case.timeout)
        said += outcome.stderr
        if step.kill_at:
            continue
        grade, reason = grade_step(step, outcome)
        if len(case.steps) > 1 and reason:
            reason = f"step {number} ({' '.join(step.argv[:1])}): {reason}"
        if GRADES.index(grade) > GRADES.index(worst[0]):
            worst = (grade, reason)
    files = grade_files(case, before, snapshot(root), said)
    if GRADES.index(files[0]) > GRADES.index(worst[0]):
        worst = files
    return Verdict(case.name, case.area, worst[0], worst[1], time.perf_counter() - start)


# --- the HTTP cases ---------------------------------------------------------------------------


@contextlib.contextmanager
def serving(command: Sequence[str], index: Path, cwd: Path) -> Iterator[str]:
    """``COMMAND serve INDEX`` on a free loopback port; yields its base URL once /health answers."""
    import httpx

    port = free_port()
    argv = [*command, "serve", str(index), "--port", str(port), "--log-level", "warning"]
    env = {**os.environ, "RAGTUNE_PROGRESS": "0", "HF_HUB_OFFLINE": "1"}
    log = (cwd / "serve.log").open("w")
    process = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"ragtune serve exited: {(cwd / 'serve.log').read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("ragtune serve did not answer /health in 120 s")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _good_body(path: str, i: int) -> bytes:
    if path == "/search":
        return json.dumps({"query": f"hello world {i}", "k": 2}).encode()
    return json.dumps({"input": [f"good text number {i}"]}).encode()


def run_http_case(case: HttpCase, url: str) -> Verdict:
    """Send the case's request (with its concurrent good ones) and grade the answers."""
    import asyncio

    import httpx

    async def send(client: httpx.AsyncClient, body: bytes | None) -> httpx.Response | str:
        try:
            return await client.request(
                case.method,
                url + case.path,
                content=body,
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"

    async def all_requests() -> list[httpx.Response | str]:
        async with httpx.AsyncClient(timeout=60) as client:
            good = [_good_body(case.path, i) for i in range(case.concurrent_good)]
            half = len(good) // 2
            bodies = [*good[:half], case.body, *good[half:]]
            return await asyncio.gather(*(send(client, b) for b in bodies))

    start = time.perf_counter()
    answers = asyncio.run(all_requests())
    seconds = time.perf_counter() - start
    half = case.concurrent_good // 2
    mine, others = answers[half], answers[:half] + answers[half + 1 :]

    def verdict(grade: Grade, reason: str = "") -> Verdict:
        return Verdict(case.name, case.area, grade, reason, seconds)

    if isinstance(mine, str):
        return verdict("BAD", f"no answer: {mine}")
    text = mine.text[:160].replace("\n", " ")
    if mine.status_code not in case.status:
        return verdict("BAD", f"status {mine.status_code} (expected {case.status}): {text}")
    failed = [a for a in others if isinstance(a, str) or a.status_code != 200]
    if failed:
        first = failed[0] if isinstance(failed[0], str) else f"{failed[0].status_code}"
        return verdict("BAD", f"{len(failed)} of {len(others)} good requests failed ({first})")
    if mine.status_code >= 400:
        if "json" not in mine.headers.get("content-type", ""):
            return verdict("BAD", f"plain-text error: {text}")
        message = json.dumps(mine.json())
        missing = [word for word in case.names if not _has(message, word)]
        if missing:
            return verdict("WEAK", f"message misses {missing}: {text}")
    return verdict("GOOD")
