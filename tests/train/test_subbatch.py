"""Length-sorted sub-batches compute the same embeddings and gradients as the padded batch."""

from __future__ import annotations

import torch

from ragtune.train.subbatch import embed_by_length, length_groups
from tests.conftest import make_tiny_encoder

TEXTS = [
    "cat",
    "a long sentence about rivers glaciers volcanoes and the satellites that watch them",
    "dog",
    "another long sentence about harbors lanterns falcons marble orbits and cacti",
    "tulip",
    "pepper",
]


def test_long_and_short_rows_go_to_different_sub_batches():
    groups = length_groups(torch.tensor([5, 30, 6, 29, 5, 4]))
    parts = [sorted(g.tolist()) for g in groups]
    assert parts[0] == [1, 3]  # the two long rows together, the short ones elsewhere
    assert sorted(i for p in parts[1:] for i in p) == [0, 2, 4, 5]


def test_rows_of_equal_length_stay_in_one_batch():
    groups = length_groups(torch.tensor([256] * 32))
    assert len(groups) == 1 and sorted(groups[0].tolist()) == list(range(32))


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
