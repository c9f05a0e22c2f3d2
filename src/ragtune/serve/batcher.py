"""One thread runs the model; concurrent requests queue up and are encoded together.

Why a worker thread and not a lock: a PyTorch module and a Hugging Face fast tokenizer must not
be used from several threads at once (the tokenizer raises "Already borrowed"), and a lock would
run requests one by one. With a single worker that owns the model, every request waiting in the
queue when the worker becomes free is encoded in the same call, so under load the model sees
full batches and throughput grows with concurrency instead of latency.

The worker never waits for more requests to arrive (no added latency when idle): it takes the
first job, then what is already queued while the batch stays within two budgets, and runs one
``encode`` per prompt (queries and documents may use different prompts):

- ``max_batch_texts`` texts, and
- ``max_batch_tokens`` padded tokens: texts x the longest text's tokens, as if the batch were one
  padded forward pass. Why tokens and not only texts: the cost and the activation memory of a
  forward pass grow with the padded tokens, so 128 one-line queries and 128 full-length chunks
  are not the same batch; a budget in tokens keeps one batch of long texts from taking seconds
  while short requests wait behind it (the rule of text-embeddings-inference's
  ``--max-batch-tokens`` and vLLM's ``max_num_batched_tokens``). A job that would go over a
  budget waits for the next batch; a single job larger than the budgets still runs alone.

The queue is bounded (``max_queue`` jobs): past it :meth:`submit` raises :class:`QueueFull` at
once (the app answers 429 with ``Retry-After``) instead of letting waiting requests pile up
until every one of them times out. After :meth:`close` begins, :meth:`submit` raises
:class:`Unavailable` (503); the jobs already queued are still encoded.

Requests share a batch but not its failures: the app checks each request's texts before they are
queued, and if a shared encode call still fails, each of its jobs is run again on its own, so
only the job that fails alone gets the error. A job the tokenizer refuses has its texts tokenized
one by one to name the text (:class:`InputRejected`, ``index`` into the job).

Example::

    batcher = EncodeBatcher(encoder, max_batch_tokens=8192).start()
    future = batcher.submit(["how are retries configured?"], prompt=encoder.config.query_prompt)
    result = future.result()          # Encoded(vectors (1, D), tokens [n])
    batcher.close()
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from ragtune.errors import RagtuneError
from ragtune.model import EmbeddingModel


class InputRejected(RagtuneError):
    """The tokenizer refused text ``index`` of a job (the app answers 422 naming it)."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"text {index}: {reason}")
        self.index = index
        self.reason = reason


class QueueFull(RagtuneError):
    """``max_queue`` jobs are already waiting (the app answers 429 with ``Retry-After``)."""

    def __init__(self, waiting: int, retry_after_s: int) -> None:
        super().__init__(f"{waiting} requests are already waiting for the encoder")
        self.retry_after_s = retry_after_s


class Unavailable(RagtuneError):
    """The encoder is not running or is shutting down (the app answers 503)."""


@dataclass(frozen=True)
class Encoded:
    """Embeddings of a job's texts (N, D) and how many tokens each text used (after truncation,
    prompt and special tokens included)."""

    vectors: np.ndarray
    tokens: list[int]


@dataclass
class _Job:
    texts: list[str]
    prompt: str
    future: Future[Encoded]
    lengths: list[int] | None = field(default=None)  # model tokens per text, set by the worker


_STOP = object()
log = logging.getLogger("ragtune.serve")

BatchHook = Callable[[int, int], None]
"""Called by the worker after each encode call with (texts, padded tokens)."""


def padded_tokens(lengths: Sequence[int], batch_size: int) -> int:
    """Tokens the forward passes of one encode call compute, padding included: texts sorted by
    length, cut into ``batch_size`` rows, each pass padded to its longest (as ``encode`` does).

    >>> padded_tokens([3, 10, 4, 9], batch_size=2)  # passes [10, 9] and [4, 3]
    28
    """
    ranked = sorted(lengths, reverse=True)
    return sum(
        len(ranked[s : s + batch_size]) * ranked[s] for s in range(0, len(ranked), batch_size)
    )


