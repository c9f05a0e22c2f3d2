"""A server settles ``precision="auto"`` once at start, on the index's own chunk texts."""

from __future__ import annotations

import pytest

import ragtune.model.cpu.bf16 as bf16
import ragtune.model.cpu.encode_precision as encode_precision
from ragtune.model.cpu.encode_precision import SAMPLE_TEXTS, PrecisionCheck
from ragtune.search.searcher import Searcher
from ragtune.serve.server import settle_encode_precision


@pytest.fixture()
def searcher(sample_index):
    s = Searcher.open(sample_index, device="cpu")
    yield s
    s.close()


def _record_checks(monkeypatch, kind: str) -> list[tuple[list[str], bool]]:
    """Pretend the CPU is ``kind`` and record what the bf16 check would be asked."""
    calls: list[tuple[list[str], bool]] = []

    def fake(encoder, texts, *, batch_size=32, force=False):
        calls.append((list(texts), force))
        return PrecisionCheck("bf16", "bf16 agrees (test)", "amx")

    monkeypatch.setattr(bf16, "bf16_kind", lambda flags=None: kind)
    monkeypatch.setattr(encode_precision, "choose_encode_precision", fake)
    return calls


def test_on_a_native_bf16_cpu_the_check_runs_once_on_the_first_chunks(searcher, monkeypatch):
    calls = _record_checks(monkeypatch, "amx")
    check = settle_encode_precision(searcher)
    assert check is not None and check.precision == "bf16"
    first = searcher.store.sample_texts(SAMPLE_TEXTS)
    assert calls == [(first, True)]  # forced: a server's own calls are too small to trigger it
    all_texts = searcher.store.texts()
    assert first == all_texts[: len(first)] and 2 <= len(first) <= SAMPLE_TEXTS


def test_nothing_to_decide_without_native_bf16_or_with_an_explicit_precision(searcher, monkeypatch):
    calls = _record_checks(monkeypatch, "none")
    assert settle_encode_precision(searcher) is None  # AVX2 only: fp32, no check, no cost
    monkeypatch.setattr(bf16, "bf16_kind", lambda flags=None: "amx")
    searcher.encoder.precision = "fp32"
    assert settle_encode_precision(searcher) is None  # the user chose: nothing is checked
    assert calls == []


def test_sample_texts_reads_only_the_first_chunks(searcher):
    texts = searcher.store.texts()
    assert searcher.store.sample_texts(2) == texts[:2]
    assert searcher.store.sample_texts(0) == []
    assert searcher.store.sample_texts(10**6) == texts
