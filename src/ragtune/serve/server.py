"""Run the app: ``serve`` in the foreground (``ragtune serve``) or on a background thread.

Needs the ``serve`` extra (FastAPI, uvicorn): ``pip install 'ragtune[serve]'``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import FastAPI

from ragtune.errors import RagtuneError
from ragtune.search.searcher import Searcher
from ragtune.serve.app import create_app
from ragtune.serve.limits import ServeLimits


@contextmanager
def background_server(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run ``app`` with uvicorn on a thread; yields its base URL (port 0: a free port).

    For notebooks, tests and benchmarks; the server stops when the block exits::

        with background_server(create_app(searcher)) as url:
            httpx.post(f"{url}/search", json={"query": "retry backoff"})
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="ragtune-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RagtuneError(f"the server on {host}:{bound} did not start")
        time.sleep(0.02)
    try:
        yield f"http://[{host}]:{bound}" if ":" in host else f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def serve(
    index_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model: str | None = None,
    device: str | None = None,
    limits: ServeLimits | None = None,
    log_level: str = "info",
) -> None:
    """Load the index and its model and serve the API until interrupted."""
    import uvicorn

    searcher = Searcher.open(index_dir, model=model, device=device)
    try:
        app = create_app(searcher, limits=limits)
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    finally:
        searcher.close()
