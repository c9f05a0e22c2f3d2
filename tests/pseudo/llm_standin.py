"""A real OpenAI-compatible chat server on 127.0.0.1 for the LLM client and generator tests.

It answers ``POST /v1/chat/completions`` the way Ollama or vLLM would, and can be told to
misbehave: slowly (a timeout), with a 500, a 429 with ``Retry-After``, a body that is not JSON, an
answer with no question in it, a 404 for an unknown model. It counts what the client did: calls,
calls per passage, the most requests in flight at once, and the headers it saw.

Behaviours come, per request, from ``plan`` (a queue, first in first out), else from
``by_passage`` (a function of the passage and how often it was asked), else ``default``.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PASSAGE = re.compile(r'Passage:\n"""\n(.*)\n"""', re.DOTALL)
_COUNT = re.compile(r"Write (one|\d+) ")


def questions_for(passage: str, n: int) -> list[str]:
    """What the stand-in model answers: ``n`` distinct questions naming the passage's start."""
    head = " ".join(passage.split()[:6])
    forms = ["What is said about {}?", "Where is {} explained?", "How does {} work?"]
    return [forms[i % 3].format(head) + (f" (take {i // 3})" if i >= 3 else "") for i in range(n)]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that timed out closed the socket before the slow answer: expected here
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class StandIn:
    """The server and its counters; use as a context manager."""

    def __init__(self) -> None:
        self.plan: deque[str] = deque()
        self.by_passage: Callable[[str, int], str] | None = None
        self.default = "ok"
        self.delay_s = 0.0
        self.slow_s = 2.0
        self.retry_after = "2"
        self.calls = 0
        self.per_passage: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.headers: list[dict[str, str]] = []
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                standin.handle(self)

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False  # a slow handler may still sleep at shutdown
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> StandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = json.loads(request.rfile.read(int(request.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        match = _PASSAGE.search(prompt)
        passage = match.group(1) if match else ""
        count = _COUNT.search(prompt)
        n = 1 if count is None or count.group(1) == "one" else int(count.group(1))
        with self.lock:
            self.calls += 1
            self.per_passage[passage] += 1
            asked = self.per_passage[passage]
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.headers.append(dict(request.headers))
            self.bodies.append(body)
            if self.plan:
                behaviour = self.plan.popleft()
            elif self.by_passage is not None:
                behaviour = self.by_passage(passage, asked)
            else:
                behaviour = self.default
        try:
            time.sleep(self.delay_s)
            self.respond(request, behaviour, passage, n, body["model"])
        finally:
            with self.lock:
                self.in_flight -= 1

    def respond(
        self, request: BaseHTTPRequestHandler, behaviour: str, passage: str, n: int, model: str
    ) -> None:
        if behaviour == "slow":
            time.sleep(self.slow_s)
            behaviour = "ok"
        if behaviour == "ok":
            content = json.dumps({"questions": questions_for(passage, n)})
            self.send(request, 200, _completion(model, content))
        elif behaviour == "fenced":
            listing = "\n".join(f"{i + 1}. {q}" for i, q in enumerate(questions_for(passage, n)))
            self.send(request, 200, _completion(model, f"Sure! Here you go:\n```\n{listing}\n```"))
        elif behaviour == "bad_answer":
            self.send(request, 200, _completion(model, "I cannot help with that."))
        elif behaviour == "bad_json":
            self.send(request, 200, b'{"choices": [{"message": {"content": "trunc')
        elif behaviour == "429":
            self.send(request, 429, {"error": {"message": "rate limited"}}, self.retry_after)
        elif behaviour == "404":
            self.send(request, 404, {"error": {"message": f"model '{model}' not found"}})
        elif behaviour.isdigit():
            self.send(request, int(behaviour), {"error": {"message": "server trouble"}})
        else:
            raise ValueError(f"unknown behaviour {behaviour!r}")

    @staticmethod
    def send(
        request: BaseHTTPRequestHandler, status: int, body: Any, retry_after: str | None = None
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        if retry_after is not None:
            request.send_header("Retry-After", retry_after)
        request.end_headers()
        request.wfile.write(data)


def _completion(model: str, content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
