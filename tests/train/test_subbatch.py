"""Length-sorted sub-batches compute the same embeddings and gradients as the padded batch."""

from __future__ import annotations

import torch

from ragtune.model.batches import length_groups
from ragtune.train.subbatch import embed_by_length
from tests.conftest import make_tiny_encoder

TEXTS = [
    "cat",
    "a long sentence about rivers glaciers volcanoes and the satellites that watch them",
    "dog",
    "another long sentence about harbors lanterns falcons marble orbits and cacti",
    "tulip",
    "pepper",
]


def test_same_embeddings_and_gradients_as_one_padded_batch(tokenizer):
    plain = make_tiny_encoder(tokenizer).train()
    split = make_tiny_encoder(tokenizer).train()
    for encoder in (plain, split):  # ragtune's training default; masks would differ otherwise
        encoder.set_attention_dropout(0.0)
        encoder.set_hidden_dropout(0.0)
    features = plain.tokenize(TEXTS)
    assert len(length_groups(features["attention_mask"].sum(1))) > 1  # it does split here

    a = plain(features)
    b = embed_by_length(split, features)
    torch.testing.assert_close(b, a, rtol=0, atol=1e-6)
    target = torch.randn_like(a)
    (a * target).sum().backward()
    (b * target).sum().backward()
    for (name, p), q in zip(plain.named_parameters(), split.parameters(), strict=True):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-6, msg=name)
