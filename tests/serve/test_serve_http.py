"""The real server over HTTP: search, OpenAI-compatible embeddings, limits and errors.

The server fixture (tests/serve/conftest.py) runs uvicorn on a free loopback port with small
limits: 100,000-byte bodies, 8 inputs per request, 2,000 characters per text, k <= 20.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json

import httpx
import numpy as np
import pytest

from ragtune.search import IndexStore


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]["message"]


def test_health_describes_model_and_index(client):
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert (health["model"], health["dim"], health["chunks"], health["files"]) == (
        "model",
        32,
        8,
        4,
    )
    assert health["limits"]["max_inputs"] == 8


def test_search_returns_stored_chunks_with_their_lines(client, sample_index):
    response = client.post("/search", json={"query": "exponential backoff", "k": 3, "hybrid": True})
    body = response.json()
    assert response.status_code == 200 and body["k"] == 3 and body["hybrid"] is True
    top = body["hits"][0]
    assert set(top) == {"rank", "path", "start_line", "end_line", "score", "text"}
    assert (top["path"], top["start_line"], top["end_line"]) == ("notes.txt", 1, 2)
    with IndexStore.open(sample_index) as store:
        stored = {(c.path, c.start_line, c.end_line): c.text for c in store.chunks(range(8))}
    for hit in body["hits"]:
        assert stored[(hit["path"], hit["start_line"], hit["end_line"])] == hit["text"]


def test_embeddings_match_the_model_and_follow_the_openai_shape(client, encoder):
    texts = ["where is the status line parsed?", "retries back off"]
    body = client.post("/v1/embeddings", json={"input": texts, "model": "anything"}).json()
    assert body["object"] == "list" and body["model"] == "model"
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert all(d["object"] == "embedding" for d in body["data"])
    got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)  # (2, 32)
    np.testing.assert_allclose(got, encoder.encode(texts), atol=1e-5)
    # usage: [CLS] + tokens + [SEP] of each text, counted by the tokenizer here
    n = sum(len(encoder.tokenizer(t)["input_ids"]) for t in texts)
    assert body["usage"] == {"prompt_tokens": n, "total_tokens": n}

    single = client.post("/v1/embeddings", json={"input": texts[0], "model": "m"}).json()
    np.testing.assert_allclose(single["data"][0]["embedding"], got[0], atol=1e-6)


def test_base64_and_matryoshka_dimensions(client, encoder):
    text = "reciprocal rank fusion"
    full = encoder.encode([text])[0]  # (32,)
    body = client.post(
        "/v1/embeddings", json={"input": [text], "encoding_format": "base64", "dimensions": 8}
    ).json()
    vector = np.frombuffer(base64.b64decode(body["data"][0]["embedding"]), dtype="<f4")
    expected = full[:8] / np.sqrt((full[:8] ** 2).sum())  # the first 8 dims, back to unit length
    np.testing.assert_allclose(vector, expected, atol=1e-5)

    message = error_of(client.post("/v1/embeddings", json={"input": "x", "dimensions": 64}), 422)
    assert message == "dimensions 64 is larger than the model's 32"


def test_input_type_applies_the_models_prompts(client, encoder):
    # the tiny model has no prompts: query, document and none embed alike
    a = client.post("/v1/embeddings", json={"input": "abc", "input_type": "query"}).json()
    b = client.post("/v1/embeddings", json={"input": "abc", "input_type": "none"}).json()
    assert a["data"][0]["embedding"] == b["data"][0]["embedding"]


def test_exactly_what_the_openai_client_sends(client, encoder):
    # openai-python posts to {base_url}/embeddings with these keys and, when the caller does not
    # choose, encoding_format "base64" (it decodes the floats itself).
    raw = json.dumps({"model": "text-embedding-3-small", "input": ["hello world"],
                      "encoding_format": "base64"})  # fmt: skip
    response = client.post(
        "/v1/embeddings", content=raw,
        headers={"Content-Type": "application/json", "Authorization": "Bearer sk-unused"},
    )  # fmt: skip
    assert response.status_code == 200
    vector = np.frombuffer(base64.b64decode(response.json()["data"][0]["embedding"]), "<f4")
    np.testing.assert_allclose(vector, encoder.encode(["hello world"])[0], atol=1e-5)


def test_the_openai_client_itself(server_url, encoder):
    openai = pytest.importorskip("openai", reason="the openai package is not installed")
    api = openai.OpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0)
    result = api.embeddings.create(model="ragtune", input=["hello world", "second text"])
    got = np.array([d.embedding for d in result.data], dtype=np.float32)
    np.testing.assert_allclose(got, encoder.encode(["hello world", "second text"]), atol=1e-5)
    assert result.usage.prompt_tokens == 4 + 4  # [CLS] hello world [SEP], [CLS] second text [SEP]
    short = api.embeddings.create(model="ragtune", input="hello world", dimensions=4)
    assert len(short.data[0].embedding) == 4
    assert api.models.list().data[0].id == "model"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"input": [1, "a"]}, "input must be a string or a list of strings"),
        ({"input": [[1, 2], [3.5]]}, "input must be a string or a list of strings"),
        ({"input": []}, "input must not be an empty list"),
        ({"input": ["ok", None]}, "input must be a string or a list of strings"),
        ({"model": "m"}, "input is required"),
        ({"input": 5}, "input must be a string or a list of strings"),
        ({"input": {"text": "x"}}, "input must be a string or a list of strings"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format: Input should be"),
        ({"input": "x", "dimensions": 0}, "dimensions: Input should be greater than or equal"),
    ],
)
def test_malformed_embedding_requests_get_422(client, payload, message):
    assert message in error_of(client.post("/v1/embeddings", json=payload), 422)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"k": 3}, "query is required"),
        ({"query": "", "k": 3}, "query must not be empty"),
        ({"query": "x", "k": 0}, "k: Input should be greater than or equal to 1"),
        ({"query": "x", "k": 21}, "k must be at most 20, got 21"),
        ({"query": "x", "k": "5"}, "k: Input should be a valid integer"),
        ({"query": "x", "top_k": 5}, "top_k: Extra inputs are not permitted"),
    ],
)
def test_malformed_search_requests_get_422(client, payload, message):
    assert message in error_of(client.post("/search", json=payload), 422)


def test_broken_json_and_non_objects_get_422(client):
    for body in (b"null", b'["query"]', b'"query"'):
        response = client.post(
            "/search", content=body, headers={"content-type": "application/json"}
        )
        assert error_of(response, 422) == "the request body must be a JSON object"
    response = client.post(
        "/search", content=b'{"query": ', headers={"content-type": "application/json"}
    )
    assert error_of(response, 422) == "the request body is not valid JSON"


def test_too_large_requests_get_413(client):
    big = "x" * 150_000
    message = error_of(client.post("/v1/embeddings", json={"input": big}), 413)
    assert "limit is 100000 bytes" in message

    def chunked():  # no Content-Length: the server counts bytes as they arrive
        for _ in range(30):
            yield b" " * 10_000

    response = client.post(
        "/search", content=chunked(), headers={"content-type": "application/json"}
    )
    assert "limit is 100000 bytes" in error_of(response, 413)

    message = error_of(client.post("/v1/embeddings", json={"input": ["a"] * 9}), 413)
    assert message == "input has 9 texts; the limit is 8 per request"
    message = error_of(client.post("/search", json={"query": "y" * 2001}), 413)
    assert message == "query is 2001 characters; the limit is 2000"
    message = error_of(client.post("/v1/embeddings", json={"input": ["z" * 2500]}), 413)
    assert message == "an input text is 2500 characters; the limit is 2000"


def test_no_request_reaches_files_outside_the_index(client):
    for path in ("/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/page.html", "/static/x"):
        assert client.get(path).status_code == 404
    hits = client.post("/search", json={"query": "/etc/passwd ../../secret token", "k": 20}).json()
    assert {h["path"] for h in hits["hits"]} <= {".gitignore", "README.md", "notes.txt",
                                                  "src/http.py"}  # fmt: skip
    assert all("secret token" not in h["text"] for h in hits["hits"])  # debug.log is ignored


def test_page_is_self_contained(client):
    response = client.get("/")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert "http://" not in response.text and "https://" not in response.text


def test_concurrent_requests_each_get_their_own_vectors(client, server_url, encoder):
    texts = [f"text number {i} about topic {i % 5}" for i in range(24)]
    expected = encoder.encode(texts)

    def one(i: int) -> np.ndarray:
        with httpx.Client(base_url=server_url, timeout=30) as c:
            r = c.post("/v1/embeddings", json={"input": [texts[i]]})
            return np.array(r.json()["data"][0]["embedding"], dtype=np.float32)

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        got = list(pool.map(one, range(len(texts))))
    np.testing.assert_allclose(np.stack(got), expected, atol=1e-5)
