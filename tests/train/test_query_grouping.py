"""Epochs over queries: one positive per query per epoch, every positive over the epochs.

And the bookkeeping around it: each batch says which documents are known positives of each
query, the step count and the schedule follow the smaller epochs, and a run trains, logs what it
masked and resumes.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest
import torch

from ragtune.config import load_config
from ragtune.data.beir import beir_training_pairs
from ragtune.data.schema import Example
from ragtune.errors import RagtuneError
from ragtune.train import TrainConfig, train
from ragtune.train.batching import build_training_set, collate, epoch_batches
from ragtune.train.prepare import prepare
from ragtune.train.query_groups import group_queries
from tests.train.conftest import write_jsonl


def multi_positive_examples() -> list[Example]:
    """'big' has 5 positives; 15 other queries have one each: 20 pairs, 16 queries."""
    examples = [Example("big question", f"big answer {k}") for k in range(5)]
    examples += [Example(f"small question {i}", f"small answer {i}") for i in range(15)]
    return examples


def rows_in(batches: list[list[int]]) -> list[int]:
    return [i for batch in batches for i in batch]


def test_a_query_with_five_positives_appears_once_per_epoch_and_uses_each_over_five(tokenizer):
    data = build_training_set(multi_positive_examples(), tokenizer, max_length=16)
    big_rows = set(range(5))
    used = []
    for epoch in range(5):
        rows = rows_in(epoch_batches(data, batch_size=4, seed=1, epoch=epoch))
        assert len(rows) == 16  # one row per query, not one per pair
        picked = [r for r in rows if r in big_rows]
        assert len(picked) == 1
        used += picked
    assert sorted(used) == [0, 1, 2, 3, 4]  # each positive exactly once in five epochs
    again = rows_in(epoch_batches(data, batch_size=4, seed=1, epoch=5))
    assert [r for r in again if r in big_rows] == [used[0]]  # then the cycle repeats


def test_the_order_of_positives_is_fixed_by_the_seed(tokenizer):
    data = build_training_set(multi_positive_examples(), tokenizer, max_length=16)

    def picks(seed: int) -> list[int]:
        return [data.groups.epoch_rows(seed, e)[0] for e in range(5)]  # 'big' comes first

    assert picks(3) == picks(3)
    assert epoch_batches(data, 4, seed=3, epoch=2) == epoch_batches(data, 4, seed=3, epoch=2)
    assert len({tuple(picks(s)) for s in range(6)}) > 1  # another seed, another order


def test_off_the_epoch_is_every_pair(tokenizer):
    data = build_training_set(multi_positive_examples(), tokenizer, max_length=16)
    rows = rows_in(epoch_batches(data, batch_size=4, seed=1, epoch=0, group_by_query=False))
    big = [r for r in rows if r < 5]
    assert len(big) >= 4 and len(rows) >= 19  # pairs: 'big' in nearly every batch of the epoch
    for batch in epoch_batches(data, batch_size=4, seed=1, epoch=0, group_by_query=False):
        assert sum(i < 5 for i in batch) <= 1  # still never twice in one batch


def test_with_one_positive_per_query_grouping_changes_nothing(tokenizer):
    examples = [Example(f"q {i}", f"d {i}", (f"n {i}",)) for i in range(37)]
    data = build_training_set(examples, tokenizer, max_length=16)
    for epoch in range(3):
        for length in (False, True):
            grouped = epoch_batches(data, 8, 5, epoch, length, group_by_query=True)
            pairs = epoch_batches(data, 8, 5, epoch, length, group_by_query=False)
            assert grouped == pairs


def test_groups_use_text_identity_and_count_false_hard_negatives():
    # query ids 7 and 8; row 2 is query 7 again (the same text by identity); row 0's negative
    # is query 8's positive (a real negative for 7), row 2's is 7's own positive 1 (false).
    groups = group_queries([7, 8, 7], [1, 2, 3], [(2,), (4,), (1,)])
    assert groups.rows == {7: (0, 2), 8: (1,)}
    assert groups.positives == {7: (1, 3), 8: (2,)}
    assert groups.known_negatives == 1
    assert groups.max_positives == 2 and groups.multi_positive == 1
    assert torch.equal(groups.known_positive_ids([8, 7]), torch.tensor([[2, -1], [1, 3]]))


def test_each_batch_carries_every_known_positive_of_its_queries(tokenizer):
    examples = [
        Example("q a", "doc 1", ("doc 3",)),
        Example("q  a", "doc 2", ("doc 9",)),  # 'q a' again (spacing aside): a second positive
        Example("q b", "doc 3", ("Doc 1",)),  # case differs: a real negative for 'q b'
    ]
    data = build_training_set(examples, tokenizer, max_length=16)
    same = data.cache.identity
    doc = {text: same[data.cache.index[("document", text)]] for text in ("doc 1", "doc 2")}
    batch = collate(data, [0, 2], pad_id=0)
    known = batch["extra"]["known_positive_ids"]  # (2, K=2)
    assert known[0].tolist() == [doc["doc 1"], doc["doc 2"]]
    assert known[1].tolist() == [batch["extra"]["positive_ids"][1].item(), -1]
    # row 0's hard negative "doc 3" is the in-batch positive of 'q b': known to 'q b' only
    assert batch["extra"]["negative_ids"][0, 0] == batch["extra"]["positive_ids"][1]
    assert "known_positive_ids" not in collate(data, [0, 2], 0, known_positives=False)["extra"]


def test_graded_beir_judgements_become_one_group_per_query(tmp_path, tokenizer):
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    write_jsonl(
        folder / "corpus.jsonl", [{"_id": f"d{i}", "text": f"document {i}"} for i in range(4)]
    )
    write_jsonl(
        folder / "queries.jsonl", [{"_id": "q1", "text": "one"}, {"_id": "q2", "text": "two"}]
    )
    (folder / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td0\t2\nq1\td1\t1\nq1\td2\t0\nq2\td3\t1\n"
    )
    pairs = beir_training_pairs(folder, "train")
    assert [(e.query_id, e.positive_id) for e in pairs] == [
        ("q1", "d0"),
        ("q1", "d1"),
        ("q2", "d3"),
    ]
    data = build_training_set(pairs, tokenizer, max_length=16)
    assert data.groups.num_queries == 2 and data.groups.max_positives == 2  # score 0 is not one


def grouped_file(tmp_path, queries: int = 24, positives: int = 3):
    """Each query has ``positives`` documents; each row's hard negative is the next query's
    positive, and every 4th query's first row has its own second positive as hard negative."""
    rows = []
    for q in range(queries):
        for k in range(positives):
            negative = f"topic {(q + 1) % queries} text 0"
            if q % 4 == 0 and k == 0:
                negative = f"topic {q} text 1"  # a false negative: 'q' knows it as relevant
            rows.append(
                {"query": f"question {q}", "positive": f"topic {q} text {k}", "negative": negative}
            )
    return write_jsonl(tmp_path / "grouped.jsonl", rows)


