"""Request limits and JSON errors for the server.

The body limit is an ASGI middleware rather than a check in each endpoint, because by the time an
endpoint runs FastAPI has already read and parsed the whole body: the middleware reads at most
``max_bytes + 1`` bytes into memory and answers 413 before any parsing. A body over the limit is
still drained (up to 64 MiB, then the connection is dropped) so that a client that sends it in
full gets the 413 response instead of a broken pipe.

This module imports nothing from FastAPI, so the limits can be set up (and the missing extra
reported) without it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from ragtune.errors import RagtuneError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_DRAIN_LIMIT = 64 << 20


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

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_inputs", "max_text_chars", "max_k", "max_batch_texts"):
            if getattr(self, name) < 1:
                raise RagtuneError(f"{name} must be at least 1, got {getattr(self, name)}")


class ApiError(Exception):
    """An error answered as ``{"error": {...}}`` with an HTTP status."""

    def __init__(self, status: int, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.type = "request_too_large" if status == 413 else "invalid_request_error"


def error_body(message: str, type_: str, param: str | None = None) -> dict[str, Any]:
    """The OpenAI error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": None}}


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
        data = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
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
