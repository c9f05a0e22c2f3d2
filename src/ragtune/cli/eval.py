"""``ragtune eval``: score models (and BM25) on a BEIR folder, compare them, write a report."""

from __future__ import annotations

from pathlib import Path

import typer

from ragtune.cli._common import out, print_json, renamed
from ragtune.errors import RagtuneError
from ragtune.progress import console

DEFAULT_CUTOFFS = "1,3,5,10,100"


def register(app: typer.Typer) -> None:
    app.command(
        "eval",
        epilog=(
            "Examples:\n\n"
            "  ragtune eval --model sentence-transformers/all-MiniLM-L6-v2 --bm25 "
            "--data data/scifact\n\n"
            "  ragtune eval -m sentence-transformers/all-MiniLM-L6-v2 -m runs/demo/model "
            "--data data/scifact --split test --out runs/demo/eval --cache-dir .cache/emb\n\n"
            "  ragtune eval --bm25 --data data/scifact --cutoffs 1,10,100 --json\n\n"
            "With two or more models the first is the baseline and the last the candidate of the "
            "verdict; with one model and --bm25, BM25 is the baseline."
        ),
    )(eval_command)


def eval_command(
    models: list[str] = typer.Option(
        [], "--model", "-m", help="Model folder or hub id; repeat to compare several."
    ),
    bm25: bool = typer.Option(False, "--bm25", help="Add the BM25 baseline (k1=0.9, b=0.4)."),
    data: Path = typer.Option(..., "--data", "-d", help="BEIR folder (corpus.jsonl, ...)."),
    split: str = typer.Option("test", help="Qrels split to evaluate: qrels/<split>.tsv."),
    out_dir: Path | None = typer.Option(
        None, "--out", "-o", help="Write report.json, report.md, metrics.png, per_query.jsonl."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace --out even when it is not an earlier report."
    ),
    cutoffs: str | None = typer.Option(
        None,
        "--cutoffs",
        help="Cut-offs k of the metrics (nDCG@k, ...), comma-separated.",
        show_default=DEFAULT_CUTOFFS,
    ),
    cache_dir: Path | None = typer.Option(
        None, help="Cache corpus embeddings here (keyed by model and corpus fingerprints)."
    ),
    batch_size: int = typer.Option(32, help="Texts per forward pass."),
    old_k: str | None = typer.Option(None, "--k", hidden=True),
) -> None:
    """Evaluate retrieval (nDCG, MRR, Recall, MAP, P at each k) and say which system wins."""
    from ragtune.data.beir import load_beir
    from ragtune.evaluation.evaluate import evaluate_bm25, evaluate_encoder
    from ragtune.evaluation.report import compare
    from ragtune.io import atomic_dir, check_output
    from ragtune.model.folder import check_model_folder

    if not models and not bm25:
        raise RagtuneError("nothing to evaluate: pass --model (one or more) and/or --bm25")
    if batch_size < 1:
        raise RagtuneError(f"--batch-size must be at least 1, got {batch_size}")
    flag = "--cutoffs" if old_k is None else "--k"  # errors name the spelling that was typed
    cutoffs = renamed(cutoffs, old_k, "--cutoffs", "--k")
    k_values = _parse_cutoffs(DEFAULT_CUTOFFS if cutoffs is None else cutoffs, flag)
    if out_dir is not None:  # before any model loads
        check_output(out_dir, "report", overwrite=overwrite, sources=[data])
    for model in models:  # a damaged model folder fails now, not after the corpus is read
        check_model_folder(model)
    evalset = load_beir(data, split)
    console.print(
        f"{evalset.name}: {len(evalset.queries):,} queries, {len(evalset.corpus):,} documents"
    )

    results = []
    if bm25:
        results.append(evaluate_bm25(evalset, k_values=k_values))
    names = _display_names(models)
    for model, name in zip(models, names, strict=True):
        from ragtune.model import load_model

        encoder = load_model(model)
        results.append(
            evaluate_encoder(
                encoder,
                evalset,
                name=name,
                source=model,
                k_values=k_values,
                batch_size=batch_size,
                cache_dir=cache_dir,
            )
        )
    baseline = candidate = None
    if len(names) >= 2:
        baseline, candidate = names[0], names[-1]
    elif bm25 and names:
        baseline, candidate = results[0].system, names[0]
    report = compare(results, evalset, baseline=baseline, candidate=candidate)

    if out_dir is not None:
        with atomic_dir(out_dir, "report", overwrite=overwrite, marker=False) as tmp:
            written = [out_dir / p.name for p in report.save(tmp)]
        console.print(f"wrote {', '.join(str(p) for p in written)}")
    if as_json:
        print_json(report.to_json())
        return
    out.print(report.table())
    if report.verdict is not None:
        out.print(report.verdict, highlight=False)


def _parse_cutoffs(text: str, flag: str = "--cutoffs") -> list[int]:
    try:
        ks = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise RagtuneError(
            f"{flag} must be comma-separated integers like 1,10,100; got {text!r}"
        ) from None
    if not ks or min(ks) < 1:
        raise RagtuneError(f"{flag} values must be positive integers; got {text!r}")
    return ks


def _display_names(models: list[str]) -> list[str]:
    """Short labels: the fewest trailing path parts that tell the models apart
    (``all-MiniLM-L6-v2``; ``a/model`` and ``b/model``), with ``#2``, ``#3`` on repeats."""
    parts = [Path(m).parts or (m,) for m in models]
    names: list[str] = []
    for mine in parts:
        others = {p for p in parts if p != mine}
        n = 1
        while n < len(mine) and any(p[-n:] == mine[-n:] for p in others):
            n += 1
        name, base, repeat = "/".join(mine[-n:]), "/".join(mine[-n:]), 1
        while name in names:
            repeat += 1
            name = f"{base}#{repeat}"
        names.append(name)
    return names
