"""``ragtune index``: chunk and embed a folder into a searchable index (incremental)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer

from ragtune.cli._common import key_value_table, out, print_json
from ragtune.model.resolve import DEFAULT_MODEL


def register(app: typer.Typer) -> None:
    app.command(
        "index",
        epilog=(
            "Examples:\n\n"
            "  ragtune index my-repo --out my-repo.idx\n\n"
            "  ragtune index docs/ --model runs/demo/model --out docs.idx --overlap 3\n\n"
            "  ragtune index . --out /tmp/idx --exclude '*.lock' --exclude 'vendor/' --json\n\n"
            "Re-running over an existing index embeds only new and changed files (by content "
            "hash) and drops deleted ones."
        ),
    )(index_command)


def index_command(
    folder: Path = typer.Argument(..., help="Folder to index (.gitignore files are honoured)."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Index folder (created or updated)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Model folder or hub id."),
    kind: str = typer.Option(
        "auto", help="FAISS index: auto (flat < 100k chunks), flat, hnsw, ivf."
    ),
    max_tokens: int | None = typer.Option(
        None, help="Tokens per chunk (default: what the model reads, minus its prompt)."
    ),
    overlap: int = typer.Option(2, help="Lines repeated when a chunk starts mid-section."),
    exclude: list[str] = typer.Option([], "--exclude", "-x", help="Extra gitignore-style pattern."),
    no_gitignore: bool = typer.Option(False, "--no-gitignore", help="Ignore .gitignore files."),
    max_file_bytes: int = typer.Option(1_000_000, help="Skip files larger than this."),
    batch_size: int = typer.Option(32, help="Chunks per forward pass."),
    device: str | None = typer.Option(None, help="cpu, cuda, cuda:1 ... (default: best)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Chunk text, Markdown and code files with exact line ranges and embed them."""
    from ragtune.model import Encoder
    from ragtune.search.build import IndexConfig, build_index

    config = IndexConfig(
        max_tokens=max_tokens,
        overlap_lines=overlap,
        exclude=tuple(exclude),
        use_gitignore=not no_gitignore,
        max_file_bytes=max_file_bytes,
        kind=kind,  # type: ignore[arg-type]  # checked by IndexConfig
        batch_size=batch_size,
    )
    encoder = Encoder.load(model, device=device)
    report = build_index(folder, encoder, out_dir, config, model_ref=model)
    if as_json:
        print_json(asdict(report))
        return
    rows = asdict(report)
    rows["skipped"] = ", ".join(f"{k} {v}" for k, v in report.skipped.items()) or "none"
    if not report.full_rebuild_reason:
        rows.pop("full_rebuild_reason")
    out.print(key_value_table(f"index {out_dir}", rows))
