"""precision="auto" for encoding: bf16 only where the CPU has it, the vectors agree and it is
faster; fp32 everywhere else. The CPU's flags are mocked, so no result depends on this machine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ragtune.errors import RagtuneError
from ragtune.model.cpu import bf16, encode_precision
from ragtune.model.cpu.bf16 import bf16_kind
from ragtune.model.cpu.encode_precision import (
    check_bf16,
    choose_encode_precision,
    clear_precision_cache,
    last_check,
)
from ragtune.model.precision import encoding_precision, set_encode_precision
from tests.conftest import make_tiny_encoder

TEXTS = [f"text number {i} about rivers, glaciers and harbor {i % 7}" for i in range(40)]
XEON_AMX = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"})
EPYC_ZEN4 = frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"})
AVX2_ONLY = frozenset({"avx", "avx2", "fma"})


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_precision_cache()
    yield
    clear_precision_cache()


def on_cpu(monkeypatch, kind: str) -> None:
    """Pretend to run on a CPU of this bf16 kind."""
    monkeypatch.setattr(encode_precision, "bf16_kind", lambda: kind)


# ------------------------------------------------------------------ which CPU is which


@pytest.mark.parametrize(
    ("flags", "kind"),
    [(XEON_AMX, "amx"), (EPYC_ZEN4, "avx512_bf16"), (AVX2_ONLY, "none"), (frozenset(), "none")],
)
def test_the_bf16_kind_comes_from_the_cpu_flags(flags, kind):
    assert bf16_kind(flags) == kind


def test_amx_without_its_tile_state_is_not_amx():
    assert bf16_kind(frozenset({"amx_bf16", "avx512_bf16"})) == "avx512_bf16"


def test_cpu_supports_bf16_is_any_native_kind(monkeypatch):
    for flags, native in ((XEON_AMX, True), (EPYC_ZEN4, True), (AVX2_ONLY, False)):
        monkeypatch.setattr(bf16, "cpu_flags", lambda flags=flags: flags)
        assert bf16.cpu_supports_bf16() is native


# ------------------------------------------------------------------ the check itself


class FakeModel:
    """encode(texts, precision): bf16 vectors are the fp32 ones bent by ``angle``; each call
    advances a fake clock by ``seconds[precision]`` per text."""

    def __init__(self, angle: float, fp32_s: float, bf16_s: float) -> None:
        self.angle, self.seconds, self.now = angle, {"fp32": fp32_s, "bf16": bf16_s}, 0.0
        self.calls: list[tuple[str, int]] = []

    def encode(self, texts: list[str], precision: str) -> np.ndarray:
        self.calls.append((precision, len(texts)))
        self.now += self.seconds[precision] * len(texts)
        vec = np.zeros((len(texts), 2), dtype=np.float32)
        a = self.angle if precision == "bf16" else 0.0
        vec[:, 0], vec[:, 1] = np.cos(a), np.sin(a)
        return vec

    def clock(self) -> float:
        return self.now


def test_bf16_is_taken_when_the_vectors_agree_and_it_is_faster():
    fake = FakeModel(angle=1e-3, fp32_s=1.0, bf16_s=0.5)  # cosine 0.9999995
    check = check_bf16(fake.encode, TEXTS, "amx", clock=fake.clock)
    assert check.precision == "bf16"
    assert check.speedup == pytest.approx(2.0)
    assert check.min_cosine == pytest.approx(np.cos(1e-3))
    assert check.sample == len(TEXTS)
    # a warm-up of each precision, then ABBA over the two halves of the sample
    assert fake.calls == [("bf16", 8), ("fp32", 8), ("fp32", 20), ("bf16", 20)] + [
        ("bf16", 20),
        ("fp32", 20),
    ]


def test_vectors_that_move_keep_fp32_however_fast_bf16_is():
    fake = FakeModel(angle=0.02, fp32_s=1.0, bf16_s=0.1)  # cosine 0.9998
    check = check_bf16(fake.encode, TEXTS, "amx", clock=fake.clock)
    assert check.precision == "fp32" and "min cosine" in check.reason


def test_bf16_that_is_not_measurably_faster_keeps_fp32():
    fake = FakeModel(angle=0.0, fp32_s=1.0, bf16_s=0.97)  # 1.03x: inside the margin
    check = check_bf16(fake.encode, TEXTS, "avx512_bf16", clock=fake.clock)
    assert check.precision == "fp32" and "not faster" in check.reason


def test_only_the_first_sample_texts_are_checked():
    fake = FakeModel(angle=0.0, fp32_s=1.0, bf16_s=0.5)
    check = check_bf16(fake.encode, TEXTS * 10, "amx", clock=fake.clock)
    assert check.sample == encode_precision.SAMPLE_TEXTS
    assert sum(n for _, n in fake.calls[2:]) == 2 * encode_precision.SAMPLE_TEXTS


# ------------------------------------------------------------------ through Encoder.encode


def test_a_cpu_without_native_bf16_encodes_fp32_and_never_checks(tokenizer, monkeypatch):
    on_cpu(monkeypatch, "none")
    monkeypatch.setattr(encode_precision, "CHECK_FROM", 1)
    monkeypatch.setattr(encode_precision, "check_bf16", pytest.fail)
    encoder = make_tiny_encoder(tokenizer)
    auto = encoder.encode(TEXTS)
    assert encoder.encode_precision == "fp32"
    np.testing.assert_array_equal(auto, encoder.encode(TEXTS, precision="fp32"))


@pytest.mark.parametrize("kind", ["amx", "avx512_bf16"])
def test_auto_is_bf16_after_a_passing_check_and_equals_explicit_bf16(tokenizer, monkeypatch, kind):
    on_cpu(monkeypatch, kind)
    monkeypatch.setattr(encode_precision, "CHECK_FROM", 16)
    monkeypatch.setattr(encode_precision, "MIN_SPEEDUP", 0.0)  # timing a tiny model means nothing
    monkeypatch.setattr(encode_precision, "MIN_COSINE", 0.99)
    encoder = make_tiny_encoder(tokenizer)
    auto = encoder.encode(TEXTS)
    check = last_check(encoder)
    assert check is not None and check.precision == "bf16" and check.cpu == kind
    assert check.min_cosine is not None and check.min_cosine >= 0.99
    assert encoder.encode_precision == "bf16" and encoding_precision(encoder) == "bf16"
    np.testing.assert_array_equal(auto, encoder.encode(TEXTS, precision="bf16"))
    assert not np.array_equal(auto, encoder.encode(TEXTS, precision="fp32"))


def test_a_failing_check_keeps_fp32(tokenizer, monkeypatch):
    on_cpu(monkeypatch, "amx")
    monkeypatch.setattr(encode_precision, "CHECK_FROM", 16)
    monkeypatch.setattr(encode_precision, "MIN_COSINE", 1.0 + 1e-6)  # nothing can pass
    encoder = make_tiny_encoder(tokenizer)
    auto = encoder.encode(TEXTS)
    assert encoder.encode_precision == "fp32"
    np.testing.assert_array_equal(auto, encoder.encode(TEXTS, precision="fp32"))


def test_the_decision_is_cached_per_model_until_its_weights_change(tokenizer, monkeypatch):
    on_cpu(monkeypatch, "amx")
    monkeypatch.setattr(encode_precision, "CHECK_FROM", 16)
    runs: list[int] = []
    real = encode_precision.check_bf16

    def counting(*args, **kwargs):
        runs.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(encode_precision, "check_bf16", counting)
    encoder = make_tiny_encoder(tokenizer)
    first = choose_encode_precision(encoder, TEXTS)
    assert choose_encode_precision(encoder, TEXTS) is first and len(runs) == 1
    # another object with the same weights on the same machine: the same decision, no check
    twin = make_tiny_encoder(tokenizer)
    assert choose_encode_precision(twin, TEXTS) == first and len(runs) == 1
    with torch.no_grad():  # an optimizer step changes the weights in place
        next(encoder.backbone.parameters()).add_(1e-3)
    assert last_check(encoder) is None
    choose_encode_precision(encoder, TEXTS)
    assert len(runs) == 2


def test_small_calls_never_run_the_check(tokenizer, monkeypatch):
    on_cpu(monkeypatch, "amx")
    monkeypatch.setattr(encode_precision, "check_bf16", pytest.fail)
    encoder = make_tiny_encoder(tokenizer)
    encoder.encode(["one query"])
    check = choose_encode_precision(encoder, ["one query"])
    assert encoder.encode_precision == "fp32"
    assert check.precision == "fp32" and not check.cached and last_check(encoder) is None


def test_the_encoders_default_precision_is_used_when_a_call_names_none(tokenizer, monkeypatch):
    on_cpu(monkeypatch, "amx")
    monkeypatch.setattr(encode_precision, "check_bf16", pytest.fail)
    encoder = make_tiny_encoder(tokenizer)
    set_encode_precision(encoder, "bf16")
    np.testing.assert_array_equal(encoder.encode(TEXTS), encoder.encode(TEXTS, precision="bf16"))
    assert encoder.encode_precision == "bf16"
    set_encode_precision(encoder, "fp32")
    encoder.encode(TEXTS)
    assert encoder.encode_precision == "fp32"


# ------------------------------------------------------------------ the CLI's --precision


class FakeOnnx:
    quantization = "int8"


def test_an_onnx_model_takes_auto_and_fp32_and_refuses_bf16():
    model = FakeOnnx()
    set_encode_precision(model, "auto")
    set_encode_precision(model, "fp32")
    with pytest.raises(RagtuneError, match="runs at the precision it was exported with \\(int8\\)"):
        set_encode_precision(model, "bf16")
    assert encoding_precision(model) == "int8"


def test_an_unknown_precision_names_the_choices(tokenizer):
    with pytest.raises(RagtuneError, match="unknown precision 'fp16'; choose auto, fp32, bf16"):
        set_encode_precision(make_tiny_encoder(tokenizer), "fp16")


def test_the_index_records_the_precision_its_vectors_were_encoded_in(tmp_path, tokenizer):
    from ragtune.search import IndexStore, build_index

    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "notes.txt").write_text("rivers and glaciers\n\nold harbors\n")
    encoder = make_tiny_encoder(tokenizer)
    set_encode_precision(encoder, "bf16")
    build_index(tmp_path / "repo", encoder, tmp_path / "idx", show_progress=False)
    with IndexStore.open(tmp_path / "idx") as store:
        assert store.manifest["model"]["precision"] == "bf16"


def test_cli_precision_is_checked_before_anything_loads(tmp_path, monkeypatch, capsys):
    from tests.cli.test_flags import run_main

    source = tmp_path / "texts.txt"
    source.write_text("a text\n")
    for command in (["encode", str(source)], ["index", str(tmp_path), "--out", "x.idx"]):
        code, _, err = run_main(monkeypatch, capsys, *command, "--precision", "fp16")
        assert code == 1
        assert err.strip().splitlines()[-1] == (
            "error: unknown --precision 'fp16'; choose auto, fp32, bf16"
        )
