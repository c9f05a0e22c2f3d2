"""Prometheus ``/metrics`` and one structured access-log line per request.

:class:`ServeMetrics` keeps the numbers and writes them in Prometheus' text exposition format
(version 0.0.4, written here: it is a few lines and needs no dependency):

========================================  =========  ==========================================
``ragtune_http_requests_total``           counter    by ``endpoint``, ``method``, ``status``
``ragtune_http_request_duration_seconds`` histogram  by ``endpoint``
``ragtune_embedded_texts_total``          counter    texts encoded (search queries included)
``ragtune_embedded_tokens_total``         counter    model tokens of those texts (as in usage)
``ragtune_texts_per_request``             histogram  texts per encode request
``ragtune_encode_batches_total``          counter    encode calls of the batcher; texts / batches
                                                     is the mean batch size
``ragtune_encode_batch_texts``            histogram  texts per encode call (the batch size)
``ragtune_encode_batch_padded_tokens``    histogram  padded tokens per encode call (what
                                                     ``max_batch_tokens`` bounds)
``ragtune_encode_queue_depth``            gauge      requests waiting for the encoder thread
``ragtune_encode_queue_limit``            gauge      ``max_queue``: past it requests get 429
========================================  =========  ==========================================

``endpoint`` is the route's path (``/search``, ``/v1/embeddings``, ...) and ``other`` for any path
the app has no route for, so that scanning unknown URLs cannot grow the label set.

:class:`ObserveMiddleware` is the outermost layer: every answer is counted and logged, the 401s
and 413s of the layers inside it included. Each request gives one JSON object on the
``ragtune.serve.access`` logger (level INFO)::

    {"method": "POST", "path": "/search", "status": 200, "ms": 4.12, "client": "127.0.0.1:50412"}
"""

from __future__ import annotations

import bisect
import json
import logging
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from ragtune.serve.limits import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ragtune.serve.batcher import EncodeBatcher, Encoded

access_log = logging.getLogger("ragtune.serve.access")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # seconds
TEXTS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
TOKENS_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)


class Histogram:
    """Cumulative-bucket histogram of one labelled series (Prometheus' ``le`` buckets)."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def lines(self, name: str, labels: str) -> list[str]:
        sep = "," if labels else ""
        out, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else _number(bound)
            out.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {running}')
        braces = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{braces} {_number(self.sum)}", f"{name}_count{braces} {running}"]
        return out


class ServeMetrics:
    """The server's counters; thread safe (requests finish on the event loop, encode jobs on the
    encoder thread)."""

    def __init__(self, batcher: EncodeBatcher | None = None) -> None:
        self.batcher = batcher
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}
        self.texts_per_request = Histogram(TEXTS_BUCKETS)
        self.batch_texts = Histogram(TEXTS_BUCKETS)
        self.batch_tokens = Histogram(TOKENS_BUCKETS)
        self.texts = 0
        self.tokens = 0

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(endpoint, method, status)] += 1
            self.latency.setdefault(endpoint, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def observe_encoded(self, encoded: Encoded) -> None:
        with self._lock:
            self.texts += len(encoded.tokens)
            self.tokens += sum(encoded.tokens)
            self.texts_per_request.observe(len(encoded.tokens))

    def observe_batch(self, texts: int, padded_tokens: int) -> None:
        """The batcher's hook (:data:`ragtune.serve.batcher.BatchHook`), on its thread."""
        with self._lock:
            self.batch_texts.observe(texts)
            self.batch_tokens.observe(padded_tokens)

    def render(self) -> str:
        """All series in the text exposition format."""
        with self._lock:
            lines = _header("ragtune_http_requests_total", "counter", "HTTP requests answered.")
            for (endpoint, method, status), n in sorted(self.requests.items()):
                labels = f'endpoint="{endpoint}",method="{method}",status="{status}"'
                lines.append(f"ragtune_http_requests_total{{{labels}}} {n}")
            name = "ragtune_http_request_duration_seconds"
            lines += _header(name, "histogram", "Time from request to the end of the response.")
            for endpoint, histogram in sorted(self.latency.items()):
                lines += histogram.lines(name, f'endpoint="{endpoint}"')
            lines += _header("ragtune_embedded_texts_total", "counter", "Texts encoded.")
            lines.append(f"ragtune_embedded_texts_total {self.texts}")
            lines += _header(
                "ragtune_embedded_tokens_total", "counter", "Model tokens of the texts encoded."
            )
            lines.append(f"ragtune_embedded_tokens_total {self.tokens}")
            name = "ragtune_texts_per_request"
            lines += _header(name, "histogram", "Texts per encode request.")
            lines += self.texts_per_request.lines(name, "")
        if self.batcher is not None:
            lines += _header(
                "ragtune_encode_batches_total", "counter", "Encode calls of the encoder thread."
            )
            lines.append(f"ragtune_encode_batches_total {self.batcher.batches_run}")
            with self._lock:
                name = "ragtune_encode_batch_texts"
                lines += _header(name, "histogram", "Texts per encode call.")
                lines += self.batch_texts.lines(name, "")
                name = "ragtune_encode_batch_padded_tokens"
                lines += _header(name, "histogram", "Padded tokens per encode call.")
                lines += self.batch_tokens.lines(name, "")
            lines += _header(
                "ragtune_encode_queue_depth", "gauge", "Requests waiting for the encoder thread."
            )
            lines.append(f"ragtune_encode_queue_depth {self.batcher.queued}")
            lines += _header(
                "ragtune_encode_queue_limit", "gauge", "Waiting requests past which 429 answers."
            )
            lines.append(f"ragtune_encode_queue_limit {self.batcher.max_queue}")
        return "\n".join(lines) + "\n"


