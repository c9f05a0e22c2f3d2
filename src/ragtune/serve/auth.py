"""API-key authentication for the server: ``Authorization: Bearer KEY`` on every endpoint but
``/health``.

Why a key is required off loopback: the server embeds any text it is sent and returns chunks of
the indexed files, so reachable from other machines without a key it is an open door to both.
:func:`check_exposure` refuses such a setup before anything is bound or loaded.

``/health`` stays open so that load balancers and orchestrators can probe it without a secret;
it reports only the model's name, sizes and the checks' outcomes. The page at ``/`` stays open
too: it is the same static HTML for everyone and holds no data; it asks for the key when
``/search`` answers 401 and sends it as the header (kept in the tab's ``sessionStorage``).
The key is compared with :func:`hmac.compare_digest` (time independent of where the first
difference lies), and a rejected request is answered before its body is read, so a client
without the key cannot make the server parse anything.

Example::

    check_exposure("0.0.0.0", api_key)          # RagtuneError when api_key is None
    app.add_middleware(ApiKeyMiddleware, api_key="s3cret")

    httpx.post(f"{url}/search", json={"query": "retry"}, headers={"Authorization": "Bearer s3cret"})
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import socket
from typing import TYPE_CHECKING

from ragtune.errors import RagtuneError
from ragtune.serve.limits import ASGIApp, Receive, Scope, Send, error_body

if TYPE_CHECKING:
    from fastapi import FastAPI

OPEN_PATHS = frozenset({"/health", "/"})
"""Paths answered without a key (the health check, and the static page that asks for it)."""


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is on this machine only (127.0.0.0/8, ::1).

    A name is resolved; one that does not resolve counts as not loopback.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses
    )


def check_exposure(host: str, api_key: str | None) -> None:
    """Refuse an empty key, and serving beyond loopback without one (a line, before any work)."""
    if api_key is not None and not api_key.strip():
        raise RagtuneError("--api-key must not be empty")
    if api_key is None and not is_loopback(host):
        raise RagtuneError(
            f"--host {host} is reachable from other machines; pass --api-key KEY "
            "(or set RAGTUNE_API_KEY) to serve beyond loopback"
        )


class ApiKeyMiddleware:
    """Answer 401 (OpenAI's error shape) to HTTP requests without ``Authorization: Bearer KEY``."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._expected = b"Bearer " + api_key.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"authorization")
        if given is not None and hmac.compare_digest(given, self._expected):
            await self.app(scope, receive, send)
            return
        message = (
            "missing API key: send the header 'Authorization: Bearer KEY'"
            if given is None
            else "incorrect API key"
        )
        await _send_unauthorized(send, message)


def install_auth(app: FastAPI, api_key: str | None) -> None:
    """Require ``api_key`` on every endpoint but ``/health``; ``None`` leaves the app open."""
    if api_key is not None:
        check_exposure("127.0.0.1", api_key)  # the empty key is refused here too
        app.add_middleware(ApiKeyMiddleware, api_key=api_key)


async def _send_unauthorized(send: Send, message: str) -> None:
    payload = error_body(message, "invalid_request_error")
    payload["error"]["code"] = "invalid_api_key"
    data = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        (b"www-authenticate", b"Bearer"),
        (b"connection", b"close"),  # its body was never read
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": data})
