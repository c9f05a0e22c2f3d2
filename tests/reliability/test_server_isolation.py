"""One bad request fails alone, always with a JSON error; /health tells when the index changed.

Against real servers on loopback: the shared one of tests/serve/conftest.py (limits: 8 inputs per
request, 2,000 characters per text, k <= 20), and private ones where the model is made to fail on
purpose. Bodies are sent as raw JSON so that a lone surrogate travels as the escape ``\\udc00``
(valid JSON, but not text).
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from ragtune.model import Encoder
from ragtune.search.searcher import Searcher
from ragtune.serve.app import create_app
from ragtune.serve.server import background_server
from tests.serve.conftest import sample_index, server_url, tiny_model_dir  # noqa: F401

SURROGATE = "holds a lone surrogate U+{:04X} at character {}"


def post(url: str, path: str, payload: Any) -> httpx.Response:
    raw = json.dumps(payload)  # ensure_ascii: "\udc00" goes out as the JSON escape \udc00
    return httpx.post(
        url + path, content=raw, headers={"content-type": "application/json"}, timeout=30
    )


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The ``error`` object of a JSON error response with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.fixture(scope="module")
def encoder(tiny_model_dir):  # noqa: F811 - the fixture imported above
    return Encoder.load(tiny_model_dir, device="cpu")


# ---------------------------------------------------------------- text the tokenizer cannot take
@pytest.mark.parametrize(
    ("query", "code_point", "position"),
    [("\udc00", 0xDC00, 1), ("retry \ud83d backoff", 0xD83D, 7), ("backoff\udfff", 0xDFFF, 8)],
)
def test_a_lone_surrogate_in_a_query_is_a_422_naming_it(server_url, query, code_point, position):  # noqa: F811
    got = error(post(server_url, "/search", {"query": query, "k": 3}), 422)
    assert got == {
        "message": "query " + SURROGATE.format(code_point, position),
        "type": "invalid_request_error",
        "param": "query",
        "code": None,
    }


@pytest.mark.parametrize(
    ("payload", "index", "code_point", "position"),
    [
        ({"input": "\udc00"}, 0, 0xDC00, 1),
        ({"input": ["fine", "also fine", "x\ud800"]}, 2, 0xD800, 2),
        ({"input": ["\udc00 first", "ok"], "input_type": "query"}, 0, 0xDC00, 1),
        ({"input": ["ok", "\ud800", "\udc01"], "encoding_format": "base64"}, 1, 0xD800, 1),
    ],
)
def test_a_lone_surrogate_in_embeddings_input_names_its_index(
    server_url,  # noqa: F811
    payload,
    index,
    code_point,
    position,
):
    got = error(post(server_url, "/v1/embeddings", payload), 422)
    assert got == {
        "message": f"input[{index}] " + SURROGATE.format(code_point, position),
        "type": "invalid_request_error",
        "param": f"input[{index}]",
        "code": None,
    }


def test_a_valid_pair_of_surrogate_escapes_is_ordinary_text(server_url, encoder):  # noqa: F811
    # "\ud83d\ude00" in JSON is one character, U+1F600: it must embed like the emoji itself
    response = post(server_url, "/v1/embeddings", {"input": ["smile \U0001f600"]})
    assert response.status_code == 200
    np.testing.assert_allclose(
        response.json()["data"][0]["embedding"], encoder.encode(["smile \U0001f600"])[0], atol=1e-5
    )


# ---------------------------------------------------------------- wrong types and limits
@pytest.mark.parametrize(
    ("path", "payload", "status", "message", "param"),
    [
        ("/search", {"query": 5}, 422, "query: Input should be a valid string", "query"),
        ("/search", {"query": "x", "k": True}, 422, "k: Input should be a valid integer", "k"),
        ("/search", {"query": "x", "k": 1.5}, 422, "k: Input should be a valid integer", "k"),
        ("/search", {"query": "x", "k": -1}, 422,
         "k: Input should be greater than or equal to 1", "k"),
        ("/search", {"query": "x", "k": 10**30}, 422, "k must be at most 20, got " + str(10**30),
         "k"),
        ("/search", {"query": "x", "hybrid": "yes"}, 422, "hybrid: Input should be a valid boolean",
         "hybrid"),
        ("/search", {"query": "   "}, 422, "query must not be empty", "query"),
        ("/search", {"query": "\udc00" * 2001}, 413,
         "query is 2001 characters; the limit is 2000", "query"),
        ("/v1/embeddings", {"input": [True]}, 422,
         "input must be a string or a list of strings, or a token array (a list of integers) "
         "or a list of token arrays", "input"),
        ("/v1/embeddings", {"input": ["a", 3]}, 422,
         "input must be a string or a list of strings, or a token array (a list of integers) "
         "or a list of token arrays", "input"),
        ("/v1/embeddings", {"input": ["\udc00"] * 9}, 413,
         "input has 9 texts; the limit is 8 per request", "input"),
        ("/v1/embeddings", {"input": ["ok", "y" * 2001]}, 413,
         "an input text is 2001 characters; the limit is 2000", "input"),
        ("/v1/embeddings", {"input": "x", "dimensions": "eight"}, 422,
         "dimensions: Input should be a valid integer, unable to parse string as an integer",
         "dimensions"),
    ],
)  # fmt: skip
def test_wrong_types_and_sizes_get_exact_errors(server_url, path, payload, status, message, param):  # noqa: F811
    got = error(post(server_url, path, payload), status)
    assert (got["message"], got["param"]) == (message, param)
    assert got["type"] == ("request_too_large" if status == 413 else "invalid_request_error")


def test_unknown_routes_and_methods_answer_json(server_url):  # noqa: F811
    assert error(httpx.get(f"{server_url}/nope"), 404)["message"] == "Not Found"
    response = httpx.get(f"{server_url}/search")
    assert error(response, 405)["message"] == "Method Not Allowed"
    assert response.headers["allow"] == "POST"


# ---------------------------------------------------------------- isolation under concurrency
def test_poisoned_requests_among_40_concurrent_good_ones_fail_alone(server_url, encoder):  # noqa: F811
    good = [f"request {i} about retries and backoff {i % 7}" for i in range(40)]
    expected = encoder.encode(good)  # (40, 32)
    poisoned = [["fine", f"bad \udc00 {i}"] for i in range(10)]

    def embed(texts: list[str]) -> httpx.Response:
        return post(server_url, "/v1/embeddings", {"input": texts})

    def search(query: str) -> httpx.Response:
        return post(server_url, "/search", {"query": query, "k": 2})

    reference = search("exponential backoff").json()["hits"]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        jobs = [pool.submit(embed, [t]) for t in good[:20]]
        jobs += [pool.submit(embed, p) for p in poisoned]
        jobs += [pool.submit(embed, [t]) for t in good[20:]]
        jobs += [pool.submit(search, f"\udc00 query {i}") for i in range(5)]
        jobs += [pool.submit(search, "exponential backoff") for _ in range(5)]
        responses = [j.result(timeout=90) for j in jobs]
    assert time.monotonic() - started < 90

    ok = responses[:20] + responses[30:50]
    got = np.array([r.json()["data"][0]["embedding"] for r in ok], dtype=np.float32)
    assert [r.status_code for r in ok] == [200] * 40
    np.testing.assert_allclose(got, expected, atol=1e-5)
    for r in responses[20:30]:
        assert error(r, 422)["param"] == "input[1]"
    for r in responses[50:55]:
        assert error(r, 422)["message"] == "query " + SURROGATE.format(0xDC00, 1)
    for r in responses[55:]:
        assert r.status_code == 200 and r.json()["hits"] == reference


class PickyTokenizer:
    """The real tokenizer, except that it refuses any text with "\u2620" in it (as a tokenizer
    refuses what it cannot take) and holds the first call on "hold" until ``release`` is set."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, texts: Any, *args: Any, **kwargs: Any) -> Any:
        if any("\u2620" in t for t in texts):
            raise TypeError("TextEncodeInput must be Union[TextInputSequence, ...]")
        if "hold" in texts and not self.entered.is_set():
            self.entered.set()
            self.release.wait(30)
        return self._real(texts, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def fragile_server(sample_index, monkeypatch) -> Iterator[tuple[str, Any, PickyTokenizer]]:  # noqa: F811
    """A private server: its tokenizer refuses "\u2620", its model fails on "model-failure"."""
    searcher = Searcher.open(sample_index, device="cpu")
    encoder = searcher.encoder
    picky = PickyTokenizer(encoder.tokenizer)
    real_encode = encoder.encode

    def encode(texts, **kwargs):
        if any("model-failure" in t for t in texts):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real_encode(texts, **kwargs)

    monkeypatch.setattr(encoder, "tokenizer", picky)
    monkeypatch.setattr(encoder, "encode", encode)
    app = create_app(searcher)
    try:
        with background_server(app) as url:
            yield url, app.state.batcher, picky
    finally:
        searcher.close()


def test_a_batch_that_fails_is_rerun_request_by_request(fragile_server, encoder, caplog):
    url, batcher, picky = fragile_server
    good = [f"good text {i}" for i in range(12)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        first = pool.submit(post, url, "/v1/embeddings", {"input": ["hold"]})
        assert picky.entered.wait(30)  # the worker is busy: what comes now is queued together
        jobs = [pool.submit(post, url, "/v1/embeddings", {"input": [t]}) for t in good[:6]]
        refused = pool.submit(post, url, "/v1/embeddings", {"input": ["ok", "skull \u2620"]})
        failing = pool.submit(post, url, "/v1/embeddings", {"input": ["model-failure"]})
        jobs += [pool.submit(post, url, "/v1/embeddings", {"input": [t]}) for t in good[6:]]
        deadline = time.monotonic() + 30
        while batcher.queued < 14 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert batcher.queued == 14
        with caplog.at_level(logging.ERROR, logger="ragtune.serve"):
            picky.release.set()
            responses = [j.result(timeout=60) for j in jobs]
            refused_response, failing_response = refused.result(60), failing.result(60)
        assert first.result(60).status_code == 200

    assert batcher.isolated_retries == 1  # the shared call failed once, then each job alone
    assert [r.status_code for r in responses] == [200] * 12
    got = np.array([r.json()["data"][0]["embedding"] for r in responses], dtype=np.float32)
    np.testing.assert_allclose(got, encoder.encode(good), atol=1e-5)
    assert error(refused_response, 422) == {
        "message": "input[1]: the tokenizer cannot take this text (TypeError)",
        "type": "invalid_request_error",
        "param": "input[1]",
        "code": None,
    }
    assert error(failing_response, 500) == {
        "message": "the server failed on this request (RuntimeError); its log has the details",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    [record] = [r for r in caplog.records if r.name == "ragtune.serve"]
    assert record.getMessage() == "POST /v1/embeddings failed"
    assert record.exc_info is not None and "illegal memory access" in str(record.exc_info[1])


# ---------------------------------------------------------------- /health reflects the index
def test_health_turns_503_when_the_index_changes_under_the_server(tmp_path, sample_index):  # noqa: F811
    index = Path(shutil.copytree(sample_index, tmp_path / "repo.idx"))
    searcher = Searcher.open(index, device="cpu")
    try:
        with background_server(create_app(searcher)) as url:
            health = httpx.get(f"{url}/health").json()
            assert (health["status"], health["checks"]) == ("ok", {"model": "ok", "index": "ok"})
            faiss_file = index / "dense" / "index.faiss"
            size = faiss_file.stat().st_size
            faiss_file.write_bytes(faiss_file.read_bytes()[:10])
            response = httpx.get(f"{url}/health")
            assert response.status_code == 503
            assert response.json()["status"] == "error"
            assert response.json()["checks"] == {
                "model": "ok",
                "index": f"changed on disk since the server started ({faiss_file}: 10 bytes, "
                f"manifest.json lists {size}); restart it",
            }
    finally:
        searcher.close()
