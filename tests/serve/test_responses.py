"""The orjson response of /v1/embeddings: the same JSON values, and no NaN sent as null."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ragtune.serve.openai_api import embeddings_response
from ragtune.serve.responses import FastJSONResponse


def test_the_body_parses_to_the_same_values_as_the_standard_encoder_writes() -> None:
    vectors = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    body = embeddings_response(
        vectors, [4, 5, 6], model="m", encoding_format="float", dimensions=None, normalized=False
    )
    fast = json.loads(FastJSONResponse(body).body)
    assert fast == json.loads(json.dumps(body))  # every float identical after parsing
    np.testing.assert_array_equal(
        np.array([d["embedding"] for d in fast["data"]], dtype=np.float32), vectors
    )
    assert fast["usage"] == {"prompt_tokens": 15, "total_tokens": 15}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_value_raises_instead_of_becoming_null(bad: float) -> None:
    body = {"data": [{"embedding": [0.1, bad, 0.3]}]}
    with pytest.raises(ValueError, match="NaN or infinite"):
        FastJSONResponse(body)
    with pytest.raises(ValueError, match="NaN or infinite"):
        FastJSONResponse({"score": bad})
    assert json.loads(FastJSONResponse({"v": [1e308, 1e308]}).body) == {"v": [1e308, 1e308]}
