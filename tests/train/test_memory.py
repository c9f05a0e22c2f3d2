"""Training and the malloc policy: ``train()`` leaves it alone, the ``train`` command sets it."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from typer.testing import CliRunner

from ragtune.cli.main import app
from ragtune.config import load_config
from ragtune.errors import RagtuneError
from ragtune.model import cpu
from ragtune.model.encoder import default_device
from ragtune.train import TrainConfig, train


def recording_policy(events: list):
    """A stand-in for ``cpu_memory_policy`` that records what it was asked for."""

    @contextmanager
    def policy(name: str, *, device: str = "cpu"):
        events.append((name, device))
        yield True
        events.append("restored")

    return policy


@pytest.mark.parametrize(
    ("cpu_memory", "expected"),
    [(None, "reuse"), ("release", "release"), ("system", "system")],
)
def test_the_train_command_runs_under_the_configured_policy_and_restores_it(
    monkeypatch, tmp_path, tiny_model_dir, pairs_file, cpu_memory, expected
):
    events: list = []
    monkeypatch.setattr(cpu, "cpu_memory_policy", recording_policy(events))
    args = ["train", "--model", str(tiny_model_dir), "--data", str(pairs_file)]
    args += ["--out", str(tmp_path / "out"), "--batch-size", "8", "--max-steps", "1"]
    args += ["--set", "dev_fraction=0"]
    if cpu_memory is not None:
        args += ["--set", f"cpu_memory={cpu_memory}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert events == [(expected, default_device().type), "restored"]


def test_train_as_a_library_call_leaves_the_process_malloc_policy_alone(
    monkeypatch, tmp_path, tiny_model_dir, pairs_file
):
    calls: list[str] = []
    monkeypatch.setattr(cpu.memory, "apply_policy", calls.append)
    cfg = load_config(
        TrainConfig,
        None,
        (),
        model=str(tiny_model_dir),
        data=str(pairs_file),
        output=str(tmp_path / "out"),
        batch_size=8,
        max_steps=1,
        dev_fraction=0.0,
    )
    train(cfg)
    assert calls == []
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_a_misspelt_policy_is_a_config_error(tmp_path):
    with pytest.raises(RagtuneError, match="cpu_memory"):
        load_config(TrainConfig, None, (), output=str(tmp_path), cpu_memory="forget")
