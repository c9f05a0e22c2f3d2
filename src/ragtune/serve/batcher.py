"""One thread runs the model; concurrent requests queue up and are encoded together.

Why a worker thread and not a lock: a PyTorch module and a Hugging Face fast tokenizer must not
be used from several threads at once (the tokenizer raises "Already borrowed"), and a lock would
run requests one by one. With a single worker that owns the model, every request waiting in the
queue when the worker becomes free is encoded in the same call, so under load the model sees
full batches and throughput grows with concurrency instead of latency.

The worker never waits for more requests to arrive (no added latency when idle): it takes the
first job, then everything already queued up to ``max_batch_texts`` texts, groups the jobs by
prompt (queries and documents may use different prompts), and runs one ``encode`` per group.

Requests share a batch but not its failures: the app checks each request's texts before they are
queued, and if a shared encode call still fails, each of its jobs is run again on its own, so
only the job that fails alone gets the error. A job that fails alone has its texts tokenized one
by one to name the text the tokenizer refuses (:class:`InputRejected`, ``index`` into the job).

Example::

    batcher = EncodeBatcher(encoder).start()
    future = batcher.submit(["how are retries configured?"], prompt=encoder.config.query_prompt)
    result = future.result()          # Encoded(vectors (1, D), tokens [n])
    batcher.close()
"""

from __future__ import annotations

import queue
import threading
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from ragtune.errors import RagtuneError
from ragtune.model import EmbeddingModel


class InputRejected(RagtuneError):
    """The tokenizer refused text ``index`` of a job (the app answers 422 naming it)."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"text {index}: {reason}")
        self.index = index
        self.reason = reason


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


_STOP = object()


class EncodeBatcher:
    """Serialises and batches encoding onto one model.

    Args:
        encoder: the model; after :meth:`start` only the worker thread may use it.
        max_batch_texts: at most this many texts are gathered into one encode call (a single job
            larger than that is still encoded in one call).
        batch_size: texts per forward pass inside an encode call.
    """

    def __init__(
        self, encoder: EmbeddingModel, *, max_batch_texts: int = 128, batch_size: int = 32
    ):
        self.encoder = encoder
        self.max_batch_texts = max_batch_texts
        self.batch_size = batch_size
        self.batches_run = 0  # encode calls made (tests and logs: shows batching at work)
        self.isolated_retries = 0  # shared calls that failed and were re-run job by job
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the worker thread is alive (``/health`` reports it)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def queued(self) -> int:
        """Jobs waiting for the worker (not counting the ones it is encoding)."""
        return self._queue.qsize()

    def start(self) -> EncodeBatcher:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ragtune-encoder", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker once the jobs already queued are done."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None
        while True:  # jobs submitted after the stop signal would wait forever: cancel them
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Job):
                item.future.cancel()

    def submit(self, texts: Sequence[str], prompt: str = "") -> Future[Encoded]:
        """Queue ``texts`` for encoding with ``prompt`` prepended; the future gives the result."""
        if self._thread is None:
            raise RuntimeError("the batcher is not running: call start() first")
        job = _Job(list(texts), prompt, Future())
        self._queue.put(job)
        return job.future

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Query embeddings (N, D), through the queue (a drop-in for ``encoder.encode_queries``)."""
        return self.submit(texts, self.encoder.config.query_prompt).result().vectors

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            assert isinstance(first, _Job)
            jobs, n_texts = [first], len(first.texts)
            while n_texts < self.max_batch_texts:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                assert isinstance(item, _Job)
                jobs.append(item)
                n_texts += len(item.texts)
            groups: dict[str, list[_Job]] = defaultdict(list)
            for job in jobs:
                if job.future.set_running_or_notify_cancel():
                    groups[job.prompt].append(job)
            for prompt, group in groups.items():
                self._encode_group(prompt, group)

    def _encode_group(self, prompt: str, jobs: list[_Job]) -> None:
        texts = [t for job in jobs for t in job.texts]
        if not texts:
            for job in jobs:
                job.future.set_result(Encoded(np.zeros((0, self.encoder.dim), np.float32), []))
            return
        try:
            vectors, tokens = self._encode(prompt, texts)  # (sum N_j, D), [sum N_j]
        except Exception as exc:  # the requests fail, the worker lives on
            if len(jobs) > 1:  # whose input broke the shared call? each job alone says
                self.isolated_retries += 1
                for job in jobs:
                    self._encode_group(prompt, [job])
                return
            jobs[0].future.set_exception(self._explain(prompt, jobs[0].texts, exc))
            return
        start = 0
        for job in jobs:
            end = start + len(job.texts)
            job.future.set_result(Encoded(vectors[start:end], tokens[start:end]))
            start = end

    def _encode(self, prompt: str, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        """One encode call: the vectors (N, D) and the token count of each text."""
        vectors = self.encoder.encode(
            texts, prompt=prompt or None, batch_size=self.batch_size, show_progress=False
        )  # (N, D)
        ids = self.encoder.tokenizer(
            [prompt + t for t in texts],
            truncation=True,
            max_length=self.encoder.config.max_seq_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        self.batches_run += 1
        return vectors, [len(x) for x in ids]

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
