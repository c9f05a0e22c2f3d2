"""The HTTP API: search an index, embed texts (OpenAI-compatible), a health check and a web page.

Endpoints::

    GET  /               a self-contained search page (no external assets)
    GET  /health         {"status", "model", "dim", "chunks", "files", "index_kind", "limits"}
    POST /search         {"query", "k"=10, "hybrid"=false} -> {"hits": [{"rank", "path",
                         "start_line", "end_line", "score", "text"}], ...}
    POST /v1/embeddings  the OpenAI embeddings API: {"input": str | [str], "model",
                         "encoding_format": "float" | "base64", "dimensions"} (+ "input_type":
                         "query" | "document" | "none", default "none": no prompt)
    GET  /v1/models      the one model served, as the OpenAI API lists models

Every error is JSON in the OpenAI shape ``{"error": {"message", "type", "param", "code"}}``:
413 for a body, batch or text over the limits (:class:`ServeLimits`), 422 for malformed requests.
Responses only ever contain chunk text stored in the index's SQLite file; no request names a file
that the server opens.

The model runs on one worker thread (:class:`ragtune.serve.batcher.EncodeBatcher`): concurrent
requests are queued and encoded together; FAISS and SQLite lookups run in the thread pool.

Needs the ``serve`` extra (FastAPI, uvicorn): ``pip install 'ragtune[serve]'``.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ragtune.errors import RagtuneError
from ragtune.search.searcher import Searcher
from ragtune.serve.batcher import EncodeBatcher
from ragtune.serve.limits import ApiError, BodyLimitMiddleware, ServeLimits, error_body

PAGE_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
)


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    query: str
    k: int = Field(10, ge=1)
    hybrid: bool = False


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients may send fields we do not use

    input: str | list[Any]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None
    input_type: Literal["query", "document", "none"] = "none"


@dataclass(frozen=True)
class ServedModel:
    name: str
    dim: int
    chunks: int
    files: int
    index_kind: str


def create_app(
    searcher: Searcher, *, limits: ServeLimits | None = None, model_name: str | None = None
) -> FastAPI:
    """The FastAPI app over an open :class:`Searcher` (the app starts and stops its encoder
    thread with its lifespan; it does not close the searcher)."""
    limits = limits or ServeLimits()
    encoder = searcher.encoder
    batcher = EncodeBatcher(encoder, max_batch_texts=limits.max_batch_texts)
    manifest = searcher.store.manifest
    served = ServedModel(
        name=model_name or _display_name(manifest["model"].get("ref", "")),
        dim=encoder.dim,
        chunks=len(searcher.store),
        files=searcher.store.file_count(),
        index_kind=manifest["index"]["kind"],
    )
    prompts = {
        "query": encoder.config.query_prompt,
        "document": encoder.config.document_prompt,
        "none": "",
    }

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            batcher.close()

    app = FastAPI(
        title="ragtune", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.batcher = batcher
    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_body_bytes)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, exc.type, exc.param), exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _describe_validation(exc.errors())
        return JSONResponse(error_body(message, "invalid_request_error", param), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(exc.detail), "invalid_request_error"), exc.status_code)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(_page_html(), headers={"Content-Security-Policy": PAGE_CSP})

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": served.name,
            "dim": served.dim,
            "chunks": served.chunks,
            "files": served.files,
            "index_kind": served.index_kind,
            "limits": asdict(limits),
        }

    @app.post("/search")
    async def search(body: SearchRequest) -> dict[str, Any]:
        query = body.query
        if not query.strip():
            raise ApiError(422, "query must not be empty", param="query")
        if len(query) > limits.max_text_chars:
            raise ApiError(
                413,
                f"query is {len(query)} characters; the limit is {limits.max_text_chars}",
                param="query",
            )
        if body.k > limits.max_k:
            raise ApiError(422, f"k must be at most {limits.max_k}, got {body.k}", param="k")
        started = time.perf_counter()
        encoded = await asyncio.wrap_future(batcher.submit([query], prompts["query"]))
        try:
            hits = await run_in_threadpool(
                searcher.search_vector, query, encoded.vectors, body.k, hybrid=body.hybrid
            )
        except RagtuneError as exc:
            raise ApiError(422, str(exc)) from None
        return {
            "query": query,
            "k": body.k,
            "hybrid": body.hybrid,
            "hits": [h.to_dict() for h in hits],
            "took_ms": round(1000 * (time.perf_counter() - started), 2),
        }

    @app.post("/v1/embeddings")
    async def embeddings(body: EmbeddingsRequest) -> dict[str, Any]:
        texts = _input_texts(body.input, limits)
        if body.dimensions is not None and body.dimensions > served.dim:
            raise ApiError(
                422,
                f"dimensions {body.dimensions} is larger than the model's {served.dim}",
                param="dimensions",
            )
        encoded = await asyncio.wrap_future(batcher.submit(texts, prompts[body.input_type]))
        vectors = encoded.vectors  # (N, D)
        if body.dimensions is not None and body.dimensions < served.dim:
            # Matryoshka: keep the leading dimensions and scale back to unit length
            vectors = vectors[:, : body.dimensions]  # (N, d)
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)  # (N, 1)
            vectors = vectors / np.maximum(norms, 1e-12)
        fmt = body.encoding_format
        data = [
            {"object": "embedding", "index": i, "embedding": _encode_vector(v, fmt)}
            for i, v in enumerate(vectors)
        ]
        used = sum(encoded.tokens)
        return {
            "object": "list",
            "data": data,
            "model": served.name,
            "usage": {"prompt_tokens": used, "total_tokens": used},
        }

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": served.name, "object": "model", "created": 0, "owned_by": "ragtune"}],
        }

    return app


def _input_texts(value: str | list[Any], limits: ServeLimits) -> list[str]:
    """The texts of an embeddings request, or a clear 413/422 error."""
    texts = [value] if isinstance(value, str) else value
    if not texts:
        raise ApiError(422, "input must not be an empty list", param="input")
    if any(isinstance(t, int | list) and not isinstance(t, bool) for t in texts):
        raise ApiError(
            422,
            "token arrays are not supported: send input as a string or a list of strings "
            "(this server tokenizes with its own model's tokenizer)",
            param="input",
        )
    if not all(isinstance(t, str) for t in texts):
        raise ApiError(422, "input must be a string or a list of strings", param="input")
    if len(texts) > limits.max_inputs:
        raise ApiError(
            413,
            f"input has {len(texts)} texts; the limit is {limits.max_inputs} per request",
            param="input",
        )
    longest = max(len(t) for t in texts)
    if longest > limits.max_text_chars:
        raise ApiError(
            413,
            f"an input text is {longest} characters; the limit is {limits.max_text_chars}",
            param="input",
        )
    return texts


def _encode_vector(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":  # little-endian float32 bytes, as the OpenAI API sends them
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


def _describe_validation(errors: Any) -> tuple[str, str | None]:
    """One line from pydantic's error list, e.g. ``k: Input should be greater than ...``."""
    if not errors:
        return "invalid request", None
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON", None
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    if not loc:  # the body itself: null, a list, a string, form data...
        return "the request body must be a JSON object", None
    if loc[0] == "input" and len(loc) > 1:  # one error per member of the str | list union
        return "input must be a string or a list of strings", "input"
    param = ".".join(loc)
    if first.get("type") == "missing":
        message = f"{param} is required"
    else:
        message = f"{param}: {first.get('msg', 'invalid')}"
    extra = len(errors) - 1
    return (message + (f" (and {extra} more problems)" if extra else "")), param


def _display_name(ref: str) -> str:
    """A model's name for clients: a hub id as is, a local folder by its name only."""
    return Path(ref).name if ref and Path(ref).is_absolute() else (ref or "unknown")


def _page_html() -> str:
    return resources.files("ragtune.serve").joinpath("page.html").read_text(encoding="utf-8")
