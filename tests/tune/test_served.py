"""``tune`` trains and measures the chunks as ``ragtune index`` embeds them: behind the path.

The proof is an equivalence: the index's vectors are the model's vectors of :func:`served`'s
texts, so what the filter, the negatives, training and the report read is what the server reads.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ragtune.pseudo.pairs import PseudoPair
from ragtune.search.build import IndexConfig, build_index
from ragtune.search.store import IndexStore
from ragtune.tune import run_tune
from ragtune.tune.inputs import load_chunks, served, served_pairs
from tests.cli.test_tune import config, make_repo
from tests.conftest import make_tiny_encoder


@pytest.fixture
def tiny_model(tmp_path, tokenizer) -> str:
    return str(make_tiny_encoder(tokenizer).save(tmp_path / "tiny"))


def test_the_served_chunks_are_what_the_index_embeds(tmp_path, tokenizer):
    repo = make_repo(tmp_path / "repo")
    encoder = make_tiny_encoder(tokenizer)
    loaded = load_chunks(str(repo), encoder)
    assert loaded.headers["pkg0/glacier.py"] == "pkg0/glacier.py\n"
    docs = served(loaded.chunks, loaded.headers)
    assert [(c.path, c.start_line, c.end_line) for c in docs] == [
        (c.path, c.start_line, c.end_line) for c in loaded.chunks
    ]
    build_index(str(repo), encoder, tmp_path / "index", IndexConfig())
    with IndexStore.open(tmp_path / "index") as store:
        where = {(c.path, c.start_line, c.end_line): c.id for c in store.chunks(range(len(store)))}
        vectors = np.asarray(store.vectors)
    ours = np.asarray(encoder.encode_documents([c.text for c in docs], show_progress=False))
    rows = [where[(c.path, c.start_line, c.end_line)] for c in docs]
    np.testing.assert_allclose(vectors[rows], ours, atol=1e-5)


def test_a_pairs_own_positive_goes_behind_its_files_header_and_a_chunk_positive_is_kept():
    headers = {"a.py": "a.py\n"}
    own = PseudoPair("q", "a.py:1-3", "a.py", 1, 3, "docstring", document="def f():\n    pass")
    whole = PseudoPair("q", "a.py:1-3", "a.py", 1, 3, "identifier")
    corpus = PseudoPair("q", "doc7:1-2", "doc7", 1, 2, "cloze", document="the rest")
    assert [p.document for p in served_pairs([own, whole, corpus], headers)] == [
        "a.py\ndef f():\n    pass",
        "",  # its positive is the chunk, which served() puts behind the header
        "the rest",  # a corpus record has no header
    ]


def test_a_corpus_jsonl_has_no_header(tmp_path, tokenizer):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"_id": "d1", "title": "T", "text": "body text"}) + "\n")
    loaded = load_chunks(str(corpus), make_tiny_encoder(tokenizer))
    assert loaded.headers == {} and served(loaded.chunks, {})[0].text == "T\nbody text"


def test_tune_trains_on_positives_behind_their_path(tmp_path, tiny_model):
    repo = make_repo(tmp_path / "repo")
    out = tmp_path / "run"
    run_tune(config(repo, out, tiny_model, index=False))
    mined = [json.loads(line) for line in (out / "stages" / "mined.jsonl").open()]
    assert mined
    for row in mined:
        path = row["positive_id"].rsplit(":", 1)[0]
        assert row["positive"].startswith(f"{path}\n"), row
