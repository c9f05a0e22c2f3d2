"""``ragtune index``: chunk and embed a folder into a searchable index (incremental)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer

from ragtune.cli._common import key_value_table, out, print_json, renamed, renamed_choice
from ragtune.errors import RagtuneError
from ragtune.model.resolve import DEFAULT_MODEL

if TYPE_CHECKING:
    from ragtune.search.topk import IndexKind


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
    dense_search: str | None = typer.Option(
        None,
        help="FAISS index: auto (exact below 100k chunks), exact, hnsw or ivf (approximate).",
        show_default="auto",
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
    old_kind: str | None = typer.Option(None, "--kind", hidden=True),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace --out even when it is not a ragtune index."
    ),
) -> None:
    """Chunk text, Markdown and code files with exact line ranges and embed them."""
    from ragtune.io import check_output
    from ragtune.model import load_model
    from ragtune.search.build import IndexConfig, build_index

    config = IndexConfig(
        max_tokens=max_tokens,
        overlap_lines=overlap,
        exclude=tuple(exclude),
        use_gitignore=not no_gitignore,
        max_file_bytes=max_file_bytes,
        kind=_index_kind(
            renamed(dense_search, old_kind, "--dense-search", "--kind"),
            flag="--dense-search" if old_kind is None else "--kind",
        ),
        batch_size=batch_size,
    )
    check_output(out_dir, "index", overwrite=overwrite, sources=[folder])  # before the model
    encoder = load_model(model, device=device)
    report = build_index(folder, encoder, out_dir, config, model_ref=model, overwrite=overwrite)
    rows = asdict(report)
    rows["index_kind"] = _DENSE_SEARCH_NAMES.get(report.index_kind, report.index_kind)
    if as_json:
        print_json(rows)
        return
    rows["skipped"] = ", ".join(f"{k} {v}" for k, v in report.skipped.items()) or "none"
    if not report.full_rebuild_reason:
        rows.pop("full_rebuild_reason")
    out.print(key_value_table(f"index {out_dir}", rows))


# `mine --dense-search` and `index --dense-search` name exact search "exact"; FAISS (and the
# stored index, ragtune.search.topk) calls that index "flat".
_INDEX_KINDS: dict[str, IndexKind | Literal["auto"]] = {
    "auto": "auto",
    "exact": "flat",
    "hnsw": "hnsw",
    "ivf": "ivf",
}
_DENSE_SEARCH_NAMES: dict[str, str] = {kind: name for name, kind in _INDEX_KINDS.items()}
OLD_DENSE_SEARCH = {"flat": "exact"}
"""Deprecated --dense-search choices: ``flat`` (FAISS's word) is now ``exact``."""


def _index_kind(dense_search: str | None, flag: str) -> IndexKind | Literal["auto"]:
    """The stored index's kind for a --dense-search choice; errors name ``flag`` as typed."""
    if dense_search is None:
        return "auto"
    name = renamed_choice(dense_search, OLD_DENSE_SEARCH, "--dense-search")
    if name not in _INDEX_KINDS:
        raise RagtuneError(
            f"unknown {flag} {dense_search!r}; choose one of {', '.join(_INDEX_KINDS)}"
        )
    return _INDEX_KINDS[name]
