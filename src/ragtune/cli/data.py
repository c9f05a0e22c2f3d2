"""``ragtune data``: check training data, build the standard-library code-search dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ragtune.cli._common import renamed
from ragtune.data.check import CountTokens, check_data
from ragtune.data.codesearch import CodeSearchConfig, build_codesearch, write_beir
from ragtune.data.records import SHAPES, ColumnMap, Shape
from ragtune.errors import RagtuneError
from ragtune.io import atomic_dir, check_output

data_app = typer.Typer(
    help="Check training data and build datasets.", no_args_is_help=True, add_completion=False
)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


@data_app.command("check")
def check(
    path: str = typer.Argument(
        ..., help="A .jsonl/.json/.csv/.tsv/.parquet file, a BEIR folder or hf:<dataset>."
    ),
    eval_path: str | None = typer.Option(
        None, "--eval-data", help="Evaluation data to test for leakage (a BEIR folder or a file)."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Count tokens with this model's tokenizer and report what it would truncate.",
    ),
    max_seq_length: int | None = typer.Option(
        None, help="Truncation length (default: the model's)."
    ),
    split: str = typer.Option("train", help="BEIR qrels split or datasets split to check."),
    eval_split: str = typer.Option("test", help="Split of --eval-data."),
    shape: str | None = typer.Option(None, help=f"Force the shape: {', '.join(SHAPES)}."),
    query_column: str = typer.Option("query"),
    positive_column: str = typer.Option("positive"),
    negative_column: str = typer.Option("negative", help="Also the prefix of negative_2, ..."),
    negatives_column: str = typer.Option("negatives", help="A column holding a list of negatives."),
    document_column: str = typer.Option("document"),
    label_column: str = typer.Option("label"),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    old_eval: str | None = typer.Option(None, "--eval", hidden=True),
) -> None:
    """Report problems in training data; exit 1 if any is an error (warnings alone exit 0).

    Examples:

      ragtune data check train.jsonl

      ragtune data check pairs.csv --query-column question --positive-column answer

      ragtune data check data/scifact --eval-data data/scifact --model all-MiniLM-L6-v2
    """
    columns = ColumnMap(
        query=query_column,
        positive=positive_column,
        negative=negative_column,
        negatives=negatives_column,
        document=document_column,
        label=label_column,
    )
    count_tokens: CountTokens | None = None
    if model is not None:
        count_tokens, model_max = _token_counter(model)
        max_seq_length = max_seq_length or model_max
    report = check_data(
        path,
        eval_source=renamed(eval_path, old_eval, "--eval-data", "--eval"),
        count_tokens=count_tokens,
        max_seq_length=max_seq_length,
        columns=columns,
        shape=_shape(shape),
        split=split,
        eval_split=eval_split,
    )
    if as_json:
        typer.echo(report.to_json())
    else:
        Console().print(report.render())
    if report.errors:
        raise SystemExit(1)  # not typer.Exit: that is swallowed when the app runs non-standalone


@data_app.command("build-stdlib")
def build_stdlib(
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder to write (BEIR layout); replaced atomically if it exists."
    ),
    max_train: int | None = typer.Option(None, help="Cap on training pairs (seeded sample)."),
    max_dev: int | None = typer.Option(None, help="Cap on dev queries."),
    max_test: int | None = typer.Option(None, help="Cap on test queries."),
    force_test: list[str] = typer.Option(
        ["http/client.py"],
        help="Module path (relative to the stdlib) always put in the test split; repeatable.",
    ),
    undocumented: bool = typer.Option(
        True, help="Add functions without docstrings to the dev/test corpora as distractors."
    ),
    seed: int = typer.Option(0, help="Seed of the capping samples."),
    root: Path | None = typer.Option(None, help="Scan this source tree instead of the stdlib."),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace --out even when it is not a ragtune dataset."
    ),
) -> None:
    """Build the code-search dataset from this Python's standard library and write it as BEIR.

    Queries are docstring summaries, documents the functions' code without docstrings; splits
    are by module. No download.

    Examples:

      ragtune data build-stdlib --out data/stdlib

      ragtune data build-stdlib --out data/stdlib-small --max-train 2000 --max-test 600

      ragtune data build-stdlib --out data/myproject --root src/ --force-test mypkg/core.py
    """
    config = CodeSearchConfig(
        root=None if root is None else str(root),
        force_test=tuple(force_test),
        include_undocumented=undocumented,
        max_train=max_train,
        max_dev=max_dev,
        max_test=max_test,
        seed=seed,
    )
    check_output(out, "dataset", overwrite=overwrite, sources=[root] if root else [])
    dataset = build_codesearch(config)
    with atomic_dir(out, "dataset", overwrite=overwrite) as tmp:
        write_beir(dataset, tmp)
    if as_json:
        typer.echo(json.dumps(dataset.stats, indent=2))
        return
    Console().print(stats_table(dataset.stats, title=f"stdlib code search -> {out}"))


def stats_table(stats: dict[str, Any], title: str) -> Table:
    """The build statistics as one table: scan counts, drops by rule, split sizes."""
    table = Table("", "count", title=Text(title))
    table.add_row(f"files scanned (Python {stats['python_version']})", str(stats["files_scanned"]))
    table.add_row("functions scanned", str(stats["functions_scanned"]))
    for reason, n in stats["dropped"].items():
        table.add_row(f"  dropped: {reason.replace('_', ' ')}", str(n))
    table.add_row("query/code pairs kept", str(stats["kept"]), end_section=True)
    for split, s in stats["splits"].items():
        if split == "train":
            sizes = f"{s['pairs']} pairs (of {s['pairs_full']})"
        else:
            sizes = f"{s['queries']} queries (of {s['queries_full']}), corpus {s['corpus']}"
        table.add_row(f"{split}: {s['modules']} modules", sizes)
    table.add_row("build time", f"{stats['seconds']} s")
    return table


def _shape(value: str | None) -> Shape | None:
    if value is not None and value not in SHAPES:
        raise RagtuneError(f"unknown shape {value!r}; valid shapes: {', '.join(SHAPES)}")
    return value  # type: ignore[return-value]


def _token_counter(model: str) -> tuple[CountTokens, int | None]:
    from ragtune.model import load_model  # heavy (torch): only when --model is given

    encoder = load_model(model)
    tokenizer = encoder.tokenizer

    def count(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(texts, truncation=False)["input_ids"]]

    return count, encoder.config.max_seq_length
