"""The HTTP API: search an index, embed texts (OpenAI-compatible), a health check and a web page.

Endpoints::

    GET  /               a self-contained search page (no external assets)
    GET  /health         {"status": "ok" | "error", "checks": {"model", "index"}, "model", "dim",
                         "chunks", "files", "index_kind", "queue", "limits"} (503 when a check
                         fails: the encoder is not running or shutting down, the index changed)
    POST /search         {"query", "k"=10, "hybrid"=false} -> {"hits": [{"rank", "path",
                         "start_line", "end_line", "score", "text"}], ...}
    POST /v1/embeddings  the OpenAI embeddings API (:mod:`ragtune.serve.openai_api`): {"input":
                         str | [str] | [int] | [[int]], "model", "encoding_format": "float" |
                         "base64", "dimensions", "user"} (+ "input_type": "query" | "document" |
                         "none", default "none": no prompt; "truncate": true | false;
                         "token_encoding": "cl100k_base" | "o200k_base")
    GET  /v1/models      the one model served, as the OpenAI API lists models

Every error is JSON in the OpenAI shape ``{"error": {"message", "type", "param", "code"}}``:
413 for a body, batch or text over the limits (:class:`ServeLimits`), 422 for malformed requests
and for text the tokenizer cannot take (``param`` names it: ``query`` or ``input[i]``), 404/405
for unknown routes and methods, 429 (``Retry-After``) when ``max_queue`` requests already wait
for the encoder, 503 (``Retry-After``) while the encoder is not running or the server shuts
down, 504 when a request's embeddings take longer than ``request_timeout_s``, 500 (``type``
``server_error``) for anything unexpected. The OpenAI SDK retries 429, 503 and 504 by itself.
Responses only ever contain chunk text stored in the index's SQLite file; no request names a file
that the server opens.

The model runs on one worker thread (:class:`ragtune.serve.batcher.EncodeBatcher`): concurrent
requests are queued (bounded) and encoded together in batches of at most ``max_batch_texts``
texts and ``max_batch_tokens`` padded tokens; FAISS and SQLite lookups run in the thread pool. A
request's texts are checked before they join a batch, and a batch that fails anyway is re-run job
by job, so one bad input fails its own request only.

Shutdown (SIGTERM or Ctrl-C under :func:`ragtune.serve.server.serve`): ``app.state.draining`` is
set, so requests that still arrive get 503 and ``/health`` reports it; the requests in flight
finish, then the encoder thread stops after the jobs it has queued.

Needs the ``serve`` extra (FastAPI, uvicorn): ``pip install 'ragtune[serve]'``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ragtune.errors import RagtuneError
from ragtune.search.searcher import Searcher
from ragtune.serve.auth import install_auth
from ragtune.serve.batcher import EncodeBatcher, Encoded, InputRejected, QueueFull, Unavailable
from ragtune.serve.limits import (
    ApiError,
    BodyLimitMiddleware,
    DrainGate,
    ServeLimits,
    UnexpectedErrorMiddleware,
    describe_validation,
    error_body,
    unencodable,
)
from ragtune.serve.metrics import install_metrics
from ragtune.serve.openai_api import (
    TOKEN_ENCODINGS,
    EmbeddingsRequest,
    LengthCheck,
    TokenEncoding,
    embeddings_response,
    few_texts,
    input_texts,
)
from ragtune.serve.responses import FastJSONResponse

PAGE_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
)


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    query: str
    k: int = Field(10, ge=1)
    hybrid: bool = False


@dataclass(frozen=True)
class ServedModel:
    name: str
    dim: int
    chunks: int
    files: int
    index_kind: str


def create_app(
    searcher: Searcher,
    *,
    limits: ServeLimits | None = None,
    model_name: str | None = None,
    token_encoding: TokenEncoding = "cl100k_base",
    api_key: str | None = None,
) -> FastAPI:
    """The FastAPI app over an open :class:`Searcher` (the app starts and stops its encoder
    thread with its lifespan; it does not close the searcher).

    ``token_encoding`` decodes ``/v1/embeddings`` token arrays of requests that do not name one.
    ``api_key``: required as ``Authorization: Bearer KEY`` on every endpoint but ``/health``
    and the page (:mod:`ragtune.serve.auth`); ``None`` leaves the app open. ``GET /metrics`` is
    Prometheus' (:mod:`ragtune.serve.metrics`).
    """
    if token_encoding not in TOKEN_ENCODINGS:
        raise RagtuneError(
            f"unknown token encoding {token_encoding!r}; choose one of {', '.join(TOKEN_ENCODINGS)}"
        )
    limits = limits or ServeLimits()
    encoder = searcher.encoder
    batcher = EncodeBatcher(
        encoder,
        max_batch_texts=limits.max_batch_texts,
        max_batch_tokens=limits.max_batch_tokens,
        max_queue=limits.max_queue,
    )
    draining = threading.Event()
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
    length_check = LengthCheck(encoder.tokenizer, encoder.config.max_seq_length)

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
    app.state.draining = draining  # set it to refuse new requests (the server's signal handler)
    app.add_middleware(UnexpectedErrorMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_body_bytes)
    install_auth(app, api_key)  # outside the body limit: no key, no body read
    app.add_middleware(DrainGate, draining=draining)
    install_metrics(app, batcher)  # outermost: counts and logs every answer, 401s included

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = None if exc.retry_after_s is None else {"Retry-After": str(exc.retry_after_s)}
        body = error_body(exc.message, exc.type, exc.param, exc.code)
        return JSONResponse(body, exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = describe_validation(exc.errors())
        return JSONResponse(error_body(message, "invalid_request_error", param), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = error_body(str(exc.detail), "invalid_request_error")
        return JSONResponse(body, exc.status_code, headers=exc.headers)  # 405 keeps its Allow

    async def encode(texts: list[str], prompt: str, param: str) -> Encoded:
        """Encode through the shared batch: a text the tokenizer refuses is this request's 422,
        a full queue its 429, a stopped encoder its 503, a wait past the timeout its 504."""
        try:
            future = batcher.submit(texts, prompt)
        except QueueFull as exc:
            raise ApiError(
                429,
                f"the server is busy ({exc}); retry after {exc.retry_after_s} s",
                code="queue_full",
                retry_after_s=exc.retry_after_s,
            ) from None
        except Unavailable as exc:
            raise ApiError(503, f"{exc}; retry later", retry_after_s=1) from None
        try:
            # a timeout cancels the future: a job still queued is then skipped by the worker
            return await asyncio.wait_for(asyncio.wrap_future(future), limits.request_timeout_s)
        except InputRejected as exc:
            name = param if param == "query" else f"{param}[{exc.index}]"
            raise ApiError(422, f"{name}: {exc.reason}", param=name) from None
        except asyncio.TimeoutError:
            raise ApiError(
                504,
                f"no embeddings within {limits.request_timeout_s:g} s (the server is "
                "overloaded); retry later",
                code="timeout",
            ) from None

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(_page_html(), headers={"Content-Security-Policy": PAGE_CSP})

    @app.get("/health")
    async def health() -> JSONResponse:
        changed = await run_in_threadpool(searcher.store.changed_on_disk)
        if draining.is_set() or batcher.closing:
            model_check = "shutting down"
        else:
            model_check = "ok" if batcher.running else "the encoder thread is not running"
        checks = {
            "model": model_check,
            "index": f"changed on disk since the server started ({changed}); restart it"
            if changed
            else "ok",
        }
        healthy = all(v == "ok" for v in checks.values())
        body = {
            "status": "ok" if healthy else "error",
            "checks": checks,
            "model": served.name,
            "dim": served.dim,
            "chunks": served.chunks,
            "files": served.files,
            "index_kind": served.index_kind,
            "queue": {"waiting": batcher.queued, "max": limits.max_queue},
            "limits": asdict(limits),
        }
        return JSONResponse(body, 200 if healthy else 503)

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
        if problem := unencodable(query):
            raise ApiError(422, f"query {problem}", param="query")
        started = time.perf_counter()
        encoded = await encode([query], prompts["query"], "query")
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
    async def embeddings(body: EmbeddingsRequest) -> JSONResponse:
        encoding = body.token_encoding or token_encoding
        if few_texts(body.input):  # checked on the loop: a thread hop costs more than the check
            texts = input_texts(body.input, limits, encoding)
        else:  # off the event loop: decoding 300k token ids takes a while
            texts = await run_in_threadpool(input_texts, body.input, limits, encoding)
        if body.dimensions is not None and body.dimensions > served.dim:
            raise ApiError(
                422,
                f"dimensions {body.dimensions} is larger than the model's {served.dim}",
                param="dimensions",
            )
        prompt = prompts[body.input_type]
        if not body.truncate:
            too_long = await run_in_threadpool(length_check.too_long, texts, prompt)
            if too_long is not None:
                i, n = too_long
                raise ApiError(
                    413,
                    f"input[{i}] is {n} tokens for this model, which reads at most "
                    f"{length_check.max_seq_length}; shorten it or send truncate: true",
                    param=f"input[{i}]",
                )
        encoded = await encode(texts, prompt, "input")
        # a Response, not a dict: FastAPI would walk every float through jsonable_encoder
        # (~2 ms a 384-dim vector, 3x the json.dumps of the same body); and orjson, not
        # json.dumps: the standard encoder's float formatting was 6.7% of the server's samples
        # at 64 clients (py-spy, BENCHMARKS.md section 7), 40% of the event loop's work
        return FastJSONResponse(
            embeddings_response(
                encoded.vectors,
                encoded.tokens,
                model=served.name,
                encoding_format=body.encoding_format,
                dimensions=body.dimensions,
                normalized=encoder.config.normalize,
            )
        )

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": served.name, "object": "model", "created": 0, "owned_by": "ragtune"}],
        }

    return app


def _display_name(ref: str) -> str:
    """A model's name for clients: a hub id as is, a local folder by its name only."""
    return Path(ref).name if ref and Path(ref).is_absolute() else (ref or "unknown")


def _page_html() -> str:
    return resources.files("ragtune.serve").joinpath("page.html").read_text(encoding="utf-8")
