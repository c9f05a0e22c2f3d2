"""The Encoder on a tiny random BERT: ordering, layers, truncation, prompts, save and load."""

import json

import numpy as np
import pytest
import torch

from ragtune.errors import RagtuneError
from ragtune.model import Encoder

TEXTS = [
    "a short text",
    "a much longer text that needs more tokens than the others do in this batch",
    "medium length text here",
    "x",
]


def test_encode_restores_input_order(tiny_encoder):
    together = tiny_encoder.encode(TEXTS, batch_size=2)
    one_by_one = np.stack([tiny_encoder.encode([t])[0] for t in TEXTS])
    assert together.dtype == np.float32 and together.shape == (4, 32)
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_encode_normalizes_by_config_and_per_call(tiny_encoder):
    emb = tiny_encoder.encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    raw = tiny_encoder.encode(TEXTS, normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)


def test_token_output_has_one_row_per_real_token(tiny_encoder):
    tokens = tiny_encoder.encode(TEXTS, output="tokens")
    n_tokens = [len(tiny_encoder.tokenizer(t)["input_ids"]) for t in TEXTS]
    assert [t.shape for t in tokens] == [(n, 32) for n in n_tokens]
    # Mean pooling is the average of those token vectors.
    pooled = tiny_encoder.encode(TEXTS, normalize=False)
    np.testing.assert_allclose(pooled, np.stack([t.mean(0) for t in tokens]), atol=1e-5)


def test_forward_matches_encode_and_keeps_graph(tiny_encoder):
    feats = tiny_encoder.tokenize(TEXTS)
    emb = tiny_encoder(feats)
    assert emb.requires_grad
    np.testing.assert_allclose(emb.detach().numpy(), tiny_encoder.encode(TEXTS), atol=1e-5)


def test_max_seq_length_truncates(tokenizer):
    from tests.conftest import make_tiny_encoder

    enc = make_tiny_encoder(tokenizer, max_seq_length=5)
    tokens = enc.encode(["one two three four five six seven eight"], output="tokens")
    assert tokens[0].shape[0] == 5


def test_intermediate_layer_and_truncation_agree(tiny_encoder):
    tiny_encoder.config.layer = 1
    layer1 = tiny_encoder.encode(TEXTS)
    full_last = Encoder(tiny_encoder.backbone, tiny_encoder.tokenizer, tiny_encoder.config)
    full_last.config.layer = None
    assert not np.allclose(layer1, full_last.encode(TEXTS))
    tiny_encoder.config.layer = 1
    small = tiny_encoder.truncate(1)
    assert small.num_layers == 1 and small.backbone.config.num_hidden_layers == 1
    np.testing.assert_allclose(small.encode(TEXTS), layer1, atol=1e-6)


def test_truncate_rejects_impossible_depth(tiny_encoder):
    with pytest.raises(RagtuneError, match="has 2"):
        tiny_encoder.truncate(3)


def test_save_and_load_round_trip_keeps_the_recipe(tmp_path, tokenizer):
    from tests.conftest import make_tiny_encoder

    enc = make_tiny_encoder(
        tokenizer, pooling="max", query_prompt="query: ", document_prompt="passage: "
    )
    enc.save(tmp_path / "m")
    files = {p.name for p in (tmp_path / "m").rglob("*")}
    assert {"modules.json", "model.safetensors", "ragtune.json", "config.json"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    again = Encoder.load(tmp_path / "m", device="cpu")
    assert again.config.pooling == "max" and again.config.query_prompt == "query: "
    np.testing.assert_allclose(again.encode_queries(TEXTS), enc.encode_queries(TEXTS), atol=1e-6)
    st_cfg = json.loads((tmp_path / "m" / "config_sentence_transformers.json").read_text())
    assert st_cfg["prompts"] == {"query": "query: ", "document": "passage: "}


def test_save_of_intermediate_layer_model_is_truncated(tmp_path, tiny_encoder):
    tiny_encoder.config.layer = 1
    expected = tiny_encoder.encode(TEXTS)
    tiny_encoder.save(tmp_path / "m")
    again = Encoder.load(tmp_path / "m", device="cpu")
    assert again.num_layers == 1 and again.config.layer is None
    np.testing.assert_allclose(again.encode(TEXTS), expected, atol=1e-6)


def test_failed_save_leaves_no_model_behind(tmp_path, tiny_encoder, monkeypatch):
    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tiny_encoder.tokenizer, "save_pretrained", explode)
    with pytest.raises(OSError, match="disk full"):
        tiny_encoder.save(tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_pickle_weights_are_refused(tmp_path, tiny_encoder):
    tiny_encoder.save(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    torch.save({}, tmp_path / "m" / "pytorch_model.bin")
    weights.unlink()
    with pytest.raises(RagtuneError, match="safetensors only"):
        Encoder.load(tmp_path / "m")


def test_layer_beyond_depth_is_rejected(tmp_path, tiny_encoder):
    tiny_encoder.save(tmp_path / "m")
    with pytest.raises(RagtuneError, match="layer 5 does not exist"):
        Encoder.load(tmp_path / "m", layer=5)


def test_fingerprint_changes_with_weights(tiny_encoder):
    before = tiny_encoder.fingerprint()
    assert before == tiny_encoder.fingerprint()
    with torch.no_grad():
        next(tiny_encoder.parameters()).add_(1e-3)
    assert tiny_encoder.fingerprint() != before
