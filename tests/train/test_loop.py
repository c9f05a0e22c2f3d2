"""The training loop end to end on a tiny model: learning, outputs, honesty, divergence."""

import json

import numpy as np
import pytest
import torch

from ragtune.config import load_config
from ragtune.model import Encoder
from ragtune.train import TrainConfig, TrainingDiverged, train
from ragtune.train.state import TrainerState, remaining_steps


def config(tmp_path, model_dir, data, **values):
    base = {
        "model": str(model_dir),
        "data": str(data),
        "output": str(tmp_path / "out"),
        "batch_size": 8,
        "epochs": 2,
        "learning_rate": 1e-3,
        "log_steps": 1,
        "warmup_ratio": 0.0,
        "save_steps": 1000,
        "dev_fraction": 0.25,
    }
    return load_config(TrainConfig, None, (), **{**base, **values})


def test_training_learns_and_writes_a_complete_run(tmp_path, tiny_model_dir, pairs_file):
    result = train(config(tmp_path, tiny_model_dir, pairs_file))
    out = tmp_path / "out"
    log = [json.loads(line) for line in (out / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < losses[0]
    assert result.base_score is not None and result.best_score is not None
    assert result.best_score >= result.base_score
    for name in ("config.yaml", "data.json", "curves.png", "summary.json"):
        assert (out / "run" / name).is_file(), name
    assert (
        "nDCG@10" in (out / "README.md").read_text() or "ndcg@10" in (out / "README.md").read_text()
    )
    tuned = Encoder.load(out, device="cpu")
    assert tuned.encode(["what is a falcon"]).shape == (1, 32)


def test_a_run_that_cannot_improve_publishes_the_base_model(tmp_path, tiny_model_dir, pairs_file):
    # 1e-12 moves no fp32 weight (0 itself is refused by the config): the scores tie the base's
    result = train(config(tmp_path, tiny_model_dir, pairs_file, learning_rate=1e-12, epochs=1))
    assert not result.improved and result.best_step == 0
    assert result.improvement == "not improved" and result.best_score == result.base_score
    base = Encoder.load(tiny_model_dir, device="cpu")
    published = Encoder.load(tmp_path / "out", device="cpu")
    texts = ["what is a harbor", "tulip tulip notes"]
    np.testing.assert_array_equal(published.encode(texts), base.encode(texts))


def test_a_run_without_a_dev_set_says_its_improvement_was_not_measured(
    tmp_path, tiny_model_dir, pairs_file, capsys
):
    result = train(config(tmp_path, tiny_model_dir, pairs_file, dev_fraction=0.0, epochs=1))
    assert result.base_score is None and result.best_score is None
    assert result.improved is False and result.improvement == "not measured"
    summary = json.loads((tmp_path / "out" / "run" / "summary.json").read_text())
    assert summary["improved"] is False and summary["improvement"] == "not measured"
    assert (
        "no dev set: the model is published without a comparison with the base model "
        "(improvement not measured)\n" in capsys.readouterr().err
    )


def test_remaining_steps_continue_from_the_saved_position():
    fresh = TrainerState()
    assert remaining_steps(fresh, [3, 3], accumulation=2, total_steps=10) == [
        (0, 0),
        (0, 2),
        (1, 0),
        (1, 2),
    ]
    midway = TrainerState(step=3, epoch=0, batch_in_epoch=6)
    assert remaining_steps(midway, [8, 8], accumulation=2, total_steps=7) == [
        (0, 6),
        (1, 0),
        (1, 2),
        (1, 4),
    ]


def test_a_position_past_its_epoch_continues_with_the_next_epoch():
    # a forced resume with fewer batches per epoch than the checkpoint's run had
    state = TrainerState(step=5, epoch=0, batch_in_epoch=9)
    assert remaining_steps(state, [6, 6], accumulation=1, total_steps=8) == [(1, 0), (1, 1), (1, 2)]


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path, tiny_model_dir, pairs_file, monkeypatch
):
    from ragtune.losses.infonce import InfoNCELoss

    original = InfoNCELoss.forward
    calls = {"n": 0}

    def sometimes_nan(self, *args, **kwargs):
        calls["n"] += 1
        loss = original(self, *args, **kwargs)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(InfoNCELoss, "forward", sometimes_nan)
    cfg = config(tmp_path, tiny_model_dir, pairs_file, save_steps=1, dev_fraction=0.0)
    with pytest.raises(TrainingDiverged, match="at step 3"):
        train(cfg)
    checkpoints = sorted(p.name for p in (tmp_path / "out" / "run" / "checkpoints").iterdir())
    assert checkpoints[-1] == "step-00000002"


def test_labelled_data_needs_a_labelled_loss(tmp_path, tiny_model_dir):
    from ragtune.errors import RagtuneError

    data = tmp_path / "labelled.jsonl"
    data.write_text(
        "".join(
            json.dumps({"query": f"q {i}", "document": f"d {i}", "label": i % 2}) + "\n"
            for i in range(40)
        )
    )
    with pytest.raises(RagtuneError, match="contrastive or cosine"):
        train(config(tmp_path, tiny_model_dir, data, dev_fraction=0.0))
    result = train(
        config(
            tmp_path,
            tiny_model_dir,
            data,
            dev_fraction=0.0,
            output=str(tmp_path / "out2"),
            loss={"name": "contrastive"},
        )
    )
    assert result.steps > 0


def test_gradcache_training_matches_plain_training(tmp_path, tiny_model_dir, pairs_file):
    # fp32: equal gradients are a property of the math; bf16 rounding depends on batch shapes
    common = {"dev_fraction": 0.0, "epochs": 1, "batch_size": 16, "precision": "fp32"}
    train(config(tmp_path, tiny_model_dir, pairs_file, output=str(tmp_path / "plain"), **common))
    train(
        config(
            tmp_path,
            tiny_model_dir,
            pairs_file,
            output=str(tmp_path / "cached"),
            loss={"name": "infonce", "cache_mini_batch_size": 4},
            **common,
        )
    )
    plain = Encoder.load(tmp_path / "plain", device="cpu").backbone.state_dict()
    cached = Encoder.load(tmp_path / "cached", device="cpu").backbone.state_dict()
    for name, tensor in plain.items():
        torch.testing.assert_close(cached[name], tensor, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize(
    ("precision", "device", "native_bf16", "expected"),
    [
        ("auto", "cpu", True, torch.bfloat16),  # native bf16: ~1.7x faster steps
        ("auto", "cpu", False, None),  # emulated bf16 would be several times slower
        ("fp32", "cpu", True, None),
        ("bf16", "cpu", True, torch.bfloat16),
    ],
)
def test_auto_precision_takes_bf16_only_where_the_cpu_has_it(
    monkeypatch, precision, device, native_bf16, expected
):
    from ragtune.model import precision as rules

    monkeypatch.setattr(rules, "cpu_supports_bf16", lambda: native_bf16)
    assert rules.autocast_dtype(precision, torch.device(device), training=True) == expected


def test_unknown_precision_is_an_error():
    from ragtune.errors import RagtuneError
    from ragtune.model.precision import autocast_dtype

    with pytest.raises(RagtuneError, match="unknown precision 'fp16'"):
        autocast_dtype("fp16", torch.device("cpu"), training=True)


def test_the_resolved_precision_is_saved_with_the_run(tmp_path, tiny_model_dir, pairs_file):
    cfg = config(tmp_path, tiny_model_dir, pairs_file, epochs=1, dev_fraction=0.0)
    train(cfg)
    resolved = (tmp_path / "out" / "run" / "config.yaml").read_text()
    assert "precision: auto" in resolved
    assert "resolved_precision: fp32" in resolved or "resolved_precision: bfloat16" in resolved


def test_encoding_keeps_fp32_on_a_cpu_with_native_bf16(monkeypatch):
    from ragtune.model import precision as rules

    monkeypatch.setattr(rules, "cpu_supports_bf16", lambda: True)
    assert rules.autocast_dtype("auto", torch.device("cpu")) is None  # indexes stay machine-free
