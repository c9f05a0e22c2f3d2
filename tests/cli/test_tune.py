"""``ragtune tune`` end to end on a tiny folder with a tiny random model: stages, resume, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragtune.cli.main import app
from ragtune.tune import TuneConfig, run_tune
from ragtune.tune.budget import MIN_STEPS
from tests.conftest import make_tiny_encoder
from tests.pseudo.llm_standin import StandIn, free_port, questions_for

TOPICS = ["glacier", "volcano", "harbor", "violin", "compiler", "orbit", "cactus", "falcon"]


def make_repo(root: Path) -> Path:
    for i, topic in enumerate(TOPICS):
        pkg = root / f"pkg{i}"
        pkg.mkdir(parents=True)
        (pkg / f"{topic}.py").write_text(
            f"def measure_{topic}_size(values):\n"
            f'    """Measure the {topic} size from raw values."""\n'
            f"    total = sum(values)\n    return total / len(values)\n\n\n"
            f'def count_{topic}_items(items):\n    """Count the {topic} items that are valid."""\n'
            f"    valid = [x for x in items if x]\n    return len(valid)\n"
        )
        (pkg / "README.md").write_text(
            f"# About the {topic} module\n\nThe {topic} module measures and counts {topic} "
            f"values for reports about {topic} data.\n"
        )
    return root


@pytest.fixture
def tiny_model(tmp_path, tokenizer) -> str:
    return str(make_tiny_encoder(tokenizer).save(tmp_path / "tiny"))


def config(repo: Path, out: Path, model: str, **kw) -> TuneConfig:
    settings = {
        "max_seq_length": 64,
        "negatives": "none",
        "batch_size": 8,
        "round_trip_k": 20,
        "fractions": (0.5, 0.25, 0.25),
    }
    return TuneConfig(input=str(repo), output=str(out), model=model, **(settings | kw))


def test_tune_writes_every_stage_and_a_rerun_resumes(tmp_path, tiny_model):
    repo = make_repo(tmp_path / "repo")
    out = tmp_path / "run"
    result = run_tune(config(repo, out, tiny_model))
    summary = json.loads((out / "tune.json").read_text())
    assert summary["generators"]["docstring"]["pairs"] == 16
    assert summary["generators"]["docstring"]["examples"][0] == {
        "query": "Measure the glacier size from raw values.",
        "at": "pkg0/glacier.py:1-4",
    }
    assert summary["generators"]["heading"]["pairs"] == 8
    files = json.loads((out / "stages" / "splits.json").read_text())["files"]
    assert len(files) == 16 and set(files.values()) == {"train", "dev", "test"}
    assert {"BM25", "base", "tuned"} <= set(summary["test"])
    assert (out / "report" / "report.md").is_file() and (out / "index").is_dir()
    assert (out / "tune.png").read_bytes()[:4] == b"\x89PNG"
    markdown = (out / "tune.md").read_text()
    assert "| held-out pseudo-queries |" in markdown
    assert "`pkg0/glacier.py:1-4`: Measure the glacier size from raw values." in markdown
    assert summary["counts"]["docstring"]["generated"] == 16
    assert result.serve_command == f"ragtune serve {out / 'index'}"
    assert summary["reused_stages"] == []
    # the pseudo dev queries are judged per generator too; a few each: reported, not tested
    strata = summary["training"]["gate_strata"]
    assert strata and {s["name"] for s in strata} <= set(summary["generators"])
    assert all(not s["tested"] and s["n"] < 30 for s in strata)
    assert f"Gate: {summary['training']['gate']}." in markdown and "| dev queries of |" in markdown

    again = run_tune(config(repo, out, tiny_model))
    assert {"chunks", "queries:docstring", "filter", "split", "mine", "train"} <= set(
        again.summary["reused_stages"]
    )


def test_user_questions_are_scored_and_a_bad_line_is_one_clear_error(tmp_path, tiny_model):
    repo = make_repo(tmp_path / "repo")
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"query": "how big is a glacier", "path": "pkg0/glacier.py:3"}\n'
        '{"query": "volcano counting", "path": "pkg1/volcano.py"}\n'
    )
    result = run_tune(
        config(repo, tmp_path / "run", tiny_model, queries=str(questions), index=False)
    )
    on_questions = result.summary["questions"]
    assert set(on_questions["dev"]) == {"BM25", "base", "tuned"} and "test" not in on_questions
    assert (on_questions["dev_questions"], on_questions["split_by"]) == (2, "none")
    assert "the test is the held-out pseudo-queries" in on_questions["note"]
    assert "| your questions (dev) |" in (tmp_path / "run" / "tune.md").read_text()
    assert result.summary["training"]["gate_strata"] == []  # real questions: one pooled test

    questions.write_text('{"query": "x"}\n')
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "tune",
            str(repo),
            "--out",
            str(tmp_path / "r2"),
            "--queries",
            str(questions),
            "--model",
            tiny_model,
            "--max-seq-length",
            "64",
        ],
    )
    assert res.exit_code != 0
    assert "q.jsonl:1" in str(res.exception) and "'path'" in str(res.exception)


def test_the_budget_shortens_training_and_the_report_says_so(tmp_path, tiny_model):
    repo = make_repo(tmp_path / "repo")
    out = tmp_path / "run"
    # 12 epochs of a few batches each, and a budget already spent before training starts
    result = run_tune(config(repo, out, tiny_model, epochs=12, budget="0.01s", index=False))
    plan = result.summary["training"]["plan"]
    assert plan["full_steps"] > MIN_STEPS and plan["max_steps"] == MIN_STEPS
    assert plan["shortened"] and plan["over_budget"]
    assert result.summary["training"]["steps"] == MIN_STEPS
    markdown = (out / "tune.md").read_text()
    fit = f"Budget: {MIN_STEPS} of {plan['full_steps']} training steps fit the 0.01 s budget"
    assert fit in markdown
    assert "the budget is too small" in markdown
    # a rerun keeps the plan (and so the trained model) instead of re-planning on a new clock
    again = run_tune(config(repo, out, tiny_model, epochs=12, budget="0.01s", index=False))
    assert {"plan", "train"} <= set(again.summary["reused_stages"])


def test_a_shortened_epoch_trains_on_the_queries_the_base_model_ranks_worst(tmp_path, tiny_model):
    repo = make_repo(tmp_path / "repo")
    out = tmp_path / "run"
    # batches of 1 and a spent budget: the minimum of 10 steps covers part of the one epoch
    result = run_tune(config(repo, out, tiny_model, batch_size=1, budget="0.01s", index=False))
    training = result.summary["training"]
    chosen = training["selection"]
    assert training["plan"]["max_steps"] == MIN_STEPS < training["plan"]["full_steps"]
    assert chosen["selected"] and chosen["queries"] == MIN_STEPS < chosen["of_queries"]
    assert training["steps"] == MIN_STEPS  # the chosen queries fill the shortened schedule
    # the base model's rank of every kept pair's chunk, as the round-trip filter measured it
    rows = [json.loads(line) for line in (out / "stages" / "dense-ranks.jsonl").open()]
    train_queries = {json.loads(line)["query"] for line in (out / "stages" / "mined.jsonl").open()}
    hardness = sorted(
        (r["rank"] or 10**6 for r in rows if r["query"] in train_queries), reverse=True
    )
    # the median rank of what was taken is that of the hardest half or so: never the easiest
    assert chosen["median_rank"] >= hardness[len(hardness) // 2]
    assert "queries the base model ranks worst" in (out / "tune.md").read_text()


def test_an_unknown_generator_is_refused_before_any_work(tmp_path):
    with pytest.raises(Exception, match="unknown generator 'nope'"):
        TuneConfig(input=str(tmp_path), generators=("nope",))


def test_the_llm_generator_runs_in_tune_and_a_rerun_asks_nothing(tmp_path, tiny_model):
    repo = make_repo(tmp_path / "repo")
    out = tmp_path / "run"
    with StandIn() as server:
        cfg = config(
            repo,
            out,
            tiny_model,
            generators=("docstring", "openai"),
            llm_url=server.url,
            llm_model="tiny-model",
            llm_questions=2,
            index=False,
        )
        summary = run_tune(cfg).summary
        chunks = summary["input"]["chunks"]
        llm = summary["generators"]["openai"]
        assert llm["llm"]["chunks_asked"] == chunks == server.calls
        assert llm["pairs"] == 2 * chunks
        first = json.loads((out / "stages" / "chunks.jsonl").read_text().splitlines()[0])
        assert llm["examples"][0]["query"] == questions_for(first["text"], 2)[0]
        assert (out / "stages" / "llm-cache.jsonl").is_file()  # beside the stages, not in a temp
        assert summary["counts"]["openai"]["generated"] == 2 * chunks

        again = run_tune(cfg)
        assert "queries:openai" in again.summary["reused_stages"]
        assert server.calls == chunks  # no request the second time


def ragtune(*args: str, stdout=subprocess.PIPE, stderr=subprocess.PIPE) -> subprocess.Popen:
    env = {**os.environ, "RAGTUNE_PROGRESS": "0"}
    return subprocess.Popen(
        [sys.executable, "-m", "ragtune.cli.main", *args],
        stdout=stdout,
        stderr=stderr,
        text=True,
        env=env,
    )


def test_an_unreachable_llm_endpoint_is_one_line_and_exit_code_1(tmp_path, tiny_model):
    repo = make_repo(tmp_path / "repo")
    url = f"http://127.0.0.1:{free_port()}/v1"
    run = ragtune(
        "tune", str(repo), "--out", str(tmp_path / "run"), "--model", tiny_model,
        "--max-seq-length", "64", "--generator", "openai", "--llm-url", url, "--llm-model", "m",
    )  # fmt: skip
    _, err = run.communicate(timeout=300)
    assert run.returncode == 1
    last = err.strip().splitlines()[-1]  # above it: the progress of the stages before
    assert (
        "Traceback" not in err and sum(line.startswith("error:") for line in err.splitlines()) == 1
    )
    assert last.startswith("error: cannot reach the LLM endpoint http://127.0.0.1:")


def test_a_run_killed_while_training_resumes_from_its_checkpoint_and_serves(tmp_path, tiny_model):
    repo = make_repo(tmp_path / "repo")
    out = tmp_path / "run"
    args = ["tune", str(repo), "--out", str(out), "--model", tiny_model, "--max-seq-length", "64"]
    args += ["--round-trip-k", "20", "--batch-size", "4", "--epochs", "3", "--save-steps", "2"]
    log = (tmp_path / "first.log").open("w")
    first = ragtune(*args, stdout=log, stderr=subprocess.STDOUT)
    checkpoints = out / "model" / "run" / "checkpoints"
    deadline = time.monotonic() + 300
    while not any(checkpoints.glob("step-*")) and first.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    log.close()
    assert first.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    done = json.loads((out / "stages" / "stages.json").read_text())
    assert {"chunks", "filter", "split", "mine"} <= set(done) and "train" not in done

    second = ragtune(*args, "--serve", "--port", "0", stderr=subprocess.STDOUT)
    url = ""
    lines = []
    assert second.stdout is not None
    for line in second.stdout:  # until the server says where it listens
        lines.append(line)
        if line.startswith("serving "):
            url = line.split(" on ", 1)[1].split("/ ", 1)[0]
            break
    try:
        assert url, "".join(lines)
        import httpx

        assert httpx.get(f"{url}/health", timeout=30).status_code == 200
        hits = httpx.post(f"{url}/search", json={"query": "glacier size", "k": 3}, timeout=60)
        assert hits.status_code == 200 and hits.json()["hits"]
    finally:
        second.send_signal(signal.SIGINT)
        try:
            second.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            second.kill()
            second.communicate()
    printed = "".join(lines)
    assert "resumed from step-" in printed
    summary = json.loads((out / "tune.json").read_text())
    assert {"chunks", "queries:docstring", "filter", "split", "mine"} <= set(
        summary["reused_stages"]
    )
    assert "train" not in summary["reused_stages"]
