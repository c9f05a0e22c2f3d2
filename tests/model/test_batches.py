"""Padding and length sorting: batches of similar lengths, padded on the right, order restored."""

from __future__ import annotations

import torch

from ragtune.model.batches import length_groups, length_sorted_batches, pad


def test_pad_right_pads_ids_and_marks_real_tokens():
    features = pad([[101, 7, 102], [101, 102], [101, 8, 9, 102]], pad_id=0)
    assert features["input_ids"].tolist() == [
        [101, 7, 102, 0],
        [101, 102, 0, 0],
        [101, 8, 9, 102],
    ]
    assert features["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    assert features["input_ids"].dtype == features["attention_mask"].dtype == torch.long


def test_inference_batches_hold_texts_of_similar_length_longest_first(tokenizer):
    texts = ["a b", "a b c d e f g h", "a", "a b c d e f g", "a b c"]
    ids, batches = length_sorted_batches(tokenizer, texts, max_length=64, batch_size=2)
    assert [len(i) for i in ids] == [4, 10, 3, 9, 5]  # [CLS] ... [SEP], in input order
    assert batches == [[1, 3], [4, 0], [2]]


def test_inference_batches_truncate_to_the_maximum_length(tokenizer):
    ids, batches = length_sorted_batches(tokenizer, ["a " * 50], max_length=8, batch_size=4)
    assert len(ids[0]) == 8 and batches == [[0]]


def test_long_and_short_rows_go_to_different_sub_batches():
    groups = length_groups(torch.tensor([5, 30, 6, 29, 5, 4]))
    parts = [sorted(g.tolist()) for g in groups]
    assert parts[0] == [1, 3]  # the two long rows together, the short ones elsewhere
    assert sorted(i for p in parts[1:] for i in p) == [0, 2, 4, 5]


def test_rows_of_equal_length_stay_in_one_batch():
    groups = length_groups(torch.tensor([256] * 32))
    assert len(groups) == 1 and sorted(groups[0].tolist()) == list(range(32))
