"""The whole OpenAI ``/v1/embeddings`` contract, spoken by the ``openai`` SDK to a real server.

Input as a string, strings, a token array or token arrays (decoded with bpe-openai, then embedded
with the model's own tokenizer), float and base64, ``dimensions``, ``user``, ``truncate``,
OpenAI's limits and its error body. The server fixture (tests/serve/conftest.py) allows 8 inputs
and 2,000 characters per text; the tiny model reads at most 64 tokens and normalises.
"""

from __future__ import annotations

import base64

import bpe_openai
import httpx
import numpy as np
import openai
import pytest

from ragtune.serve.limits import ApiError, ServeLimits
from ragtune.serve.openai_api import embeddings_response, few_texts, input_texts

TEXTS = ["where is the status line parsed?", "retries back off exponentially"]


@pytest.fixture(scope="module")
def api(server_url):
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0)


def vectors_of(result) -> np.ndarray:
    return np.array([d.embedding for d in result.data], dtype=np.float32)  # (N, D)


def error_of(response: httpx.Response, status: int) -> dict:
    """The OpenAI error object of a response, after checking its status and shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_float_and_base64_equal_the_encoders_vectors(api, encoder):
    expected = encoder.encode(TEXTS)  # (2, 32)
    as_float = api.embeddings.create(model="m", input=TEXTS, encoding_format="float")
    np.testing.assert_allclose(vectors_of(as_float), expected, atol=1e-5)
    # the SDK asks for base64 when the caller does not choose and decodes it itself
    as_base64 = api.embeddings.create(model="m", input=TEXTS, user="user-42")
    np.testing.assert_allclose(vectors_of(as_base64), expected, atol=1e-5)
    n = sum(len(encoder.tokenizer(t)["input_ids"]) for t in TEXTS)  # the model's own tokens
    assert (as_base64.usage.prompt_tokens, as_base64.usage.total_tokens) == (n, n)


def test_raw_base64_is_little_endian_float32(client, encoder):
    body = client.post("/v1/embeddings", json={"input": "a", "encoding_format": "base64"}).json()
    vector = np.frombuffer(base64.b64decode(body["data"][0]["embedding"]), dtype="<f4")
    assert vector.shape == (32,)
    np.testing.assert_allclose(vector, encoder.encode(["a"])[0], atol=1e-5)


def test_token_arrays_embed_like_the_text_they_encode(api, encoder):
    cl100k = bpe_openai.get_encoding("cl100k_base")
    ids = [cl100k.encode(t) for t in TEXTS]
    from_text = api.embeddings.create(model="m", input=TEXTS)
    from_ids = api.embeddings.create(model="m", input=ids)  # what LangChain sends
    np.testing.assert_allclose(vectors_of(from_ids), vectors_of(from_text), atol=1e-6)
    assert from_ids.usage.prompt_tokens == from_text.usage.prompt_tokens  # model tokens
    one = api.embeddings.create(model="m", input=ids[0])  # a single token array
    assert len(one.data) == 1
    np.testing.assert_allclose(vectors_of(one)[0], vectors_of(from_text)[0], atol=1e-6)


def test_o200k_token_arrays_are_decoded_when_the_request_names_the_encoding(api):
    ids = bpe_openai.get_encoding("o200k_base").encode(TEXTS[0])
    from_text = api.embeddings.create(model="m", input=TEXTS[0])
    named = api.embeddings.create(model="m", input=ids, extra_body={"token_encoding": "o200k_base"})
    np.testing.assert_allclose(vectors_of(named), vectors_of(from_text), atol=1e-6)
    as_cl100k = api.embeddings.create(model="m", input=ids)  # the default decodes other text
    assert not np.allclose(vectors_of(as_cl100k), vectors_of(from_text), atol=1e-3)


def test_dimensions_truncate_and_renormalise(api, encoder):
    full = encoder.encode([TEXTS[0]])[0]  # (32,)
    short = vectors_of(api.embeddings.create(model="m", input=TEXTS[0], dimensions=8))[0]
    np.testing.assert_allclose(short, full[:8] / np.linalg.norm(full[:8]), atol=1e-5)


def test_dimensions_of_a_model_that_does_not_normalise_are_only_cut():
    vectors = np.array([[3.0, 4.0, 12.0]], dtype=np.float32)  # (1, 3), norm 13
    body = embeddings_response(
        vectors, [5], model="m", encoding_format="float", dimensions=2, normalized=False
    )
    assert body["data"][0]["embedding"] == [3.0, 4.0]
    body = embeddings_response(
        vectors, [5], model="m", encoding_format="float", dimensions=2, normalized=True
    )
    np.testing.assert_allclose(body["data"][0]["embedding"], [0.6, 0.8], atol=1e-6)
    assert body["usage"] == {"prompt_tokens": 5, "total_tokens": 5}


def test_truncate_false_refuses_a_text_longer_than_the_model_reads(client, encoder):
    long_text = " ".join(
        ["backoff"] * 100
    )  # [CLS] + 100 x (back, ##off) + [SEP] = 202 model tokens; the model reads 64
    error = error_of(
        client.post("/v1/embeddings", json={"input": ["ok", long_text], "truncate": False}), 413
    )
    assert error == {
        "message": "input[1] is 202 tokens for this model, which reads at most 64; "
        "shorten it or send truncate: true",
        "type": "request_too_large",
        "param": "input[1]",
        "code": None,
    }
    cut = client.post("/v1/embeddings", json={"input": long_text}).json()  # truncate: true
    assert cut["usage"]["prompt_tokens"] == 64
    np.testing.assert_allclose(
        cut["data"][0]["embedding"], encoder.encode([long_text])[0], atol=1e-5
    )
    fits = client.post("/v1/embeddings", json={"input": "short", "truncate": False})
    assert fits.status_code == 200


def test_the_sdk_raises_openais_errors(api):
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        api.embeddings.create(model="m", input=[[15339, -1]])
    assert caught.value.body == {
        "message": "input[0]: -1 is not a token of cl100k_base (ids are 0 to 100276)",
        "type": "invalid_request_error",
        "param": "input[0]",
        "code": None,
    }


@pytest.mark.parametrize(
    ("payload", "status", "message", "param"),
    [
        (
            {"input": [[1] * 8193]},
            413,
            "input[0] has 8193 tokens; the limit is 8192 per input",
            "input[0]",
        ),
        (
            {"input": [15339, 100256]},
            422,
            "input[0]: 100256 is not a token of cl100k_base (ids are 0 to 100276)",
            "input[0]",
        ),
        (
            {"input": [[15339], [10**9]]},
            422,
            "input[1]: 1000000000 is not a token of cl100k_base (ids are 0 to 100276)",
            "input[1]",
        ),
        ({"input": [[15339], []]}, 422, "input[1] is an empty token array", "input[1]"),
        (
            {"input": [[1, 2], "text"]},
            422,
            "input must be a string or a list of strings, or a token array (a list of "
            "integers) or a list of token arrays",
            "input",
        ),
        (
            {"input": [[1, True]]},
            422,
            "input must be a string or a list of strings, or a token array (a list of "
            "integers) or a list of token arrays",
            "input",
        ),
        (
            {"input": [[1]] * 9},
            413,
            "input has 9 texts; the limit is 8 per request",
            "input",
        ),
        (
            {"input": [[24748] * 500]},  # " hello" 500 times
            413,
            "input[0] decodes to 3000 characters; the limit is 2000",
            "input[0]",
        ),
    ],
)
def test_bad_token_arrays_get_openais_error_body(client, payload, status, message, param):
    error = error_of(client.post("/v1/embeddings", json=payload), status)
    assert (error["message"], error["param"]) == (message, param)
    assert error["type"] == ("request_too_large" if status == 413 else "invalid_request_error")


def test_an_unknown_token_encoding_is_refused(client):
    error = error_of(
        client.post("/v1/embeddings", json={"input": [1], "token_encoding": "gpt2"}), 422
    )
    assert error["param"] == "token_encoding"
    assert "'cl100k_base' or 'o200k_base'" in error["message"]


def test_openais_own_limits_hold_when_the_server_allows_more():
    generous = ServeLimits(max_inputs=10_000, max_text_chars=10_000_000)
    with pytest.raises(ApiError) as caught:
        input_texts(["x"] * 2049, generous, "cl100k_base")
    assert (caught.value.status, caught.value.message) == (
        413,
        "input has 2049 texts; the limit is 2048 per request",
    )
    with pytest.raises(ApiError) as caught:
        input_texts([[15339] * 8000] * 38, generous, "cl100k_base")  # 304,000 tokens
    assert (caught.value.status, caught.value.message) == (
        413,
        "input has 304000 tokens; the limit is 300000 per request",
    )
    assert input_texts([[15339, 1917]] * 2048, generous, "cl100k_base") == ["hello world"] * 2048


def test_a_server_started_with_o200k_decodes_token_arrays_with_it(sample_index):
    from ragtune.errors import RagtuneError
    from ragtune.search.searcher import Searcher
    from ragtune.serve.app import create_app
    from ragtune.serve.server import background_server

    ids = bpe_openai.get_encoding("o200k_base").encode(TEXTS[1])
    searcher = Searcher.open(sample_index, device="cpu")
    try:
        with pytest.raises(RagtuneError) as caught:
            create_app(searcher, token_encoding="gpt2")  # type: ignore[arg-type]
        assert str(caught.value) == (
            "unknown token encoding 'gpt2'; choose one of cl100k_base, o200k_base"
        )
        with background_server(create_app(searcher, token_encoding="o200k_base")) as url:
            api = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            from_ids = vectors_of(api.embeddings.create(model="m", input=ids))
            from_text = vectors_of(api.embeddings.create(model="m", input=TEXTS[1]))
    finally:
        searcher.close()
    np.testing.assert_allclose(from_ids, from_text, atol=1e-6)


def test_only_small_string_inputs_are_checked_on_the_event_loop():
    # the handler checks these inline; token arrays and large inputs go to the thread pool
    assert few_texts("where is the retry loop?")
    assert few_texts(["a", "b"] * 32)
    assert not few_texts(["a"] * 65)
    assert not few_texts([15339, 1917])  # a token array: decoding it may be long
    assert not few_texts([[15339, 1917]])
    assert not few_texts("x" * 70_000)
    assert not few_texts(["x" * 40_000, "y" * 40_000])
