"""A small client for any OpenAI-compatible ``/v1/chat/completions`` endpoint, on httpx.

Ollama, vLLM, llama.cpp's ``llama-server``, LM Studio and the OpenAI API all speak this protocol,
so one client covers a local model and a hosted one. It does only what pseudo-query generation
needs: one chat request in, the answer's text out, with the failure handling a long unattended
run needs.

Failures, by what the run should do about them:

* **transient** (HTTP 408/409/425/429/5xx, timeouts, dropped connections; the statuses the
  openai-python SDK retries, plus 425 Too Early): retried up to ``max_retries`` times with
  exponential backoff and jitter (Brooker, "Exponential Backoff And Jitter", AWS Architecture
  Blog 2015); a ``Retry-After`` header (seconds or an HTTP date, or OpenAI's ``retry-after-ms``)
  is honoured instead, capped at ``max_backoff_s``. Still failing after that:
  :class:`LlmRequestFailed`, which the caller counts for that chunk and moves on.
* **per request** (HTTP 400/413/422, a body that is not the JSON of a chat completion): not
  retried, :class:`LlmRequestFailed` at once. Why not retried: the same request gets the same
  answer (a chunk over the context length, a server bug), so retrying only costs time.
* **fatal** (the endpoint cannot be reached at all, HTTP 404 for a wrong model name or path,
  401/403 for a missing or wrong key): :class:`LlmEndpointError`, one line naming the URL and
  the model. Why a refused connection is fatal at once before any answer came back: a server
  that is not running does not start during a backoff, and a user waiting half a minute for
  that news is worse off than one told straight away; once the server has answered, a dropped
  connection is retried like any transient failure.

The API key is read from the environment (``RAGTUNE_LLM_API_KEY``, then ``OPENAI_API_KEY``), never
from the command line, so it does not end up in shell history, ``ps`` or a saved config; local
servers need none. The client is safe to share between threads (httpx's pool is), so a thread
pool of ``concurrency`` workers over one client bounds the requests in flight.

Example::

    with LlmClient("http://localhost:11434/v1", "qwen2.5:7b") as client:
        text = client.chat([{"role": "user", "content": "Say hi"}], temperature=0.0)
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from ragtune.errors import RagtuneError

if TYPE_CHECKING:
    import httpx

API_KEY_ENVS = ("RAGTUNE_LLM_API_KEY", "OPENAI_API_KEY")
RETRIED_STATUSES = frozenset({408, 409, 425, 429})  # and every 5xx


def _httpx() -> ModuleType:
    """httpx, imported on first use: the rest of ragtune.pseudo works without it."""
    try:
        import httpx
    except ImportError:
        raise RagtuneError(
            "the LLM generator needs httpx: pip install httpx (or ragtune[serve])"
        ) from None
    return httpx


class LlmEndpointError(RagtuneError):
    """The endpoint is unusable for this run (unreachable, unknown model, refused key)."""


class LlmRequestFailed(RagtuneError):
    """One request failed for good (after its retries); the run counts it and goes on."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # a short key for counting: "http_500", "timeout", "bad_json", ...


@dataclass
class ClientStats:
    """Counters over the client's life; updated under a lock (threads share one client)."""

    requests: int = 0
    """HTTP requests sent, retries included."""
    retries: int = 0
    """Requests that were a retry of an earlier failed one."""


def chat_completions_url(url: str) -> str:
    """The full ``.../chat/completions`` URL for what a user passes as the endpoint.

    ``http://host:11434``, ``http://host:11434/v1`` and the full URL all work: servers document
    their base URL in all three forms.
    """
    base = url.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise RagtuneError(f"LLM URL {url!r} must start with http:// or https://")
    if base.endswith("/chat/completions"):
        return base
    if base.endswith("/v1"):
        return base + "/chat/completions"
    return base + "/v1/chat/completions"


