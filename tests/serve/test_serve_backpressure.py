"""Backpressure and isolation over real HTTP: a bounded queue (429 + Retry-After), a timeout
per request (504), 503 while shutting down or without an encoder, and one poisoned request
failing alone among 40 good ones.

Each test starts its own loopback server over the sample index with the model's ``encode``
held at a gate, so that requests pile up exactly as under load, without timing guesses.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import numpy as np

from ragtune.serve.limits import ServeLimits


@dataclass
class Gated:
    url: str
    app: object
    entered: threading.Event
    release: threading.Event
    calls: list[list[str]]


@contextmanager
def gated_server(sample_index, monkeypatch, **limits) -> Iterator[Gated]:
    """A server whose first encode call waits for ``release``; texts with "poison" fail."""
    from ragtune.search.searcher import Searcher
    from ragtune.serve.app import create_app
    from ragtune.serve.server import background_server

    searcher = Searcher.open(sample_index, device="cpu")
    encoder = searcher.encoder
    real = encoder.encode
    entered, release = threading.Event(), threading.Event()
    calls: list[list[str]] = []

    def gated(texts, **kwargs):
        calls.append(list(texts))
        if len(calls) == 1:
            entered.set()
            release.wait(30)
        if any("poison" in t for t in texts):
            raise RuntimeError("the model failed on this batch")
        return real(texts, **kwargs)

    monkeypatch.setattr(encoder, "encode", gated)
    app = create_app(searcher, limits=ServeLimits(**limits))
    try:
        with background_server(app) as url:
            yield Gated(url, app, entered, release, calls)
    finally:
        release.set()
        searcher.close()


def embed(url: str, text: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/embeddings", json={"input": text}, timeout=60)


def wait_until_waiting(url: str, n: int) -> None:
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}/health").json()["queue"]["waiting"] < n:
        assert time.monotonic() < deadline, f"{n} requests never queued"
        time.sleep(0.02)


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_a_full_queue_answers_429_with_retry_after(sample_index, monkeypatch):
    with (
        gated_server(sample_index, monkeypatch, max_queue=2) as server,
        ThreadPoolExecutor(3) as pool,
    ):
        running = pool.submit(embed, server.url, "first")
        assert server.entered.wait(30)
        waiting = [pool.submit(embed, server.url, t) for t in ("second", "third")]
        wait_until_waiting(server.url, 2)
        refused = embed(server.url, "fourth")
        error = error_of(refused, 429)
        assert (error["type"], error["code"]) == ("rate_limit_error", "queue_full")
        assert int(refused.headers["retry-after"]) >= 1
        server.release.set()
        assert [f.result(30).status_code for f in [running, *waiting]] == [200, 200, 200]
        assert embed(server.url, "fourth").status_code == 200  # room again
        metrics = httpx.get(f"{server.url}/metrics").text
        assert "ragtune_encode_queue_limit 2" in metrics
        assert (
            'ragtune_http_requests_total{endpoint="/v1/embeddings",method="POST",status="429"} 1'
            in metrics
        )


def test_a_request_past_its_timeout_gets_504_and_the_server_goes_on(sample_index, monkeypatch):
    with gated_server(sample_index, monkeypatch, request_timeout_s=0.5) as server:
        started = time.perf_counter()
        error = error_of(embed(server.url, "held"), 504)
        assert time.perf_counter() - started < 10
        assert (error["type"], error["code"]) == ("server_error", "timeout")
        assert "0.5 s" in error["message"]
        server.release.set()
        assert embed(server.url, "next").status_code == 200


def test_requests_arriving_while_shutting_down_get_503(sample_index, monkeypatch):
    with gated_server(sample_index, monkeypatch) as server:
        server.release.set()
        assert embed(server.url, "before").status_code == 200
        server.app.state.draining.set()  # what SIGTERM does (test_serve_shutdown.py)
        refused = embed(server.url, "after")
        assert error_of(refused, 503)["type"] == "server_error"
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["connection"] == "close"
        health = httpx.get(f"{server.url}/health")
        assert health.status_code == 503
        assert health.json()["checks"]["model"] == "shutting down"


def test_health_and_requests_say_when_the_encoder_is_not_running(sample_index, monkeypatch):
    with gated_server(sample_index, monkeypatch) as server:
        server.release.set()
        healthy = httpx.get(f"{server.url}/health").json()
        assert healthy["status"] == "ok" and healthy["queue"] == {"waiting": 0, "max": 1024}
        server.app.state.batcher.close()  # as if the encoder thread had died
        health = httpx.get(f"{server.url}/health")
        assert health.status_code == 503
        assert health.json()["checks"] == {
            "model": "the encoder thread is not running",
            "index": "ok",
        }
        error = error_of(embed(server.url, "x"), 503)
        assert error["message"] == "the encoder is not running; retry later"
        assert error_of(httpx.post(f"{server.url}/search", json={"query": "x"}), 503)


def test_a_poisoned_request_among_40_good_ones_fails_only_itself(
    sample_index, monkeypatch, encoder
):
    texts = [f"request number {i} about retries" for i in range(40)]
    with gated_server(sample_index, monkeypatch) as server, ThreadPoolExecutor(42) as pool:
        first = pool.submit(embed, server.url, "hold the encoder")
        assert server.entered.wait(30)
        good = [pool.submit(embed, server.url, t) for t in texts[:20]]
        bad = pool.submit(embed, server.url, "poison pill")
        good += [pool.submit(embed, server.url, t) for t in texts[20:]]
        wait_until_waiting(server.url, 41)  # all 41 will share one batch
        server.release.set()
        assert first.result(30).status_code == 200
        responses = [f.result(30) for f in good]
        assert [r.status_code for r in responses] == [200] * 40
        got = np.array([r.json()["data"][0]["embedding"] for r in responses], dtype=np.float32)
        np.testing.assert_allclose(got, encoder.encode(texts), atol=1e-5)
        error = error_of(bad.result(30), 500)
        assert error["type"] == "server_error"
        assert server.app.state.batcher.isolated_retries == 1
        # the shared call of 41 texts failed, then each of its 41 jobs ran alone
        assert len(server.calls[1]) == 41 and len(server.calls) == 2 + 41
