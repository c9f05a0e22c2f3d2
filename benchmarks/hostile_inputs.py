"""Run the hostile-input corpus against the installed ``ragtune`` CLI and grade every case.

Each case of ``tests/reliability/corpus.py`` runs in its own empty folder, by subprocess (two at a
time), and is graded GOOD / WEAK / BAD (see the corpus for the rules); the HTTP cases go to one
``ragtune serve`` on 127.0.0.1. Prints a table of the grades by area and every case that is not
GOOD with its reason, and writes the whole result as JSON.

    python benchmarks/hostile_inputs.py                      # all cases
    python benchmarks/hostile_inputs.py --area config --area data
    python benchmarks/hostile_inputs.py --name 'jsonl-*' --workers 1

Kill -9 steps run this interpreter's ``ragtune`` package under a hook that SIGKILLs the command
before its N-th rename, so install the CLI into the environment that runs this script.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the corpus lives in the tests package

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from tests.reliability.corpus import CASES, HTTP_CASES, build_fixtures  # noqa: E402
from tests.reliability.harness import (  # noqa: E402
    GRADES,
    Case,
    Fixtures,
    Outcome,
    Step,
    Verdict,
    expand,
    run_case,
    run_http_case,
    run_subprocess,
    serving,
)

RESULTS = REPO / "benchmarks" / "results" / "hostile_inputs.json"


def cli_prefix() -> list[str]:
    """The installed console script, or this interpreter's module when it is not on PATH."""
    found = shutil.which("ragtune")
    return [found] if found else [sys.executable, "-m", "ragtune.cli.main"]


def run_one(case: Case, fx: Fixtures, scratch: Path, prefix: list[str]) -> Verdict:
    def runner(step: Step, root: Path, fixtures: Fixtures, timeout: float) -> Outcome:
        argv = expand(step.argv, fixtures)
        return run_subprocess(prefix, argv, root, step.stdin, timeout, step.kill_at)

    root = Path(tempfile.mkdtemp(prefix=f"{case.name}-", dir=scratch))
    try:
        return run_case(case, fx, root / "work", runner)
    except Exception as exc:  # a broken setup is reported, never hides the other cases
        return Verdict(case.name, case.area, "BAD", f"harness: {type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="Cases run at the same time.")
    parser.add_argument("--area", action="append", default=[], help="Only this area (repeat).")
    parser.add_argument("--name", action="append", default=[], help="Only names matching this.")
    parser.add_argument("--no-http", action="store_true", help="Skip the HTTP cases.")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON file to write.")
    args = parser.parse_args()

    def wanted(name: str, area: str) -> bool:
        return (not args.area or area in args.area) and (
            not args.name or any(fnmatch.fnmatch(name, p) for p in args.name)
        )

    cases = [c for c in CASES if wanted(c.name, c.area)]
    http_cases = [] if args.no_http else [c for c in HTTP_CASES if wanted(c.name, c.area)]
    prefix = cli_prefix()
    console = Console(stderr=True)
    start = time.perf_counter()
    verdicts: list[Verdict] = []
    with tempfile.TemporaryDirectory(prefix="ragtune-hostile-") as tmp:
        scratch = Path(tmp)
        console.print(f"building fixtures; then {len(cases) + len(http_cases)} cases")
        fx = build_fixtures(scratch / "fixtures")
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            jobs = [pool.submit(run_one, case, fx, scratch, prefix) for case in cases]
            for done, job in enumerate(jobs, start=1):
                verdicts.append(job.result())
                if done % 20 == 0:
                    console.print(f"{done}/{len(jobs)} CLI cases")
        if http_cases:
            try:
                with serving(prefix, fx.index, scratch) as url:
                    verdicts += [run_http_case(case, url) for case in http_cases]
            except RuntimeError as exc:
                reason = f"server did not start: {str(exc)[-200:]}"
                verdicts += [Verdict(c.name, c.area, "BAD", reason) for c in http_cases]
    seconds = time.perf_counter() - start
    print_report(verdicts, seconds)
    write_json(args.out, verdicts, seconds, prefix)


def print_report(verdicts: list[Verdict], seconds: float) -> None:
    out = Console()
    counts = Counter((v.area, v.grade) for v in verdicts)
    areas = sorted({v.area for v in verdicts})
    table = Table(title=f"hostile inputs: {len(verdicts)} cases in {seconds:.0f} s")
    table.add_column("area")
    for grade in GRADES:
        table.add_column(grade, justify="right")
    for area in areas:
        table.add_row(area, *(str(counts[(area, g)]) for g in GRADES))
    totals = Counter(v.grade for v in verdicts)
    table.add_row("all", *(str(totals[g]) for g in GRADES), style="bold")
    out.print(table)
    for verdict in sorted(verdicts, key=lambda v: (GRADES.index(v.grade), v.area, v.name)):
        if verdict.grade != "GOOD":
            out.print(f"{verdict.grade:4}  {verdict.area}/{verdict.name}: {verdict.reason}",
                      markup=False, highlight=False, soft_wrap=True)  # fmt: skip


def write_json(path: Path, verdicts: list[Verdict], seconds: float, prefix: list[str]) -> None:
    totals = Counter(v.grade for v in verdicts)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cli": " ".join(Path(p).name for p in prefix),
        "seconds": round(seconds, 1),
        "counts": {g: totals[g] for g in GRADES},
        "by_area": {
            area: {g: sum(v.area == area and v.grade == g for v in verdicts) for g in GRADES}
            for area in sorted({v.area for v in verdicts})
        },
        "cases": [
            {
                "name": v.name,
                "area": v.area,
                "grade": v.grade,
                "reason": v.reason,
                "seconds": round(v.seconds, 2),
            }
            for v in verdicts
        ],  # fmt: skip
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    Console(stderr=True).print(f"wrote {path}")


if __name__ == "__main__":
    main()
