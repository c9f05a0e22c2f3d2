"""Hugging Face ``datasets`` sources (``hf:<name or path>``); skipped where datasets is absent."""

from __future__ import annotations

import json

import pytest

from ragtune.data import ColumnMap, Example, LabelledPair, load_training_data
from ragtune.errors import DataError

datasets = pytest.importorskip("datasets", reason="datasets is optional: pip install 'ragtune[hf]'")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))


def test_local_folder_of_json_lines_is_streamed(tmp_path):
    folder = tmp_path / "pairs"
    folder.mkdir()
    rows = [{"question": "q1", "answer": "a1"}, {"question": "q2", "answer": "a2"}]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_training_data(f"hf:{folder}", ColumnMap(query="question", positive="answer"))
    assert data.kind == "hf"
    assert data.records == [Example("q1", "a1"), Example("q2", "a2")]


def test_saved_dataset_with_labels(tmp_path):
    ds = datasets.Dataset.from_list(
        [{"query": "q", "document": "d", "label": 1}, {"query": "q", "document": "e", "label": 0}]
    )
    ds.save_to_disk(str(tmp_path / "saved"))
    data = load_training_data(f"hf:{tmp_path / 'saved'}")
    assert data.records == [LabelledPair("q", "d", 1.0), LabelledPair("q", "e", 0.0)]


def test_bad_rows_name_the_dataset_and_row(tmp_path):
    ds = datasets.Dataset.from_list(
        [{"query": "q", "positive": "p"}, {"query": "", "positive": "p"}]
    )
    ds.save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(DataError, match=r"\[train\]:2: empty text \(field 'query'\)"):
        load_training_data(f"hf:{tmp_path / 'saved'}")


def test_unknown_dataset_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="cannot open the dataset"):
        load_training_data(f"hf:{tmp_path / 'nothing-here'}")
