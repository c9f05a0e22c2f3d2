"""The OpenAI ``/v1/embeddings`` contract: the request, its inputs as texts, and the response.

OpenAI's API takes ``input`` in four shapes, and clients use all of them: a string, a list of
strings, one token array (a list of integers) or a list of token arrays. LangChain's
``OpenAIEmbeddings`` sends token arrays by default: it splits texts with tiktoken's
``cl100k_base`` and posts the ids. A token array is decoded back to text with the encoding that
produced it (:func:`decode_tokens`, ``bpe-openai``, which bundles the encodings and needs no
network), and the text is then embedded with the model's own tokenizer like any other text.

The encoding is ``cl100k_base`` unless the server is started with another one
(``create_app(..., token_encoding="o200k_base")``) or the request names one in the extra field
``"token_encoding": "cl100k_base" | "o200k_base"`` (the tokenizer of ``text-embedding-3-*`` and
``ada-002`` is ``cl100k_base``; ``o200k_base`` is the one of the newer chat models).

OpenAI's limits hold for every request (:data:`MAX_INPUTS`, :data:`MAX_ARRAY_TOKENS`,
:data:`MAX_REQUEST_TOKENS`); the server's own :class:`~ragtune.serve.limits.ServeLimits` may be
stricter. ``truncate`` (an extra field, default ``true``) says what happens to a text longer
than the model reads: cut to ``max_seq_length`` tokens, or, when ``false``, a 413 naming it.

Example request (LangChain at its defaults)::

    {"model": "text-embedding-ada-002", "input": [[15339, 1917]], "encoding_format": "base64"}
"""

from __future__ import annotations

import base64
import functools
import threading
from typing import Any, Literal, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ragtune.errors import RagtuneError
from ragtune.serve.limits import ApiError, ServeLimits, unencodable

TokenEncoding = Literal["cl100k_base", "o200k_base"]
TOKEN_ENCODINGS: tuple[TokenEncoding, ...] = ("cl100k_base", "o200k_base")

MAX_INPUTS = 2048
"""Items (texts or token arrays) in one request, as OpenAI allows."""
MAX_ARRAY_TOKENS = 8192
"""Tokens in one token array."""
MAX_REQUEST_TOKENS = 300_000
"""Tokens in all the token arrays of one request."""

SHAPES = (
    "input must be a string or a list of strings, or a token array (a list of integers) "
    "or a list of token arrays"
)


class EmbeddingsRequest(BaseModel):
    """The body of ``POST /v1/embeddings``: OpenAI's fields plus ``input_type``, ``truncate``
    and ``token_encoding`` (unknown fields are ignored: clients send ones we do not use)."""

    model_config = ConfigDict(extra="ignore")

    input: str | list[Any]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None
    input_type: Literal["query", "document", "none"] = "none"
    truncate: bool = True
    token_encoding: TokenEncoding | None = None


def input_texts(value: str | list[Any], limits: ServeLimits, encoding: TokenEncoding) -> list[str]:
    """The texts of a request's ``input``, token arrays decoded with ``encoding``; a 413 for
    input over the limits, a 422 for a malformed one (``param`` names the item)."""
    items: list[Any]
    if isinstance(value, str):
        items = [value]
    elif value and all(_is_token(t) for t in value):
        items = [value]  # one token array
    else:
        items = value
    if not items:
        raise ApiError(422, "input must not be an empty list", param="input")
    if all(isinstance(t, str) for t in items):
        arrays = False
    elif all(isinstance(t, list) and all(_is_token(x) for x in t) for t in items):
        arrays = True
    else:
        raise ApiError(422, SHAPES, param="input")
    most = min(MAX_INPUTS, limits.max_inputs)
    if len(items) > most:
        raise ApiError(
            413, f"input has {len(items)} texts; the limit is {most} per request", param="input"
        )
    texts = _decode_all(items, encoding) if arrays else items
    longest = max(range(len(texts)), key=lambda i: len(texts[i]))
    if len(texts[longest]) > limits.max_text_chars:
        what = f"input[{longest}] decodes to" if arrays else "an input text is"
        raise ApiError(
            413,
            f"{what} {len(texts[longest])} characters; the limit is {limits.max_text_chars}",
            param=f"input[{longest}]" if arrays else "input",
        )
    for i, text in enumerate(texts):
        if problem := unencodable(text):
            raise ApiError(422, f"input[{i}] {problem}", param=f"input[{i}]")
    return texts


INLINE_TEXTS = 64
"""Up to this many strings (and no token arrays), ``input`` is checked on the event loop."""
INLINE_CHARS = 65_536


