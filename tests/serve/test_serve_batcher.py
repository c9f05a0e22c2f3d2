"""The encoder thread: requests queued while it is busy are encoded together, in one call."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ragtune.serve.batcher import EncodeBatcher, InputRejected

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
    with pytest.raises(RuntimeError, match="not running"):
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
