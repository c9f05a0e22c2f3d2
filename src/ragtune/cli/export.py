"""``ragtune export``: write a model as a self-describing ONNX Runtime folder, fp32 or int8."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ragtune.cli._common import key_value_table, out, print_json
from ragtune.errors import RagtuneError


def register(app: typer.Typer) -> None:
    app.command(
        "export",
        epilog=(
            "Examples:\n\n"
            "  ragtune export runs/demo/model --format onnx --out runs/demo/model-onnx\n\n"
            "  ragtune export sentence-transformers/all-MiniLM-L6-v2 --format onnx "
            "--quantize int8 --out minilm-int8\n\n"
            "  ragtune export runs/demo/model --format onnx --layer 4 --out small-onnx --json\n\n"
            "The folder holds model.onnx (the int8 graph when --quantize int8), the tokenizer and "
            "ragtune.json; pooling and normalisation are inside the graph."
        ),
    )(export)


def export(
    model: str = typer.Argument(..., help="Model folder or hub id to export."),
    fmt: str = typer.Option("onnx", "--format", help="Export format: onnx."),
    quantize: str = typer.Option(
        "none",
        help="Weights: none (fp32), int8 (dynamic; FFN down-projections kept fp32 for fidelity) "
        "or int8-all (every MatMul int8: fastest).",
    ),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder to write (replaced atomically)."),
    layer: int | None = typer.Option(None, help="Export truncated at this layer."),
    opset: int = typer.Option(17, help="ONNX opset version."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace --out even when it is not a ragtune ONNX export."
    ),
) -> None:
    """Export a model to ONNX and check its vectors against PyTorch on sample sentences."""
    from ragtune.io import check_output
    from ragtune.model import Encoder
    from ragtune.model.export import (
        SAMPLE_TEXTS,
        check_opset,
        export_onnx,
        exported_files,
        parity,
    )
    from ragtune.model.onnx import QUANTIZATIONS, OnnxEncoder, is_onnx_folder

    if fmt != "onnx":
        raise RagtuneError(f"unknown --format {fmt!r}; choose onnx")
    if quantize not in QUANTIZATIONS:
        raise RagtuneError(f"unknown --quantize {quantize!r}; choose {', '.join(QUANTIZATIONS)}")
    if is_onnx_folder(model):
        raise RagtuneError(f"{model} is already an ONNX export; export from the PyTorch model")
    check_opset(opset)
    check_output(out_dir, "onnx-model", overwrite=overwrite, sources=[model])  # before the model
    encoder = Encoder.load(model, layer=layer, device="cpu")
    folder = export_onnx(
        encoder,
        out_dir,
        quantize=quantize,  # type: ignore[arg-type]
        opset=opset,
        overwrite=overwrite,
    )
    check = parity(encoder, OnnxEncoder.load(folder))
    files = exported_files(folder)
    if as_json:
        print_json(
            {
                "folder": str(folder),
                "format": fmt,
                "quantization": quantize,
                "files": [{"name": name, "bytes": size} for name, size in files],
                "parity": {**check, "texts": len(SAMPLE_TEXTS)},
            }
        )
        return
    table = Table(title=f"{folder} ({fmt}, {'fp32' if quantize == 'none' else quantize})")
    table.add_column("file")
    table.add_column("size", justify="right")
    for name, size in files:
        table.add_row(name, _human(size))
    out.print(table)
    out.print(
        key_value_table(
            f"vs PyTorch on {len(SAMPLE_TEXTS)} sample sentences",
            {
                "max abs diff": f"{check['max_abs_diff']:.2e}",
                "min cosine": f"{check['min_cosine']:.5f}",
            },
        )
    )


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
