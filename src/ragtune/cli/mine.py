"""``ragtune mine``: hard negatives for (query, positive) pairs, written as n-tuples to train on."""

from __future__ import annotations

from pathlib import Path

import typer

from ragtune.cli._common import out, print_json, renamed_choice
from ragtune.errors import RagtuneError
from ragtune.progress import console

OLD_DENSE_SEARCH = {"flat": "exact"}
"""Deprecated names of --dense-search choices: ``flat`` was ``ragtune index``'s word for exact."""


def register(app: typer.Typer) -> None:
    app.command(
        "mine",
        epilog=(
            "Examples:\n\n"
            "  ragtune mine --data data/scifact --source both --num-negatives 5 --range 10,100 "
            "--relative-margin 0.95 --out mined.jsonl\n\n"
            "  ragtune mine --data pairs.jsonl --corpus data/scifact/corpus.jsonl "
            "--model sentence-transformers/all-MiniLM-L6-v2 --margin 0.05 --sampling random "
            "--seed 1 --out mined.jsonl --cache-dir .cache/emb\n\n"
            "  ragtune mine --data pairs.jsonl --source bm25 --num-negatives 3 "
            "--out mined.jsonl --json\n\n"
            "  ragtune train --data mined.jsonl --out runs/hard   # train on the result\n\n"
            "Ranks are counted from 0 after the query's positives are taken out: --range 10,100 "
            "skips each source's ten best and considers ranks 10-99. A BEIR folder gives the "
            "pairs of qrels/<split>.tsv and its own corpus; a pairs file without --corpus mines "
            "among the distinct positives. Writes OUT, OUT's .summary.json and .scores.png."
        ),
    )(mine)


def mine(
    data: str = typer.Option(..., "--data", "-d", help="BEIR folder or pairs file (.jsonl...)."),
    out_path: Path = typer.Option(..., "--out", "-o", help="JSONL of mined n-tuples to write."),
    corpus: str | None = typer.Option(
        None,
        help="BEIR folder or corpus.jsonl to mine from (default: --data's corpus, or the "
        "distinct positives of a pairs file).",
    ),
    split: str = typer.Option("train", help="qrels split when --data is a BEIR folder."),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Dense model / teacher (default: the bundled MiniLM, loaded "
        "only when the source or a filter needs it).",
    ),
    source: str = typer.Option("dense", help="Candidates from bm25, dense or both."),
    num_negatives: int = typer.Option(5, "--num-negatives", "-n", help="Negatives per example."),
    rank_range: str = typer.Option("0,100", "--range", help="range_min,range_max of ranks."),
    sampling: str = typer.Option("top", help="top (hardest first) or random (seeded)."),
    margin: float | None = typer.Option(None, help="Drop scores above positive - margin."),
    relative_margin: float | None = typer.Option(
        None, help="Drop scores above this fraction of the positive's (e.g. 0.95)."
    ),
    max_score: float | None = typer.Option(None, help="Drop scores above this value."),
    cross_encoder: str | None = typer.Option(
        None, help="Local cross-encoder folder that rescores candidates for the filters."
    ),
    seed: int = typer.Option(0, help="Seed of random sampling."),
    batch_size: int = typer.Option(32, help="Texts per forward pass."),
    max_seq_length: int | None = typer.Option(None, help="Truncate texts to this many tokens."),
    cache_dir: str | None = typer.Option(
        None, help="Cache corpus embeddings here (shared with `ragtune eval --cache-dir`)."
    ),
    dense_search: str = typer.Option(
        "auto", help="auto (exact below 100k documents), exact or hnsw (approximate)."
    ),
    keep_incomplete: bool = typer.Option(
        False, help="Also write examples that found fewer than --num-negatives."
    ),
    plot: bool = typer.Option(True, help="Write the score histogram PNG."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
) -> None:
    """Mine hard negatives from BM25 and/or a dense model, dropping likely false negatives."""
    from ragtune.data.beir import beir_training_pairs, is_beir_folder, iter_corpus
    from ragtune.data.readers import load_training_data
    from ragtune.io import check_output
    from ragtune.mining import MiningConfig, mine_hard_negatives
    from ragtune.mining.report import summary_table
    from ragtune.model import DEFAULT_MODEL, Encoder

    check_output(out_path, "mined", overwrite=overwrite, is_file=True)  # before any work
    range_min, range_max = _parse_range(rank_range)
    dense_search = renamed_choice(dense_search, OLD_DENSE_SEARCH, "--dense-search")
    cfg = MiningConfig(
        source=source,  # type: ignore[arg-type]  # checked by MiningConfig
        num_negatives=num_negatives,
        range_min=range_min,
        range_max=range_max,
        sampling=sampling,  # type: ignore[arg-type]
        margin=margin,
        relative_margin=relative_margin,
        max_score=max_score,
        seed=seed,
        batch_size=batch_size,
        cache_dir=cache_dir,
        dense_search=dense_search,  # type: ignore[arg-type]
        cross_encoder=cross_encoder,
        keep_incomplete=keep_incomplete,
    )
    if is_beir_folder(data):
        records: list = list(beir_training_pairs(data, split))
        corpus = corpus or data
    else:
        records = list(load_training_data(data).records)
    documents = None
    if corpus is not None:
        corpus_file = Path(corpus) / "corpus.jsonl" if Path(corpus).is_dir() else Path(corpus)
        documents = {doc.id: doc for _, doc in iter_corpus(corpus_file)}
    encoder = None
    if model is not None or cfg.needs_encoder:
        encoder = Encoder.load(model or DEFAULT_MODEL, max_seq_length=max_seq_length)
    result = mine_hard_negatives(records, documents, cfg, encoder=encoder)
    paths = result.save(out_path, plot=plot)
    if as_json:
        print_json({**result.summary.to_dict(), "files": {k: str(p) for k, p in paths.items()}})
        return
    out.print(summary_table(result.summary))  # warnings were logged to stderr as they arose
    console.print(f"wrote {', '.join(str(p) for p in paths.values())}")


def _parse_range(text: str) -> tuple[int, int]:
    parts = text.split(",")
    try:
        low, high = (int(p) for p in parts)
    except ValueError:
        raise RagtuneError(
            f"--range must be two integers range_min,range_max like 10,100; got {text!r}"
        ) from None
    if not 0 <= low < high:
        raise RagtuneError(f"--range needs 0 <= range_min < range_max; got {text!r}")
    return low, high
