"""General-domain checks: base before, published after, on BEIR folders named path[:split]."""

from __future__ import annotations

import pytest

from ragtune.data.beir import load_beir, write_beir_folder
from ragtune.data.schema import Document
from ragtune.errors import RagtuneError
from ragtune.evaluation.evaluate import evaluate_encoder
from ragtune.evaluation.forgetting import check_specs, general_checks, parse_check
from tests.conftest import make_tiny_encoder


@pytest.fixture
def other_domain(tmp_path):
    docs = [
        Document(f"d{i}", f"{w} {w} facts about the {w}")
        for i, w in enumerate(["apple", "river", "engine", "violin", "glacier", "pepper"])
    ]
    queries = {f"q{i}": f"what is a {d.text.split()[0]}" for i, d in enumerate(docs)}
    qrels = {
        "test": {f"q{i}": {f"d{i}": 1} for i in range(4)},
        "dev": {f"q{i}": {f"d{i}": 1} for i in range(4, 6)},
    }
    return write_beir_folder(tmp_path / "other", docs, queries, qrels)


def test_a_spec_is_a_path_with_an_optional_split() -> None:
    assert parse_check("data/conala") == ("data/conala", "test")
    assert parse_check("data/conala:dev") == ("data/conala", "dev")
    assert parse_check("C:\\data\\conala") == ("C:\\data\\conala", "test")  # a drive, no split
    assert parse_check("C:\\data\\conala:dev") == ("C:\\data\\conala", "dev")
    with pytest.raises(RagtuneError, match="train.general_checks: 'data/x:' is not"):
        parse_check("data/x:")


def test_a_missing_folder_or_split_is_one_line_naming_the_field(other_domain, tmp_path) -> None:
    assert check_specs([f"{other_domain}:dev"]) == [(str(other_domain), "dev")]
    with pytest.raises(RagtuneError, match=r"train.general_checks: .* has no qrels/train.tsv"):
        check_specs([f"{other_domain}:train"])
    with pytest.raises(RagtuneError, match="is not a BEIR folder"):
        check_specs([str(tmp_path / "nowhere")])


def test_before_and_after_are_the_two_models_scores(other_domain, tokenizer) -> None:
    base, tuned = make_tiny_encoder(tokenizer, seed=0), make_tiny_encoder(tokenizer, seed=1)
    [check] = general_checks([str(other_domain)], base, tuned)
    evalset = load_beir(other_domain, "test")
    assert check.before == evaluate_encoder(base, evalset).metrics["nDCG@10"]
    assert check.after == evaluate_encoder(tuned, evalset).metrics["nDCG@10"]
    assert check.delta == check.after - check.before
    assert (check.name, check.split, check.queries) == ("other/test", "test", 4)
    [same] = general_checks([f"{other_domain}:dev"], base, None)  # the base was published
    assert same.after == same.before and same.queries == 2
