"""``ragtune info``: what a model is and how it turns text into a vector."""

from __future__ import annotations

import typer

from ragtune.cli._common import key_value_table, out, print_json
from ragtune.model.resolve import DEFAULT_MODEL


def register(app: typer.Typer) -> None:
    app.command(
        "info",
        epilog="Examples:\n\n  ragtune info\n\n  ragtune info runs/demo/model --json",
    )(info)


def info(
    model: str = typer.Argument(DEFAULT_MODEL, help="Model folder or hub id."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Show layers, dimensions, pooling, normalisation, prompts, max length and parameters."""
    from ragtune.model import Encoder

    details = Encoder.load(model, device="cpu").describe()
    if as_json:
        print_json(details)
    else:
        out.print(key_value_table(f"model {model}", details))
