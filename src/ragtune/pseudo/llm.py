"""Pseudo-queries written by an LLM behind any OpenAI-compatible chat endpoint.

For every chunk the model is asked for ``questions_per_chunk`` questions a user would ask that the
chunk answers, as JSON; the answer is parsed tolerantly, cleaned and deduplicated (the prompt
and the parsing: :mod:`ragtune.pseudo.llm_prompt`). This is the doc2query / InPars /
Promptagator recipe (Nogueira et al. 2019; Bonifacio et al. 2022; Dai et al. 2022) with any
local model: Ollama, vLLM, llama.cpp's ``llama-server``.

A run is resumable: every answer is appended to an :class:`~ragtune.pseudo.llm_cache.LlmCache`
before it counts as done, keyed by (model, :data:`PROMPT_VERSION`, chunk text, count), so a
killed run asks again only for the chunks it had no answer for, and a second run over the same
folder makes no request at all. Requests run on ``concurrency`` threads over one client, which
bounds what the server sees at once; the first request runs alone, so that an unreachable server
or a wrong model name is one clear error, not ``concurrency`` of them.

A chunk whose request failed for good, or whose answer holds no question, is skipped and counted
(:class:`LlmStats`, and ``skipped`` as every generator has); only an unusable endpoint stops the
run (:class:`~ragtune.pseudo.llm_client.LlmEndpointError`).

Example::

    config = LlmConfig(url="http://localhost:11434/v1", model="qwen2.5:7b")
    gen = LlmGenerator(config, cache=out / "llm-cache.jsonl")
    pairs = list(gen.generate(chunks))
    gen.stats.to_json()   # {"chunks": 412, "cache_hits": 0, "chunks_asked": 412, ...}
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from ragtune.errors import RagtuneError
from ragtune.progress import make_progress, progress_enabled
from ragtune.pseudo.generators import GeneratorOptions, register
from ragtune.pseudo.llm_cache import LlmCache, cache_key
from ragtune.pseudo.llm_client import (
    LlmClient,
    LlmEndpointError,
    LlmRequestFailed,
    chat_completions_url,
)
from ragtune.pseudo.llm_prompt import (
    PROMPT_VERSION,
    build_messages,
    clean_questions,
    clip_text,
    normalize,
    parse_questions,
)
from ragtune.pseudo.pairs import PseudoPair, pair_for
from ragtune.search.chunking import Chunk

NAME = "openai"


@dataclass(frozen=True)
class LlmConfig:
    """Settings of the LLM generator; checked when built.

    ``url`` is the server's base URL (``http://localhost:11434/v1`` for Ollama,
    ``http://localhost:8000/v1`` for vLLM, ``http://localhost:8080/v1`` for llama.cpp) or the full
    ``.../chat/completions`` URL. The API key is not a field: it is read from the environment
    (``RAGTUNE_LLM_API_KEY``, then ``OPENAI_API_KEY``), so that a saved config never holds it.
    """

    url: str
    model: str
    questions_per_chunk: int = 3
    concurrency: int = 4
    """Requests in flight at once. Why 4 by default: a batching server (vLLM, llama.cpp with
    ``--parallel``) gets work to batch, while a single-GPU Ollama, which queues what it cannot
    run, is not buried; raise it for vLLM."""
    timeout_s: float = 120.0
    max_retries: int = 4
    temperature: float = 0.7
    """Some variety between the questions of one chunk, as InPars and Promptagator sample."""
    max_chunk_chars: int = 6000
    """Longer chunks are cut (at a line end where possible): the prompt must fit a small
    model's context, and the questions are about what the model saw."""
    max_answer_tokens: int = 1024
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    seed: int = 0
    """Sent with every request (servers that support it sample reproducibly) and seeds the
    retry jitter."""
    max_consecutive_failures: int = 16
    """Stop when this many chunks in a row failed for good: the endpoint is broken (always
    500, overloaded), and each further chunk would only spend its retries."""

    def __post_init__(self) -> None:
        chat_completions_url(self.url)  # raises on a URL without http(s)://
        if not self.model.strip():
            raise RagtuneError("LlmConfig.model: the LLM model name is empty")
        for name in (
            "questions_per_chunk",
            "concurrency",
            "max_chunk_chars",
            "max_answer_tokens",
            "max_consecutive_failures",
        ):
            if getattr(self, name) < 1:
                raise RagtuneError(
                    f"LlmConfig.{name} must be at least 1, got {getattr(self, name)}"
                )
        for name in ("timeout_s", "backoff_s", "max_backoff_s"):
            if not getattr(self, name) > 0:
                raise RagtuneError(f"LlmConfig.{name} must be positive, got {getattr(self, name)}")
        if self.max_retries < 0:
            raise RagtuneError(f"LlmConfig.max_retries must be 0 or more, got {self.max_retries}")
        if not 0 <= self.temperature <= 2:
            raise RagtuneError(f"LlmConfig.temperature must be in [0, 2], got {self.temperature}")


