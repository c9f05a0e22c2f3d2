"""``tune`` run again on a changed folder, with other settings, or with an output inside the folder;
and inputs that must fail early, in one line, instead of after minutes of work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.errors import RagtuneError
from ragtune.tune import TuneConfig, run_tune
from tests.cli.test_tune import TOPICS, config, make_repo, ragtune
from tests.conftest import make_tiny_encoder
from tests.pseudo.llm_standin import StandIn


@pytest.fixture
def tiny_model(tmp_path, tokenizer) -> str:
    return str(make_tiny_encoder(tokenizer).save(tmp_path / "tiny"))


def chunk_paths(out: Path) -> set[str]:
    return {json.loads(line)["path"] for line in (out / "stages" / "chunks.jsonl").open()}


def test_an_edited_folder_is_chunked_again_and_an_unchanged_one_reuses_every_stage(
    tmp_path, tiny_model
):
    repo = make_repo(tmp_path / "repo")
    out = tmp_path / "run"
    run_tune(config(repo, out, tiny_model, index=False))
    again = run_tune(config(repo, out, tiny_model, index=False))
    assert {"chunks", "filter", "train"} <= set(again.summary["reused_stages"])

    (repo / "pkg0" / "notes.md").write_text("# Glacier notes\n\nGlaciers move slowly downhill.\n")
    edited = run_tune(config(repo, out, tiny_model, index=False))
    assert "pkg0/notes.md" in chunk_paths(out)
    assert not {"chunks", "filter", "train"} & set(edited.summary["reused_stages"])


def test_an_output_inside_the_folder_is_never_read_as_the_users_documents(tmp_path, tiny_model):
    repo = make_repo(tmp_path / "repo")
    out = repo / "runs" / "x"  # tune . --out runs/x
    run_tune(config(repo, out, tiny_model))
    # the rerun sees the first run's model, stages, report and index inside the folder
    again = run_tune(config(repo, out, tiny_model))
    assert not any(p.startswith("runs/") for p in chunk_paths(out))
    manifest = json.loads((out / "index" / "manifest.json").read_text())
    assert "runs/x/tune.md" not in json.dumps(manifest)
    assert {"chunks", "train"} <= set(again.summary["reused_stages"])


def test_a_rerun_with_another_training_setting_trains_afresh_instead_of_refusing(
    tmp_path, tiny_model
):
    repo = make_repo(tmp_path / "repo")
    out = tmp_path / "run"
    first = run_tune(config(repo, out, tiny_model, index=False))
    assert (out / "model" / "run" / "checkpoints").is_dir()
    # a finished run's checkpoints would refuse a resume with other data or batches
    changed = run_tune(config(repo, out, tiny_model, index=False, batch_size=4))
    assert "train" not in changed.summary["reused_stages"]
    assert changed.summary["training"]["steps"] > first.summary["training"]["steps"]
    assert not [p for p in out.iterdir() if p.name.startswith(".model")]  # nothing left aside


def test_questions_naming_no_chunk_fail_before_the_filter_and_name_the_paths(tmp_path, tiny_model):
    repo = make_repo(tmp_path / "repo")
    questions = tmp_path / "q.jsonl"
    rows = [{"query": f"question {i}", "path": f"src/gone{i % 5}.py"} for i in range(40)]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    with pytest.raises(RagtuneError, match=r"q\.jsonl: no (dev|test) question .*src/gone0\.py"):
        run_tune(config(repo, out, tiny_model, queries=str(questions)))
    assert not (out / "stages" / "filtered.jsonl").exists()  # refused before minutes of work


def test_a_question_at_a_line_beyond_its_file_is_named_and_not_scored(tmp_path, tiny_model):
    repo = make_repo(tmp_path / "repo")
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"query": "how big is a glacier", "path": "pkg0/glacier.py:3"}\n'
        '{"query": "volcano counting", "path": "pkg1/volcano.py:999"}\n'
        '{"query": "superscript", "path": "pkg1/volcano.py:\u00b2"}\n'  # a name, not a line
    )
    result = run_tune(
        config(repo, tmp_path / "run", tiny_model, queries=str(questions), index=False)
    )
    assert result.summary["questions"]["unmatched"] == 2


def test_a_folder_whose_pairs_come_from_two_files_is_refused_after_the_split(tmp_path, tiny_model):
    repo = tmp_path / "repo"
    repo.mkdir()
    for topic in TOPICS[:2]:
        (repo / f"{topic}.py").write_text(
            f'def measure_{topic}(values):\n    """Measure the {topic} size."""\n'
            "    return sum(values)\n"
        )
    with pytest.raises(RagtuneError, match="come from 2 files; .* needs at least 3"):
        run_tune(config(repo, tmp_path / "run", tiny_model, generators=("docstring",)))


def test_a_bad_budget_is_refused_when_the_settings_are_read():
    with pytest.raises(RagtuneError, match="budget: '30min' is not a time budget"):
        TuneConfig(input="repo", budget="30min")


def test_the_summary_counts_the_pairs_mining_left_out(tmp_path, tiny_model):
    repo = make_repo(tmp_path / "repo")
    result = run_tune(config(repo, tmp_path / "run", tiny_model, negatives="dense", index=False))
    mining = result.summary["mining"]
    assert mining["pairs"] == mining["examples"] + mining["left_out_without_negative"]
    assert mining["with_negative"] <= mining["examples"]


def test_the_cli_turns_a_bad_budget_into_one_line_and_exit_code_1(tmp_path):
    run = ragtune("tune", str(tmp_path), "--out", str(tmp_path / "r"), "--budget", "soon")
    _, err = run.communicate(timeout=120)
    assert run.returncode == 1
    assert err.strip() == "error: budget: 'soon' is not a time budget; give e.g. 30m, 1h or 900s"


def test_chunks_the_llm_failed_on_are_asked_again_by_a_rerun_and_only_they(tmp_path, tiny_model):
    repo = make_repo(tmp_path / "repo")
    out = tmp_path / "run"
    with StandIn() as server:
        server.by_passage = lambda passage, asked: "400" if "glacier" in passage else "ok"
        cfg = config(
            repo,
            out,
            tiny_model,
            generators=("docstring", "openai"),
            llm_url=server.url,
            llm_model="tiny-model",
            index=False,
        )
        first = run_tune(cfg).summary["generators"]["openai"]["llm"]
        assert first["failures"] > 0 and server.calls == first["chunks_asked"]
        server.by_passage = None  # the endpoint is healthy again
        again = run_tune(cfg)
        assert "queries:openai" not in again.summary["reused_stages"]
        llm = again.summary["generators"]["openai"]["llm"]
        assert llm["chunks_asked"] == first["failures"] and llm["failures"] == 0
        assert server.calls == first["chunks_asked"] + first["failures"]
        third = run_tune(cfg)  # now complete: reused, nothing asked
        assert "queries:openai" in third.summary["reused_stages"]
        assert server.calls == first["chunks_asked"] + first["failures"]
