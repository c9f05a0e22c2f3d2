"""After training: interpolation with the base model, the gate, general checks, the card."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ragtune.data.beir import write_beir_folder
from ragtune.data.schema import Document
from ragtune.model import Encoder
from ragtune.train import train
from ragtune.train.interpolate import WeightMixer
from tests.train.test_loop import config

TEXTS = ["what is a harbor", "tulip tulip notes about the history"]


@pytest.fixture
def other_domain(tmp_path):
    words = ["apple", "river", "engine", "violin", "glacier", "pepper"]
    docs = [Document(f"d{i}", f"{w} {w} facts about the {w}") for i, w in enumerate(words)]
    queries = {f"q{i}": f"what is a {w}" for i, w in enumerate(words)}
    qrels = {"test": {f"q{i}": {f"d{i}": 1} for i in range(6)}}
    return write_beir_folder(tmp_path / "other", docs, queries, qrels)


def test_a_run_that_cannot_beat_the_base_publishes_it_with_the_dev_evidence(
    tmp_path, tiny_model_dir, pairs_file, capsys
):
    # 1e-12 moves no fp32 weight: every evaluation ties the base model, the best is step 0
    result = train(config(tmp_path, tiny_model_dir, pairs_file, learning_rate=1e-12, epochs=1))
    assert result.published == "base" and not result.improved
    assert result.improvement == "not improved" and result.mix_weight is None  # nothing to mix
    gate = result.gate
    assert gate is not None and gate.gain == 0.0 and gate.p_value == 1.0 and gate.n == 24
    err = " ".join(capsys.readouterr().err.split())
    assert (
        "the base model is published, unchanged: the dev gain +0.0000 ndcg@10 [+0.0000, +0.0000] "
        "over 24 dev queries is not above publish_min_gain = 0" in err
    )
    published = Encoder.load(tmp_path / "out", device="cpu")
    base = Encoder.load(tiny_model_dir, device="cpu")
    np.testing.assert_array_equal(published.encode(TEXTS), base.encode(TEXTS))
    card = (tmp_path / "out" / "README.md").read_text()
    assert "p = 1 over n = 24 dev queries" in card
    assert "Decision: the base model is published, unchanged" in card
    summary = json.loads((tmp_path / "out" / "run" / "summary.json").read_text())
    assert summary["published"] == "base" and summary["gate"]["published"] == "base"


def test_a_trained_run_publishes_the_chosen_interpolation_and_reports_other_domains(
    tmp_path, tiny_model_dir, pairs_file, other_domain
):
    # min_gain -1 and publish_p 1: the gate lets any tuned model through, so that the published
    # weights can be checked against the interpolation the run chose
    cfg = config(
        tmp_path,
        tiny_model_dir,
        pairs_file,
        publish_min_gain=-1.0,
        publish_p=1.0,
        general_checks=[str(other_domain)],
    )
    result = train(cfg)
    assert result.best_step > 0 and result.published == "tuned"
    assert [a for a, _ in result.mix_scores] == [0.25, 0.5, 0.75, 1.0]
    assert result.mix_weight in (0.25, 0.5, 0.75, 1.0)
    assert result.improved == (result.gate is not None and result.gate.improvement == "improved")
    assert result.published_score == dict(result.mix_scores)[result.mix_weight]

    out = tmp_path / "out"
    best = Encoder.load(out / "run" / "best", device="cpu")
    base = Encoder.load(tiny_model_dir, device="cpu")
    expected = WeightMixer(best, base).mix(result.mix_weight).encode(TEXTS)
    np.testing.assert_allclose(Encoder.load(out, device="cpu").encode(TEXTS), expected, atol=1e-6)

    [check] = result.general_checks
    assert check.name == "other/test" and check.queries == 6
    summary = json.loads((out / "run" / "summary.json").read_text())
    assert summary["general_checks"][0]["delta"] == pytest.approx(check.after - check.before)
    assert summary["mix_weight"] == result.mix_weight
    card = (out / "README.md").read_text()
    assert (
        f"interpolation weight a (theta = a x tuned + (1 - a) x base): {result.mix_weight:g}"
        in card
    )
    assert "95% bootstrap interval" in card and "## General-domain checks" in card
    assert f"| other/test | 6 | nDCG@10 | {check.before:.4f} | {check.after:.4f} |" in card


def test_a_run_without_dev_claims_nothing_and_its_card_says_so(
    tmp_path, tiny_model_dir, pairs_file
):
    result = train(config(tmp_path, tiny_model_dir, pairs_file, dev_fraction=0.0, max_steps=1))
    assert result.improvement == "not measured" and not result.improved
    assert result.published == "tuned" and result.gate is not None and result.gate.gain is None
    card = (tmp_path / "out" / "README.md").read_text()
    assert "No dev set: the published model was not compared with the base model" in card


def test_a_bad_general_check_fails_before_training(tmp_path, tiny_model_dir, pairs_file):
    from ragtune.errors import RagtuneError

    cfg = config(tmp_path, tiny_model_dir, pairs_file, general_checks=[str(tmp_path / "none")])
    with pytest.raises(RagtuneError, match="train.general_checks: .* is not a BEIR folder"):
        train(cfg)
    assert not (tmp_path / "out").exists()
