"""Crash safety: kill a real training process with SIGKILL, resume, and get the same run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from tests.train.conftest import synthetic_pairs, write_jsonl

pytestmark = pytest.mark.slow


def train_cmd(model_dir, data, out, *extra):
    return [
        sys.executable,
        "-m",
        "ragtune.cli.main",
        "train",
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "--output",
        str(out),
        "--batch-size",
        "16",
        "--epochs",
        "3",
        "--set",
        "dev_fraction=0",
        "--recipe",
        "fixed",
        "--set",
        "log_steps=1",
        "--set",
        "save_steps=5",
        "--set",
        "threads=1",
        "--set",
        "learning_rate=5e-4",
        *extra,
    ]


def losses_by_step(out):
    losses = {}
    for line in (out / "run" / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "loss" in record:
            losses[record["step"]] = record["loss"]  # a resumed run re-logs steps: keep the last
    return losses


def test_sigkill_then_resume_reproduces_the_uninterrupted_run(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "pairs.jsonl", synthetic_pairs(400))
    env = {**os.environ, "RAGTUNE_PROGRESS": "0"}

    straight = tmp_path / "straight"
    subprocess.run(
        train_cmd(tiny_model_dir, data, straight),
        check=True,
        env=env,
        timeout=300,
        capture_output=True,
    )

    crashed = tmp_path / "crashed"
    proc = subprocess.Popen(
        train_cmd(tiny_model_dir, data, crashed),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    trigger = crashed / "run" / "checkpoints" / "step-00000010"
    deadline = time.monotonic() + 240
    while not trigger.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "training finished before it could be killed"
    assert not (crashed / "modules.json").exists()  # no model was published by the killed run

    resumed = subprocess.run(
        train_cmd(tiny_model_dir, data, crashed, "--resume"),
        env=env,
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from step-" in resumed.stderr

    expected, got = losses_by_step(straight), losses_by_step(crashed)
    assert got.keys() == expected.keys() and len(expected) == 75
    for step in expected:
        assert got[step] == pytest.approx(expected[step], rel=1e-6, abs=1e-7), step

    a = load_file(str(straight / "model.safetensors"))
    b = load_file(str(crashed / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] - b[name]).abs().max().item() < 1e-6, name