def config(tmp_path, model_dir, data, **values) -> TrainConfig:
    base = {
        "model": str(model_dir),
        "data": str(data),
        "output": str(tmp_path / "out"),
        "batch_size": 8,
        "epochs": 3,
        "learning_rate": 1e-3,
        "log_steps": 1,
        "save_steps": 2,
        "dev_fraction": 0.0,
        "threads": 1,
        "recipe": "fixed",  # the fixed run's mechanics
    }
    return load_config(TrainConfig, None, (), **{**base, **values})


def test_steps_per_epoch_follow_the_queries(tmp_path, tiny_model_dir):
    data = grouped_file(tmp_path)  # 72 pairs, 24 queries
    grouped = prepare(config(tmp_path, tiny_model_dir, data, grad_accumulation=2))
    pairs = prepare(
        config(
            tmp_path,
            tiny_model_dir,
            data,
            grad_accumulation=2,
            group_by_query=False,
            output=str(tmp_path / "pairs"),
        )
    )
    assert [len(b) for b in grouped.batches] == [3, 3, 3]  # 24 queries in batches of 8
    assert sum(len(b) for b in pairs.batches) > 3 * 3 * 2  # 72 pairs: at least 9 an epoch
    for run in (grouped, pairs):
        assert run.total_steps == sum(math.ceil(len(b) / 2) for b in run.batches)
        assert run.scheduler.lr_lambdas[0](run.total_steps) == 0.0  # linear decay ends there
    assert grouped.identity["group_by_query"] is True


def test_a_multi_positive_run_masks_known_positives_logs_them_and_resumes(
    tmp_path, tiny_model_dir, capsys
):
    data = grouped_file(tmp_path)
    first = train(config(tmp_path, tiny_model_dir, data, max_steps=4))
    said = " ".join(capsys.readouterr().err.split())
    assert "24 queries in 72 training pairs, 24 with more than one positive (up to 3)" in said
    assert "6 hard negatives are known positives of their own query (masked in the loss)" in said
    assert first.steps == 4

    resumed = train(config(tmp_path, tiny_model_dir, data, resume=True))
    assert resumed.steps == 9  # 3 epochs of 3 batches: 24 queries, not 72 pairs
    log = [json.loads(line) for line in (tmp_path / "out" / "run" / "log.jsonl").open()]
    steps = [r for r in log if "loss" in r]
    assert sorted(Counter(r["step"] for r in steps)) == list(range(1, 10))
    assert all(math.isfinite(r["loss"]) for r in steps)
    # hard negatives that are another in-batch query's positive, or the row's own query's
    assert sum(r["masked_known_hard_negatives"] for r in steps) > 0
    assert all(r["masked_known_positives"] >= r["masked_known_hard_negatives"] for r in steps)

    with pytest.raises(RagtuneError, match="group_by_query True -> False"):
        train(config(tmp_path, tiny_model_dir, data, resume=True, group_by_query=False))
