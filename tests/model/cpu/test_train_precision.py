"""precision="auto" for training: bf16 only where a step of the run's own pairs ran faster in it.

The CPU's bf16 kind is mocked and the timing rule is checked with a fake clock, so no result
depends on this machine; the checks on a real model prove the measurement leaves no trace.
"""

from __future__ import annotations

import pytest
import torch
import yaml

from ragtune.data.schema import Example
from ragtune.model.cpu import train_precision
from ragtune.model.cpu.encode_precision import PrecisionCheck
from ragtune.model.cpu.train_precision import (
    check_train_bf16,
    choose_train_precision,
    clear_train_precision_cache,
)
from ragtune.model.precision import training_autocast
from ragtune.train.config import TrainConfig
from ragtune.train.prepare import run_autocast, saved_precision
from tests.conftest import make_tiny_encoder

QUERIES = [f"how do rivers {i} carve a glacier valley" for i in range(8)]
DOCS = [f"river {i} and the harbor: sediment, ice and time {i % 3}" for i in range(8)]


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_train_precision_cache()
    yield
    clear_train_precision_cache()


def timed_steps(seconds: dict[str, float]):
    """A step that takes ``seconds[precision]`` on a fake clock, and the order it ran in."""
    now = [0.0]
    ran: list[str] = []

    def step(which: str) -> None:
        ran.append(which)
        now[0] += seconds[which]

    return step, (lambda: now[0]), ran


def test_bf16_is_kept_where_its_step_ran_faster():
    step, clock, ran = timed_steps({"fp32": 2.0, "bf16": 1.0})
    check = check_train_bf16(step, "amx", 8, clock=clock)
    assert check.precision == "bf16" and check.speedup == pytest.approx(2.0)
    assert check.reason == "a bf16 training step ran 2.00x faster than fp32"
    assert ran == ["bf16", "fp32", "fp32", "bf16", "bf16", "fp32"]  # warm-ups, then ABBA


def test_fp32_is_kept_where_bf16_is_slower_despite_the_flag():
    # The 2-core Xeon with avx512_bf16 and no AMX: bf16 steps took ~1.5x as long as fp32.
    step, clock, _ = timed_steps({"fp32": 1.0, "bf16": 1.54})
    check = check_train_bf16(step, "avx512_bf16", 8, clock=clock)
    assert check.precision == "fp32"
    assert check.reason == "a bf16 training step was not faster here (0.65x fp32)"


def test_a_tie_within_timing_noise_keeps_fp32():
    step, clock, _ = timed_steps({"fp32": 1.0, "bf16": 0.97})  # 1.03x < MIN_SPEEDUP
    assert check_train_bf16(step, "avx512_bf16", 8, clock=clock).precision == "fp32"


def test_no_native_bf16_trains_in_fp32_without_timing_anything(monkeypatch, tokenizer):
    monkeypatch.setattr(train_precision, "bf16_kind", lambda: "none")
    monkeypatch.setattr(train_precision, "check_train_bf16", pytest.fail)
    check = choose_train_precision(make_tiny_encoder(tokenizer), QUERIES, DOCS)
    assert (check.precision, check.reason) == ("fp32", "this CPU has no native bf16")


def test_the_check_changes_no_weight_gradient_or_random_draw(monkeypatch, tokenizer):
    monkeypatch.setattr(train_precision, "bf16_kind", lambda: "avx512_bf16")
    encoder = make_tiny_encoder(tokenizer)
    encoder.train()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    torch.manual_seed(7)
    expected = torch.rand(4)
    torch.manual_seed(7)
    check = choose_train_precision(encoder, QUERIES, DOCS)
    assert check.precision in ("fp32", "bf16") and check.sample == 8
    assert torch.equal(torch.rand(4), expected)  # the run draws the masks it would have drawn
    assert all(p.grad is None for p in encoder.parameters())
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    assert encoder.training


def test_the_decision_is_measured_once_per_architecture(monkeypatch, tokenizer):
    monkeypatch.setattr(train_precision, "bf16_kind", lambda: "avx512_bf16")
    calls = []
    real = train_precision.check_train_bf16

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_precision, "check_train_bf16", counted)
    first = choose_train_precision(make_tiny_encoder(tokenizer, seed=0), QUERIES, DOCS)
    again = choose_train_precision(make_tiny_encoder(tokenizer, seed=1), QUERIES, DOCS)
    assert again is first and len(calls) == 1  # other weights, same architecture and dropout
    other = make_tiny_encoder(tokenizer)
    other.set_hidden_dropout(0.0)  # a step without dropout costs differently: measured again
    choose_train_precision(other, QUERIES, DOCS)
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("precision", "decided", "expected"),
    [
        ("auto", "bf16", torch.bfloat16),
        ("auto", "fp32", None),
        ("fp32", "bf16", None),  # an explicit precision is never second-guessed
        ("bf16", "fp32", torch.bfloat16),
    ],
)
def test_auto_follows_the_measurement_and_explicit_precisions_do_not(
    monkeypatch, tokenizer, precision, decided, expected
):
    from ragtune.model import precision as rules

    monkeypatch.setattr(rules, "cpu_supports_bf16", lambda: True)
    monkeypatch.setattr(train_precision, "bf16_kind", lambda: "avx512_bf16")
    monkeypatch.setattr(
        train_precision,
        "check_train_bf16",
        lambda step, cpu, pairs, **_: PrecisionCheck(decided, "timed", cpu),
    )
    dtype, _ = training_autocast(precision, make_tiny_encoder(tokenizer), QUERIES, DOCS)
    assert dtype == expected


def test_a_resumed_run_keeps_the_precision_it_recorded(monkeypatch, tmp_path, tokenizer):
    monkeypatch.setattr(train_precision, "check_train_bf16", pytest.fail)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    recorded = {"resolved_precision": "bfloat16 autocast"}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(recorded))
    assert saved_precision(run_dir) == "bf16"
    examples = [Example(q, d) for q, d in zip(QUERIES, DOCS, strict=True)]
    encoder = make_tiny_encoder(tokenizer)
    dtype, why = run_autocast(TrainConfig(), encoder, examples, run_dir, True, 0, 1)
    assert (dtype, why) == (torch.bfloat16, "kept from the run being resumed")
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"resolved_precision": "fp32"}))
    assert run_autocast(TrainConfig(), encoder, examples, run_dir, True, 0, 1)[0] is None
    assert saved_precision(tmp_path / "nowhere") is None
