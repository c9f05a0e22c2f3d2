"""``--resume`` continues only the run it belongs to, and only from a checkpoint that is whole.

One short run (10 steps, checkpoints at 5 and 10) is trained once per module and copied into each
test, which then changes the data or a setting, or damages a checkpoint, and resumes.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from ragtune.config import load_config
from ragtune.errors import RagtuneError
from ragtune.train import TrainConfig, train
from ragtune.train.data import data_fingerprint, load_run_data
from tests.conftest import make_tiny_encoder
from tests.train.conftest import synthetic_pairs, write_jsonl

SETTINGS = {
    "batch_size": 8,
    "epochs": 2,
    "max_steps": 10,
    "save_steps": 5,
    "keep_checkpoints": 5,
    "dev_fraction": 0.0,
    "log_steps": 1,
    "learning_rate": 1e-3,
    "threads": 1,
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tokenizer) -> Path:
    """A finished 10-step run: model folder, pairs.jsonl and out/ with step-5 and step-10."""
    root = tmp_path_factory.mktemp("trained")
    enc = make_tiny_encoder(tokenizer)
    enc.backbone.config.hidden_dropout_prob = 0.0
    enc.backbone.config.attention_probs_dropout_prob = 0.0
    enc.save(root / "tiny")
    write_jsonl(root / "pairs.jsonl", synthetic_pairs(96))
    train(config(root))
    return root


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A private copy of the trained run to resume, damage or change."""
    shutil.copytree(trained, tmp_path / "run", symlinks=True)
    return tmp_path / "run"


def config(root: Path, **values) -> TrainConfig:
    base = {
        "model": str(root / "tiny"),
        "data": str(root / "pairs.jsonl"),
        "output": str(root / "out"),
    }
    return load_config(TrainConfig, None, (), **{**base, **SETTINGS, **values})


def checkpoint(root: Path, step: int) -> Path:
    return root / "out" / "run" / "checkpoints" / f"step-{step:08d}"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def logged_steps(root: Path) -> list[int]:
    lines = (root / "out" / "run" / "log.jsonl").read_text().splitlines()
    return [r["step"] for r in map(json.loads, lines) if "loss" in r]


def test_resume_with_other_data_is_refused_naming_both_fingerprints(run):
    old = json.loads((run / "out" / "run" / "data.json").read_text())["fingerprint"]
    write_jsonl(run / "pairs.jsonl", synthetic_pairs(96, seed=1))
    cfg = config(run, resume=True, max_steps=20)
    new = data_fingerprint(load_run_data(cfg)[0])
    before = snapshot(run / "out")

    with pytest.raises(RagtuneError) as refused:
        train(cfg)

    assert str(refused.value) == (
        f"--resume: step-00000010 belongs to a run with other settings (data fingerprint "
        f"{old[:12]} -> {new[:12]}); pass --set resume_force=true to continue it anyway, "
        "or choose another --output"
    )
    assert snapshot(run / "out") == before  # nothing trained, logged or rewritten


def test_resume_with_another_batch_size_is_one_error_line_and_exit_1(run, monkeypatch, capsys):
    from ragtune.cli.main import main

    before = snapshot(run / "out")
    argv = ["ragtune", "train", "--model", str(run / "tiny"), "--data", str(run / "pairs.jsonl")]
    argv += ["--batch-size", "16", "--resume"]
    for key, value in {**SETTINGS, "output": run / "out", "max_steps": 20}.items():
        if key != "batch_size":
            argv += ["--set", f"{key}={value}"]
    monkeypatch.setattr(sys, "argv", argv)

    with pytest.raises(SystemExit) as exited:
        main()

    assert exited.value.code == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: --resume: step-00000010 belongs to a run with other settings (batch_size 8 -> 16); "
        "pass --set resume_force=true to continue it anyway, or choose another --output"
    )
    assert snapshot(run / "out") == before


