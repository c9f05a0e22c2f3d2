"""Reading training files: every format and shape gives the records written by hand below."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from ragtune.data import (
    ColumnMap,
    Example,
    LabelledPair,
    load_examples,
    load_training_data,
    read_examples,
)
from ragtune.errors import DataError, RagtuneError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_pairs_become_examples_and_keep_ids(tmp_path):
    f = write(
        tmp_path / "train.jsonl",
        '{"query": "q1", "positive": "d1"}\n'
        "\n"  # blank lines are ignored
        '{"query": "q2", "positive": "d2", "query_id": 7, "positive_id": "p2"}\n',
    )
    assert load_examples(f) == [
        Example("q1", "d1"),
        Example("q2", "d2", query_id="7", positive_id="p2"),
    ]


def test_numbered_negative_columns_are_read_in_numeric_order(tmp_path):
    f = write(
        tmp_path / "train.csv",
        "query,positive,negative_3,negative,negative_2\nq,p,n3,n1,n2\n",
    )
    assert load_examples(f) == [Example("q", "p", negatives=("n1", "n2", "n3"))]


def test_a_negatives_list_column_makes_tuples(tmp_path):
    f = write(tmp_path / "t.jsonl", '{"query": "q", "positive": "p", "negatives": ["a", "b"]}\n')
    assert load_examples(f) == [Example("q", "p", negatives=("a", "b"))]


def test_negatives_list_in_csv_is_json_text(tmp_path):
    f = write(tmp_path / "t.csv", 'query,positive,negatives\nq,p,"[""a"", ""b""]"\n')
    assert load_examples(f) == [Example("q", "p", negatives=("a", "b"))]


def test_labelled_pairs_take_one_zero_and_float_scores(tmp_path):
    f = write(tmp_path / "l.tsv", "query\tdocument\tlabel\nq\td\t1\nq\te\t0\nq\tf\t0.25\n")
    assert load_examples(f) == [
        LabelledPair("q", "d", 1.0),
        LabelledPair("q", "e", 0.0),
        LabelledPair("q", "f", 0.25),
    ]


def test_json_true_false_labels_are_one_and_zero(tmp_path):
    f = write(
        tmp_path / "l.jsonl",
        '{"query": "q", "document": "d", "label": true}\n'
        '{"query": "q", "document": "e", "label": false}\n',
    )
    assert [r.label for r in load_examples(f)] == [1.0, 0.0]


def test_column_map_renames_columns(tmp_path):
    f = write(tmp_path / "qa.jsonl", '{"question": "why?", "answer": "because"}\n')
    columns = ColumnMap(query="question", positive="answer")
    assert load_examples(f, columns) == [Example("why?", "because")]


def test_csv_quoted_fields_may_hold_commas_and_line_breaks(tmp_path):
    f = write(tmp_path / "t.csv", 'query,positive\n"a, b","line one\nline two"\nc,d\n')
    assert load_examples(f) == [Example("a, b", "line one\nline two"), Example("c", "d")]


def test_csv_line_numbers_count_physical_lines(tmp_path):
    # The first record spans lines 2-3, so the empty query below is on line 4.
    f = write(tmp_path / "t.csv", 'query,positive\nq,"two\nlines"\n ,d\n')
    with pytest.raises(DataError, match=r"t\.csv:4: empty text \(field 'query'\)"):
        load_examples(f)


def test_csv_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    f = tmp_path / "bom.csv"
    f.write_bytes("\ufeffquery,positive\nq,p\n".encode())
    assert load_examples(f) == [Example("q", "p")]


def test_parquet_with_a_list_column(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"query": ["q1", "q2"], "positive": ["p1", "p2"],
                      "negatives": [["n1"], ["n2", "n3"]]})  # fmt: skip
    pq.write_table(table, tmp_path / "t.parquet")
    assert load_examples(tmp_path / "t.parquet") == [
        Example("q1", "p1", negatives=("n1",)),
        Example("q2", "p2", negatives=("n2", "n3")),
    ]


def test_json_array_file_with_line_numbers(tmp_path):
    f = write(
        tmp_path / "t.json",
        '[\n  {"query": "q1", "positive": "p1"},\n  {"query": "q2", "positive": ""}\n]\n',
    )
    with pytest.raises(DataError, match=r"t\.json:3: empty text \(field 'positive'\)"):
        load_examples(f)
    write(f, '[{"query": "q1", "positive": "p1"}]')
    assert load_examples(f) == [Example("q1", "p1")]


def test_json_file_holding_json_lines_is_read_as_jsonl(tmp_path):
    f = write(tmp_path / "t.json", '{"query": "q", "positive": "p"}\n')
    assert load_examples(f) == [Example("q", "p")]


def test_read_examples_streams_row_by_row(tmp_path):
    # The last line is broken: a reader that parsed the whole file first would fail at once.
    f = write(tmp_path / "big.jsonl", '{"query": "q", "positive": "p"}\n' * 3 + "{broken\n")
    reader = read_examples(f)
    assert next(reader) == Example("q", "p")
    assert reader.stats.rows == 1
    with pytest.raises(DataError, match=r"big\.jsonl:4: malformed JSON"):
        list(reader)


def test_both_shapes_present_needs_an_explicit_shape(tmp_path):
    row = {"query": "q", "positive": "p", "document": "d", "label": 1}
    f = write(tmp_path / "t.jsonl", json.dumps(row) + "\n")
    with pytest.raises(DataError, match="shape='pairs' or shape='labelled'"):
        load_examples(f)
    assert load_examples(f, shape="labelled") == [LabelledPair("q", "d", 1.0)]
    assert load_examples(f, shape="pairs") == [Example("q", "p")]


def test_unknown_shape_lists_the_valid_ones(tmp_path):
    f = write(tmp_path / "t.jsonl", '{"query": "q", "positive": "p"}\n')
    with pytest.raises(DataError, match="valid shapes: pairs, tuples, labelled"):
        read_examples(f, shape="triples")  # type: ignore[arg-type]


def test_skip_invalid_counts_skipped_rows_by_problem(tmp_path, caplog):
    f = write(
        tmp_path / "t.jsonl",
        '{"query": "q1", "document": "d1", "label": 1}\n'
        '{"query": " ", "document": "d2", "label": 0}\n'
        '{"query": "q3", "document": "d3", "label": "yes"}\n'
        "not json\n"
        '{"query": "q5", "document": "d5", "label": 0}\n',
    )
    reader = read_examples(f, skip_invalid=True)
    assert [r.query for r in reader] == ["q1", "q5"]
    stats = reader.stats
    assert (stats.rows, stats.kept, stats.skipped) == (5, 2, 3)
    assert dict(stats.problems) == {"empty_text": 1, "bad_label": 1, "bad_json": 1}
    assert [e.split(": ")[0] for e in stats.first_errors] == [f"{f}:2", f"{f}:3", f"{f}:4"]
    assert stats.summary().endswith("(skipped 3: bad_json 1, bad_label 1, empty_text 1)")

    with caplog.at_level(logging.WARNING, logger="ragtune.data.readers"):
        assert len(load_examples(f, skip_invalid=True)) == 2
    assert "skipped 3" in caplog.text  # never silent


def test_load_training_data_reads_files_and_beir_folders(tmp_path):
    f = write(tmp_path / "t.jsonl", '{"query": "q", "positive": "p"}\n')
    data = load_training_data(f)
    assert (data.kind, data.records, data.stats.kept) == ("file", [Example("q", "p")], 1)

    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    write(beir / "corpus.jsonl", '{"_id": "d1", "title": "T", "text": "body"}\n')
    write(beir / "queries.jsonl", '{"_id": "q1", "text": "question"}\n')
    write(beir / "qrels" / "train.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    data = load_training_data(beir)
    assert data.kind == "beir"
    assert data.records == [Example("question", "T body", query_id="q1", positive_id="d1")]


def test_load_training_data_explains_its_rule_for_anything_else(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match=r"folder without corpus\.jsonl.*hint: give a \.jsonl/"):
        load_training_data(tmp_path / "folder")
    with pytest.raises(DataError, match="unknown file type '.txt'"):
        load_training_data(write(tmp_path / "notes.txt", "hello"))
    with pytest.raises(DataError, match="not found"):
        load_training_data(tmp_path / "missing")


def test_training_on_no_rows_is_an_error(tmp_path):
    f = write(tmp_path / "t.csv", "query,positive\n")
    assert load_examples(f) == []
    with pytest.raises(DataError, match="no training examples found"):
        load_training_data(f)


def test_hf_prefix_without_datasets_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(RagtuneError, match=r"pip install 'ragtune\[hf\]'"):
        load_training_data("hf:someone/some-pairs")
