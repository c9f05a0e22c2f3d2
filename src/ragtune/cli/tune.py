"""``ragtune tune DIR``: label-free fine-tuning from a folder of code and documents."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command(
        "tune",
        epilog=(
            "Examples:\n\n  ragtune tune my-repo --out runs/my-repo\n\n"
            "  ragtune tune docs/ --out runs/docs --queries my_questions.jsonl\n\n"
            "  ragtune tune data/scifact/corpus.jsonl --out runs/scifact --no-index\n\n"
            "  ragtune tune my-repo --out runs/my-repo --generator docstring,identifier --serve\n\n"
            "  ragtune tune docs/ --out runs/docs --llm-url http://localhost:11434/v1 "
            "--llm-model qwen2.5:7b\n\n"
            'Questions file: one JSON object a line, {"query": "...", "path": "src/a.py:42"}. '
            "A rerun with the same --out resumes from the last finished stage."
        ),
    )(tune)


def tune(
    source: str = typer.Argument(..., help="A folder, or a BEIR corpus.jsonl."),
    output: str = typer.Option("runs/tune", "--out", "-o", help="Where everything goes."),
    queries: str = typer.Option("", help="Real questions (JSONL) that gate publishing."),
    generator: str = typer.Option(
        "",
        help="Comma-separated generators (default: all that need no model, and openai when "
        "--llm-url is given).",
    ),
    llm_url: str = typer.Option(
        "", help="OpenAI-compatible endpoint of the openai generator (http://localhost:11434/v1)."
    ),
    llm_model: str = typer.Option("", help="Model name at --llm-url (e.g. qwen2.5:7b)."),
    llm_questions: int = typer.Option(3, help="Questions the LLM writes per chunk."),
    llm_concurrency: int = typer.Option(4, help="LLM requests in flight at once."),
    llm_cache: str = typer.Option(
        "", help="JSONL of the LLM's answers (default: in --out's work folder); reused on rerun."
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="Base model (default: bundled)."),
    budget: str = typer.Option(
        "30m", help="Time budget of the whole run (30m, 1h, 900s): training is shortened to fit."
    ),
    max_pairs: int = typer.Option(12_000, help="Train on at most this many pseudo-pairs."),
    max_seq_length: int = typer.Option(256, help="Tokens per text."),
    round_trip_k: int = typer.Option(10, help="Keep a pair when its chunk is in this top k."),
    exclude: list[str] = typer.Option([], help="Extra gitignore-style patterns to leave out."),
    recipe: str = typer.Option(
        "fixed", help="fixed: one checkpointed training; auto: train's search within --budget."
    ),
    epochs: int = typer.Option(1, help="Training epochs."),
    batch_size: int = typer.Option(32, help="Pairs per training step."),
    dropout: bool = typer.Option(
        False, help="Train with the model's dropout (off: ~1.3x the steps in the budget)."
    ),
    save_steps: int = typer.Option(200, help="Checkpoint every N steps (a rerun resumes there)."),
    index: bool = typer.Option(True, help="Index the folder with the published model."),
    serve: bool = typer.Option(False, "--serve", help="Serve the index on loopback when done."),
    port: int = typer.Option(8000, help="Port of --serve (0: any free port, shown at start)."),
    overwrite: bool = typer.Option(False, help="Replace --out even when it is not a tune run."),
) -> None:
    """Generate pseudo-queries, filter them, split by file, train, evaluate and index."""
    from ragtune.model.resolve import DEFAULT_MODEL
    from ragtune.progress import console
    from ragtune.tune import ALL_GENERATORS, TuneConfig, run_tune

    if serve:  # before any work: a missing extra must not show after the training
        from ragtune.serve.limits import require_serve_extra

        require_serve_extra()
    names = tuple(n.strip() for n in generator.split(",") if n.strip())
    if not names:
        names = ALL_GENERATORS + (("openai",) if llm_url else ())
    result = run_tune(
        TuneConfig(
            input=source,
            output=output,
            queries=queries,
            generators=names,
            llm_url=llm_url,
            llm_model=llm_model,
            llm_questions=llm_questions,
            llm_concurrency=llm_concurrency,
            llm_cache=llm_cache,
            model=model or DEFAULT_MODEL,
            budget=budget,
            max_pairs=max_pairs,
            max_seq_length=max_seq_length,
            round_trip_k=round_trip_k,
            exclude=tuple(exclude),
            recipe=recipe,  # type: ignore[arg-type]  # checked by TuneConfig
            epochs=epochs,
            batch_size=batch_size,
            dropout=dropout,
            save_steps=save_steps,
            index=index,
            overwrite=overwrite,
        )
    )
    console.print(
        f"report in {result.output / 'tune.md'} (plot tune.png, JSON tune.json; the held-out "
        f"queries one by one in {result.output / 'report'})"
    )
    if result.serve_command:
        console.print(f"serve it with: [bold]{result.serve_command}")
        if serve:
            from ragtune.serve.server import serve as serve_index

            index_dir = result.output / "index"
            serve_index(
                index_dir,
                host="127.0.0.1",
                port=port,
                on_ready=lambda url: console.print(
                    f"serving {index_dir} on {url}/ (Ctrl-C to stop)", soft_wrap=True, markup=False
                ),
            )
    elif serve:
        console.print("[yellow]--serve: nothing to serve (a corpus.jsonl or --no-index: no index)")
