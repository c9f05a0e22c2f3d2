"""``ragtune demo``: the main job, start to finish, on data every machine has."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command(
        "demo",
        epilog=(
            "Examples:\n\n  ragtune demo\n\n  ragtune demo --output runs/demo2 --epochs 2\n\n"
            "  ragtune demo --max-train 500   # a quicker look"
        ),
    )(demo)


def demo(
    output: str = typer.Option("runs/demo", "--output", "-o", help="Where everything goes."),
    model: str | None = typer.Option(None, "--model", "-m", help="Base model (default: bundled)."),
    epochs: int = typer.Option(1, help="Training epochs."),
    max_train: int | None = typer.Option(None, help="Use at most this many training pairs."),
    max_seq_length: int = typer.Option(128, help="Tokens per text for training and evaluation."),
) -> None:
    """Build the stdlib code-search set, evaluate base + BM25, fine-tune, evaluate, search."""
    from ragtune.demo import DemoConfig, run_demo
    from ragtune.model.resolve import DEFAULT_MODEL

    result = run_demo(
        DemoConfig(
            output=output,
            model=model or DEFAULT_MODEL,
            epochs=epochs,
            max_train=max_train,
            max_seq_length=max_seq_length,
        )
    )
    if not result.improved:
        raise typer.Exit(code=2)