def few_texts(value: str | list[Any]) -> bool:
    """Whether checking ``value`` is cheap enough to do on the event loop: a string, or at most
    :data:`INLINE_TEXTS` strings of :data:`INLINE_CHARS` characters in all (no token arrays)."""
    if isinstance(value, str):
        return len(value) <= INLINE_CHARS
    return (
        len(value) <= INLINE_TEXTS
        and all(isinstance(t, str) for t in value)
        and sum(len(t) for t in value) <= INLINE_CHARS
    )


def _is_token(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _decode_all(arrays: list[list[int]], encoding: TokenEncoding) -> list[str]:
    """Decode token arrays after checking OpenAI's token limits and every id."""
    total = 0
    for i, array in enumerate(arrays):
        if not array:
            raise ApiError(422, f"input[{i}] is an empty token array", param=f"input[{i}]")
        if len(array) > MAX_ARRAY_TOKENS:
            raise ApiError(
                413,
                f"input[{i}] has {len(array)} tokens; the limit is {MAX_ARRAY_TOKENS} per input",
                param=f"input[{i}]",
            )
        total += len(array)
    if total > MAX_REQUEST_TOKENS:
        raise ApiError(
            413,
            f"input has {total} tokens; the limit is {MAX_REQUEST_TOKENS} per request",
            param="input",
        )
    return [decode_tokens(array, encoding, param=f"input[{i}]") for i, array in enumerate(arrays)]


def decode_tokens(ids: list[int], encoding: TokenEncoding, *, param: str = "input") -> str:
    """The text of OpenAI token ids; a 422 for an id that is no token of ``encoding``.

    Bytes split inside a character (a text cut at a token boundary) decode to U+FFFD, as
    tiktoken's ``decode`` does.
    """
    bpe = _encoding(encoding)
    top = bpe.max_token_value
    # each distinct id once, in order of first use; Python lists take negative indices, so the
    # range is checked before the table is read
    for id_ in dict.fromkeys(ids):
        try:
            if not 0 <= id_ <= top:
                raise KeyError(id_)
            bpe.decode_single_token_bytes(id_)  # ids in gaps of the table raise KeyError too
        except KeyError:
            raise ApiError(
                422,
                f"{param}: {id_} is not a token of {encoding} (ids are 0 to {top})",
                param=param,
            ) from None
    text: str = bpe.decode(ids, errors="replace")
    return text


@functools.cache
def _encoding(name: TokenEncoding) -> Any:
    try:
        import bpe_openai
    except ImportError:
        raise RagtuneError(
            "decoding token arrays needs bpe-openai: install the serve extra with "
            "`pip install 'ragtune[serve]'`"
        ) from None
    return bpe_openai.get_encoding(name)


class LengthCheck:
    """Counts a text's tokens with a private copy of the model's tokenizer, for
    ``truncate: false`` (the encoder thread owns the model's own tokenizer, and a Hugging Face
    fast tokenizer must not be used from two threads at once)."""

    def __init__(self, tokenizer: Any, max_seq_length: int) -> None:
        self._source = tokenizer
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self.max_seq_length = max_seq_length

    def too_long(self, texts: list[str], prompt: str) -> tuple[int, int] | None:
        """``(index, tokens)`` of the first text longer than the model reads, or ``None``."""
        with self._lock:
            if self._tokenizer is None:  # copied on first use: most servers never need it
                import copy

                self._tokenizer = copy.deepcopy(self._source)
            ids = self._tokenizer(
                [prompt + t for t in texts],
                return_attention_mask=False,
                return_token_type_ids=False,
                verbose=False,
            )["input_ids"]
        for i, row in enumerate(ids):
            if len(row) > self.max_seq_length:
                return i, len(row)
        return None


def embeddings_response(
    vectors: np.ndarray,
    tokens: list[int],
    *,
    model: str,
    encoding_format: Literal["float", "base64"],
    dimensions: int | None,
    normalized: bool,
) -> dict[str, Any]:
    """OpenAI's response body for vectors (N, D) and the model tokens each text used.

    ``dimensions`` keeps the leading dimensions (Matryoshka) and, when the model normalises
    its embeddings, scales them back to unit length.
    """
    if dimensions is not None and dimensions < vectors.shape[1]:
        vectors = vectors[:, :dimensions]  # (N, d)
        if normalized:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)  # (N, 1)
            vectors = vectors / np.maximum(norms, 1e-12)
    data = [
        {"object": "embedding", "index": i, "embedding": _encode_vector(v, encoding_format)}
        for i, v in enumerate(vectors)
    ]
    used = sum(tokens)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": used, "total_tokens": used},
    }


def _encode_vector(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":  # little-endian float32 bytes, as the OpenAI API sends them
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return cast(list[float], vector.tolist())  # Python floats in C, no numpy scalar per item
