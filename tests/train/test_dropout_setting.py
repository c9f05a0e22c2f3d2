"""A run's dropout is the run's: the modules train with it, the saved model keeps its own."""

from __future__ import annotations

import json

import torch

from ragtune.config import load_config
from ragtune.train import TrainConfig, train
from ragtune.train.prepare import prepare
from tests.conftest import make_tiny_encoder


def _config(tmp_path, model_dir, data, out: str) -> TrainConfig:
    return load_config(
        TrainConfig,
        None,
        (),
        model=str(model_dir),
        data=str(data),
        output=str(tmp_path / out),
        batch_size=8,
        epochs=1,
        max_steps=2,
        dev_fraction=0.0,
        threads=1,
        recipe="fixed",
        attention_dropout=0.0,
        hidden_dropout=0.0,
    )


def test_dropout_off_trains_without_dropout_and_publishes_the_models_own(
    tmp_path, tokenizer, pairs_file
):
    model_dir = make_tiny_encoder(tokenizer).save(tmp_path / "tiny")
    own = json.loads((model_dir / "config.json").read_text())
    assert own["hidden_dropout_prob"] == 0.1 and own["attention_probs_dropout_prob"] == 0.1

    run = prepare(_config(tmp_path, model_dir, pairs_file, "prepared"))
    ps = {m.p for m in run.encoder.backbone.modules() if isinstance(m, torch.nn.Dropout)}
    assert ps == {0.0}  # every dropout module trains at 0
    assert run.encoder.backbone.config.hidden_dropout_prob == 0.1  # the model's own, kept

    train(_config(tmp_path, model_dir, pairs_file, "model"))
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert saved["hidden_dropout_prob"] == 0.1 and saved["attention_probs_dropout_prob"] == 0.1
