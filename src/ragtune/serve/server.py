"""Run the app: ``serve`` in the foreground (``ragtune serve``) or on a background thread.

:func:`serve` checks everything it can before the model loads: that an address other than
loopback comes with an API key (:func:`ragtune.serve.auth.check_exposure`), the port (0 means
any free port; the URL it announces has the port chosen), that the address can be bound (a port
in use is one line, not a traceback after the model loaded), then the index
(:meth:`IndexStore.open` verifies it) and only then the model.

Graceful shutdown: on SIGTERM (what ``docker stop``, systemd and Kubernetes send) or Ctrl-C the
app's ``draining`` flag is set (requests that still arrive get 503, ``/health`` says "shutting
down"), uvicorn stops accepting connections and waits up to ``request_timeout_s`` + 5 s for the
requests in flight, which complete normally, then the encoder thread finishes its queue. After a
SIGTERM the process exits with status 0.

Needs the ``serve`` extra (FastAPI, uvicorn): ``pip install 'ragtune[serve]'``.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn
from fastapi import FastAPI

from ragtune.errors import RagtuneError
from ragtune.search.searcher import Searcher
from ragtune.serve.app import create_app
from ragtune.serve.auth import check_exposure
from ragtune.serve.limits import ServeLimits
from ragtune.serve.metrics import access_log
from ragtune.serve.openai_api import TokenEncoding

if TYPE_CHECKING:
    from ragtune.model.cpu.encode_precision import PrecisionCheck

log = logging.getLogger("ragtune.serve")

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")  # uvicorn's names


@contextmanager
def background_server(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run ``app`` with uvicorn on a thread; yields its base URL (port 0: a free port).

    For notebooks, tests and benchmarks; the server stops when the block exits::

        with background_server(create_app(searcher)) as url:
            httpx.post(f"{url}/search", json={"query": "retry backoff"})
    """
    sock = bind(host, port)
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
        yield base_url(host, bound)
    finally:
        app.state.draining.set()
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
    api_key: str | None = None,
    token_encoding: TokenEncoding = "cl100k_base",
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Verify the index, load its model and serve the API until interrupted.

    Args:
        port: 1-65535, or 0 for any free port.
        api_key: required as ``Authorization: Bearer KEY`` on every endpoint but ``/health``;
            a ``host`` other than loopback is refused without one.
        log_level: at ``info`` and below each request is one JSON line on stderr (the
            ``ragtune.serve.access`` logger) in place of uvicorn's access log.
        token_encoding: the OpenAI encoding that ``/v1/embeddings`` token arrays are decoded
            with when a request names none (LangChain sends ``cl100k_base`` ids).
        on_ready: called with the base URL once the index and model are loaded, just before
            the server accepts requests (the CLI prints it).
    """
    if log_level not in LOG_LEVELS:
        raise RagtuneError(f"unknown log level {log_level!r}; valid: {', '.join(LOG_LEVELS)}")
    check_exposure(host, api_key)
    sock = bind(host, port)
    try:
        searcher = Searcher.open(index_dir, model=model, device=device)
        try:
            settle_encode_precision(searcher)
            limits = limits or ServeLimits()
            app = create_app(
                searcher, limits=limits, api_key=api_key, token_encoding=token_encoding
            )
            config = uvicorn.Config(
                app,
                log_level=log_level,
                lifespan="on",
                access_log=False,
                timeout_graceful_shutdown=int(limits.request_timeout_s) + 5,
            )
            server = DrainingServer(config, app.state.draining)
            _print_access_log(log_level)
            sock.listen(2048)  # from here a client is queued, not refused, until uvicorn runs
            if on_ready is not None:
                on_ready(base_url(host, sock.getsockname()[1]))
            with _sigterm_is_a_clean_exit():
                server.run(sockets=[sock])
        finally:
            searcher.close()
    finally:
        sock.close()


def settle_encode_precision(searcher: Searcher) -> PrecisionCheck | None:
    """Decide ``precision="auto"`` once at start, on the index's own chunk texts.

    Why: ``auto`` runs its bf16 check only on a call of 512+ texts, and a server's calls are a
    few queries each, so without this a server on an AMX CPU would encode in fp32 for its whole
    life. Measured on a 2-core AMX Xeon (bundled MiniLM): the check takes about 3 s once, and bf16
    then encoded 2.8x faster with min cosine 0.99998 to fp32. Returns the decision (cached for the
    encoder, so every later request uses it), or None where there is nothing to decide: a model
    not on the CPU, an explicit ``fp32``/``bf16``, an ONNX model, or a CPU without native bf16
    (checked by its flags, at no cost).
    """
    from ragtune.model.cpu.bf16 import bf16_kind
    from ragtune.model.cpu.encode_precision import SAMPLE_TEXTS, choose_encode_precision

    encoder = searcher.encoder
    if getattr(encoder, "precision", None) != "auto" or not hasattr(encoder, "device"):
        return None
    if encoder.device.type != "cpu" or bf16_kind() == "none":
        return None
    check = choose_encode_precision(encoder, searcher.store.sample_texts(SAMPLE_TEXTS), force=True)
    log.info("encode precision: %s (%s)", check.precision, check.reason)
    return check


class DrainingServer(uvicorn.Server):
    """uvicorn's server whose signal handler first sets the app's ``draining`` flag."""

    def __init__(self, config: uvicorn.Config, draining: threading.Event) -> None:
        super().__init__(config)
        self.draining = draining

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.draining.set()
        super().handle_exit(sig, frame)


@contextmanager
def _sigterm_is_a_clean_exit() -> Iterator[None]:
    """After a graceful shutdown uvicorn raises the signal it caught again, with the handler
    that was installed before it ran: a no-op one here makes SIGTERM end with status 0 (a
    stop asked for and done), while Ctrl-C keeps Python's KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda sig, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_access_log(log_level: str) -> None:
    """Send the access log's JSON lines to stderr when ``log_level`` shows info messages."""
    if LOG_LEVELS.index(log_level) < LOG_LEVELS.index("info"):
        return
    if not any(getattr(h, "ragtune_access", False) for h in access_log.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.ragtune_access = True  # type: ignore[attr-defined]
        access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False  # printed once, not again by a root handler


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: a free one), or one line saying why not."""
    if isinstance(port, bool) or not 0 <= port <= 65535:
        raise RagtuneError(f"--port must be 1-65535, or 0 for any free port; got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise RagtuneError(f"--host {host!r}: cannot resolve it ({exc})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        advice = (
            f"{host} is not an address of this machine; pass another --host"
            if exc.errno == errno.EADDRNOTAVAIL
            else "pass another --port, or --port 0 for any free one"
        )
        raise RagtuneError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); {advice}"
        ) from None
    return sock


def base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
