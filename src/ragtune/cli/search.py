"""``ragtune search``: ask an index a question; hits as ``path:start-end  score`` + snippet."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.padding import Padding
from rich.text import Text

from ragtune.cli._common import out, print_json
from ragtune.errors import RagtuneError


def register(app: typer.Typer) -> None:
    app.command(
        "search",
        epilog=(
            "Examples:\n\n"
            '  ragtune search my-repo.idx "where is the HTTP status line parsed?" -k 5\n\n'
            '  ragtune search my-repo.idx "retry backoff" --hybrid --json\n\n'
            "  echo 'how are tokens counted?' | ragtune search my-repo.idx -\n\n"
            '  ragtune search big.idx "statin side effects" --nprobe 128 --rerank 400'
        ),
    )(search_command)


def search_command(
    index_dir: Path = typer.Argument(..., help="Index folder built by `ragtune index`."),
    query: str = typer.Argument(..., help="The question, or - to read it from stdin."),
    k: int = typer.Option(5, "-k", "--k", help="Number of hits."),
    hybrid: bool = typer.Option(False, "--hybrid", help="Fuse BM25 and dense ranks (RRF, k=60)."),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Load the model from here (default: the one recorded)."
    ),
    lines: int = typer.Option(12, help="Snippet lines shown per hit (0: all)."),
    device: str | None = typer.Option(None, help="cpu, cuda, ... (default: best)."),
    nprobe: int | None = typer.Option(
        None, help="IVF cells searched (default: the index's; more: better recall, slower)."
    ),
    rerank: int | None = typer.Option(
        None, help="IVF-PQ candidates re-scored exactly (default: the index's; 0: none)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Hits as JSON (full text)."),
) -> None:
    """Search an index; prints ranked hits with file:line ranges and highlighted snippets."""
    from ragtune.data.valid_text import text_problem
    from ragtune.search.analysis import term_spans
    from ragtune.search.searcher import search

    if k < 1:
        raise RagtuneError(f"-k must be at least 1, got {k}")
    if nprobe is not None and nprobe < 1:
        raise RagtuneError(f"--nprobe must be at least 1, got {nprobe}")
    if rerank is not None and rerank < 0:
        raise RagtuneError(f"--rerank must be >= 0 (0: none), got {rerank}")
    if lines < 0:
        raise RagtuneError(f"--lines must be >= 0 (0: all), got {lines}")
    if query == "-":
        query = sys.stdin.read().strip()
    if not query.strip():
        raise RagtuneError("the query is empty")
    if problem := text_problem(query):
        raise RagtuneError(f"the query {problem.message.removeprefix('text ')}")
    hits = search(
        index_dir, query, k, hybrid=hybrid, model=model, device=device, nprobe=nprobe, rerank=rerank
    )
    if as_json:
        print_json({"query": query, "k": k, "hybrid": hybrid, "hits": [h.to_dict() for h in hits]})
        return
    if not hits:
        out.print("no hits")
    for hit in hits:
        out.print(Text.assemble((hit.location, "bold cyan"), "  ", (f"{hit.score:.4f}", "dim")))
        shown = hit.text.split("\n")
        more = len(shown) - lines if lines and len(shown) > lines else 0
        snippet = Text("\n".join(shown[: len(shown) - more]))
        for start, end in term_spans(snippet.plain, query):
            snippet.stylize("bold yellow", start, end)
        out.print(Padding(snippet, (0, 0, 0, 4), expand=False), highlight=False)
        if more:
            out.print(Text(f"    ... {more} more lines", style="dim"))
        out.print()
