"""`ragtune mine`: a BEIR folder or a pairs file in, n-tuples and a summary out."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from ragtune.cli.mine import register
from ragtune.data.beir import write_beir_folder
from ragtune.data.readers import load_training_data
from ragtune.data.schema import Document
from ragtune.errors import RagtuneError

TOPICS = ["vitamin", "iron", "protein", "sleep", "exercise", "sugar"]


def app() -> typer.Typer:
    application = typer.Typer()
    register(application)
    application.command("noop", hidden=True)(lambda: None)  # keep "mine" a named subcommand
    return application


def beir_folder(tmp_path):
    corpus = [
        Document(f"d{i}", f"{t} and health, report {i}", title=t.title())
        for i, t in enumerate(TOPICS * 2)
    ]
    queries = {f"q{i}": f"how does {t} affect health?" for i, t in enumerate(TOPICS)}
    qrels = {"train": {f"q{i}": {f"d{i}": 1} for i in range(len(TOPICS))}}
    return write_beir_folder(tmp_path / "beir", corpus, queries, qrels)


def test_bm25_mining_of_a_beir_folder_prints_json_and_writes_training_data(tmp_path) -> None:
    out = tmp_path / "mined.jsonl"
    result = CliRunner().invoke(
        app(),
        [
            "mine",
            "--data",
            str(beir_folder(tmp_path)),
            "--source",
            "bm25",
            "-n",
            "2",
            "--range",
            "1,10",
            "--out",
            str(out),
            "--json",
            "--no-plot",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["written"] == len(TOPICS) and summary["config"]["range_min"] == 1
    assert set(summary["files"]) == {"data", "summary"}
    records = load_training_data(out).records
    assert all(len(r.negatives) == 2 for r in records)


def test_help_has_examples_and_bad_range_is_a_user_error(tmp_path) -> None:
    help_text = CliRunner().invoke(app(), ["mine", "--help"]).stdout
    assert "Examples" in help_text and "--relative-margin 0.95" in help_text
    result = CliRunner().invoke(
        app(),
        [
            "mine",
            "--data",
            str(beir_folder(tmp_path)),
            "--range",
            "100,10",
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert isinstance(result.exception, RagtuneError)
    assert "range_min < range_max" in str(result.exception)
