"""The report of a ``tune`` run for people: Markdown and a PNG beside its JSON (``tune.json``).

``tune.md`` says what was read and skipped, what each generator wrote (examples with where they
point), what each filter removed, how the pairs were split and used, and base vs tuned vs BM25
on every evaluation set: the held-out pseudo-queries, each generator's share of them, and the
user's questions (dev and test). ``tune.png`` draws the same scores: one panel per evaluation
set, one per generator. Everything comes from the run's summary (``tune.json``), so the report
can be rebuilt from it alone.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ragtune.io import atomic_write_bytes, atomic_write_text
from ragtune.tune.budget import TrainingPlan
from ragtune.tune.selection import describe_selection

SYSTEMS = ("BM25", "base", "tuned")
METRIC = "nDCG@10"


def evaluation_sets(summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    """nDCG@10 of each system on each evaluation set of the run, in report order."""
    sets = {"held-out pseudo-queries": _scores(summary["test"])}
    questions = summary.get("questions") or {}
    for part in ("dev", "test"):
        if part in questions:
            sets[f"your questions ({part})"] = _scores(questions[part])
    return sets


def tune_markdown(summary: dict[str, Any]) -> str:
    """The whole run as Markdown (see the module docstring)."""
    inp = summary["input"]
    lines = [
        "# ragtune tune",
        "",
        f"{inp['chunks']} chunks from {inp['files']} files in {summary['seconds']:.0f} s.",
        "",
        "## Evaluation (nDCG@10)",
        "",
        "| evaluation set | " + " | ".join(SYSTEMS) + " |",
        "|---|" + "---:|" * len(SYSTEMS),
    ]
    for name, scores in evaluation_sets(summary).items():
        lines.append(f"| {name} | " + " | ".join(_cell(scores, s) for s in SYSTEMS) + " |")
    for name, row in summary.get("per_generator", {}).items():
        cells = " | ".join(_cell(row, s) for s in SYSTEMS)
        lines.append(f"| held-out, {name} ({row['queries']} queries) | {cells} |")
    training = summary.get("training", {})
    lines += [
        "",
        f"Training: {training.get('steps', 0)} steps in {training.get('seconds', 0)} s; "
        f"dev {_num(training.get('dev_base'))} -> {_num(training.get('dev_best'))}; "
        + ("published." if training.get("improved") else "not better on dev: base kept."),
    ]
    if training.get("plan"):
        plan = TrainingPlan.from_json(training["plan"])
        lines += ["", f"Budget: {plan.describe()}; the run took {summary.get('seconds', 0)} s."]
        if training.get("selection"):
            lines[-1] += f" Examples: {describe_selection(training['selection'])}."
    if training.get("gate"):
        lines += ["", f"Gate: {training['gate']}."]
    strata = training.get("gate_strata") or []
    if strata:
        lines += [
            "",
            "| dev queries of | n | gain | 95% interval | p | verdict |",
            "|---|---:|---:|---|---:|---|",
        ]
        for st in strata:
            lines.append(
                f"| {st['name']} | {st['n']} | {st['gain']:+.4f} | "
                f"[{st['low']:+.4f}, {st['high']:+.4f}] | {st['p_value']:.3g} | {st['verdict']} |"
            )
    note = (summary.get("questions") or {}).get("note")
    if note:
        lines += ["", f"Your questions: {note}."]
    lines += ["", "## Pairs per generator and filter", ""]
    cols = ("generated", "duplicates", "round_trip_removed", "kept", "train", "dev", "test")
    lines += ["| generator | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, row in summary.get("counts", {}).items():
        lines.append(f"| {name} | " + " | ".join(str(row.get(c, 0)) for c in cols) + " |")
    lines += ["", "## Examples", ""]
    for name, info in summary["generators"].items():
        for ex in info.get("examples", []):
            lines.append(f"- **{name}** `{ex['at']}`: {_md(ex['query'])}")
    lines += ["", "## Skipped", ""]
    if inp.get("skipped"):
        lines.append("Files not read: " + _pairs(inp["skipped"]) + ".")
    if inp.get("code_files_without_pairs"):
        lines.append(
            "Code files no generator found a query in (no docstring or doc comment above a "
            "definition), by suffix: " + _pairs(inp["code_files_without_pairs"]) + "."
        )
    for name, info in summary["generators"].items():
        if info.get("skipped"):
            lines.append(f"- {name}: " + _pairs(info["skipped"]))
        if "llm" in info:
            llm = info["llm"]
            lines.append(
                f"- {name} endpoint: {llm['chunks_asked']} chunks asked, {llm['cache_hits']} "
                f"from the cache, {llm['failures']} failed, {llm['bad_answers']} bad answers"
            )
    return "\n".join(lines) + "\n"


def tune_plot_png(summary: dict[str, Any]) -> bytes:
    """Bars of BM25, base and tuned nDCG@10: per evaluation set (left), per generator (right)."""
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import

    sets = evaluation_sets(summary)
    gens = {
        name: _scores(row) | {"queries": row["queries"]}
        for name, row in summary.get("per_generator", {}).items()
    }
    panels = [("evaluation sets", sets)] + ([("held-out, per generator", gens)] if gens else [])
    widths = [max(2, len(p[1])) for p in panels]
    fig = Figure(figsize=(2.0 + 1.4 * sum(widths), 4.6), layout="constrained")
    axes = fig.subplots(1, len(panels), width_ratios=widths, squeeze=False)[0]
    for ax, (title, groups) in zip(axes, panels, strict=True):
        names = list(groups)
        width = 0.8 / len(SYSTEMS)
        for i, system in enumerate(SYSTEMS):
            values = [groups[n].get(system, 0.0) for n in names]
            x = [j + (i - 1) * width for j in range(len(names))]
            bars = ax.bar(x, values, width, label=system)
            ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=1)
        ax.set_xticks(range(len(names)), [n.replace(" (", "\n(") for n in names], fontsize=8)
        ax.set_ylim(0, 1.08)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(METRIC)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center", ncols=3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def save_tune_report(folder: str | Path, summary: dict[str, Any]) -> list[Path]:
    """Write ``tune.md`` and ``tune.png`` into ``folder`` (each atomically)."""
    folder = Path(folder)
    written = [folder / "tune.md", folder / "tune.png"]
    atomic_write_text(written[0], tune_markdown(summary))
    atomic_write_bytes(written[1], tune_plot_png(summary))
    return written


def _scores(by_system: dict[str, Any]) -> dict[str, float]:
    out = {}
    for system in SYSTEMS:
        value = by_system.get(system)
        if isinstance(value, dict):
            value = value.get(METRIC)
        if isinstance(value, int | float):
            out[system] = float(value)
    return out


def _cell(scores: dict[str, Any], system: str) -> str:
    value = _scores(scores).get(system)
    return "" if value is None else f"{value:.4f}"


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def _md(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


__all__ = ["evaluation_sets", "save_tune_report", "tune_markdown", "tune_plot_png"]
