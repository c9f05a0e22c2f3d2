"""The console script: help lists commands, encode and info work, errors are one line."""

import json
import subprocess
import sys

import numpy as np
import pytest


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ragtune.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_help_lists_every_command():
    from ragtune.cli.main import COMMAND_MODULES

    result = run("--help")
    assert result.returncode == 0
    for name in COMMAND_MODULES:
        assert name.replace("_", "-") in result.stdout


@pytest.mark.slow
def test_encode_from_stdin_to_jsonl_and_npy(tmp_path, minilm_path):
    result = run("encode", "-", "--kind", "query", stdin="first text\nsecond text\n")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["first text", "second text"]
    assert len(rows[0]["embedding"]) == 384

    source = tmp_path / "texts.txt"
    source.write_text("first text\nsecond text\n")
    result = run("encode", str(source), "--out", str(tmp_path / "v.npy"))
    assert result.returncode == 0, result.stderr
    vectors = np.load(tmp_path / "v.npy")
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(vectors[0], rows[0]["embedding"], atol=1e-5)


@pytest.mark.slow
def test_info_as_json(minilm_path):
    result = run("info", "--json")
    assert result.returncode == 0, result.stderr
    details = json.loads(result.stdout)
    assert details["layers"] == 6 and details["dim"] == 384
    assert details["fused_cpu_inference"] == "yes"  # MiniLM is a BERT: the fused path runs it
    assert details["cpu_training_precision"].startswith(("bf16 autocast where", "fp32"))  # CPU
    assert details["cpu_training_memory"].split()[0] in ("reuse", "system")  # glibc or not


def test_bad_input_is_one_clean_line(tmp_path):
    bad = tmp_path / "texts.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": \n')
    result = run("encode", str(bad))
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"error: {bad}:2: malformed JSON (Expecting value)"
    )
    assert "Traceback" not in result.stderr
