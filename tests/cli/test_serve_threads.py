"""`ragtune serve` lets idle OpenMP threads sleep; other commands and a user's setting are left."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ragtune.cli.main import _passive_threads_for_serving


def test_serve_sets_a_passive_wait_policy_and_keeps_the_users(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    _passive_threads_for_serving(["ragtune", "train"])
    assert "OMP_WAIT_POLICY" not in os.environ
    _passive_threads_for_serving(["ragtune", "serve", "my.idx"])
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    _passive_threads_for_serving(["ragtune", "serve", "my.idx"])
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_the_policy_is_set_before_torch_loads():
    """libgomp reads the variable once, when torch loads: the entry module must set it first."""
    code = (
        "import sys; sys.argv = ['ragtune', 'serve', '--help']; import os; "
        "os.environ.pop('OMP_WAIT_POLICY', None); import ragtune.cli.main; "
        "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["PASSIVE", "True"], out.stderr
