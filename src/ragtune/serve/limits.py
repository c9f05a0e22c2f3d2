"""Request limits and JSON errors for the server.

The body limit is an ASGI middleware rather than a check in each endpoint, because by the time an
endpoint runs FastAPI has already read and parsed the whole body: the middleware reads at most
``max_bytes + 1`` bytes into memory and answers 413 before any parsing. A body over the limit is
still drained (up to 64 MiB, then the connection is dropped) so that a client that sends it in
full gets the 413 response instead of a broken pipe.

Texts are checked before they reach the encoder (:func:`unencodable`, the rule the data readers
use): a lone surrogate is valid JSON (``"\\udc00"``) but not text a tokenizer can take, and it
would fail every request batched with it. An exception no handler expected becomes a JSON 500
in :class:`UnexpectedErrorMiddleware` (the traceback goes to the ``ragtune.serve`` log), so no
response of the server is plain text.

This module imports nothing from FastAPI, so the limits can be set up (and the missing extra
reported) without it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from ragtune.data.valid_text import text_problem
from ragtune.errors import RagtuneError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_DRAIN_LIMIT = 64 << 20
log = logging.getLogger("ragtune.serve")


@dataclass
class ServeLimits:
    """What one request may ask for; larger requests get 413, malformed ones 422."""

    max_body_bytes: int = 2_000_000
    max_inputs: int = 256
    """Texts per /v1/embeddings request."""
    max_text_chars: int = 32_000
    """Characters per text or query (a 512-token model reads ~2,000 words; the rest would be
    truncated anyway)."""
    max_k: int = 100
    max_batch_texts: int = 128
    """Texts the encoder thread gathers from queued requests into one encode call."""
    max_batch_tokens: int = 16384
    """Padded tokens (texts x the longest) in one encode call: 64 full 256-token chunks, or 128
    queries of 128 tokens (:mod:`ragtune.serve.batcher` says why tokens)."""
    max_queue: int = 1024
    """Requests that may wait for the encoder; one more gets 429 with ``Retry-After``. Why
    1,024: five times the 200 concurrent clients the load test holds without an error, and at
    ~1,000 short texts/s on two CPU cores (MiniLM) about a second of work."""
    request_timeout_s: float = 30.0
    """Seconds a request may wait for its embeddings (queue and encoding); then 504."""

    def __post_init__(self) -> None:
        names = (
            "max_body_bytes",
            "max_inputs",
            "max_text_chars",
            "max_k",
            "max_batch_texts",
            "max_batch_tokens",
            "max_queue",
        )
        for name in names:
            if getattr(self, name) < 1:
                raise RagtuneError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.request_timeout_s > 0:
            raise RagtuneError(f"request_timeout_s must be positive, got {self.request_timeout_s}")


ERROR_TYPES = {
    413: "request_too_large",
    429: "rate_limit_error",
    503: "server_error",
    504: "server_error",
}


class ApiError(Exception):
    """An error answered as ``{"error": {...}}`` with an HTTP status (``retry_after_s``: the
    ``Retry-After`` header of a 429 or 503, which the OpenAI SDK honours when it retries)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.retry_after_s = retry_after_s
        self.type = ERROR_TYPES.get(status, "invalid_request_error")


def error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The OpenAI error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def describe_validation(errors: Any) -> tuple[str, str | None]:
    """One line from pydantic's error list, e.g. ``k: Input should be greater than ...``."""
    if not errors:
        return "invalid request", None
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON", None
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    if not loc:  # the body itself: null, a list, a string, form data...
        return "the request body must be a JSON object", None
    if loc[0] == "input" and len(loc) > 1:  # one error per member of the str | list union
        return "input must be a string or a list of strings", "input"
    param = ".".join(loc)
    if first.get("type") == "missing":
        message = f"{param} is required"
    else:
        message = f"{param}: {first.get('msg', 'invalid')}"
    extra = len(errors) - 1
    return (message + (f" (and {extra} more problems)" if extra else "")), param


def unencodable(text: str) -> str:
    """Why a tokenizer cannot take ``text`` (:func:`ragtune.data.valid_text.text_problem`, the
    readers' rule), or ``""``.

    >>> unencodable("caf\\udce9")
    'holds a lone surrogate U+DCE9 at character 4'
    """
    problem = text_problem(text)
    return "" if problem is None else problem.message.removeprefix("text ")


class UnexpectedErrorMiddleware:
    """Answer an exception no handler expected with a JSON 500 and log its traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            log.error("%s %s failed", scope.get("method"), scope.get("path"), exc_info=exc)
            if started:  # too late for an error response: the connection is dropped
                raise
            name = type(exc).__name__
            payload = error_body(
                f"the server failed on this request ({name}); its log has the details",
                "server_error",
            )
            await _send_json(send, 500, payload)


class DrainGate:
    """Answer 503 (``Retry-After``, ``Connection: close``) to requests that arrive once the
    server has begun shutting down; ``/health`` still answers, and says so.

    Why: between the signal and the moment uvicorn stops reading, a request can still arrive on
    an open keep-alive connection; the requests already inside the app are left to finish.
    """

    def __init__(self, app: ASGIApp, draining: threading.Event) -> None:
        self.app = app
        self.draining = draining  # set by the server's signal handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.draining.is_set() or scope["path"] == "/health":
            await self.app(scope, receive, send)
            return
        payload = error_body("the server is shutting down; retry on another", "server_error")
        await _send_json(send, 503, payload, close=True, retry_after_s=1)


class BodyLimitMiddleware:
    """Answer 413 to HTTP requests whose body is larger than ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._drain(receive, int(declared))
            await self._reject(send, f"the request body is {int(declared)} bytes")
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > self.max_bytes:
                if more:
                    await self._drain(receive, _DRAIN_LIMIT)
                await self._reject(send, "the request body is larger than that")
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # later calls wait for the disconnect, as ASGI expects

        await self.app(scope, replay, send)

    async def _drain(self, receive: Receive, declared: int) -> None:
        if declared > _DRAIN_LIMIT:
            return
        read = 0
        while read <= _DRAIN_LIMIT:
            message = await receive()
            if message["type"] != "http.request":
                return
            read += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _reject(self, send: Send, what: str) -> None:
        payload = error_body(f"{what}; the limit is {self.max_bytes} bytes", "request_too_large")
        await _send_json(send, 413, payload, close=True)


async def _send_json(
    send: Send, status: int, payload: Any, *, close: bool = False, retry_after_s: int | None = None
) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    if retry_after_s is not None:
        headers.append((b"retry-after", str(retry_after_s).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def require_serve_extra() -> None:
    """Raise a clear error naming the ``serve`` extra when FastAPI or uvicorn is missing."""
    missing = []
    for module in ("fastapi", "uvicorn"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise RagtuneError(
            f"ragtune serve needs {' and '.join(missing)}: install the serve extra with "
            "`pip install 'ragtune[serve]'`"
        )
