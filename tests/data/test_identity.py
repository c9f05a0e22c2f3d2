"""One rule for "the same text", and the four places that act on it agree with each other."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import torch

from ragtune.data import Document, Example, check_data, pairs_to_triplets
from ragtune.data.identity import near_duplicate_key, text_identity
from ragtune.mining.filters import is_positive, normalise_text
from ragtune.train.batching import build_training_set, collate, epoch_batches

COMPOSED = "café au lait"  # "é" as one code point
DECOMPOSED = unicodedata.normalize("NFD", COMPOSED)  # "e" + a combining accent


def test_spacing_and_unicode_form_aside_texts_are_the_same():
    assert COMPOSED != DECOMPOSED
    assert text_identity(DECOMPOSED) == text_identity(COMPOSED) == "café au lait"
    assert text_identity("  Vitamin\u00a0 C\n\t") == "Vitamin C"
    assert text_identity("Vitamin C") != text_identity("vitamin c")  # case is kept
    assert text_identity("Parser()") != text_identity("parser()")


def test_the_near_duplicate_key_also_folds_case_and_drops_punctuation():
    assert near_duplicate_key("What is TEA?") == near_duplicate_key("what is tea") == "what is tea"
    assert near_duplicate_key(DECOMPOSED.upper()) == "café au lait"


def test_mining_uses_the_same_rule():
    assert normalise_text is text_identity
    texts = [normalise_text(t) for t in [DECOMPOSED, "Cafe au lait", "café  au lait"]]
    _, by_text = is_positive(["x", "y", "z"], texts, set(), {text_identity(COMPOSED)})
    assert by_text.tolist() == [True, False, True]


def test_random_negatives_never_draw_a_copy_in_another_unicode_form():
    pairs = [Example("q1", COMPOSED, positive_id="a"), Example("q2", "tea", positive_id="b")]
    corpus = {
        "a": Document("a", COMPOSED),
        "c": Document("c", DECOMPOSED),
        "d": Document("d", "milk"),
    }
    (first, _) = pairs_to_triplets(pairs, negatives_per_query=1, corpus=corpus, seed=0)
    assert first.negatives == ("milk",)  # "c" is the positive written another way


def test_training_masks_copies_but_tokenizes_each_text_as_written(tokenizer):
    examples = [
        Example("q one", COMPOSED),
        Example("q two", DECOMPOSED),  # the same document: a false negative for q one
        Example("q three", "Café au lait"),  # differs in case: a real negative
    ]
    data = build_training_set(examples, tokenizer, max_length=32)
    assert data.num_texts == 6  # every distinct text keeps its own tokens
    batch = collate(data, [0, 1, 2], pad_id=0)
    ids = batch["extra"]["positive_ids"]
    assert ids[0] == ids[1] and ids[2] != ids[0]
    for batch_rows in epoch_batches(data, batch_size=3, seed=0, epoch=0):
        assert not {0, 1} <= set(batch_rows)  # never one batch: its positive would be a negative
    assert torch.equal(batch["extra"]["query_ids"], torch.tensor([0, 2, 3]))


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_the_data_check_counts_what_training_would_treat_as_one(tmp_path):
    f = jsonl(tmp_path / "t.jsonl", [
        {"query": "q", "positive": COMPOSED, "negative": "milk"},
        {"query": "q ", "positive": "café  au lait", "negative": "milk"},  # the row again
        {"query": "q2", "positive": "tea", "negative": DECOMPOSED},  # fine: not q2's positive
        {"query": "q", "positive": "water", "negative": DECOMPOSED},  # q's own positive
    ])  # fmt: skip
    report = check_data(f)
    found = {x.code: x for x in report.findings}
    assert (report.counts["unique queries"], report.counts["unique documents"]) == (2, 4)
    assert found["duplicate_rows"].count == 1
    assert found["duplicate_rows"].message == (
        "1 row(s) repeat an earlier row (the same texts, spacing aside)"
    )
    assert (found["negative_is_positive"].count, found["negative_is_positive"].examples) == (
        1, ["q"],
    )  # fmt: skip
