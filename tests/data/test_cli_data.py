"""``ragtune data check`` and ``ragtune data build-stdlib`` through the command line."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from ragtune.cli import data as data_cli
from ragtune.data.codesearch import stdlib_root


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    data_cli.register(app)
    return app


def run(app, *args: str):
    return CliRunner().invoke(app, ["data", *args])


def run_input(app, stdin: str, *args: str):
    return CliRunner().invoke(app, ["data", *args], input=stdin)


def test_check_clean_file_exits_zero(app, tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text('{"query": "q1", "positive": "p1"}\n{"query": "q2", "positive": "p2"}\n')
    result = run(app, "check", str(f))
    assert result.exit_code == 0, result.output
    assert "unique queries" in result.output


def test_check_warnings_only_exit_zero_errors_exit_one(app, tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text('{"query": "q", "positive": "p"}\n' * 2)  # a duplicate row: warning
    assert run(app, "check", str(f)).exit_code == 0
    f.write_text('{"query": "q", "positive": "p"}\n{"query": "", "positive": "p"}\n')
    result = run(app, "check", str(f), "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["errors"] == 1 and report["findings"][0]["code"] == "empty_text"


def test_check_reads_json_lines_from_stdin(app):
    rows = '{"query": "q1", "positive": "p1"}\n{"query": "q2", "positive": ""}\n'
    result = run_input(app, rows, "check", "-", "--json")
    report = json.loads(result.output)
    assert (result.exit_code, report["source"], report["counts"]["rows"]) == (1, "-", 2)
    assert report["findings"][0]["examples"] == [
        "<stdin>:2: empty text (field 'positive'); hint: remove the row or pass skip_invalid=True"
    ]


def test_check_maps_columns(app, tmp_path):
    f = tmp_path / "qa.csv"
    f.write_text("question,answer\nwhy,because\n")
    result = run(app, "check", str(f), "--query-column", "question", "--positive-column", "answer")
    assert result.exit_code == 0, result.output


def test_check_counts_tokens_with_the_model_tokenizer(app, tmp_path, monkeypatch):
    def fake_counter(model: str):
        assert model == "some-model"
        return (lambda texts: [len(t) for t in texts]), 3  # characters, max length 3

    monkeypatch.setattr(data_cli, "_token_counter", fake_counter)
    f = tmp_path / "t.jsonl"
    f.write_text('{"query": "ab", "positive": "abcdef"}\n')
    result = run(app, "check", str(f), "--model", "some-model", "--json")
    codes = {x["code"]: x for x in json.loads(result.output)["findings"]}
    assert codes["documents_truncated"]["count"] == 1 and "queries_truncated" not in codes


def test_build_stdlib_prints_its_statistics_table(app, tmp_path):
    root = str(stdlib_root() / "json")
    result = run(app, "build-stdlib", "--out", str(tmp_path / "j"), "--root", root)
    assert result.exit_code == 0, result.output
    assert "query/code pairs kept" in result.output and "dropped: no docstring" in result.output


def test_build_stdlib_writes_a_beir_folder(app, tmp_path):
    out = tmp_path / "stdlib"
    root = str(stdlib_root() / "email")  # one package keeps the test fast
    result = run(
        app, "build-stdlib", "--out", str(out), "--root", root, "--max-train", "50", "--json"
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["splits"]["train"]["pairs"] == 50
    lines = (out / "qrels" / "train.tsv").read_text().splitlines()
    assert lines[0] == "query-id\tcorpus-id\tscore" and len(lines) == 51
    assert (out / "qrels" / "test.tsv").is_file() and (out / "corpus.jsonl").is_file()
