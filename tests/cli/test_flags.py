"""One flag name per concept across commands; the old spellings still work, hidden from --help."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from ragtune.cli.main import app, main
from ragtune.data.beir import write_beir_folder
from ragtune.data.schema import Document
from ragtune.train import TrainResult
from tests.conftest import make_tiny_encoder
from tests.train.conftest import synthetic_pairs, write_jsonl

WIDE = {"COLUMNS": "400"}  # no wrapping: a help line is one line


def commands() -> dict[str, object]:
    """Every command of the app by its invocation (``"data check"``), as click sees it."""
    found: dict[str, object] = {}

    def walk(command: object, path: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", {})
        if path and not subcommands:
            found[" ".join(path)] = command
        for name, sub in subcommands.items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def visible_flags() -> dict[str, set[str]]:
    """``{flag: commands that list it in --help}``."""
    flags: dict[str, set[str]] = {}
    for name, command in commands().items():
        for param in command.params:  # type: ignore[attr-defined]
            if getattr(param, "hidden", False):
                continue
            for flag in param.opts:
                if flag.startswith("-"):
                    flags.setdefault(flag, set()).add(name)
    return flags


def run_main(monkeypatch, capsys, *argv: str) -> tuple[int, str, str]:
    """``ragtune ARGV`` in this process, through the console script's entry point."""
    monkeypatch.setattr(sys, "argv", ["ragtune", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main()
        raise SystemExit(0)
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    docs = [
        Document("d1", "The cat slept on the warm mat."),
        Document("d2", "Income tax returns are due in April."),
        Document("d3", "Green tea is brewed at a lower temperature."),
    ]
    queries = {"q1": "where did the cat sleep", "q2": "when are tax returns due", "q3": "tea"}
    qrels = {"test": {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}}}
    return write_beir_folder(tmp_path / "beir", docs, queries, qrels)


@pytest.fixture
def tiny_model(tmp_path: Path, tokenizer) -> Path:
    return make_tiny_encoder(tokenizer).save(tmp_path / "tiny")


# ------------------------------------------------------------------ what --help shows


def test_every_command_writes_to_out_and_k_is_always_a_number_of_hits():
    flags = visible_flags()
    writers = {"demo", "train", "eval", "mine", "index", "export", "encode", "data build-stdlib"}
    writers |= {"tune"}
    assert flags["--out"] == flags["-o"] == writers
    assert "--output" not in flags and "--lr" not in flags and "--eval" not in flags
    assert flags["-k"] == flags["--k"] == {"search"}  # eval's cut-offs are --cutoffs
    assert flags["--cutoffs"] == {"eval"}
    assert flags["--learning-rate"] == {"train"}
    assert flags["--eval-data"] == {"train", "data check"}
    assert flags["--dense-search"] == {"index", "mine"}  # exact or approximate, in both
    assert flags["--kind"] == {"encode"}  # query or document prompt, and nothing else
    assert flags["-m"] == flags["--model"]


def test_serve_help_shows_the_extra_to_install():
    result = CliRunner().invoke(app, ["serve", "--help"], env=WIDE)
    assert result.exit_code == 0
    assert "pip install 'ragtune[serve]'" in result.output


def test_no_help_text_loses_a_bracketed_word_to_rich_markup():
    """Rich reads ``[word]`` as a style tag and drops it; every bracket written must be shown."""
    checked = 0
    for name, command in commands().items():
        texts = [command.help or "", command.epilog or ""]  # type: ignore[attr-defined]
        texts += [getattr(p, "help", None) or "" for p in command.params]  # type: ignore[attr-defined]
        wanted = [m.replace("\\[", "[") for t in texts for m in re.findall(r"\\?\[[^\]\n]*\]", t)]
        if not wanted:
            continue
        result = CliRunner().invoke(app, [*name.split(), "--help"], env=WIDE)
        assert result.exit_code == 0, result.output
        for text in wanted:
            assert text in result.output, f"ragtune {name} --help lost {text!r}"
            checked += 1
    assert checked >= 2  # serve's [serve] and its example's ['text'] at least


def test_unknown_option_is_a_usage_error_without_traceback(monkeypatch, capsys):
    code, out, err = run_main(monkeypatch, capsys, "eval", "--zzzz")
    assert code == 2
    assert out == ""
    assert err.strip().splitlines()[-1] == "Error: No such option: --zzzz"
    assert "Traceback" not in err


# ------------------------------------------------------------------ old spellings still work


def test_train_json_has_the_result_field_names_and_takes_output_and_lr(tmp_path, tiny_model, beir):
    data = write_jsonl(tmp_path / "pairs.jsonl", synthetic_pairs(24))
    args = ["train", "--model", str(tiny_model), "--data", str(data), "--batch-size", "8"]
    args += ["--eval-data", str(beir), "--eval-split", "test", "--set", "warmup_ratio=0"]
    args += ["--output", str(tmp_path / "run"), "--lr", "1e-3", "--json"]  # the old spellings
    args += ["--recipe", "fixed"]  # one epoch exactly (auto would search the epochs)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert list(summary) == [f.name for f in fields(TrainResult)]  # the names Python sees
    assert {"base_score", "best_score", "improved", "pairs_per_second"} <= set(summary)
    assert summary["output"] == str(tmp_path / "run") and summary["metric"] == "ndcg@10"
    assert summary["steps"] == 3  # 24 pairs in batches of 8, one epoch
    assert [h["step"] for h in summary["history"]] == [0, 3]  # the base model, then the end
    assert 0.0 <= summary["base_score"] <= summary["best_score"] <= 1.0
    assert (tmp_path / "run" / "modules.json").is_file()
    saved = (tmp_path / "run" / "run" / "config.yaml").read_text()
    assert "learning_rate: 0.001" in saved


def test_both_spellings_of_one_option_are_refused(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(
        monkeypatch, capsys, "train", "--data", "x.jsonl", "--out", "a", "--output", "b"
    )
    assert (code, out) == (1, "")
    assert err == "error: --output is the old name of --out; pass --out only\n"
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_demo_takes_output_as_its_old_name(monkeypatch, tmp_path):
    seen = []

    class Result:
        improved = True

    def fake_demo(config):
        seen.append(config.output)
        return Result()

    monkeypatch.setattr("ragtune.demo.run_demo", fake_demo)
    for flag in ("--out", "--output", "-o"):
        result = CliRunner().invoke(app, ["demo", flag, str(tmp_path / flag)])
        assert result.exit_code == 0, result.output
    assert seen == [str(tmp_path / f) for f in ("--out", "--output", "-o")]
    assert CliRunner().invoke(app, ["demo"]).exit_code == 0
    assert seen[-1] == "runs/demo"  # the default shown in --help


def test_eval_cutoffs_and_its_old_spelling_k_give_the_same_report(beir):
    reports = []
    for flag in ("--cutoffs", "--k"):
        result = CliRunner().invoke(
            app, ["eval", "--bm25", "--data", str(beir), flag, "1,2", "--json"]
        )
        assert result.exit_code == 0, result.output
        reports.append(json.loads(result.stdout)["systems"][0]["metrics"])
    assert reports[0] == reports[1]
    assert {k.split("@")[1] for k in reports[0] if "@" in k} == {"1", "2"}
    for flag in ("--cutoffs", "--k"):  # an error names the spelling that was typed
        bad = CliRunner().invoke(app, ["eval", "--bm25", "--data", str(beir), flag, "0"])
        assert str(bad.exception) == f"{flag} values must be positive integers; got '0'"


def test_data_check_takes_eval_data_and_its_old_spelling_eval(tmp_path, beir):
    pairs = write_jsonl(
        tmp_path / "pairs.jsonl",
        [{"query": "tea", "positive": "Tea is a drink."}, {"query": "q", "positive": "a text"}],
    )
    reports = []
    for flag in ("--eval-data", "--eval"):
        result = CliRunner().invoke(app, ["data", "check", str(pairs), flag, str(beir), "--json"])
        assert result.exit_code == 1, result.output  # leakage is an error
        reports.append(json.loads(result.stdout))
    assert reports[0] == reports[1]
    leak = [f for f in reports[0]["findings"] if f["code"] == "eval_query_overlap"]
    assert [(f["count"], f["examples"]) for f in leak] == [(1, ["tea"])]


def test_index_calls_exact_search_exact_and_still_takes_kind_flat(tmp_path, tiny_model):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "notes.md").write_text("# Notes\n\nTea is brewed at a lower temperature.\n")
    base = ["index", str(repo), "--model", str(tiny_model), "--device", "cpu", "--json"]
    runs = {
        "new": [*base, "--out", str(tmp_path / "a.idx"), "--dense-search", "exact"],
        "old": [*base, "--out", str(tmp_path / "b.idx"), "--kind", "flat"],
    }
    results = {name: CliRunner().invoke(app, argv) for name, argv in runs.items()}
    for result in results.values():
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["index_kind"] == "exact"
    assert results["new"].stderr.count("note:") == 0
    assert "note: --dense-search flat is now called --dense-search exact" in results["old"].stderr
    bad = CliRunner().invoke(app, [*runs["new"][:-1], "brute"])
    assert str(bad.exception) == (
        "unknown --dense-search 'brute'; choose one of auto, exact, hnsw, ivf, ivfpq"
    )
    bad_old = CliRunner().invoke(app, [*runs["old"][:-1], "brute"])  # named as it was typed
    assert (
        str(bad_old.exception)
        == "unknown --kind 'brute'; choose one of auto, exact, hnsw, ivf, ivfpq"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.idx", "b.idx", "repo", "tiny"]


def test_mine_takes_flat_as_the_old_name_of_exact(tmp_path):
    pairs = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"query": "how hot for green tea", "positive": "Green tea is brewed cooler."},
            {"query": "how is black tea brewed", "positive": "Black tea is brewed boiling."},
            {"query": "what is herbal tea", "positive": "Herbal tea is made of flowers."},
        ],
    )
    base = ["mine", "--data", str(pairs), "--source", "bm25", "-n", "1", "--no-plot", "--json"]
    mined = tmp_path / "mined.jsonl"
    result = CliRunner().invoke(app, [*base, "--out", str(mined), "--dense-search", "flat"])
    assert result.exit_code == 0, result.output
    assert "note: --dense-search flat is now called --dense-search exact" in result.stderr
    assert len(mined.read_text().splitlines()) == 3

    refused = tmp_path / "refused.jsonl"
    bad = CliRunner().invoke(app, [*base, "--out", str(refused), "--dense-search", "brute"])
    assert str(bad.exception) == (
        "unknown dense_search 'brute'; choose one of 'auto', 'exact', 'hnsw'"
    )
    assert not refused.exists()
