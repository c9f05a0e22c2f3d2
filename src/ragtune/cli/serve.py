"""``ragtune serve``: an HTTP API (search, OpenAI-compatible embeddings) and a web page."""

from __future__ import annotations

from pathlib import Path

import typer

from ragtune.progress import console


def register(app: typer.Typer) -> None:
    app.command(
        "serve",
        epilog=(
            "Examples:\n\n"
            "  ragtune serve my-repo.idx --port 8000     # then open http://127.0.0.1:8000/\n\n"
            '  curl -s localhost:8000/search -d \'{"query": "retry backoff", "k": 3}\' '
            "-H 'content-type: application/json'\n\n"
            "  OpenAI(base_url='http://127.0.0.1:8000/v1', api_key='unused')"
            ".embeddings.create(model='m', input=['text'])\n\n"
            "  RAGTUNE_API_KEY=s3cret ragtune serve my-repo.idx --host 0.0.0.0   "
            "# clients send 'Authorization: Bearer s3cret'\n\n"
            "  curl -s localhost:8000/metrics     # Prometheus text format\n\n"
            "  ragtune serve my-repo.idx --max-queue 256 --request-timeout 10 "
            "--max-batch-tokens 8192   # 429 past 256 waiting, 504 after 10 s\n\n"
            # "\\[": Rich would read [serve] as a style tag and drop it from the help.
            "Needs the serve extra: pip install 'ragtune\\[serve]'. Binds to 127.0.0.1 unless "
            "--host says otherwise; any other address needs --api-key, which every endpoint "
            "but /health then requires."
        ),
    )(serve_command)


def serve_command(
    index_dir: Path = typer.Argument(..., help="Index folder built by `ragtune index`."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (0.0.0.0: all)."),
    port: int = typer.Option(8000, help="TCP port (0: any free port, shown at start)."),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Load the model from here (default: the one recorded)."
    ),
    device: str | None = typer.Option(None, help="cpu, cuda, ... (default: best)."),
    max_body_bytes: int = typer.Option(2_000_000, help="Larger request bodies get 413."),
    max_inputs: int = typer.Option(256, help="Texts per /v1/embeddings request (more: 413)."),
    max_text_chars: int = typer.Option(32_000, help="Characters per text or query (more: 413)."),
    max_k: int = typer.Option(100, help="Largest k a /search request may ask for."),
    max_batch_texts: int = typer.Option(128, help="Texts per encode call, across requests."),
    max_batch_tokens: int = typer.Option(
        16384, help="Padded tokens (texts x longest) per encode call, across requests."
    ),
    max_queue: int = typer.Option(
        1024, help="Requests that may wait for the encoder; more get 429 with Retry-After."
    ),
    request_timeout: float = typer.Option(
        30.0, help="Seconds a request may wait for its embeddings; then 504."
    ),
    token_encoding: str = typer.Option(
        "cl100k_base",
        help="OpenAI encoding of /v1/embeddings token-array inputs: cl100k_base or o200k_base.",
    ),
    log_level: str = typer.Option(
        "info", help="Log level: debug, info (one JSON line per request), warning, error."
    ),
    api_key: str | None = typer.Option(
        None,
        envvar="RAGTUNE_API_KEY",
        show_default=False,
        help="Require 'Authorization: Bearer KEY' on every endpoint but /health "
        "(needed to bind beyond loopback).",
    ),
) -> None:
    """Serve an index: POST /search, POST /v1/embeddings, GET /health and a search page at /."""
    from ragtune.errors import RagtuneError
    from ragtune.serve.limits import ServeLimits, require_serve_extra

    require_serve_extra()
    from ragtune.serve.openai_api import TOKEN_ENCODINGS
    from ragtune.serve.server import serve

    encoding = next((e for e in TOKEN_ENCODINGS if e == token_encoding), None)
    if encoding is None:
        raise RagtuneError(
            f"--token-encoding {token_encoding!r}: choose one of {', '.join(TOKEN_ENCODINGS)}"
        )
    limits = ServeLimits(
        max_body_bytes=max_body_bytes,
        max_inputs=max_inputs,
        max_text_chars=max_text_chars,
        max_k=max_k,
        max_batch_texts=max_batch_texts,
        max_batch_tokens=max_batch_tokens,
        max_queue=max_queue,
        request_timeout_s=request_timeout,
    )
    serve(
        index_dir,
        host=host,
        port=port,
        model=model,
        device=device,
        limits=limits,
        log_level=log_level,
        api_key=api_key,
        token_encoding=encoding,
        on_ready=lambda url: console.print(
            f"serving {index_dir} on {url}/ (Ctrl-C to stop)", soft_wrap=True, markup=False
        ),
    )
