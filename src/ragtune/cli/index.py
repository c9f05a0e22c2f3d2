"""``ragtune index``: chunk and embed a folder or a corpus into a searchable index.

A folder alone is indexed incrementally (:func:`ragtune.search.build.build_index`); a corpus file,
``--shard I/N``, ``--merge`` and torchrun go through :mod:`ragtune.search.shards`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer

from ragtune.cli._common import key_value_table, out, print_json, renamed, renamed_choice
from ragtune.errors import RagtuneError
from ragtune.model.resolve import DEFAULT_MODEL

if TYPE_CHECKING:
    from ragtune.search.build import IndexConfig
    from ragtune.search.topk import IndexKind


def register(app: typer.Typer) -> None:
    app.command(
        "index",
        epilog=(
            "Examples:\n\n"
            "  ragtune index my-repo --out my-repo.idx\n\n"
            "  ragtune index docs/ --model runs/demo/model --out docs.idx --overlap 3\n\n"
            "  ragtune index . --out /tmp/idx --exclude '*.lock' --exclude 'vendor/' --json\n\n"
            "  ragtune index scifact/corpus.jsonl --out sci.idx --dense-search ivfpq\n\n"
            "  ragtune index corpus.parquet --out big.idx --shard 0/4   (one per machine)\n\n"
            "  ragtune index corpus.parquet --out big.idx --merge --dense-search ivfpq\n\n"
            "  torchrun --nproc-per-node 4 -m ragtune.cli.main index corpus.jsonl --out big.idx\n\n"
            "Re-running over an existing folder index embeds only new and changed files (by "
            "content hash) and drops deleted ones. Shards are written to INDEX.shards/ and kept "
            "(a killed shard is rerun alone; complete ones are not encoded again)."
        ),
    )(index_command)


def index_command(
    folder: Path = typer.Argument(
        ...,
        help="Folder (.gitignore honoured), BEIR folder or corpus .jsonl/.parquet (_id, text).",
    ),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Index folder (created or updated)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Model folder or hub id."),
    dense_search: str | None = typer.Option(
        None,
        help="FAISS index: auto (exact below 100k chunks, hnsw, ivfpq from 1M), exact, hnsw, "
        "ivf or ivfpq (approximate).",
        show_default="auto",
    ),
    shard: str | None = typer.Option(
        None, "--shard", help="Embed only shard I/N into INDEX.shards/ (merge with --merge)."
    ),
    merge: bool = typer.Option(False, "--merge", help="Build --out from all its shards."),
    nprobe: int | None = typer.Option(
        None, help="IVF cells searched per query (recorded; default 32 ivf, 64 ivfpq)."
    ),
    rerank: int = typer.Option(
        200, help="IVF-PQ candidates re-scored with exact vectors (recorded; 0: none)."
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
    precision: str = typer.Option(
        "auto", help="Encoding: auto (bf16 where checked faster and equal), fp32 or bf16."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    old_kind: str | None = typer.Option(None, "--kind", hidden=True),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace --out even when it is not a ragtune index."
    ),
) -> None:
    """Chunk text, Markdown and code files with exact line ranges and embed them."""
    from ragtune.io import check_output
    from ragtune.model import load_model
    from ragtune.model.precision import PRECISIONS, set_encode_precision
    from ragtune.search.build import IndexConfig, build_index
    from ragtune.search.corpus_stream import source_kind

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
    if nprobe is not None and nprobe < 1 or rerank < 0:
        raise RagtuneError(f"--nprobe must be >= 1 and --rerank >= 0, got {nprobe} and {rerank}")
    params = {"nprobe": nprobe} | ({"rerank": rerank} if config.kind in ("ivfpq", "auto") else {})
    if precision not in PRECISIONS:
        raise RagtuneError(f"unknown --precision {precision!r}; choose {', '.join(PRECISIONS)}")
    check_output(out_dir, "index", overwrite=overwrite, sources=[folder])  # before the model
    from_env = None
    if shard is None and not merge:
        from ragtune.search.shards import shard_from_env

        from_env = shard_from_env()
    if merge or shard is not None or from_env is not None or source_kind(folder) != "folder":
        _sharded(
            folder,
            out_dir,
            config,
            model,
            device,
            shard,
            merge,
            from_env,
            params,
            overwrite,
            as_json,
            precision,
        )
        return
    encoder = load_model(model, device=device)
    set_encode_precision(encoder, precision)
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


def _sharded(
    source: Path,
    out_dir: Path,
    config: IndexConfig,
    model: str,
    device: str | None,
    shard: str | None,
    merge: bool,
    from_env: tuple[int, int] | None,
    params: dict[str, Any],
    overwrite: bool,
    as_json: bool,
    precision: str = "auto",
) -> None:
    """Shard, merge, or both (a corpus in one process; rank 0 under torchrun)."""
    import os
    import shutil

    from ragtune.model import load_model
    from ragtune.model.precision import set_encode_precision
    from ragtune.search.shards import (
        encode_source_shard,
        merge_shards,
        parse_shard,
        shards_root,
        wait_for_ranks,
    )

    reports: list[dict[str, Any]] = []
    which = parse_shard(shard) if shard is not None else from_env
    fresh_root = not shards_root(out_dir).exists()
    if not merge:
        if device is None and from_env is not None:
            import torch

            if torch.cuda.is_available():  # one GPU per rank
                device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        encoder = load_model(model, device=device)
        set_encode_precision(encoder, precision)
        done = encode_source_shard(
            source, encoder, out_dir, config, shard=which or (0, 1), model_ref=model
        )
        reports.append({"step": "shard"} | asdict(done))
        if from_env is not None:
            wait_for_ranks()
            if from_env[0] != 0:
                _print(reports, out_dir, as_json)
                return
    if merge or which is None or from_env is not None:
        merged = merge_shards(out_dir, kind=config.kind, overwrite=overwrite, **params)
        row = asdict(merged)
        row["index_kind"] = _DENSE_SEARCH_NAMES.get(merged.index_kind, merged.index_kind)
        reports.append({"step": "merge"} | row)
        if which is None and not merge and fresh_root:  # our own one-process shard: done with it
            shutil.rmtree(shards_root(out_dir))
    _print(reports, out_dir, as_json)


def _print(reports: list[dict[str, Any]], out_dir: Path, as_json: bool) -> None:
    if as_json:
        print_json(reports[0] if len(reports) == 1 else {"steps": reports})
        return
    for rows in reports:
        shown = {k: v for k, v in rows.items() if k != "step"}
        if "index_params" in shown:
            shown["index_params"] = ", ".join(f"{k}={v}" for k, v in shown["index_params"].items())
        out.print(key_value_table(f"index {out_dir} ({rows['step']})", shown))


# `mine --dense-search` and `index --dense-search` name exact search "exact"; FAISS (and the
# stored index, ragtune.search.topk) calls that index "flat".
_INDEX_KINDS: dict[str, IndexKind | Literal["auto"]] = {
    "auto": "auto",
    "exact": "flat",
    "hnsw": "hnsw",
    "ivf": "ivf",
    "ivfpq": "ivfpq",
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