class EncodeBatcher:
    """Serialises and batches encoding onto one model.

    Args:
        encoder: the model; after :meth:`start` only the worker thread may use it.
        max_batch_texts: at most this many texts are gathered into one encode call.
        max_batch_tokens: at most this many padded tokens (texts x longest) in one encode call.
        max_queue: jobs that may wait for the worker; one more raises :class:`QueueFull`.
        batch_size: texts per forward pass inside an encode call.
        on_batch: see :data:`BatchHook` (``/metrics`` keeps its batch-size histograms with it).
    """

    def __init__(
        self,
        encoder: EmbeddingModel,
        *,
        max_batch_texts: int = 128,
        max_batch_tokens: int = 16384,
        max_queue: int = 1024,
        batch_size: int = 32,
        on_batch: BatchHook | None = None,
    ):
        for name, value in (
            ("max_batch_texts", max_batch_texts),
            ("max_batch_tokens", max_batch_tokens),
            ("max_queue", max_queue),
            ("batch_size", batch_size),
        ):
            if value < 1:
                raise RagtuneError(f"{name} must be at least 1, got {value}")
        self.encoder = encoder
        self.max_batch_texts = max_batch_texts
        self.max_batch_tokens = max_batch_tokens
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.on_batch = on_batch
        self.batches_run = 0  # encode calls made (tests and logs: shows batching at work)
        self.isolated_retries = 0  # shared calls that failed and were re-run job by job
        self._queue: queue.Queue[_Job | object] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._closing = False
        self._carry: _Job | None = None  # the job that did not fit the last batch (worker only)
        self._stop_seen = False
        self._seconds_per_job = 0.0  # moving average, for Retry-After

    @property
    def running(self) -> bool:
        """Whether the worker thread is alive and takes jobs (``/health`` reports it)."""
        return self._thread is not None and self._thread.is_alive() and not self._closing

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def queued(self) -> int:
        """Jobs waiting for the worker (not counting the ones it is encoding)."""
        return self._queue.qsize() + (self._carry is not None)

    def retry_after_s(self) -> int:
        """Seconds a refused client should wait: the queue's estimated time to drain, 1-60."""
        return max(1, min(60, math.ceil(self.queued * self._seconds_per_job)))

    def start(self) -> EncodeBatcher:
        if self._thread is None:
            self._closing = False
            self._thread = threading.Thread(target=self._run, name="ragtune-encoder", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new jobs, finish the ones already queued, then stop the worker."""
        self._closing = True
        if self._thread is not None:
            with contextlib.suppress(queue.Full):  # the worker is draining: room comes
                self._queue.put(_STOP, timeout=timeout)
            self._thread.join(timeout)
            self._thread = None
        while True:  # jobs left behind (the worker died or timed out): cancel them
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Job):
                item.future.cancel()
        self._closing = False  # closed: submit says "not running" from here

    def submit(self, texts: Sequence[str], prompt: str = "") -> Future[Encoded]:
        """Queue ``texts`` for encoding with ``prompt`` prepended; the future gives the result.

        Raises :class:`Unavailable` when the worker is not running or is shutting down and
        :class:`QueueFull` when ``max_queue`` jobs are waiting.
        """
        if self._thread is None or self._closing:
            what = "shutting down" if self._closing else "not running"
            raise Unavailable(f"the encoder is {what}")
        job = _Job(list(texts), prompt, Future())
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFull(self.max_queue, self.retry_after_s()) from None
        return job.future

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Query embeddings (N, D), through the queue (a drop-in for ``encoder.encode_queries``)."""
        return self.submit(texts, self.encoder.config.query_prompt).result().vectors

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        while (batch := self._gather()) is not None:
            started = time.perf_counter()
            groups: dict[str, list[_Job]] = defaultdict(list)
            for job in batch:
                if job.future.set_running_or_notify_cancel():
                    groups[job.prompt].append(job)
            for prompt, group in groups.items():
                self._encode_group(prompt, group)
            per_job = (time.perf_counter() - started) / len(batch)
            self._seconds_per_job = 0.8 * self._seconds_per_job + 0.2 * per_job

    def _gather(self) -> list[_Job] | None:
        """The jobs of the next encode round (waits for the first one); ``None`` to stop."""
        batch: list[_Job] = []
        texts, longest = 0, 0
        while True:
            item = self._take(wait=not batch)
            if item is None:  # nothing more queued
                return batch
            if item is _STOP:
                self._stop_seen = True
                return batch or None
            assert isinstance(item, _Job)
            if item.future.cancelled():  # its request timed out while it waited
                continue
            if item.lengths is None and not self._measure(item):
                continue
            assert item.lengths is not None
            n, top = len(item.texts), max(item.lengths, default=0)
            wider = max(longest, top)
            if batch and (
                texts + n > self.max_batch_texts or (texts + n) * wider > self.max_batch_tokens
            ):
                self._carry = item  # first in the next batch
                return batch
            batch.append(item)
            texts, longest = texts + n, wider
            if texts >= self.max_batch_texts:
                return batch

    def _take(self, *, wait: bool) -> _Job | object | None:
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        if self._stop_seen:
            return _STOP
        if wait:
            return self._queue.get()
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def _measure(self, job: _Job) -> bool:
        """Count each text's model tokens (the budget and the usage); a refusal fails the job."""
        try:
            ids = self.encoder.tokenizer(
                [job.prompt + t for t in job.texts],
                truncation=True,
                max_length=self.encoder.config.max_seq_length,
                return_attention_mask=False,
                return_token_type_ids=False,
            )["input_ids"]
        except Exception as exc:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(self._explain(job.prompt, job.texts, exc))
            return False
        job.lengths = [len(x) for x in ids]
        return True

    def _encode_group(self, prompt: str, jobs: list[_Job]) -> None:
        texts = [t for job in jobs for t in job.texts]
        lengths = [n for job in jobs for n in (job.lengths or [])]
        if not texts:
            for job in jobs:
                job.future.set_result(Encoded(np.zeros((0, self.encoder.dim), np.float32), []))
            return
        try:
            vectors = self.encoder.encode(
                texts, prompt=prompt or None, batch_size=self.batch_size, show_progress=False
            )  # (sum N_j, D)
        except Exception as exc:  # the requests fail, the worker lives on
            if len(jobs) > 1:  # whose input broke the shared call? each job alone says
                self.isolated_retries += 1
                for job in jobs:
                    self._encode_group(prompt, [job])
                return
            jobs[0].future.set_exception(self._explain(prompt, jobs[0].texts, exc))
            return
        self.batches_run += 1
        start = 0
        for job in jobs:
            end = start + len(job.texts)
            job.future.set_result(Encoded(vectors[start:end], lengths[start:end]))
            start = end
        if self.on_batch is not None:
            try:
                self.on_batch(len(texts), padded_tokens(lengths, self.batch_size))
            except Exception:  # a metrics hook must not stop the encoder
                log.exception("the batch hook failed")

    def _explain(self, prompt: str, texts: list[str], exc: Exception) -> Exception:
        """:class:`InputRejected` for the first text the tokenizer refuses, else ``exc``."""
        for i, text in enumerate(texts):
            try:
                self.encoder.tokenizer([prompt + text], truncation=True)
            except Exception as refused:  # fast tokenizers raise TypeError, others ValueError
                return InputRejected(
                    i, f"the tokenizer cannot take this text ({type(refused).__name__})"
                )
        return exc