def test_resume_force_continues_and_the_run_files_describe_the_new_run(run, capsys):
    import yaml

    result = train(config(run, resume=True, resume_force=True, batch_size=16, max_steps=12))

    assert result.steps == 12  # 10 steps of 8 pairs, then 2 of 16 from the same share of epoch 0
    assert logged_steps(run) == list(range(1, 13))
    out = capsys.readouterr().err
    assert "resume forced (resume_force=true): batch_size 8 -> 16; run/config.yaml and " in out
    resolved = yaml.safe_load((run / "out" / "run" / "config.yaml").read_text())
    assert resolved["batch_size"] == 16 and resolved["resume_force"] is True
    records = [
        json.loads(line) for line in (run / "out" / "run" / "log.jsonl").read_text().splitlines()
    ]
    assert {"step": 10, "resume_forced": ["batch_size 8 -> 16"]}.items() <= next(
        r for r in records if "resume_forced" in r
    ).items()
    saved = json.loads((checkpoint(run, 12) / "run.json").read_text())
    assert saved["batch_size"] == 16  # a later resume compares with the forced run


def test_resume_force_onto_other_data_rewrites_the_data_description(run):
    write_jsonl(run / "pairs.jsonl", synthetic_pairs(80, seed=3))
    cfg = config(run, resume=True, resume_force=True, max_steps=12)
    expected = data_fingerprint(load_run_data(cfg)[0])

    train(cfg)

    described = json.loads((run / "out" / "run" / "data.json").read_text())
    assert described["fingerprint"] == expected and described["examples"] == 80


def truncate_weights(step: Path) -> str:
    weights = step / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as f:
        f.truncate(size // 2)
    return f"model.safetensors has {size // 2} bytes, {size} were written"


def empty_optimizer_state(step: Path) -> str:
    size = (step / "training_state.pt").stat().st_size
    (step / "training_state.pt").write_bytes(b"")
    return f"training_state.pt has 0 bytes, {size} were written"


def remove_optimizer_state(step: Path) -> str:
    (step / "training_state.pt").unlink()
    return "training_state.pt is missing"


def garble_trainer_state(step: Path) -> str:
    path = step / "trainer_state.json"
    text = path.read_text()
    path.write_text("[" + text[1:])  # the same size, and no longer JSON
    return "trainer_state.json differs from what was written"


def remove_marker(step: Path) -> str:
    (step / ".ragtune-artefact").unlink()
    return "no completion marker: the save did not finish (or an earlier ragtune wrote it)"


@pytest.mark.parametrize(
    "damage",
    [
        truncate_weights,
        empty_optimizer_state,
        remove_optimizer_state,
        garble_trainer_state,
        remove_marker,
    ],
)
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(run, capsys, damage):
    problem = damage(checkpoint(run, 10))

    result = train(config(run, resume=True, max_steps=12))

    err = capsys.readouterr().err
    assert f"checkpoint step-00000010 ({problem}) is damaged: resuming from step-00000005\n" in err
    assert "resumed from step-00000005 (step 5, epoch 0)" in err
    assert result.steps == 12
    assert logged_steps(run) == [*range(1, 11), *range(6, 13)]  # steps 6-10 trained again
    assert (checkpoint(run, 10) / "model.safetensors").stat().st_size > 0  # re-saved whole


def test_no_intact_checkpoint_is_one_clear_error(run):
    first = truncate_weights(checkpoint(run, 5))
    second = remove_marker(checkpoint(run, 10))
    before = snapshot(run / "out")

    with pytest.raises(RagtuneError) as refused:
        train(config(run, resume=True, max_steps=12))

    folder = run / "out" / "run" / "checkpoints"
    assert str(refused.value) == (
        f"--resume: no intact checkpoint in {folder}: step-00000010 ({second}), "
        f"step-00000005 ({first}); delete that folder to train from the start, "
        "or choose another --output"
    )
    assert snapshot(run / "out") == before


def test_a_save_removes_only_dead_temporary_folders_of_ragtune(tmp_path):
    import subprocess

    import torch

    from ragtune.train.checkpoint import list_checkpoints, save_checkpoint
    from ragtune.train.state import TrainerState

    proc = subprocess.Popen(["true"])
    proc.wait()  # a process id that no longer runs
    folder = tmp_path / "checkpoints"
    dead = folder / f".step-00000002.ragtune-tmp-{proc.pid}-abc"
    dead.mkdir(parents=True)
    (dead / "model.safetensors").write_bytes(b"half")
    mine = folder / ".step-notes" / "todo.txt"  # the user's, named alike but not by ragtune
    mine.parent.mkdir()
    mine.write_text("keep me\n")

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    state = TrainerState()
    state.step = 4
    save_checkpoint(folder, model, optimizer, scheduler, state, {"data": "x"}, keep=2)

    assert not dead.exists()
    assert mine.read_text() == "keep me\n"
    assert [p.name for p in list_checkpoints(folder)] == ["step-00000004"]
