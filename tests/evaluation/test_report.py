"""compare(): the table, the verdict said plainly, wins and losses per query, saved files."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from ragtune.data.schema import Document, EvalSet
from ragtune.errors import RagtuneError
from ragtune.evaluation.evaluate import EvalResult
from ragtune.evaluation.report import compare, default_columns, sign_flip_p_value

EVALSET = EvalSet(
    queries={"q1": "first question", "q2": "second question", "q3": "third | question"},
    corpus={
        "a": Document("a", "alpha text", title="Alpha"),
        "b": Document("b", "beta text without a title"),
        "c": Document("c", "gamma text", title="Gamma"),
    },
    qrels={"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}},
    name="toy/test",
)


def result(system: str, ndcg: dict[str, float], runs: dict[str, list[str]]) -> EvalResult:
    per_query = {q: {"nDCG@10": v, "Recall@10": 1.0} for q, v in ndcg.items()}
    return EvalResult(
        system=system,
        metrics={
            "nDCG@10": sum(ndcg.values()) / len(ndcg),
            "Recall@10": 1.0,
        },
        per_query=per_query,
        run={q: {d: 1.0 - i / 10 for i, d in enumerate(docs)} for q, docs in runs.items()},
        seconds=2.0,
        docs_per_second=100.0,
        num_queries=3,
        num_docs=3,
    )


BASE = result(
    "base", {"q1": 1.0, "q2": 0.5, "q3": 0.6}, {q: ["a", "b", "c"] for q in ["q1", "q2", "q3"]}
)
TUNED_WORSE = result(
    "tuned", {"q1": 0.5, "q2": 0.5, "q3": 0.4}, {q: ["c", "b", "a"] for q in ["q1", "q2", "q3"]}
)


def test_verdict_says_plainly_when_the_tuned_model_is_worse() -> None:
    report = compare([BASE, TUNED_WORSE], EVALSET)
    c = report.comparison
    assert c is not None
    # Means: base (1 + 0.5 + 0.6) / 3 = 0.7, tuned (0.5 + 0.5 + 0.4) / 3 = 0.4667: -0.2333.
    assert c.delta == pytest.approx(-0.7 / 3)
    assert (c.wins, c.losses, c.ties) == (0, 2, 1)
    # Per-query differences (-0.5, 0, -0.2): of the 4 sign patterns of the non-zero ones only
    # (-,-) and (+,+) reach |mean| >= 0.7/3, so p = 2/4.
    assert c.p_value == pytest.approx(0.5, abs=0.02)
    assert report.verdict == (
        "tuned is WORSE than base by -0.2333 nDCG@10 (0 wins / 2 losses / 1 ties; "
        f"p = {c.p_value:.3g}, paired sign-flip test); the difference is not significant"
    )


def test_better_and_same_verdicts() -> None:
    better = compare([TUNED_WORSE, BASE], EVALSET, baseline="tuned", candidate="base")
    assert better.verdict is not None
    assert better.verdict.startswith("base is better than tuned by +0.2333 nDCG@10 (2 wins / 0")
    same = compare([BASE, result("copy", {"q1": 1.0, "q2": 0.5, "q3": 0.6}, {})], EVALSET)
    assert same.verdict == "copy and base score the same nDCG@10 (0 wins / 0 losses / 3 ties)"


def test_wins_and_losses_show_the_query_and_top_documents() -> None:
    c = compare([BASE, TUNED_WORSE], EVALSET).comparison
    assert c is not None
    wins, losses = c.wins_and_losses()
    assert wins == []
    assert [q.query_id for q in losses] == ["q1", "q3"]  # biggest loss first
    q1 = losses[0]
    assert (q1.query, q1.baseline, q1.candidate, q1.relevant) == ("first question", 1.0, 0.5, ["a"])
    assert q1.baseline_top[0] == {"id": "a", "title": "Alpha", "relevant": True}
    assert q1.candidate_top[:2] == [
        {"id": "c", "title": "Gamma", "relevant": False},
        {"id": "b", "title": "beta text without a title", "relevant": False},  # text if no title
    ]


def test_table_highlights_the_best_of_each_column() -> None:
    report = compare([BASE, TUNED_WORSE], EVALSET)
    assert report.best("nDCG@10") == {"base"}
    assert report.best("Recall@10") == {"base", "tuned"}  # a tie highlights both
    console = Console(record=True, width=120, force_terminal=True, color_system="standard")
    console.print(report.table())
    text = console.export_text(styles=True)
    bold_green = "\x1b[1;32m"
    assert "toy/test: 3 queries, 3 documents" in text
    assert f"{bold_green}0.7000" in text  # base's nDCG@10 is the best
    assert "0.4667" in text and f"{bold_green}0.4667" not in text
    assert text.count(f"{bold_green}1.0000") == 2  # both Recall@10 cells
    assert report.table().caption == "time: base 2.0s (100.0 docs/s); tuned 2.0s (100.0 docs/s)"


def test_markdown_and_json() -> None:
    report = compare([BASE, TUNED_WORSE], EVALSET)
    md = report.to_markdown()
    assert "| base | **0.7000** | **1.0000** | 100.0 | 2.0s |" in md
    assert "| tuned | 0.4667 | **1.0000** | 100.0 | 2.0s |" in md
    assert "**Verdict:** tuned is WORSE than base" in md
    assert "third \\| question" in md  # pipes escaped
    assert "✓ a Alpha" in md
    data = report.to_json()
    assert [s["system"] for s in data["systems"]] == ["base", "tuned"]
    assert data["comparison"]["losses"] == 2 and data["verdict"] == report.verdict
    json.dumps(data)  # serialisable


def test_save_writes_every_file(tmp_path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    written = compare([BASE, TUNED_WORSE], EVALSET).save(tmp_path)
    assert [p.name for p in written] == [
        "report.json",
        "report.md",
        "metrics.png",
        "per_query.jsonl",
    ]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["keep.txt", "metrics.png", "per_query.jsonl", "report.json", "report.md"]
    assert (tmp_path / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [json.loads(line) for line in (tmp_path / "per_query.jsonl").read_text().splitlines()]
    assert [r["query_id"] for r in rows] == ["q2", "q3", "q1"]  # by difference, best first
    assert rows[2]["nDCG@10"] == {"base": 1.0, "tuned": 0.5}
    assert rows[2]["delta"] == -0.5
    assert json.loads((tmp_path / "report.json").read_text())["evalset"] == "toy/test"


def test_single_system_has_no_verdict(tmp_path) -> None:
    report = compare([BASE], EVALSET)
    assert report.verdict is None and report.comparison is None
    assert "Verdict" not in report.to_markdown()
    assert [p.name for p in report.save(tmp_path)] == ["report.json", "report.md", "metrics.png"]


def test_sign_flip_p_value_by_hand() -> None:
    # Three equal positive differences: of 2^3 sign patterns only +++ and --- reach |mean| = 1.
    assert sign_flip_p_value([1.0, 1.0, 1.0]) == pytest.approx(2 / 8, abs=0.015)
    assert sign_flip_p_value([0.0, 0.0]) == 1.0
    # Twenty equal wins: only 2 of 2^20 patterns; p is (hits + 1) / (samples + 1) ~ 1e-4.
    assert sign_flip_p_value([0.1] * 20) < 0.001


def test_default_columns() -> None:
    names = [f"{f}@{k}" for f in ("nDCG", "MRR", "Recall", "MAP", "P") for k in (1, 10, 100)]
    assert default_columns(names) == ["nDCG@10", "MRR@10", "MAP@10", "Recall@10", "Recall@100"]
    assert default_columns(["nDCG@5", "Recall@5"]) == ["nDCG@5", "Recall@5"]


def test_duplicate_or_unknown_systems_are_user_errors() -> None:
    with pytest.raises(RagtuneError, match="system names must be unique"):
        compare([BASE, BASE], EVALSET)
    with pytest.raises(RagtuneError, match="unknown system 'nope'; systems: base, tuned"):
        compare([BASE, TUNED_WORSE], EVALSET, baseline="nope")
