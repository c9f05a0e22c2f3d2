"""Batches for contrastive training: reproducible, and never two examples sharing a text."""

import torch

from ragtune.data.schema import Example
from ragtune.train.batching import build_training_set, collate, epoch_batches


def training_set(tokenizer, examples):
    return build_training_set(examples, tokenizer, max_length=32)


def test_no_batch_repeats_a_query_or_a_positive(tokenizer):
    # 40 examples, but only 10 distinct positives and 20 distinct queries.
    examples = [Example(f"question {i % 20}", f"answer {i % 10}") for i in range(40)]
    data = training_set(tokenizer, examples)
    batches = epoch_batches(data, batch_size=8, seed=0, epoch=0)
    for batch in batches:
        rows = [data.rows[i] for i in batch]
        assert len({r.query for r in rows}) == len(rows)
        assert len({r.document for r in rows}) == len(rows)
    assert all(len(b) >= 4 for b in batches)  # short batches kept only when half full


def test_same_seed_and_epoch_give_the_same_batches(tokenizer):
    examples = [Example(f"q {i}", f"d {i}") for i in range(50)]
    data = training_set(tokenizer, examples)
    assert epoch_batches(data, 8, seed=3, epoch=1) == epoch_batches(data, 8, seed=3, epoch=1)
    assert epoch_batches(data, 8, seed=3, epoch=1) != epoch_batches(data, 8, seed=3, epoch=2)


def test_full_batches_only_when_asked(tokenizer):
    examples = [Example(f"q {i}", f"d {i}") for i in range(30)]
    data = training_set(tokenizer, examples)
    assert [len(b) for b in epoch_batches(data, 8, 0, 0)] == [8, 8, 8, 6]
    assert [len(b) for b in epoch_batches(data, 8, 0, 0, min_fill=1.0)] == [8, 8, 8]


def test_each_text_is_tokenized_once_and_ids_mark_duplicates(tokenizer):
    examples = [Example("same query", "doc a", ("neg",)), Example("other", "doc a", ("neg",))]
    data = training_set(tokenizer, examples)
    assert data.num_texts == 4  # two queries, "doc a", "neg"
    batch = collate(data, [0, 1], pad_id=0)
    assert torch.equal(batch["extra"]["positive_ids"], torch.tensor([1, 1]))
    assert batch["reshape"]["negatives"] == (2, 1)
    assert batch["texts"]["query"]["attention_mask"].shape[0] == 2


def test_dropout_setters_separate_attention_from_hidden(tiny_encoder):
    tiny_encoder.set_hidden_dropout(0.0)
    tiny_encoder.set_attention_dropout(0.3)
    p = {
        n: m.p for n, m in tiny_encoder.backbone.named_modules() if isinstance(m, torch.nn.Dropout)
    }
    assert p["encoder.layer.0.attention.self.dropout"] == 0.3
    assert p["encoder.layer.0.output.dropout"] == 0.0 and p["embeddings.dropout"] == 0.0
    assert tiny_encoder.backbone.config.attention_probs_dropout_prob == 0.3


def test_rows_with_more_negatives_than_the_rest_are_cut_and_the_run_says_so(tokenizer, capsys):
    examples = [
        Example("q1", "p1", negatives=("n1", "n2", "n3")),
        Example("q2", "p2", negatives=("n4",)),
    ]
    data = build_training_set(examples, tokenizer, max_length=32)
    assert data.num_negatives == 1
    assert [len(r.negatives) for r in data.rows] == [1, 1]
    said = " ".join(capsys.readouterr().err.split())
    assert "1 of 2 examples have more than 1 negatives; every row uses 1" in said
    explicit = build_training_set(examples, tokenizer, max_length=32, num_negatives=1)
    assert explicit.num_negatives == 1
    assert "more than" not in capsys.readouterr().err