class ObserveMiddleware:
    """Count, time and log every HTTP request (install it outermost)."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics, routed: FastAPI) -> None:
        self.app = app
        self.metrics = metrics
        self.routed = routed
        self._endpoints: frozenset[str] | None = None

    def endpoint(self, path: str) -> str:
        """``path`` if the app has a route for it, else ``other``."""
        if self._endpoints is None:  # read at the first request: routes come after middleware
            paths = (getattr(route, "path", None) for route in self.routed.routes)
            self._endpoints = frozenset(p for p in paths if isinstance(p, str))
        return path if path in self._endpoints else "other"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before it answers
        recorded = False

        def record() -> None:
            nonlocal recorded
            recorded = True
            seconds = time.perf_counter() - started
            path = scope["path"]
            self.metrics.observe_request(self.endpoint(path), scope["method"], status, seconds)
            if not access_log.isEnabledFor(logging.INFO):
                return
            entry = {
                "method": scope["method"],
                "path": path,
                "status": status,
                "ms": round(1000 * seconds, 2),
                "client": _client(scope),
            }
            access_log.info(json.dumps(entry))

        async def watching(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                record()  # before the last byte leaves: a client that got it sees it counted
            await send(message)

        try:
            await self.app(scope, receive, watching)
        finally:
            if not recorded:  # the app failed or the client left before the response ended
                record()


def install_metrics(app: FastAPI, batcher: EncodeBatcher) -> ServeMetrics:
    """Serve ``GET /metrics``, count what ``batcher`` encodes, and observe every request.

    Call it after the other middleware so that it is the outermost one. Encode jobs are
    counted through a done-callback on each future ``batcher.submit`` returns, encode calls
    through the batcher's ``on_batch`` hook.
    """
    from fastapi.responses import PlainTextResponse

    metrics = ServeMetrics(batcher)
    submit = batcher.submit

    def counted_submit(texts: Any, prompt: str = "") -> Future[Encoded]:
        future = submit(texts, prompt)
        future.add_done_callback(_count_into(metrics))
        return future

    batcher.submit = counted_submit  # type: ignore[method-assign]
    batcher.on_batch = metrics.observe_batch

    @app.get("/metrics", include_in_schema=False)
    async def _metrics() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE)

    app.add_middleware(ObserveMiddleware, metrics=metrics, routed=app)
    app.state.metrics = metrics
    return metrics


def _count_into(metrics: ServeMetrics) -> Any:
    def count(future: Future[Encoded]) -> None:
        if not future.cancelled() and future.exception() is None:
            metrics.observe_encoded(future.result())

    return count


def _header(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else None