def api_key_from_env() -> str | None:
    """The first of ``RAGTUNE_LLM_API_KEY`` and ``OPENAI_API_KEY`` that is set and non-empty."""
    for name in API_KEY_ENVS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_seconds(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Delay before retry ``attempt`` (0-based): "equal jitter", half fixed and half random.

    Why jitter: workers that failed together (a server restart) would otherwise retry together
    and overload it again; why keep half fixed: the delay still grows with every attempt.
    """
    ceiling = min(cap_s, base_s * 2.0**attempt)
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class LlmClient:
    """Send chat requests to one model at one OpenAI-compatible endpoint.

    Args:
        url: the server's base URL (``http://localhost:8000/v1``) or its full
            ``/chat/completions`` URL, see :func:`chat_completions_url`.
        model: the model name the server knows (``--llm-model``).
        timeout_s: how long one request may take (connecting is capped at 10 s).
        max_retries: retries of a transient failure before the request counts as failed.
        backoff_s: the first retry's delay; each further one doubles it (before jitter).
        max_backoff_s: the longest single wait, ``Retry-After`` included.
        api_key: sent as ``Authorization: Bearer``; default :func:`api_key_from_env`.
        max_connections: size of the connection pool (at least the number of worker threads).
        sleep: how to wait between retries (tests pass a recorder).
    """

    def __init__(
        self,
        url: str,
        model: str,
        *,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        api_key: str | None = None,
        max_connections: int = 8,
        sleep: Callable[[float], None] = time.sleep,
        seed: int = 0,
    ) -> None:
        self.url = chat_completions_url(url)
        self.model = model
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.stats = ClientStats()
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._answered = False  # has the server ever sent an HTTP response?
        key = api_key if api_key is not None else api_key_from_env()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        httpx = _httpx()
        self._httpx = httpx
        self._transient = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    def __repr__(self) -> str:  # never shows the key
        return f"LlmClient(url={self.url!r}, model={self.model!r})"

    def __enter__(self) -> LlmClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def chat(
        self,
        messages: Sequence[dict[str, str]],
        *,
        temperature: float = 0.7,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> str:
        """The text of the first choice's message for ``messages``.

        Raises :class:`LlmRequestFailed` for a request that failed for good and
        :class:`LlmEndpointError` when the endpoint is unusable (see the module docstring).
        """
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "temperature": temperature,
            "stream": False,
        }
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if seed is not None:
            body["seed"] = seed
        httpx = self._httpx
        attempt = 0
        while True:
            with self._lock:
                self.stats.requests += 1
                if attempt:
                    self.stats.retries += 1
            try:
                response = self._http.post(self.url, json=body)
            except self._transient as exc:
                if not self._answered and isinstance(
                    exc, (httpx.ConnectError, httpx.ConnectTimeout)
                ):
                    raise LlmEndpointError(
                        f"cannot reach the LLM endpoint {self.url} ({_describe(exc)}); "
                        "is the server running, and is the URL right?"
                    ) from None
                reason = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection"
                if attempt >= self.max_retries:
                    if reason == "connection":
                        raise LlmEndpointError(
                            f"lost the LLM endpoint {self.url} ({_describe(exc)}) and it did "
                            f"not come back after {self.max_retries} retries"
                        ) from None
                    raise LlmRequestFailed(
                        f"{self.url}: no answer within the timeout, {self.max_retries} retries",
                        reason=reason,
                    ) from None
                self._sleep(self._delay(attempt, None))
                attempt += 1
                continue
            except httpx.HTTPError as exc:  # not transient: a bad encoding, redirects, ...
                raise LlmRequestFailed(
                    f"{self.url}: {_describe(exc)}", reason="http_error"
                ) from None
            self._answered = True
            status = response.status_code
            if status == 200:
                return self._content(response)
            if status in (401, 403):
                raise LlmEndpointError(
                    f"the LLM endpoint {self.url} refused the request (HTTP {status}: "
                    f"{_server_message(response)}); set the API key in "
                    f"{' or '.join(API_KEY_ENVS)}"
                )
            if status == 404:
                raise LlmEndpointError(
                    f"the LLM endpoint {self.url} answered 404 for model {self.model!r} "
                    f"({_server_message(response)}); check the model name and the URL"
                )
            if status in RETRIED_STATUSES or status >= 500:
                if attempt >= self.max_retries:
                    raise LlmRequestFailed(
                        f"{self.url}: HTTP {status} ({_server_message(response)}) after "
                        f"{self.max_retries} retries",
                        reason=f"http_{status}",
                    )
                wait = retry_after_seconds(response.headers.get("retry-after"))
                if "retry-after-ms" in response.headers:  # OpenAI's finer-grained form
                    ms = retry_after_seconds(response.headers["retry-after-ms"])
                    wait = None if ms is None else ms / 1000
                self._sleep(self._delay(attempt, wait))
                attempt += 1
                continue
            raise LlmRequestFailed(
                f"{self.url}: HTTP {status} ({_server_message(response)})", reason=f"http_{status}"
            )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff_s)
        with self._lock:
            return backoff_seconds(attempt, self.backoff_s, self.max_backoff_s, self._rng)

    def _content(self, response: httpx.Response) -> str:
        try:
            data = response.json()
            content = data["choices"][0]["message"]["content"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError):
            raise LlmRequestFailed(
                f"{self.url}: the answer is not a chat completion (JSON with "
                "choices[0].message.content)",
                reason="bad_json",
            ) from None
        if not isinstance(content, str):
            raise LlmRequestFailed(
                f"{self.url}: the message content is not text", reason="bad_json"
            )
        return content


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _server_message(response: httpx.Response, limit: int = 200) -> str:
    """The server's own error message (OpenAI ``{"error": {"message"}}``, FastAPI ``detail``)."""
    text = response.text
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        error = data.get("error", data.get("detail"))
        if isinstance(error, dict):
            error = error.get("message")
        if isinstance(error, str):
            text = error
    text = " ".join(text.split())
    if not text:
        return response.reason_phrase or "no message"
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = [
    "API_KEY_ENVS",
    "ClientStats",
    "LlmClient",
    "LlmEndpointError",
    "LlmRequestFailed",
    "api_key_from_env",
    "backoff_seconds",
    "chat_completions_url",
    "retry_after_seconds",
]
