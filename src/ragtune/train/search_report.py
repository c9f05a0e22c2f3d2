"""What ``recipe: auto`` shows: the plan, every candidate's dev scores and fate, the card lines.

All of it is read from the record the search writes (``run/auto.json``), so the command, the
model card and a later reader see the same table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.table import Table

from ragtune.train.recipe import SearchPlan, Throughput

AUTO_JSON = "auto.json"


def plan_table(plan: SearchPlan, speed: Throughput) -> Table:
    """The candidates before the search, with the plan's estimate."""
    table = Table(
        title=(
            f"recipe auto: {len(plan.candidates)} candidates, rungs "
            f"{', '.join(f'{r:g}' for r in plan.rungs)}; est. {plan.estimated_seconds / 60:.1f} of "
            f"{plan.budget_seconds / 60:.1f} min ({speed.pairs_per_second:.1f} pairs/s measured)"
        )
    )
    for column in ("candidate", "batch", "GradCache", "lr", "epochs"):
        table.add_column(column)
    for c in plan.candidates:
        table.add_row(
            c.name,
            str(c.batch_size),
            str(c.cache_mini_batch_size or "-"),
            f"{c.learning_rate:.1e}",
            str(c.epochs),
        )
    return table


def trials_table(record: Mapping[str, Any]) -> Table:
    """Every candidate's dev score per rung, time and fate (what ``run/auto.json`` holds)."""
    base = record.get("base_dev_score")
    title = f"recipe auto: dev {record['metric']}"
    if base is not None:
        title += f" (base model {base:.4f})"
    table = Table(title=title)
    for column in ("candidate", "dev per rung", "steps", "train s", "status"):
        table.add_column(column)
    for c in record["candidates"]:
        scores = ", ".join(f"{s['dev']:.4f}" for s in c["dev_scores"]) or "-"
        table.add_row(
            c["name"],
            scores,
            f"{c['steps']}/{c['planned_steps']}",
            f"{c['train_seconds']:.0f}",
            _fate(c),
        )
    return table


def search_evidence(run_dir: Path) -> list[str]:
    """Model-card lines with ``run/auto.json``'s candidates (none when the recipe was fixed)."""
    path = run_dir / AUTO_JSON
    if not path.is_file():
        return []
    record = json.loads(path.read_text())
    base = record.get("base_dev_score")
    minutes = record["budget_seconds"] / 60
    lines = [
        f"## Recipe search ({record['metric']} on dev, budget {minutes:g} min)",
        "",
        "Chosen on the dev set only"
        + (f"; the base model scored {base:.4f}." if base is not None else "."),
        "",
        "| candidate | batch | lr | epochs | dev per rung | steps | train s | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in record["candidates"]:
        scores = ", ".join(f"{s['dev']:.4f}" for s in c["dev_scores"]) or "-"
        lines.append(
            f"| {c['name']} | {c['batch_size']} | {c['learning_rate']:.1e} | {c['epochs']} | "
            f"{scores} | {c['steps']}/{c['planned_steps']} | {c['train_seconds']:.0f} | "
            f"{_fate(c)} |"
        )
    if record["plan"].get("reason"):
        lines += ["", record["plan"]["reason"]]
    return [*lines, ""]


def _fate(c: Mapping[str, Any]) -> str:
    again = c.get("replanned")
    return f"{c['status']} (re-planned {again})" if again else str(c["status"])
