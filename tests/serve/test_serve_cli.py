"""``ragtune index``, ``ragtune search`` and ``ragtune serve`` from the command line."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time

import httpx
import pytest
import typer
from typer.testing import CliRunner

from ragtune.cli import index, search, serve
from tests.search.conftest import make_sample_folder

# The three commands on their own app (cli/main.py registers them with the others).
APP_SOURCE = (
    "import typer\n"
    "from ragtune.cli import index, search, serve\n"
    "app = typer.Typer()\n"
    "for module in (index, search, serve):\n"
    "    module.register(app)\n"
)


def make_app() -> typer.Typer:
    app = typer.Typer()
    for module in (index, search, serve):
        module.register(app)
    return app


def test_index_then_search_prints_locations_and_json(tmp_path, tiny_model_dir):
    root = make_sample_folder(tmp_path / "repo")
    runner = CliRunner()
    app = make_app()
    out = tmp_path / "idx"
    result = runner.invoke(
        app, ["index", str(root), "--out", str(out), "--model", str(tiny_model_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["files_new"], report["chunks_total"]) == (4, 8)
    assert report["skipped"] == {"binary": 1, "ignored": 3, "not_utf8": 1}

    result = runner.invoke(app, ["search", str(out), "exponential backoff", "-k", "2", "--hybrid"])
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith("notes.txt:1-2  0.0")
    assert "    Retries use exponential backoff." in result.stdout

    result = runner.invoke(app, ["search", str(out), "-", "--json", "-k", "1", "--hybrid"],
                           input="exponential backoff\n")  # fmt: skip
    body = json.loads(result.stdout)
    assert body["query"] == "exponential backoff"
    assert [(h["path"], h["start_line"], h["end_line"]) for h in body["hits"]] == [
        ("notes.txt", 1, 2)
    ]


def test_help_has_examples():
    runner = CliRunner()
    for command in ("index", "search", "serve"):
        result = runner.invoke(make_app(), [command, "--help"])
        assert result.exit_code == 0 and "Examples" in result.stdout


def test_serve_command_answers_over_http(sample_index):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-c", APP_SOURCE + "app()", "serve", str(sample_index), "--port",
         str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                health = httpx.get(f"{url}/health", timeout=5).json()
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"ragtune serve did not start:\n{process.communicate()[0]}")
                time.sleep(0.2)
        assert health["chunks"] == 8
        hits = httpx.post(f"{url}/search", json={"query": "backoff", "hybrid": True}).json()
        assert hits["hits"][0]["path"] == "notes.txt"
    finally:
        process.terminate()
        process.wait(30)


def test_serve_on_port_0_announces_the_free_port_it_chose(sample_index):
    process = subprocess.Popen(
        [sys.executable, "-c", APP_SOURCE + "app()", "serve", str(sample_index), "--port", "0",
         "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once the index and the model are loaded
        match = re.fullmatch(
            rf"serving {re.escape(str(sample_index))} on (http://127\.0\.0\.1:(\d+))/ "
            r"\(Ctrl-C to stop\)\n",
            line,
        )
        assert match is not None, line
        assert int(match.group(2)) > 0
        health = httpx.get(f"{match.group(1)}/health", timeout=30)
        assert health.status_code == 200 and health.json()["checks"] == {
            "model": "ok",
            "index": "ok",
        }
    finally:
        process.terminate()
        process.wait(30)


def test_backpressure_and_token_encoding_options_reach_serve(monkeypatch, sample_index):
    from ragtune.cli.main import main
    from ragtune.serve import server

    received: dict = {}
    monkeypatch.setattr(server, "serve", lambda index_dir, **kwargs: received.update(kwargs))
    monkeypatch.setattr(sys, "argv", [
        "ragtune", "serve", str(sample_index), "--max-queue", "16", "--request-timeout", "2.5",
        "--max-batch-tokens", "4096", "--max-batch-texts", "64", "--token-encoding", "o200k_base",
    ])  # fmt: skip
    main()  # the stand-in serve returns at once
    limits = received["limits"]
    assert (limits.max_queue, limits.request_timeout_s) == (16, 2.5)
    assert (limits.max_batch_tokens, limits.max_batch_texts) == (4096, 64)
    assert received["token_encoding"] == "o200k_base"


def test_bad_backpressure_and_token_encoding_values_are_one_line(monkeypatch, capsys, sample_index):
    from ragtune.cli.main import main

    for args, message in [
        (["--token-encoding", "p50k"], "error: --token-encoding 'p50k': choose one of "
         "cl100k_base, o200k_base\n"),
        (["--max-queue", "0"], "error: max_queue must be at least 1, got 0\n"),
        (["--request-timeout", "0"], "error: request_timeout_s must be positive, got 0.0\n"),
    ]:  # fmt: skip
        monkeypatch.setattr(sys, "argv", ["ragtune", "serve", str(sample_index), *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert (exit_info.value.code, capsys.readouterr().err) == (1, message)
