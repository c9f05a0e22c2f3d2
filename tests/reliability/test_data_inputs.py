"""Hostile training data: every reader refuses what it cannot read exactly, with file:line:field.

Each case writes the bytes a user might really have (a broken quote, a JSON escape of half a
surrogate pair, a UTF-16 export...) and asserts the one line the user is shown. A few go through
the console script (``ragtune data check``, ``ragtune train --data``): exit code 1, one stderr
line, no traceback, nothing written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from ragtune.data import (
    ColumnMap,
    Example,
    LabelledPair,
    beir_training_pairs,
    check_data,
    load_beir,
    load_examples,
    load_training_data,
)
from ragtune.data import hf as hf_reader
from ragtune.errors import DataError

SURROGATE_HINT = (
    "hint: half of a UTF-16 pair, e.g. a JSON escape such as \\udc00 without its partner; "
    "fix the program that wrote the file or drop the row"
)
NUL_HINT = "hint: NUL bytes usually mean a binary or UTF-16 file; save it as UTF-8 text"
QUOTE_HINT = 'close it, and write a quote inside a quoted field twice: ""'


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def refusal(call, *args, **kwargs) -> str:
    """The one line a user sees for ``call(*args)``; no library exception may be chained."""
    with pytest.raises(DataError) as info:
        call(*args, **kwargs)
    err = info.value
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    return str(err)


# --- JSON Lines and JSON arrays -----------------------------------------------------------------

# (file name, content, expected message after "<path>:")
JSONL_CASES = [
    (
        "malformed.jsonl",
        '{"query": "q", "positive": "p"}\n{"query": "q", "positive": }\n',
        "2: malformed JSON: Expecting value (column 28); "
        "hint: each line must hold one complete JSON object",
    ),
    (
        "truncated.jsonl",
        '{"query": "q", "positive": "p"}\n{"query": "q", "posi',
        "2: malformed JSON: Unterminated string starting at (column 16); "
        "hint: each line must hold one complete JSON object",
    ),
    (
        "array_line.jsonl",
        '["q", "p"]\n',
        '1: expected a JSON object, got list; hint: write rows as {"query": ..., "positive": ...}',
    ),
    (
        "number_query.jsonl",
        '{"query": 42, "positive": "p"}\n',
        "1: expected text, got int 42 (field 'query')",
    ),
    (
        "null_positive.jsonl",
        '{"query": "q", "positive": null}\n',
        "1: missing required field (field 'positive'); hint: fields in this row: "
        "['positive', 'query']",
    ),
    (
        "string_negatives.jsonl",
        '{"query": "q", "positive": "p", "negatives": "n"}\n',
        "1: expected a list of texts, got 'n' (field 'negatives')",
    ),
    (
        "whitespace_query.jsonl",
        '{"query": "\\u00a0\\t ", "positive": "p"}\n',
        "1: empty text (field 'query'); hint: remove the row or pass skip_invalid=True",
    ),
    (
        "surrogate_query.jsonl",
        '{"query": "caf\\udce9", "positive": "p"}\n',
        f"1: text holds a lone surrogate U+DCE9 at character 4 (field 'query'); {SURROGATE_HINT}",
    ),
    (
        "surrogate_positive.jsonl",
        '{"query": "q", "positive": "ok"}\n{"query": "q2", "positive": "\\ud800 x"}\n',
        "2: text holds a lone surrogate U+D800 at character 1 (field 'positive'); "
        + SURROGATE_HINT,
    ),
    (
        "surrogate_in_negatives.jsonl",
        '{"query": "q", "positive": "p", "negatives": ["fine", "bad \\udc00"]}\n',
        "1: item 1: text holds a lone surrogate U+DC00 at character 5 (field 'negatives'); "
        + SURROGATE_HINT,
    ),
    (
        "surrogate_negative_2.jsonl",
        '{"query": "q", "positive": "p", "negative": "n1", "negative_2": "\\udfff"}\n',
        "1: text holds a lone surrogate U+DFFF at character 1 (field 'negative_2'); "
        + SURROGATE_HINT,
    ),
    (
        "surrogate_document.jsonl",
        '{"query": "q", "document": "d\\udc80", "label": 1}\n',
        "1: text holds a lone surrogate U+DC80 at character 2 (field 'document'); "
        + SURROGATE_HINT,
    ),
    (
        "surrogate_id.jsonl",
        '{"query": "q", "positive": "p", "query_id": "id\\udc00"}\n',
        "1: text holds a lone surrogate U+DC00 at character 3 (field 'query_id'); "
        + SURROGATE_HINT,
    ),
    (
        "nul_escape.jsonl",
        '{"query": "a\\u0000b", "positive": "p"}\n',
        f"1: text holds a NUL character (U+0000) at character 2 (field 'query'); {NUL_HINT}",
    ),
    (
        "negatives_after_pairs.jsonl",
        '{"query": "q1", "positive": "p1"}\n'
        '{"query": "q2", "positive": "p2", "negatives": ["n1", "n2"]}\n',
        "2: row has negatives but the file is read as pairs (its first row has none), so they "
        "would be dropped (field 'negatives'); hint: give every row its negatives (the first row "
        "decides the shape), or drop them on purpose with shape='pairs'",
    ),
    (
        "array.json",
        '[\n  {"query": "q1", "positive": "p1"},\n  {"query": "q2", "positive": "\\udc00"}\n]\n',
        "3: text holds a lone surrogate U+DC00 at character 1 (field 'positive'); "
        + SURROGATE_HINT,
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "expected"), JSONL_CASES, ids=[c[0] for c in JSONL_CASES]
)
def test_json_inputs_are_refused_with_file_line_and_field(tmp_path, name, content, expected):
    f = write(tmp_path / name, content)
    assert refusal(load_examples, f) == f"{f}:{expected}"


def test_invalid_utf8_names_the_line_and_the_byte(tmp_path):
    f = write(tmp_path / "latin1.jsonl", b'{"query": "q", "positive": "p"}\n{"query": "caf\xe9"}\n')
    assert refusal(load_examples, f) == (
        f"{f}:2: invalid UTF-8 at byte 14 of the line: b'\\xe9'; "
        "hint: save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
    )


@pytest.mark.parametrize("name", ["export.jsonl", "export.csv", "export.json"])
def test_a_utf16_file_is_refused_before_any_line_is_read(tmp_path, name):
    f = write(tmp_path / name, '{"query": "q", "positive": "p"}\n'.encode("utf-16"))
    assert refusal(load_examples, f) == (
        f"{f}:1: the file is UTF-16 (it starts with a UTF-16 byte order mark), not UTF-8; "
        "hint: save it as UTF-8 (e.g. iconv -f utf-16 -t utf-8)"
    )


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_row(tmp_path):
    f = write(tmp_path / "bom.jsonl", b'\xef\xbb\xbf{"query": "q", "positive": "p"}\n')
    assert load_examples(f) == [Example("q", "p")]


# --- CSV and TSV --------------------------------------------------------------------------------

CSV_CASES = [
    (
        # The quote in the last column is never closed: without strict reading the next row
        # silently became part of this row's positive.
        "open_at_end.csv",
        'query,positive\nq1,"p1\nq2,p2\n',
        f"2: unterminated quoted field (field 'positive'); hint: the quote that opens this field "
        f"runs on to line 3; {QUOTE_HINT}",
    ),
    (
        # Closed only by the quote that opens a field of the next line, then text follows.
        "closed_by_next_row.csv",
        'query,positive\n"what is a cat,a small feline\n"what is a dog",a canine\nq3,p3\n',
        f"2: unterminated quoted field (field 'query'); hint: the quote that opens this field "
        f"runs on to line 3; {QUOTE_HINT}",
    ),
    (
        "open_on_last_line.tsv",
        'query\tpositive\nq1\tp1\nq2\t"p2\n',
        "3: unterminated quoted field (field 'positive'); hint: the quote that opens this field "
        f"is never closed; {QUOTE_HINT}",
    ),
    (
        "text_after_quote.csv",
        'query,positive\n"a "quoted" word",p\n',
        "2: text after the closing quote of a quoted field (field 'query'); "
        'hint: write a quote inside a quoted field twice: ""',
    ),
    (
        "header_over_two_lines.csv",
        '"query\n,positive"\nq,p\n',
        f"1: unterminated quoted field (field 'column 1'); hint: the quote that opens this field "
        f"runs on to line 2; {QUOTE_HINT}",
    ),
    (
        "ragged.csv",
        "query,positive\nq,p\nq,p,extra\n",
        "3: row has 3 fields but the header has 2 (query, positive); "
        "hint: quote fields that contain the delimiter or a line break",
    ),
    (
        "ragged_over_lines.csv",
        'query,positive\nq,p\n"x,y\nz",w,v\n',
        "3: row (lines 3-4) has 3 fields but the header has 2 (query, positive); hint: a quoted "
        "field runs over a line break here: check its closing quote; quote fields that contain "
        "the delimiter or a line break",
    ),
    (
        "too_few_fields.tsv",
        "query\tpositive\tnegative\nq\tp\n",
        "2: row has 2 fields but the header has 3 (query, positive, negative); "
        "hint: quote fields that contain the delimiter or a line break",
    ),
    (
        "nul.csv",
        b"query,positive\nq,p\nq\x00x,p\n",
        f"3: text holds a NUL character (U+0000) at character 2 (field 'query'); {NUL_HINT}",
    ),
    (
        "latin1.csv",
        b"query,positive\nq,p\ncaf\xe9,p\n",
        "3: invalid UTF-8: b'\\xe9'; hint: save the file as UTF-8",
    ),
    (
        "surrogate_in_json_list.csv",
        'query,positive,negatives\nq,p,"[""ok"", ""\\udc00""]"\n',
        "2: item 1: text holds a lone surrogate U+DC00 at character 1 (field 'negatives'); "
        + SURROGATE_HINT,
    ),
    (
        "negatives_not_json.csv",
        "query,positive,negatives\nq,p,n1;n2\n",
        "2: expected a JSON list of texts (field 'negatives'); "
        'hint: in CSV write the list as JSON, e.g. "[""text one"", ""text two""]"',
    ),
    (
        "empty_negative_column.csv",
        "query,positive,negative,negative_2\nq,p,n1,\n",
        "2: empty text (field 'negative_2'); hint: remove the row or pass skip_invalid=True",
    ),
    (
        "bad_label.tsv",
        "query\tdocument\tlabel\nq\td\tyes\n",
        "2: label 'yes' is not a number (field 'label'); "
        "hint: a label is 1 (relevant), 0 (irrelevant) or a score in [0, 1]",
    ),
]


@pytest.mark.parametrize(("name", "content", "expected"), CSV_CASES, ids=[c[0] for c in CSV_CASES])
def test_csv_inputs_are_refused_with_file_line_and_field(tmp_path, name, content, expected):
    f = write(tmp_path / name, content)
    assert refusal(load_examples, f) == f"{f}:{expected}"


def test_after_a_bad_quote_the_rows_that_follow_are_still_read(tmp_path):
    f = write(tmp_path / "t.csv", 'query,positive\n"a"b,p\nq2,p2\nq3,"two\nlines"\n')
    data = load_training_data(f, skip_invalid=True)
    assert data.records == [Example("q2", "p2"), Example("q3", "two\nlines")]
    assert (data.stats.skipped, dict(data.stats.problems)) == (1, {"bad_quote": 1})


def test_quoted_line_breaks_doubled_quotes_and_a_bom_still_read_exactly(tmp_path):
    f = write(
        tmp_path / "t.csv",
        b'\xef\xbb\xbfquery,positive\r\n"say ""hi""","line one,\r\nline two"\r\nq2,p2\r\n',
    )
    assert load_examples(f) == [Example('say "hi"', "line one,\r\nline two"), Example("q2", "p2")]


