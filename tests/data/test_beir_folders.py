"""BEIR folders: loading an evaluation set, turning qrels into training pairs, writing one."""

from __future__ import annotations

from pathlib import Path

from ragtune.data import (
    Document,
    EvalSet,
    Example,
    beir_training_pairs,
    load_beir,
    write_beir_folder,
)
from ragtune.data.beir import beir_splits, is_beir_folder


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def tiny_beir(root: Path) -> Path:
    write(
        root / "corpus.jsonl",
        '{"_id": "d1", "title": "Tea", "text": "Tea is a drink.", "metadata": {"year": 1}}\n'
        '{"_id": "d2", "title": "", "text": "Coffee is bitter."}\n'
        '{"_id": "d3", "text": "Water is wet."}\n',
    )
    write(
        root / "queries.jsonl",
        '{"_id": "q1", "text": "what is tea"}\n'
        '{"_id": "q2", "text": "is coffee bitter"}\n'
        '{"_id": 3, "text": "is water wet"}\n',
    )
    write(
        root / "qrels" / "train.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t0\n3\td3\t1\n"
    )
    write(root / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\nq2\td2\t1\nq1\td2\t0\n")
    return root


def test_load_beir_keeps_judged_queries_and_the_whole_corpus(tmp_path):
    es = load_beir(tiny_beir(tmp_path), "test")
    assert es.name == f"{tmp_path.name}/test"
    assert es.queries == {"q2": "is coffee bitter"}  # q1 has only a score-0 judgement in test
    assert es.qrels == {"q2": {"d2": 1}, "q1": {"d2": 0}}
    assert sorted(es.corpus) == ["d1", "d2", "d3"]
    tea = es.corpus["d1"]
    assert (tea.title, tea.text, tea.metadata) == ("Tea", "Tea is a drink.", {"year": 1})
    assert tea.full_text() == "Tea Tea is a drink."


def test_training_pairs_are_the_relevant_judgements_in_file_order(tmp_path):
    pairs = beir_training_pairs(tiny_beir(tmp_path), "train")
    assert pairs == [
        Example("what is tea", "Tea Tea is a drink.", query_id="q1", positive_id="d1"),
        Example("is water wet", "Water is wet.", query_id="3", positive_id="d3"),
    ]


def test_title_separator_is_configurable(tmp_path):
    pairs = beir_training_pairs(tiny_beir(tmp_path), "train", title_separator="\n")
    assert pairs[0].positive == "Tea\nTea is a drink."


def test_qrels_header_is_optional(tmp_path):
    folder = tiny_beir(tmp_path)
    write(folder / "qrels" / "test.tsv", "q2\td2\t1\n")
    assert load_beir(folder, "test").qrels == {"q2": {"d2": 1}}


def test_folder_detection_and_splits(tmp_path):
    folder = tiny_beir(tmp_path / "b")
    assert is_beir_folder(folder) and not is_beir_folder(tmp_path)
    assert beir_splits(folder) == ["test", "train"]


def test_write_then_load_gives_the_same_eval_set(tmp_path):
    corpus = [Document("a", "alpha text", "Alpha", {"path": "x.py"}), Document("b", "beta text")]
    queries = {"q1": "first", "q2": "second"}
    qrels = {"test": {"q1": {"a": 1}, "q2": {"b": 2, "a": 0}}}
    folder = write_beir_folder(tmp_path / "out", corpus, queries, qrels)
    es = load_beir(folder, "test")
    expected = EvalSet(queries, {d.id: d for d in corpus}, qrels["test"], name="out/test")
    assert (es.queries, es.qrels, es.corpus, es.name) == (
        expected.queries, expected.qrels, expected.corpus, expected.name,
    )  # fmt: skip
    assert es.corpus["a"].metadata == {"path": "x.py"}


def test_scifact_train_pairs_and_test_set(scifact):
    pairs = beir_training_pairs(scifact, "train")
    assert len(pairs) == 919
    assert all(p.query_id and p.positive_id for p in pairs)
    test = load_beir(scifact, "test")
    assert len(test.queries) == 300
    assert sum(len(docs) for docs in test.qrels.values()) == 339
    assert len(test.corpus) == 5183
