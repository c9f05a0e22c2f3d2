"""``ragtune train``: fine-tune an embedding model on pairs, triplets or labelled pairs."""

from __future__ import annotations

from pathlib import Path

import typer

from ragtune.cli._common import key_value_table, out, print_json


def register(app: typer.Typer) -> None:
    app.command(
        "train",
        epilog=(
            "Examples:\n\n"
            "  ragtune train --data pairs.jsonl --output runs/mine\n\n"
            "  ragtune train --data ../scifact --eval-data ../scifact --eval-split test "
            "--loss infonce --batch-size 64 --epochs 1 --output runs/scifact\n\n"
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
    learning_rate: float | None = typer.Option(None, "--lr", help="Peak learning rate."),
    output: str | None = typer.Option(None, "--output", "-o", help="Model folder to write."),
    query_column: str | None = typer.Option(None, help="Column holding the query."),
    positive_column: str | None = typer.Option(None, help="Column holding the positive."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint."),
    overrides: list[str] = typer.Option([], "--set", help="Any config field: key=value."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
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
        "learning_rate": learning_rate,
        "output": output,
        "query_column": query_column,
        "positive_column": positive_column,
        "resume": resume or None,
    }
    if loss is not None:
        overrides = [f"loss.name={loss}", *overrides]
    cfg = load_config(TrainConfig, config, overrides, **values)
    if not cfg.data:
        from ragtune.errors import RagtuneError

        raise RagtuneError(
            "no training data: pass --data FILE_OR_BEIR_FOLDER (or data: in --config)"
        )
    result = run_training(cfg)
    summary = {
        "output": str(result.output),
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "pairs/s": round(result.pairs_per_second, 2),
        "metric": result.metric,
        "base": result.base_score,
        "best": result.best_score,
        "best step": result.best_step,
        "improved over base": result.improved,
    }
    if as_json:
        print_json(summary)
    else:
        out.print(key_value_table("training finished", summary))