# --- Parquet and Hugging Face datasets ----------------------------------------------------------


def test_nul_in_a_parquet_string_names_the_row_and_column(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    f = tmp_path / "t.parquet"
    pq.write_table(pa.table({"query": ["q1", "q2"], "positive": ["p1", "p\x002"]}), f)
    assert refusal(load_examples, f) == (
        f"{f}:2: text holds a NUL character (U+0000) at character 2 (field 'positive'); " + NUL_HINT
    )


def test_invalid_utf8_in_a_parquet_string_column_is_a_row_error(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    f = tmp_path / "t.parquet"
    broken = pa.array([b"ok", b"caf\xe9", b"fine"], pa.binary()).view(pa.string())
    pq.write_table(pa.table({"query": broken, "positive": ["p1", "p2", "p3"]}), f)
    assert refusal(load_examples, f) == (
        f"{f}:2: invalid UTF-8 in a text column: b'\\xe9' (field 'query'); "
        "hint: rewrite the column as UTF-8 text"
    )
    data = load_training_data(f, skip_invalid=True)
    assert data.records == [Example("ok", "p1"), Example("fine", "p3")]


def test_parquet_keeps_every_negative_of_a_list_column(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    f = tmp_path / "t.parquet"
    table = {"query": ["q"], "positive": ["p"], "negatives": [["n1", "n2", "n3"]]}
    pq.write_table(pa.table(table), f)
    assert load_examples(f) == [Example("q", "p", negatives=("n1", "n2", "n3"))]


def fake_datasets(rows: list[dict]) -> SimpleNamespace:
    """A stand-in for the optional ``datasets`` library: a streamed split is an iterable of rows."""
    return SimpleNamespace(
        load_dataset=lambda name, config, split, streaming: iter(rows),
        load_from_disk=None,
        DatasetDict=dict,
    )


def test_a_lone_surrogate_in_a_hugging_face_row(monkeypatch):
    rows = [{"query": "q1", "positive": "p1"}, {"query": "q2\udc00", "positive": "p2"}]
    monkeypatch.setattr(hf_reader, "import_datasets", lambda: fake_datasets(rows))
    assert refusal(load_training_data, "hf:owner/pairs") == (
        "hf:owner/pairs[train]:2: text holds a lone surrogate U+DC00 at character 3 "
        f"(field 'query'); {SURROGATE_HINT}"
    )


def test_hugging_face_rows_keep_every_negative(monkeypatch):
    rows = [{"query": "q", "positive": "p", "negatives": ["n1", "n2"], "negative": "n3"}]
    monkeypatch.setattr(hf_reader, "import_datasets", lambda: fake_datasets(rows))
    data = load_training_data("hf:owner/triplets")
    assert data.records == [Example("q", "p", negatives=("n1", "n2", "n3"))]


# --- several negatives --------------------------------------------------------------------------


def test_a_list_and_numbered_columns_are_all_kept_in_order(tmp_path):
    row = {
        "query": "q",
        "positive": "p",
        "negatives": ["a", "b"],
        "negative_2": "d",
        "negative": "c",
    }
    f = write(tmp_path / "t.jsonl", json.dumps(row) + "\n")
    assert load_examples(f) == [Example("q", "p", negatives=("a", "b", "c", "d"))]


def test_csv_negative_columns_one_to_four_are_all_kept(tmp_path):
    f = write(
        tmp_path / "t.tsv",
        "query\tpositive\tnegative_1\tnegative_2\tnegative_3\tnegative_4\nq\tp\ta\tb\tc\td\n",
    )
    assert load_examples(f) == [Example("q", "p", negatives=("a", "b", "c", "d"))]


def test_shape_pairs_given_on_purpose_drops_negatives_without_an_error(tmp_path):
    f = write(
        tmp_path / "t.jsonl",
        '{"query": "q1", "positive": "p1"}\n{"query": "q2", "positive": "p2", "negative": "n"}\n',
    )
    assert load_examples(f, shape="pairs") == [Example("q1", "p1"), Example("q2", "p2")]


def test_rows_with_different_numbers_of_negatives_keep_them_all(tmp_path):
    f = write(
        tmp_path / "t.jsonl",
        '{"query": "q1", "positive": "p1", "negatives": ["a"]}\n'
        '{"query": "q2", "positive": "p2", "negatives": ["b", "c", "d"]}\n',
    )
    assert [r.negatives for r in load_examples(f)] == [("a",), ("b", "c", "d")]


# --- BEIR folders -------------------------------------------------------------------------------


def beir(
    root: Path, corpus: str | None = None, queries: str | None = None, qrels: str = ""
) -> Path:
    write(
        root / "corpus.jsonl",
        corpus or '{"_id": "d1", "text": "one"}\n{"_id": "d2", "text": "two"}\n',
    )
    write(root / "queries.jsonl", queries or '{"_id": "q1", "text": "first"}\n')
    write(root / "qrels" / "train.tsv", "query-id\tcorpus-id\tscore\n" + (qrels or "q1\td1\t1\n"))
    return root


BEIR_CASES = [
    (
        {"corpus": '{"_id": "d1", "text": "one"}\n{"_id": "d2", "text": "t\\udc00wo"}\n'},
        "corpus.jsonl:2: text holds a lone surrogate U+DC00 at character 2 (field 'text'); "
        + SURROGATE_HINT,
    ),
    (
        {"corpus": '{"_id": "d1", "title": "\\ud83d", "text": "one"}\n'},
        "corpus.jsonl:1: text holds a lone surrogate U+D83D at character 1 (field 'title'); "
        + SURROGATE_HINT,
    ),
    (
        {"queries": '{"_id": "q1", "text": "fir\\u0000st"}\n'},
        f"queries.jsonl:1: text holds a NUL character (U+0000) at character 4 (field 'text'); "
        f"{NUL_HINT}",
    ),
    (
        {"queries": '{"_id": "q\\udc01", "text": "first"}\n'},
        "queries.jsonl:1: text holds a lone surrogate U+DC01 at character 2 (field '_id'); "
        + SURROGATE_HINT,
    ),
    (
        {"qrels": "q1\td9\t1\n"},
        "qrels/train.tsv:2: unknown document id 'd9': not in corpus.jsonl (field 'corpus-id')",
    ),
    (
        {"qrels": "q1\td1\t1\nq7\td2\t1\n"},
        "qrels/train.tsv:3: unknown query id 'q7': not in queries.jsonl (field 'query-id')",
    ),
    (
        {"queries": '{"_id": "q1", "text": "first"}\n{"_id": "q1", "text": "again"}\n'},
        "queries.jsonl:2: duplicate query id 'q1' (field '_id')",
    ),
    (
        {"corpus": '{"_id": "d1", "text": "one"}\n{"_id": "d1", "text": "two"}\n'},
        "corpus.jsonl:2: duplicate document id 'd1' (field '_id')",
    ),
    (
        {"corpus": '{"_id": "d1", "text": ["one"]}\n'},
        "corpus.jsonl:1: expected text, got list (field 'text')",
    ),
]


@pytest.mark.parametrize(
    ("files", "expected"), BEIR_CASES, ids=[f"beir{i}" for i in range(len(BEIR_CASES))]
)
def test_beir_folders_are_refused_with_file_line_and_field(tmp_path, files, expected):
    folder = beir(tmp_path / "ds", **files)
    for load in (load_beir, beir_training_pairs):
        assert refusal(load, folder, "train") == f"{folder}/{expected}"


def test_a_qrels_file_with_a_byte_order_mark_keeps_its_header(tmp_path):
    folder = beir(tmp_path / "ds")
    write(folder / "qrels" / "train.tsv", b"\xef\xbb\xbfquery-id\tcorpus-id\tscore\nq1\td1\t1\n")
    assert beir_training_pairs(folder, "train") == [
        Example("first", "one", query_id="q1", positive_id="d1")
    ]


# --- the data check and the console script ------------------------------------------------------


def test_data_check_reports_a_lone_surrogate_as_an_error_naming_the_line(tmp_path):
    f = write(
        tmp_path / "t.jsonl",
        '{"query": "q1", "positive": "p1"}\n{"query": "q2", "positive": "p\\udc00"}\n',
    )
    report = check_data(f)
    (error,) = report.errors
    assert (error.code, error.count) == ("bad_text", 1)
    assert error.examples == [
        f"{f}:2: text holds a lone surrogate U+DC00 at character 2 (field 'positive'); "
        + SURROGATE_HINT
    ]
    assert report.counts["usable rows"] == 1


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``ragtune ARGS`` in this process, through the console script's own entry point."""
    from ragtune.cli.main import main

    monkeypatch.setattr(sys, "argv", ["ragtune", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


def test_cli_data_check_exits_one_on_an_unterminated_quote(tmp_path, monkeypatch, capsys):
    f = write(tmp_path / "t.csv", 'query,positive\nq1,"p1\nq2,p2\n')
    before = f.read_bytes()
    code, out, err = run_cli(monkeypatch, capsys, "data", "check", str(f), "--json")
    assert (code, err) == (1, "")
    finding = json.loads(out)["findings"][0]
    assert (finding["code"], finding["severity"]) == ("unterminated_quote", "error")
    assert finding["examples"] == [
        f"{f}:2: unterminated quoted field (field 'positive'); hint: the quote that opens this "
        f"field runs on to line 3; {QUOTE_HINT}"
    ]
    assert f.read_bytes() == before and sorted(tmp_path.iterdir()) == [f]


def test_cli_data_check_on_a_beir_folder_is_one_error_line(tmp_path, monkeypatch, capsys):
    folder = beir(tmp_path / "ds", queries='{"_id": "q1", "text": "\\udc00"}\n')
    code, out, err = run_cli(monkeypatch, capsys, "data", "check", str(folder))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"error: {folder}/queries.jsonl:1: text holds a lone surrogate U+DC00 at character 1 "
        f"(field 'text'); {SURROGATE_HINT}"
    ]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tokenizer) -> Path:
    from tests.conftest import make_tiny_encoder

    return make_tiny_encoder(tokenizer).save(tmp_path_factory.mktemp("model") / "tiny")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "t.jsonl",
            '{"query": "q1", "positive": "p1"}\n{"query": "q2\\udc00", "positive": "p2"}\n',
            f"2: text holds a lone surrogate U+DC00 at character 3 (field 'query'); "
            f"{SURROGATE_HINT}",
        ),
        (
            "t.csv",
            'query,positive\nq1,p1\n"q2,p2\nq3,p3\n',
            f"3: unterminated quoted field (field 'query'); hint: the quote that opens this "
            f"field runs on to line 4; {QUOTE_HINT}",
        ),
    ],
    ids=["surrogate", "unterminated_quote"],
)
def test_cli_train_fails_at_read_time_and_writes_nothing(
    tmp_path, monkeypatch, capsys, tiny_model, name, content, expected
):
    f = write(tmp_path / "data" / name, content)
    out_dir = tmp_path / "run"
    code, _, err = run_cli(
        monkeypatch,
        capsys,
        "train",
        "--model",
        str(tiny_model),
        "--data",
        str(f),
        "--out",
        str(out_dir),
        "--max-steps",
        "1",
    )
    assert code == 1
    assert err.splitlines() == [f"error: {f}:{expected}"]
    assert not out_dir.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_labelled_rows_keep_their_text_exactly_as_written(tmp_path):
    # Text that passes is kept byte for byte: no normalisation happens at read time.
    f = write(tmp_path / "t.jsonl", '{"query": "e\\u0301  x", "document": "D", "label": 0}\n')
    assert load_examples(f, ColumnMap()) == [LabelledPair("e\u0301  x", "D", 0.0)]
