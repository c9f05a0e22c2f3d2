"""The encoder thread: requests queued while it is busy are encoded together, in one call."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ragtune.serve.batcher import (
    EncodeBatcher,
    InputRejected,
    QueueFull,
    Unavailable,
    padded_tokens,
)

LONG = "retries back off exponentially after every failed attempt"  # 12 tokens
PAIRS = [["one", "two"], ["three", "four"], ["five", "six"], ["seven", "eight"], ["nine", "ten"]]


def test_jobs_waiting_in_the_queue_share_one_encode_call(tiny_encoder, monkeypatch):
    release = threading.Event()
    entered = threading.Event()
    calls: list[list[str]] = []
    real = tiny_encoder.encode
    threads: set[str] = set()

    def gated(texts, **kwargs):
        threads.add(threading.current_thread().name)
        calls.append(list(texts))
        if len(calls) == 1:  # hold the worker on the first job while others queue up
            entered.set()
            release.wait(10)
        return real(texts, **kwargs)

    monkeypatch.setattr(tiny_encoder, "encode", gated)
    batcher = EncodeBatcher(tiny_encoder).start()
    try:
        first = batcher.submit(["first"])
        assert entered.wait(10)
        queued = [batcher.submit(pair) for pair in PAIRS]
        release.set()
        results = [f.result(10) for f in [first, *queued]]
    finally:
        batcher.close()

    assert calls == [["first"], [t for pair in PAIRS for t in pair]]
    assert batcher.batches_run == 2 and threads == {"ragtune-encoder"}
    for pair, result in zip(PAIRS, results[1:], strict=True):
        np.testing.assert_allclose(result.vectors, real(pair), atol=1e-5)
        assert result.tokens == [3, 3]  # [CLS] word [SEP]: each word is one WordPiece


def test_prompts_are_encoded_in_separate_calls(tiny_encoder, monkeypatch):
    seen: list[tuple[str | None, list[str]]] = []
    real = tiny_encoder.encode

    def recording(texts, prompt=None, **kwargs):
        seen.append((prompt, list(texts)))
        return real(texts, prompt=prompt, **kwargs)

    monkeypatch.setattr(tiny_encoder, "encode", recording)
    batcher = EncodeBatcher(tiny_encoder).start()
    try:
        result = batcher.submit(["abc"], prompt="query: ").result(10)
    finally:
        batcher.close()
    assert seen == [("query: ", ["abc"])]
    np.testing.assert_allclose(result.vectors, real(["query: abc"]), atol=1e-5)


def test_a_failing_encode_fails_its_requests_and_the_worker_lives_on(tiny_encoder, monkeypatch):
    real = tiny_encoder.encode
    state = {"fail": True}

    def flaky(texts, **kwargs):
        if state.pop("fail", False):
            raise RuntimeError("boom")
        return real(texts, **kwargs)

    monkeypatch.setattr(tiny_encoder, "encode", flaky)
    batcher = EncodeBatcher(tiny_encoder).start()
    try:
        with pytest.raises(RuntimeError, match="boom"):
            batcher.submit(["a"]).result(10)
        assert batcher.submit(["a"]).result(10).vectors.shape == (1, 32)
    finally:
        batcher.close()
    with pytest.raises(Unavailable, match="not running"):
        batcher.submit(["a"])


def test_a_shared_call_that_fails_is_rerun_job_by_job(tiny_encoder, monkeypatch):
    release = threading.Event()
    entered = threading.Event()
    calls: list[list[str]] = []
    real = tiny_encoder.encode

    def poisoned(texts, **kwargs):
        calls.append(list(texts))
        if len(calls) == 1:  # hold the worker while the other jobs queue up
            entered.set()
            release.wait(10)
        if "poison" in texts:
            raise RuntimeError("the model failed on this batch")
        return real(texts, **kwargs)

    monkeypatch.setattr(tiny_encoder, "encode", poisoned)
    batcher = EncodeBatcher(tiny_encoder).start()
    try:
        first = batcher.submit(["first"])
        assert entered.wait(10)
        before, bad, after = (
            batcher.submit(PAIRS[0]),
            batcher.submit(["poison"]),
            batcher.submit(PAIRS[1]),
        )
        release.set()
        assert first.result(10).vectors.shape == (1, 32)
        np.testing.assert_allclose(before.result(10).vectors, real(PAIRS[0]), atol=1e-5)
        np.testing.assert_allclose(after.result(10).vectors, real(PAIRS[1]), atol=1e-5)
        with pytest.raises(RuntimeError, match="the model failed on this batch"):
            bad.result(10)
    finally:
        batcher.close()
    # the shared call, then each of its three jobs alone
    assert calls == [["first"], [*PAIRS[0], "poison", *PAIRS[1]], PAIRS[0], ["poison"], PAIRS[1]]
    assert batcher.isolated_retries == 1


def test_a_text_the_tokenizer_refuses_is_named_by_its_index(tiny_encoder, monkeypatch):
    real = tiny_encoder.tokenizer

    class Refusing:
        def __call__(self, texts, *args, **kwargs):
            if any(t.startswith("refused") for t in texts):
                raise TypeError("TextEncodeInput must be Union[...]")
            return real(texts, *args, **kwargs)

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(tiny_encoder, "tokenizer", Refusing())
    batcher = EncodeBatcher(tiny_encoder).start()
    try:
        with pytest.raises(InputRejected) as caught:
            batcher.submit(["fine", "also fine", "refused text"]).result(10)
    finally:
        batcher.close()
    assert (caught.value.index, caught.value.reason) == (
        2,
        "the tokenizer cannot take this text (TypeError)",
    )


def held_worker(tiny_encoder, monkeypatch):
    """Patch ``encode`` so the first call waits: returns (calls, entered, release)."""
    release, entered = threading.Event(), threading.Event()
    calls: list[list[str]] = []
    real = tiny_encoder.encode

    def gated(texts, **kwargs):
        calls.append(list(texts))
        if len(calls) == 1:
            entered.set()
            release.wait(10)
        return real(texts, **kwargs)

    monkeypatch.setattr(tiny_encoder, "encode", gated)
    return calls, entered, release


def test_batches_are_cut_by_padded_tokens_not_only_by_texts(tiny_encoder, monkeypatch):
    calls, entered, release = held_worker(tiny_encoder, monkeypatch)
    seen: list[tuple[int, int]] = []
    # each word is 3 tokens ([CLS] word [SEP]): a pair is 2 x 3 = 6 padded tokens
    batcher = EncodeBatcher(
        tiny_encoder, max_batch_tokens=12, on_batch=lambda *batch: seen.append(batch)
    ).start()
    try:
        first = batcher.submit(["first"])
        assert entered.wait(10)
        queued = [batcher.submit(pair) for pair in PAIRS]
        long = batcher.submit([LONG])
        release.set()
        [f.result(10) for f in [first, *queued, long]]
    finally:
        batcher.close()
    flat = [t for pair in PAIRS for t in pair]
    # two pairs (12 tokens) per call; the long text (12 tokens) cannot join the last pair
    assert calls == [["first"], flat[:4], flat[4:8], flat[8:], [LONG]]
    assert seen == [(1, 3), (4, 12), (4, 12), (2, 6), (1, 12)]  # (texts, padded tokens)


def test_a_text_count_budget_alone_would_put_them_in_one_call(tiny_encoder, monkeypatch):
    calls, entered, release = held_worker(tiny_encoder, monkeypatch)
    batcher = EncodeBatcher(tiny_encoder, max_batch_tokens=10_000).start()
    try:
        first = batcher.submit(["first"])
        assert entered.wait(10)
        queued = [batcher.submit(pair) for pair in PAIRS]
        release.set()
        [f.result(10) for f in [first, *queued]]
    finally:
        batcher.close()
    assert len(calls) == 2


def test_padded_tokens_counts_each_forward_pass_padded_to_its_longest():
    assert padded_tokens([3, 10, 4, 9], batch_size=2) == 10 + 10 + 4 + 4
    assert padded_tokens([3, 10, 4, 9], batch_size=4) == 4 * 10
    assert padded_tokens([], batch_size=8) == 0


def test_a_full_queue_refuses_at_once_with_a_retry_hint(tiny_encoder, monkeypatch):
    calls, entered, release = held_worker(tiny_encoder, monkeypatch)
    batcher = EncodeBatcher(tiny_encoder, max_queue=2).start()
    try:
        first = batcher.submit(["first"])
        assert entered.wait(10)
        waiting = [batcher.submit(["a"]), batcher.submit(["b"])]
        assert batcher.queued == 2
        with pytest.raises(QueueFull) as refused:
            batcher.submit(["c"])
        assert refused.value.retry_after_s >= 1
        release.set()
        assert [f.result(10).vectors.shape for f in [first, *waiting]] == [(1, 32)] * 3
        assert batcher.submit(["c"]).result(10).vectors.shape == (1, 32)  # room again
    finally:
        batcher.close()


def test_close_finishes_queued_jobs_and_refuses_new_ones(tiny_encoder, monkeypatch):
    calls, entered, release = held_worker(tiny_encoder, monkeypatch)
    batcher = EncodeBatcher(tiny_encoder).start()
    first = batcher.submit(["first"])
    assert entered.wait(10)
    waiting = batcher.submit(PAIRS[0])
    closer = threading.Thread(target=batcher.close)
    closer.start()
    while not batcher.closing:
        pass
    with pytest.raises(Unavailable, match="shutting down"):
        batcher.submit(["late"])
    release.set()
    closer.join(10)
    assert first.result(0).vectors.shape == (1, 32)
    assert waiting.result(0).vectors.shape == (2, 32)  # queued before close: still encoded


def test_a_cancelled_job_is_skipped(tiny_encoder, monkeypatch):
    calls, entered, release = held_worker(tiny_encoder, monkeypatch)
    batcher = EncodeBatcher(tiny_encoder).start()
    try:
        first = batcher.submit(["first"])
        assert entered.wait(10)
        gone, kept = batcher.submit(["timed out"]), batcher.submit(["kept"])
        assert gone.cancel()  # what the app does when a request's timeout passes
        release.set()
        assert kept.result(10).vectors.shape == (1, 32) and first.done()
    finally:
        batcher.close()
    assert calls == [["first"], ["kept"]]
