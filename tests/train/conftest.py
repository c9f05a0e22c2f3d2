"""Fixtures for training tests: a tiny model saved to disk and small synthetic pair files."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.conftest import make_tiny_encoder

TOPICS = [
    "apple",
    "river",
    "engine",
    "violin",
    "glacier",
    "pepper",
    "satellite",
    "harbor",
    "tulip",
    "compiler",
    "volcano",
    "lantern",
    "falcon",
    "marble",
    "orbit",
    "cactus",
]


def synthetic_pairs(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Queries that share a topic word with their positive document, and little else."""
    rng = random.Random(seed)
    filler = ["notes", "about", "the", "history", "of", "many", "things", "and", "more", "facts"]
    rows = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        words = rng.sample(filler, 5)
        rows.append(
            {
                "query": f"what is a {topic} number {i}",
                "positive": f"{topic} {topic} " + " ".join(words) + f" item {i}",
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def tiny_model_dir(tmp_path, tokenizer) -> Path:
    """A tiny random BERT saved as a model folder, with dropout off for exact comparisons."""
    enc = make_tiny_encoder(tokenizer)
    enc.backbone.config.hidden_dropout_prob = 0.0
    enc.backbone.config.attention_probs_dropout_prob = 0.0
    return enc.save(tmp_path / "tiny")


@pytest.fixture
def pairs_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "pairs.jsonl", synthetic_pairs(96))
