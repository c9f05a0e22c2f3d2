"""The data health check: each finding on a small file whose problems are counted by hand."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from ragtune.data import check_data


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def by_code(report) -> dict:
    return {f.code: f for f in report.findings}


def test_duplicates_near_duplicates_and_shared_positives(tmp_path):
    f = jsonl(tmp_path / "t.jsonl", [
        {"query": "What is tea?", "positive": "Tea is a drink."},
        {"query": "What is tea?", "positive": "Tea is a drink."},  # exact repeat
        {"query": "what is TEA", "positive": "tea is a drink"},  # near-duplicate of both
        {"query": "Is tea a drink?", "positive": "Tea is a drink."},  # shares a positive
    ])  # fmt: skip
    report = check_data(f)
    found = by_code(report)
    assert report.counts == {
        "shape": "pairs", "rows": 4, "usable rows": 4, "unique queries": 3,
        "unique documents": 2,
    }  # fmt: skip
    assert (found["duplicate_rows"].severity, found["duplicate_rows"].count) == ("warning", 1)
    assert found["near_duplicate_queries"].count == 1
    assert found["near_duplicate_queries"].examples == ["'What is tea?' ~ 'what is TEA'"]
    assert found["near_duplicate_documents"].count == 1
    # "Tea is a drink." is the positive of "What is tea?" and of "Is tea a drink?".
    assert found["shared_positives"].count == 1
    assert found["positives_per_query"].message == ("queries by number of positives: 1: 3 (max 1)")
    assert not report.errors


def test_unusable_rows_are_errors_with_their_lines(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text(
        '{"query": "q1", "positive": "p1"}\n'
        '{"query": "", "positive": "p2"}\n'
        '{"query": "q3", "positive": "  "}\n'
        "{oops\n",
        encoding="utf-8",
    )
    report = check_data(f)
    found = by_code(report)
    assert found["empty_text"].severity == "error" and found["empty_text"].count == 2
    assert found["empty_text"].examples[0].startswith(f"{f}:2: empty text (field 'query')")
    assert found["bad_json"].count == 1
    assert report.counts["rows"] == 4 and report.counts["usable rows"] == 1
    assert len(report.errors) == 2


def test_a_negative_that_is_a_positive_of_the_same_query(tmp_path):
    f = jsonl(tmp_path / "t.jsonl", [
        {"query": "q", "positive": "a", "negative": "b"},
        {"query": "q", "positive": "b", "negative": "c"},  # b is relevant to q: not a negative
    ])  # fmt: skip
    found = by_code(check_data(f))
    assert (found["negative_is_positive"].severity, found["negative_is_positive"].count) == (
        "error", 1,
    )  # fmt: skip


def test_conflicting_labels_and_label_balance(tmp_path):
    f = jsonl(tmp_path / "t.jsonl", [
        {"query": "q", "document": "d", "label": 1},
        {"query": "q", "document": "d", "label": 0},
        {"query": "q", "document": "e", "label": 0.5},
    ])  # fmt: skip
    found = by_code(check_data(f))
    assert found["conflicting_labels"].count == 1
    assert found["labels"].message == "label 1: 1, label 0: 1, other scores: 1"


def test_query_identical_to_its_document(tmp_path):
    f = jsonl(tmp_path / "t.jsonl", [{"query": "Same text.", "positive": "same text"}])
    assert by_code(check_data(f))["query_equals_document"].count == 1


def test_leakage_into_an_evaluation_file(tmp_path):
    train = jsonl(tmp_path / "train.jsonl", [
        {"query": "q one", "positive": "doc a"},
        {"query": "q two", "positive": "doc b"},
    ])  # fmt: skip
    held_out = jsonl(tmp_path / "eval.jsonl", [
        {"query": "Q two?", "positive": "doc c"},
        {"query": "q three", "positive": "Doc A"},
    ])  # fmt: skip
    report = check_data(train, eval_source=held_out)
    found = by_code(report)
    assert (found["eval_query_overlap"].severity, found["eval_query_overlap"].examples) == (
        "error", ["q two"],
    )  # fmt: skip
    assert found["eval_document_overlap"].examples == ["doc a"]


def test_no_leakage_is_reported_as_checked(tmp_path):
    train = jsonl(tmp_path / "train.jsonl", [{"query": "a", "positive": "b"}])
    held_out = jsonl(tmp_path / "eval.jsonl", [{"query": "c", "positive": "d"}])
    found = by_code(check_data(train, eval_source=held_out))
    assert found["eval_overlap"].severity == "info"


def test_token_lengths_against_max_seq_length(tmp_path):
    f = jsonl(tmp_path / "t.jsonl", [
        {"query": "one two", "positive": "a"},
        {"query": "three", "positive": "a b c d e"},
    ])  # fmt: skip

    def words(texts: list[str]) -> list[int]:  # a stand-in tokenizer: one token per word
        return [len(t.split()) for t in texts]

    found = by_code(check_data(f, count_tokens=words, max_seq_length=4))
    assert found["queries_tokens"].message == "queries tokens: p50 2, p90 2, p99 2, max 2"
    assert "queries_truncated" not in found
    assert found["documents_truncated"].count == 1
    assert found["documents_truncated"].message.startswith("1 of 2 documents (50%) are longer")


def test_report_renders_as_a_table_and_as_json(tmp_path):
    f = jsonl(tmp_path / "t.jsonl", [{"query": "q", "positive": "p"}] * 2)
    report = check_data(f)
    console = Console(record=True, width=120)
    console.print(report.render())
    text = console.export_text()
    assert "duplicate_rows" in text and "unique queries" in text
    data = json.loads(report.to_json())
    assert (data["errors"], data["warnings"]) == (0, 1)
    assert data["findings"][0]["code"] == "duplicate_rows"


def test_brackets_in_data_are_shown_verbatim(tmp_path):
    # Code and math hold "[...]", which rich would take for markup and silently drop.
    f = jsonl(tmp_path / "t.jsonl", [{"query": "x[str]y [bold]z", "positive": "p"}] * 2)
    console = Console(record=True, width=200)
    console.print(check_data(f).render())
    assert "x[str]y [bold]z" in console.export_text()


def test_scifact_train_against_its_test_split(scifact):
    report = check_data(scifact, eval_source=scifact)
    found = by_code(report)
    assert report.counts["rows"] == 919
    # Two SciFact claims appear in both train and test: real leakage, reported as an error.
    assert found["eval_query_overlap"].count == 2
