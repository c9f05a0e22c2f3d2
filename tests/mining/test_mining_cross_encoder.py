"""The cross-encoder hook loads a local sequence-classification folder and scores pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ragtune.errors import RagtuneError
from ragtune.mining import CrossEncoder


def tiny_cross_encoder(tokenizer, folder, num_labels: int = 1):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=num_labels,
    )
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def test_scores_are_probabilities_and_do_not_depend_on_batching(tmp_path, tokenizer) -> None:
    judge = CrossEncoder.load(tiny_cross_encoder(tokenizer, tmp_path / "ce"), device="cpu")
    queries = ["vitamin c", "iron", "what prevents scurvy in sailors on long voyages?"]
    docs = ["citrus fruit", "iron rich food such as spinach and red meat", "limes"]
    together = judge.score(queries, docs, batch_size=3)
    alone = np.concatenate(
        [judge.score([q], [d], batch_size=1) for q, d in zip(queries, docs, strict=True)]
    )
    assert together.shape == (3,)
    assert ((together > 0) & (together < 1)).all()
    np.testing.assert_allclose(together, alone, atol=1e-5)  # padding does not change a score


def test_two_label_models_use_the_relevant_class_and_others_are_refused(
    tmp_path, tokenizer
) -> None:
    two = CrossEncoder.load(tiny_cross_encoder(tokenizer, tmp_path / "two", 2), device="cpu")
    batch = two.tokenizer(["q"], ["d"], return_tensors="pt")
    with torch.no_grad():
        logits = two.model(**batch).logits[0]  # (2,)
    expected = torch.exp(logits[1]) / torch.exp(logits).sum()
    assert two.score(["q"], ["d"])[0] == pytest.approx(float(expected), abs=1e-6)
    with pytest.raises(RagtuneError, match="1 .* or 2 .* labels, this model has 3"):
        CrossEncoder.load(tiny_cross_encoder(tokenizer, tmp_path / "three", 3), device="cpu")
    with pytest.raises(RagtuneError, match="not a local folder"):
        CrossEncoder.load(tmp_path / "nowhere")
