"""Freed activations go back to the OS when a CPU run asks for it (release_memory)."""

from __future__ import annotations

import platform
import sys

import pytest

from ragtune.config import load_config
from ragtune.train import TrainConfig, memory, train


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt's mmap threshold is a glibc setting",
)
def test_glibc_accepts_a_fixed_mmap_threshold():
    assert memory.return_large_blocks_to_os() is True


def test_other_platforms_are_left_alone(monkeypatch):
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert memory.return_large_blocks_to_os() is False


@pytest.mark.parametrize(
    ("loss", "release_memory", "expected"),
    [
        ({"name": "infonce", "cache_mini_batch_size": 4}, False, False),  # off by default
        ({"name": "infonce", "cache_mini_batch_size": 4}, True, True),  # asked for
        ({"name": "infonce"}, True, True),
    ],
)
def test_train_fixes_the_threshold_when_asked(
    monkeypatch, tmp_path, tiny_model_dir, pairs_file, loss, release_memory, expected
):
    from ragtune.train import loop

    calls: list[bool] = []
    monkeypatch.setattr(loop, "return_large_blocks_to_os", lambda: calls.append(True) or True)
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
        loss=loss,
        release_memory=release_memory,
    )
    train(cfg)
    assert bool(calls) is expected
