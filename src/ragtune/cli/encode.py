"""``ragtune encode``: texts from a file or stdin -> embeddings as .npy or JSONL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import typer

from ragtune.cli._common import read_texts
from ragtune.errors import RagtuneError
from ragtune.io import atomic_write_bytes, atomic_write_text, check_output
from ragtune.model.resolve import DEFAULT_MODEL


def register(app: typer.Typer) -> None:
    app.command(
        "encode",
        epilog=(
            "Examples:\n\n"
            "  echo 'where is the HTTP status line parsed?' | ragtune encode - --kind query\n\n"
            "  ragtune encode docs.jsonl --field text --out docs.npy --batch-size 64\n\n"
            "  ragtune encode docs.jsonl --out docs.npy --precision fp32   (same vectors anywhere)"
        ),
    )(encode)


def encode(
    source: str = typer.Argument(
        ..., help="Text file (one text a line), .jsonl file, or - for stdin."
    ),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Model folder or hub id."),
    out: Path | None = typer.Option(None, "--out", "-o", help=".npy or .jsonl; stdout if omitted."),
    kind: str = typer.Option("none", help="Apply the model's prompt: query, document or none."),
    field: str = typer.Option("text", help="Field to read from .jsonl input."),
    batch_size: int = typer.Option(32, help="Texts per forward pass."),
    layer: int | None = typer.Option(None, help="Pool from this layer instead of the last."),
    no_normalize: bool = typer.Option(False, "--no-normalize", help="Skip L2 normalisation."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
    precision: str = typer.Option(
        "auto",
        help="auto (bf16 where this CPU runs it faster and the model's vectors agree), fp32, bf16.",
    ),
) -> None:
    """Embed texts with a model and write the vectors (float32)."""
    from ragtune.model import load_model
    from ragtune.model.precision import PRECISIONS, set_encode_precision

    if kind not in ("query", "document", "none"):
        raise RagtuneError(f"unknown --kind {kind!r}; choose query, document or none")
    if batch_size < 1:
        raise RagtuneError(f"--batch-size must be at least 1, got {batch_size}")
    if layer is not None and layer < 1:
        raise RagtuneError(f"--layer counts from 1 (the first layer), got {layer}")
    if precision not in PRECISIONS:
        raise RagtuneError(f"unknown --precision {precision!r}; choose {', '.join(PRECISIONS)}")
    if out is not None:  # before the model loads
        check_output(out, "embeddings", overwrite=overwrite, is_file=True)
    texts = read_texts(source, field=field)
    encoder = load_model(model, layer=layer)
    set_encode_precision(encoder, precision)
    options: dict[str, Any] = {
        "batch_size": batch_size,
        "normalize": False if no_normalize else None,
    }
    kind_literal: Literal["query", "document", "none"] = kind  # type: ignore[assignment]
    if kind_literal == "query":
        vectors = encoder.encode_queries(texts, **options)
    elif kind_literal == "document":
        vectors = encoder.encode_documents(texts, **options)
    else:
        vectors = encoder.encode(texts, **options)
    if out is not None and out.suffix == ".npy":
        import io

        buffer = io.BytesIO()
        np.save(buffer, vectors)
        atomic_write_bytes(out, buffer.getvalue())
        return
    lines = "".join(
        json.dumps({"text": t, "embedding": [round(float(x), 7) for x in v]}) + "\n"
        for t, v in zip(texts, vectors)
    )
    if out is None:
        typer.echo(lines, nl=False)
    elif out.suffix == ".jsonl":
        atomic_write_text(out, lines)
    else:
        raise RagtuneError(f"--out must end in .npy or .jsonl, got {out.name!r}")
