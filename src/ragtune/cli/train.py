"""``ragtune train``: fine-tune an embedding model on pairs, triplets or labelled pairs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ragtune.cli._common import key_value_table, out, print_json, renamed

if TYPE_CHECKING:
    from ragtune.train import TrainResult


def register(app: typer.Typer) -> None:
    app.command(
        "train",
        epilog=(
            "Examples:\n\n"
            "  ragtune train --data pairs.jsonl --out runs/mine   # recipe auto, budget 30m\n\n"
            "  ragtune train --data ../scifact --out runs/scifact --budget 1h\n\n"
            "  ragtune train --data pairs.jsonl --recipe fixed --batch-size 64 --epochs 3 "
            "--out runs/fixed\n\n"
            "  ragtune train --data ../scifact --eval-data ../scifact --eval-split test "
            "--loss infonce --batch-size 64 --epochs 1 --out runs/scifact\n\n"
            "  ragtune train --config configs/scifact.yaml --set learning_rate=3e-5 "
            "--set loss.scale=30\n\n"
            "  ragtune train --config configs/scifact.yaml --resume"
        ),
    )(train)


def train(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML or TOML config file."),
    model: str | None = typer.Option(None, "--model", "-m", help="Base model folder or hub id."),
    data: str | None = typer.Option(None, "--data", "-d", help="Training file or BEIR folder."),
    eval_data: str | None = typer.Option(None, help="BEIR folder to evaluate on while training."),
    eval_split: str | None = typer.Option(None, help="qrels split of --eval-data (default dev)."),
    loss: str | None = typer.Option(
        None, help="infonce, triplet, contrastive, online_contrastive or cosine."
    ),
    batch_size: int | None = typer.Option(None, help="Examples per batch (per process)."),
    epochs: int | None = typer.Option(None, help="Passes over the data."),
    max_steps: int | None = typer.Option(None, help="Stop after this many optimizer steps."),
    learning_rate: float | None = typer.Option(None, "--learning-rate", help="Peak learning rate."),
    output: str | None = typer.Option(None, "--out", "-o", help="Model folder to write."),
    query_column: str | None = typer.Option(None, help="Column holding the query."),
    positive_column: str | None = typer.Option(None, help="Column holding the positive."),
    recipe: str | None = typer.Option(
        None,
        help="auto (the default): search batch size, learning rate, epochs and mined hard "
        "negatives on a held-out dev set within --budget (settings you give stay fixed; data "
        "too small to search train as fixed); fixed: train exactly the settings given "
        "(batch 32, 1 epoch, lr 2e-5 unless set).",
    ),
    budget: str | None = typer.Option(
        None, help="Time budget of --recipe auto (default 30m): 30m, 1h, 900s."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint."),
    overrides: list[str] = typer.Option([], "--set", help="Any config field: key=value."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    old_lr: float | None = typer.Option(None, "--lr", hidden=True),
    old_output: str | None = typer.Option(None, "--output", hidden=True),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace --out even when it is not a ragtune model."
    ),
) -> None:
    """Train pairs -> embeddings -> loss -> backprop; publish the best model by the dev metric."""
    from ragtune.config import load_config
    from ragtune.train import TrainConfig
    from ragtune.train import train as run_training

    values = {
        "model": model,
        "data": data,
        "eval_data": eval_data,
        "eval_split": eval_split,
        "batch_size": batch_size,
        "epochs": epochs,
        "max_steps": max_steps,
        "learning_rate": renamed(learning_rate, old_lr, "--learning-rate", "--lr"),
        "output": renamed(output, old_output, "--out", "--output"),
        "query_column": query_column,
        "positive_column": positive_column,
        "resume": resume or None,
        "recipe": recipe,
        "budget": budget,
    }
    if loss is not None:
        overrides = [f"loss.name={loss}", *overrides]
    cfg = load_config(TrainConfig, config, overrides, **values)
    if not cfg.data:
        from ragtune.errors import RagtuneError

        raise RagtuneError(
            "no training data: pass --data FILE_OR_BEIR_FOLDER (or data: in --config)"
        )
    from ragtune.io import claim_output

    sources = cfg.local_sources()
    claim_output(cfg.output, "model", overwrite=overwrite, sources=sources)  # before the model
    from ragtune.model.cpu import cpu_memory_policy
    from ragtune.model.encoder import default_device

    # The process's malloc policy is the command's to set (TrainConfig.cpu_memory), not train()'s.
    with cpu_memory_policy(cfg.cpu_memory, device=default_device().type):
        result = run_training(cfg)
    summary = result_summary(result)
    if as_json:
        print_json(summary)
    else:
        rows = {k.replace("_", " "): v for k, v in summary.items() if k != "history"}
        rows["gate"] = result.gate.reason if result.gate is not None else "not run"
        rows["mix scores"] = ", ".join(f"a={a:g}: {s:.4f}" for a, s in result.mix_scores) or "-"
        rows["general checks"] = (
            "; ".join(
                f"{c.name} {c.metric} {c.before:.4f} -> {c.after:.4f} ({c.delta:+.4f})"
                for c in result.general_checks
            )
            or "-"
        )
        out.print(key_value_table("training finished", rows))
        auto = Path(cfg.output) / "run" / "auto.json"
        if cfg.recipe == "auto" and auto.is_file():  # the search's candidates, as run/auto.json
            from ragtune.train.auto import trials_table

            out.print(trials_table(json.loads(auto.read_text())))


def result_summary(result: TrainResult) -> dict[str, Any]:
    """A :class:`~ragtune.train.TrainResult` as ``{field name: value}`` for ``--json``.

    The keys are the result's own field names (``base_score``, ``pairs_per_second``), so a script
    reads the same names from ``--json`` as from Python; the table shows them with spaces.
    """
    summary = result.to_dict()  # nested results (gate, general checks) as plain dicts
    summary["output"] = str(summary["output"])
    summary["seconds"] = round(summary["seconds"], 1)
    summary["pairs_per_second"] = round(summary["pairs_per_second"], 2)
    return summary
