"""Bad input: each case gives one DataError naming the file, the line (or row), the field, a hint.

No case may leak a traceback from json/csv/pyarrow (errors are raised ``from None``), and nothing
is skipped unless ``skip_invalid=True``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ragtune.data import beir_training_pairs, load_beir, load_examples, read_examples
from ragtune.errors import DataError, RagtuneError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def error_of(call, *args, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        call(*args, **kwargs)
    err = info.value
    # No library exception chained to it: the user sees one line, not a traceback.
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    return err


def test_malformed_json_line(tmp_path):
    f = write(
        tmp_path / "t.jsonl", '{"query": "q", "positive": "p"}\n{"query": "q", "positive": }\n'
    )
    err = error_of(load_examples, f)
    assert (err.path, err.line) == (str(f), 2)
    assert "malformed JSON: Expecting value (column 28)" in str(err)
    assert "hint: each line must hold one complete JSON object" in str(err)


def test_a_line_that_is_not_an_object(tmp_path):
    f = write(tmp_path / "t.jsonl", '["q", "p"]\n')
    err = error_of(load_examples, f)
    assert str(err).startswith(f"{f}:1: expected a JSON object, got list")


def test_missing_required_field_in_a_row(tmp_path):
    f = write(tmp_path / "t.jsonl", '{"query": "q1", "positive": "p"}\n{"query": "q2"}\n')
    err = error_of(load_examples, f)
    assert (err.line, err.field) == (2, "positive")
    assert str(err) == (
        f"{f}:2: missing required field (field 'positive'); hint: fields in this row: ['query']"
    )


def test_missing_required_column_in_the_header(tmp_path):
    f = write(tmp_path / "t.csv", "question,answer\nq,a\n")
    err = error_of(load_examples, f)
    assert "cannot tell the data shape from the columns ['answer', 'question']" in str(err)
    assert "hint: map your column names, e.g. ColumnMap(query='question')" in str(err)


def test_wrong_label_type(tmp_path):
    f = write(tmp_path / "t.csv", "query,document,label\nq,d,1\nq,e,yes\n")
    err = error_of(load_examples, f)
    assert (err.line, err.field) == (3, "label")
    assert "label 'yes' is not a number" in str(err)
    assert "hint: a label is 1 (relevant), 0 (irrelevant) or a score in [0, 1]" in str(err)


def test_label_out_of_range(tmp_path):
    f = write(tmp_path / "t.jsonl", '{"query": "q", "document": "d", "label": 4}\n')
    err = error_of(load_examples, f)
    assert (err.line, err.field) == (1, "label")
    assert "label 4 is outside [0, 1]" in str(err)
    assert "divide 0-5 similarity ratings by 5" in str(err)


def test_nan_label(tmp_path):
    f = write(tmp_path / "t.csv", "query,document,label\nq,d,nan\n")
    assert "is not a number" in str(error_of(load_examples, f))


def test_empty_text(tmp_path):
    f = write(tmp_path / "t.jsonl", '{"query": "q", "positive": " \\t "}\n')
    err = error_of(load_examples, f)
    assert str(err) == (
        f"{f}:1: empty text (field 'positive'); hint: remove the row or pass skip_invalid=True"
    )


def test_text_of_the_wrong_type(tmp_path):
    f = write(tmp_path / "t.jsonl", '{"query": 42, "positive": "p"}\n')
    err = error_of(load_examples, f)
    assert (err.line, err.field) == (1, "query")
    assert "expected text, got int 42" in str(err)


def test_negatives_list_holding_a_non_text(tmp_path):
    f = write(tmp_path / "t.jsonl", '{"query": "q", "positive": "p", "negatives": ["a", 3]}\n')
    err = error_of(load_examples, f)
    assert (err.field, "item 1 is not text: 3" in str(err)) == ("negatives", True)


def test_invalid_utf8_in_jsonl(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_bytes(b'{"query": "q", "positive": "p"}\n{"query": "caf\xe9", "positive": "p"}\n')
    err = error_of(load_examples, f)
    assert err.line == 2
    assert "invalid UTF-8 at byte 14 of the line: b'\\xe9'" in str(err)
    assert "hint: save the file as UTF-8" in str(err)


def test_invalid_utf8_in_csv(tmp_path):
    f = tmp_path / "t.csv"
    f.write_bytes(b"query,positive\nq,p\ncaf\xe9,p\n")
    err = error_of(load_examples, f)
    assert err.line == 3 and "invalid UTF-8: b'\\xe9'" in str(err)


def test_csv_ragged_row(tmp_path):
    f = write(tmp_path / "t.csv", "query,positive\nq,p\nq,p,extra\n")
    err = error_of(load_examples, f)
    assert str(err) == (
        f"{f}:3: row has 3 fields but the header has 2 (query, positive); "
        "hint: quote fields that contain the delimiter or a line break"
    )


def test_tab_separated_file_named_csv(tmp_path):
    f = write(tmp_path / "t.csv", "query\tpositive\nq\tp\n")
    assert "hint: name tab-separated files .tsv" in str(error_of(load_examples, f))


def test_missing_file(tmp_path):
    err = error_of(load_examples, tmp_path / "nope.jsonl")
    assert str(err) == f"{tmp_path / 'nope.jsonl'}: file not found"


def test_file_level_errors_are_not_skipped(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_examples(tmp_path / "nope.jsonl", skip_invalid=True)


def test_unreadable_parquet(tmp_path):
    pytest.importorskip("pyarrow.parquet")
    f = tmp_path / "t.parquet"
    f.write_bytes(b"this is not parquet")
    assert "not a readable Parquet file" in str(error_of(load_examples, f))


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    f = tmp_path / "t.parquet"
    f.write_bytes(b"")
    with pytest.raises(RagtuneError, match=r"pip install 'ragtune\[parquet\]'"):
        list(read_examples(f))


# --- BEIR folders ------------------------------------------------------------------------------


def beir_folder(root: Path, qrels: str = "q1\td1\t1\n") -> Path:
    write(root / "corpus.jsonl", '{"_id": "d1", "text": "one"}\n{"_id": "d2", "text": "two"}\n')
    write(root / "queries.jsonl", '{"_id": "q1", "text": "first"}\n')
    write(root / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\n" + qrels)
    return root


def test_qrels_naming_an_unknown_query(tmp_path):
    folder = beir_folder(tmp_path, "q1\td1\t1\nq9\td2\t1\n")
    err = error_of(load_beir, folder, "test")
    assert str(err) == (
        f"{folder / 'qrels' / 'test.tsv'}:3: unknown query id 'q9': not in queries.jsonl "
        "(field 'query-id')"
    )


def test_qrels_naming_an_unknown_document(tmp_path):
    folder = beir_folder(tmp_path, "q1\td7\t1\n")
    for load in (load_beir, beir_training_pairs):
        err = error_of(load, folder, "test")
        assert (err.line, err.field) == (2, "corpus-id")
        assert "unknown document id 'd7': not in corpus.jsonl" in str(err)


def test_beir_folder_missing_a_file(tmp_path):
    folder = beir_folder(tmp_path)
    (folder / "queries.jsonl").unlink()
    err = error_of(load_beir, folder, "test")
    assert str(err).startswith(f"{folder / 'queries.jsonl'}: missing BEIR file; hint: a BEIR")


def test_beir_folder_missing_the_split_lists_the_splits(tmp_path):
    folder = beir_folder(tmp_path)
    err = error_of(load_beir, folder, "dev")
    assert str(err).endswith("missing BEIR file; hint: splits in this folder: test")


def test_malformed_qrels_score(tmp_path):
    folder = beir_folder(tmp_path, "q1\td1\thigh\n")
    err = error_of(load_beir, folder, "test")
    assert (err.line, err.field) == (2, "score") and "score 'high' is not an integer" in str(err)


def test_qrels_separated_by_spaces(tmp_path):
    folder = beir_folder(tmp_path, "q1 d1 1\n")
    err = error_of(load_beir, folder, "test")
    assert "expected 3 tab-separated fields" in str(err)
    assert "hint: separate fields with tabs, not spaces" in str(err)


def test_malformed_corpus_line(tmp_path):
    folder = beir_folder(tmp_path)
    write(folder / "corpus.jsonl", '{"_id": "d1", "text": "one"}\n{"_id": "d2", "text": \n')
    err = error_of(load_beir, folder, "test")
    assert (err.path, err.line) == (str(folder / "corpus.jsonl"), 2)


def test_corpus_line_without_an_id(tmp_path):
    folder = beir_folder(tmp_path)
    write(folder / "corpus.jsonl", '{"text": "one"}\n')
    err = error_of(load_beir, folder, "test")
    assert (err.line, err.field) == (1, "_id")


def test_duplicate_document_id(tmp_path):
    folder = beir_folder(tmp_path)
    write(folder / "corpus.jsonl", '{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n')
    assert "duplicate document id 'd1'" in str(error_of(load_beir, folder, "test"))


def test_invalid_utf8_in_queries(tmp_path):
    folder = beir_folder(tmp_path)
    (folder / "queries.jsonl").write_bytes(b'{"_id": "q1", "text": "caf\xe9"}\n')
    err = error_of(load_beir, folder, "test")
    assert (err.path, err.line) == (str(folder / "queries.jsonl"), 1)
