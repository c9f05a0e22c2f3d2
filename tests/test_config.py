"""Typed configs from YAML/TOML files and key=value overrides; typos are errors."""

import pytest

from ragtune.config import load_config
from ragtune.errors import RagtuneError
from ragtune.train import TrainConfig


def test_yaml_then_overrides_then_values(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: pairs.jsonl\nbatch_size: 16\nloss:\n  name: triplet\n  margin: 0.3\n")
    cfg = load_config(
        TrainConfig, path, ["loss.scale=30", "learning_rate=1e-4", "resume=true"], epochs=3
    )
    assert (cfg.data, cfg.batch_size, cfg.epochs, cfg.resume) == ("pairs.jsonl", 16, 3, True)
    assert cfg.loss.name == "triplet" and cfg.loss.margin == 0.3 and cfg.loss.scale == 30.0
    assert cfg.learning_rate == pytest.approx(1e-4)


def test_toml_is_read_too(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('data = "x.jsonl"\nepochs = 2\n[loss]\nname = "cosine"\n')
    cfg = load_config(TrainConfig, path)
    assert cfg.epochs == 2 and cfg.loss.name == "cosine"


def test_the_shipped_example_config_loads():
    from pathlib import Path

    cfg = load_config(TrainConfig, Path(__file__).resolve().parents[1] / "configs" / "scifact.yaml")
    assert cfg.loss.name == "infonce" and cfg.attention_dropout is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("bach_size=3", "unknown keys \\['bach_size'\\]"),
        ("batch_size=many", "expected int"),
        ("schedule=exponential", "choose one of linear, cosine, constant"),
        ("resume=perhaps", "expected true or false"),
        ("loss.nme=x", "unknown keys \\['nme'\\]"),
        ("epochs", "key=value"),
    ],
)
def test_mistakes_are_named(override, message):
    with pytest.raises(RagtuneError, match=message):
        load_config(TrainConfig, None, [override])


def test_errors_name_the_dotted_key_that_set_takes():
    with pytest.raises(RagtuneError, match=r"^train\.batch_size: expected int, got 'many'$"):
        load_config(TrainConfig, None, ["batch_size=many"])
    with pytest.raises(RagtuneError, match=r"^loss\.scale: expected float, got 'high'$"):
        load_config(TrainConfig, None, ["loss.scale=high"])
    with pytest.raises(RagtuneError, match=r"^train\.batch_size must be >= 1, got 0$"):
        load_config(TrainConfig, None, ["batch_size=0"])


def test_a_single_value_is_a_list_of_one():
    cfg = load_config(TrainConfig, None, ["loss.matryoshka_dims=64"])
    assert cfg.loss.matryoshka_dims == (64,)


def test_a_bad_value_names_the_file_it_came_from_and_not_an_override(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("batch_size: 0\n", encoding="utf-8")
    with pytest.raises(RagtuneError, match=r"^.*run\.yaml: train\.batch_size must be >= 1"):
        load_config(TrainConfig, cfg, data="pairs.jsonl")
    cfg.write_text("batch_size: 8\n", encoding="utf-8")
    with pytest.raises(RagtuneError) as raised:
        load_config(TrainConfig, cfg, ["loss.scale=0"], data="pairs.jsonl")
    assert "run.yaml" not in str(raised.value)
    assert "loss.scale" in str(raised.value)
    cfg.write_bytes(b"model: caf\xe9\n")
    with pytest.raises(RagtuneError, match=r"run\.yaml: not valid UTF-8 \(byte 10"):
        load_config(TrainConfig, cfg)
