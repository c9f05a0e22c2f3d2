"""``ragtune eval``: prints the table and the verdict, writes the reports, --json for machines."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from ragtune.cli import eval as eval_cli
from ragtune.data.beir import write_beir_folder
from ragtune.data.schema import Document
from ragtune.errors import RagtuneError


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    eval_cli.register(app)

    @app.callback()
    def main() -> None:  # keeps "eval" a named subcommand, as under the real app
        pass

    return app


@pytest.fixture
def beir(tmp_path):
    docs = [
        Document("d1", "The cat slept on the warm mat.", title="Cats"),
        Document("d2", "Income tax returns are due in April.", title="Taxes"),
        Document("d3", "Green tea is brewed at a lower temperature.", title="Tea"),
    ]
    queries = {"q1": "where did the cat sleep", "q2": "when are tax returns due", "q3": "tea"}
    qrels = {"test": {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}}}
    return write_beir_folder(tmp_path / "beir", docs, queries, qrels)


def test_bm25_and_a_model_with_reports(app, beir, tiny_encoder, tmp_path) -> None:
    model_dir = tiny_encoder.save(tmp_path / "tiny")
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--bm25",
            "--model",
            str(model_dir),
            "--data",
            str(beir),
            "--out",
            str(out),
            "--k",
            "1,10",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "beir/test: 3 queries, 3 documents" in result.output
    assert "nDCG@10" in result.output and "BM25" in result.output
    # One model and --bm25: BM25 is the baseline, the model the candidate.
    verdict = " ".join(result.output.split()[-30:])  # rich wraps long lines
    assert "nDCG@10 (" in verdict and "tiny " in verdict and "BM25" in verdict
    assert sorted(p.name for p in out.iterdir()) == [
        "metrics.png",
        "per_query.jsonl",
        "report.json",
        "report.md",
    ]
    report = json.loads((out / "report.json").read_text())
    assert [s["system"] for s in report["systems"]] == ["BM25", "tiny"]  # the folder's name
    assert report["systems"][1]["source"] == str(model_dir)
    assert report["comparison"]["baseline"] == "BM25"
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1


def test_json_output(app, beir) -> None:
    result = CliRunner().invoke(app, ["eval", "--bm25", "--data", str(beir), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["systems"][0]["metrics"]["nDCG@10"] == 1.0  # every query names its document
    assert data["verdict"] is None  # one system: nothing to compare


def test_user_errors(app, beir) -> None:
    runner = CliRunner()
    nothing = runner.invoke(app, ["eval", "--data", str(beir)])
    assert isinstance(nothing.exception, RagtuneError)
    assert "pass --model" in str(nothing.exception)
    bad_k = runner.invoke(app, ["eval", "--bm25", "--data", str(beir), "--k", "1,ten"])
    assert "comma-separated integers" in str(bad_k.exception)
    no_split = runner.invoke(app, ["eval", "--bm25", "--data", str(beir), "--split", "dev"])
    assert "splits in this folder: test" in str(no_split.exception)


def test_model_labels_are_short_but_distinct() -> None:
    labels = eval_cli._display_names
    assert labels(["sentence-transformers/all-MiniLM-L6-v2"]) == ["all-MiniLM-L6-v2"]
    assert labels(["runs/a/model", "runs/b/model", "x"]) == ["a/model", "b/model", "x"]
    assert labels(["m", "m"]) == ["m", "m#2"]


def test_help_has_examples(app) -> None:
    result = CliRunner().invoke(app, ["eval", "--help"])
    assert result.exit_code == 0
    assert "ragtune eval --model sentence-transformers/all-MiniLM-L6-v2 --bm25" in result.output
