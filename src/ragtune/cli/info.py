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
    """Show layers, dimensions, pooling, normalisation, prompts, max length and parameters,
    and how this machine runs the model (fused CPU encoding, training precision and memory)."""
    import torch

    from ragtune.model import Encoder, enable_cpu_fast_paths, load_model
    from ragtune.model.cpu import memory
    from ragtune.model.precision import autocast_dtype

    encoder = load_model(model, device="cpu")
    details = encoder.describe()
    # How this machine will run it: the fused fp32 CPU encoder (checked on this model, as the
    # first encode checks it), what precision=auto trains in and the train command's malloc.
    if isinstance(encoder, Encoder):
        paths = enable_cpu_fast_paths(encoder, training=False)
        details["fused_cpu_inference"] = paths.describe()["fused_inference"]
    cpu_auto = autocast_dtype("auto", torch.device("cpu"), training=True)
    details["cpu_training_precision"] = (
        "bf16 autocast where a step of the run's pairs runs faster, else fp32 (timed at the start)"
        if cpu_auto
        else "fp32"
    )
    details["cpu_training_memory"] = (
        "reuse (glibc: freed activations kept for the next step)"
        if memory.adjustable()
        else "system (not glibc: left to the C library)"
    )
    if as_json:
        print_json(details)
    else:
        out.print(key_value_table(f"model {model}", details))
