"""``ragtune demo``: the main job, start to finish, on data every machine has."""

from __future__ import annotations

import typer

from ragtune.cli._common import renamed


def register(app: typer.Typer) -> None:
    app.command(
        "demo",
        epilog=(
            "Examples:\n\n  ragtune demo\n\n  ragtune demo --out runs/demo2 --epochs 2\n\n"
            "  ragtune demo --max-train 500   # a quicker look"
        ),
    )(demo)


def demo(
    output: str | None = typer.Option(
        None, "--out", "-o", help="Where everything goes.", show_default="runs/demo"
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="Base model (default: bundled)."),
    epochs: int = typer.Option(1, help="Training epochs."),
    max_train: int | None = typer.Option(None, help="Use at most this many training pairs."),
    max_seq_length: int = typer.Option(128, help="Tokens per text for training and evaluation."),
    old_output: str | None = typer.Option(None, "--output", hidden=True),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace --out even when it is not an earlier demo."
    ),
) -> None:
    """Build the stdlib code-search set, evaluate base + BM25, fine-tune, evaluate, search."""
    from ragtune.demo import DemoConfig, run_demo
    from ragtune.model.cpu import cpu_memory_policy
    from ragtune.model.encoder import default_device
    from ragtune.model.resolve import DEFAULT_MODEL
    from ragtune.train import TrainConfig

    output = renamed(output, old_output, "--out", "--output")
    # The demo builds its TrainConfig only after data and baselines: check these values now.
    TrainConfig(epochs=epochs, max_seq_length=max_seq_length)
    # The demo trains with TrainConfig's malloc policy; the command sets it for the whole run.
    with cpu_memory_policy(TrainConfig.cpu_memory, device=default_device().type):
        result = run_demo(
            DemoConfig(
                output=DemoConfig.output if output is None else output,
                model=model or DEFAULT_MODEL,
                epochs=epochs,
                max_train=max_train,
                max_seq_length=max_seq_length,
                overwrite=overwrite,
            )
        )
    if not result.improved:
        raise typer.Exit(code=2)