@dataclass
class LlmStats:
    """What one :meth:`LlmGenerator.generate` call did, for the run's report."""

    chunks: int = 0
    """Chunks given."""
    cache_hits: int = 0
    """Chunks answered from the cache, without a request."""
    chunks_asked: int = 0
    """Chunks sent to the endpoint."""
    questions_kept: int = 0
    """Pairs yielded."""
    duplicates: int = 0
    """Questions dropped as a repeat (within a chunk or of an earlier chunk's)."""
    bad_answers: int = 0
    """Answers with no usable question in them (not JSON nor a list)."""
    failures: int = 0
    """Chunks whose request failed for good; ``failure_reasons`` says why."""
    retries: int = 0
    requests: int = 0
    """HTTP requests sent, retries included."""
    failure_reasons: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Answer:
    questions: list[str] | None = None  # None: no answer (see reason)
    reason: str = ""  # "bad_answer", or the client's failure reason
    message: str = ""
    repeats: int = 0
    cached: bool = False


class LlmGenerator:
    """Pseudo-queries from an LLM; see the module docstring.

    Args:
        config: endpoint, model and sampling settings.
        cache: where answers are kept (an :class:`LlmCache`, or a path for one); None keeps
            nothing, so a killed run starts over.
        progress: draw a progress bar (None: unless ``RAGTUNE_PROGRESS=0``).
        client: the HTTP client (default one built from ``config``; tests pass their own).
    """

    name = NAME

    def __init__(
        self,
        config: LlmConfig,
        *,
        cache: LlmCache | str | os.PathLike[str] | None = None,
        progress: bool | None = None,
        client: LlmClient | None = None,
    ) -> None:
        self.config = config
        self.cache = cache if isinstance(cache, LlmCache) or cache is None else LlmCache(cache)
        self.progress = progress
        self._client = client
        self.stats = LlmStats()
        self.skipped: Counter[str] = Counter()

    def _make_client(self) -> LlmClient:
        c = self.config
        return LlmClient(
            c.url,
            c.model,
            timeout_s=c.timeout_s,
            max_retries=c.max_retries,
            backoff_s=c.backoff_s,
            max_backoff_s=c.max_backoff_s,
            max_connections=c.concurrency,
            seed=c.seed,
        )

    def key(self, chunk: Chunk) -> str:
        """The cache key of ``chunk``'s answer."""
        text = clip_text(chunk.text, self.config.max_chunk_chars)
        return cache_key(self.config.model, PROMPT_VERSION, text, self.config.questions_per_chunk)

    def generate(self, chunks: Sequence[Chunk]) -> Iterator[PseudoPair]:
        """Pairs for ``chunks``, in chunk order; ``stats`` and ``skipped`` describe the run."""
        self.stats = stats = LlmStats(chunks=len(chunks))
        self.skipped = Counter()
        client = self._client or self._make_client()
        own_client = self._client is None
        before = (client.stats.requests, client.stats.retries)
        abort = threading.Event()
        finished = False
        pool = ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="ragtune-llm")
        bar = make_progress("chunks", enabled=progress_enabled(self.progress, default=True))
        try:
            with bar:
                task = bar.add_task("LLM questions", total=len(chunks))
                answers: dict[int, _Answer | Future[_Answer]] = {}
                pending = []
                for i, chunk in enumerate(chunks):
                    cached = self.cache.get(self.key(chunk)) if self.cache is not None else None
                    if cached is None:
                        pending.append(i)
                    else:
                        answers[i] = _Answer(cached, cached=True)
                        bar.advance(task)
                if pending:  # alone first: a misconfigured endpoint fails once, clearly
                    answers[pending[0]] = self._ask(client, chunks[pending[0]], abort)
                    bar.advance(task)
                for i in pending[1:]:
                    future = pool.submit(self._ask, client, chunks[i], abort)
                    future.add_done_callback(lambda _: bar.advance(task))
                    answers[i] = future
                seen: set[str] = set()
                in_a_row = 0  # chunks that failed for good since the last answer
                for i, chunk in enumerate(chunks):
                    entry = answers[i]
                    answer = entry.result() if isinstance(entry, Future) else entry
                    yield from self._pairs(chunk, answer, seen)
                    failed = answer.questions is None and answer.reason != "bad_answer"
                    in_a_row = in_a_row + 1 if failed else 0
                    if in_a_row >= self.config.max_consecutive_failures:
                        raise LlmEndpointError(
                            f"{in_a_row} LLM requests in a row failed (last: {answer.message}); "
                            "stopping"
                            + (
                                "; the answers so far are in the cache"
                                if self.cache is not None
                                else ""
                            )
                        )
            finished = True
        finally:
            abort.set()
            # Why not wait after an error, Ctrl-C or a consumer that stopped early: a request in
            # flight may take timeout_s; closing the client below cuts it short instead.
            pool.shutdown(wait=finished, cancel_futures=True)
            stats.requests = client.stats.requests - before[0]
            stats.retries = client.stats.retries - before[1]
            if own_client:
                client.close()
            if self.cache is not None:
                self.cache.close()  # reopened by the next answer, if one still comes

    def _ask(self, client: LlmClient, chunk: Chunk, abort: threading.Event) -> _Answer:
        """One chunk's answer, stored in the cache when it holds questions (a worker thread)."""
        if abort.is_set():
            return _Answer(reason="cancelled")
        c = self.config
        text = clip_text(chunk.text, c.max_chunk_chars)
        try:
            content = client.chat(
                build_messages(text, c.questions_per_chunk),
                temperature=c.temperature,
                max_tokens=c.max_answer_tokens,
                seed=c.seed,
            )
        except LlmRequestFailed as exc:
            return _Answer(reason=exc.reason, message=str(exc))
        except LlmEndpointError:
            abort.set()  # the other workers send nothing more
            raise
        questions, repeats = clean_questions(parse_questions(content), c.questions_per_chunk)
        if not questions:
            return _Answer(reason="bad_answer")
        if self.cache is not None:
            self.cache.put(self.key(chunk), questions)
        return _Answer(questions, repeats=repeats)

    def _pairs(self, chunk: Chunk, answer: _Answer, seen: set[str]) -> Iterator[PseudoPair]:
        stats = self.stats
        if answer.cached:
            stats.cache_hits += 1
        else:
            stats.chunks_asked += 1
        stats.duplicates += answer.repeats
        if answer.questions is None:
            if answer.reason == "bad_answer":
                stats.bad_answers += 1
            else:
                stats.failures += 1
                stats.failure_reasons[answer.reason] = (
                    stats.failure_reasons.get(answer.reason, 0) + 1
                )
            self.skipped[answer.reason] += 1
            return
        kept = 0
        for question in answer.questions:
            key = normalize(question)
            if key in seen:
                stats.duplicates += 1
                continue
            seen.add(key)
            kept += 1
            stats.questions_kept += 1
            yield pair_for(chunk, question, self.name)
        if not kept:
            self.skipped["only_duplicates"] += 1


def _needs_endpoint(options: GeneratorOptions) -> LlmGenerator:
    raise RagtuneError(
        f"the {NAME!r} generator needs an endpoint and a model: pass --llm-url URL and "
        "--llm-model NAME (in Python: LlmGenerator(LlmConfig(url=..., model=...)))"
    )


register(NAME, _needs_endpoint)

__all__ = ["NAME", "LlmConfig", "LlmGenerator", "LlmStats"]
