"""The fused fp32 CPU inference path gives the Hugging Face forward's embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import RobertaConfig, RobertaModel

from ragtune.model import CpuFastPaths, Encoder, EncoderConfig, enable_cpu_fast_paths
from ragtune.model.cpu.fused import FusedForward, unsupported_reason
from tests.conftest import TINY_SIZES, make_tiny_encoder, tiny_bert

TEXTS = [
    "short",
    "a somewhat longer sentence about rivers and glaciers",
    "the longest text of the three, about compilers, satellites, harbors and old marble",
]

pytestmark = pytest.mark.skipif(
    unsupported_reason(tiny_bert()) is not None,
    reason="this PyTorch build has no oneDNN fused linear",
)


def _features(tokenizer) -> dict[str, torch.Tensor]:
    return dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))


def _fused(encoder: Encoder) -> FusedForward | None:
    """The fused forward encode() switched on for ``encoder``, if any."""
    paths = encoder.cpu_fast_paths
    return None if paths is None else paths.fused


@pytest.mark.parametrize("layers", [1, 2])
def test_fused_tokens_equal_hugging_face_on_real_tokens(tokenizer, layers):
    encoder = make_tiny_encoder(tokenizer)
    features = _features(tokenizer)
    with torch.inference_mode():
        hf = encoder.backbone(**features, output_hidden_states=True).hidden_states[layers]
        fused = FusedForward(encoder.backbone)(features, layers)
    real = features["attention_mask"].bool()
    torch.testing.assert_close(fused[real], hf[real], rtol=0, atol=1e-5)


def test_encode_uses_the_fused_path_and_gives_the_same_embeddings(tokenizer):
    fast = make_tiny_encoder(tokenizer)
    slow = make_tiny_encoder(tokenizer)
    slow.fused_inference = False
    a = fast.encode(TEXTS, batch_size=2)
    b = slow.encode(TEXTS, batch_size=2)
    assert isinstance(_fused(fast), FusedForward) and _fused(slow) is None
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    tokens_a = fast.encode(TEXTS, output="tokens")
    tokens_b = slow.encode(TEXTS, output="tokens")
    for x, y in zip(tokens_a, tokens_b, strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-5)


@pytest.mark.parametrize("layer", [1, 2])
def test_an_intermediate_layer_is_pooled_the_same_way(tokenizer, layer):
    fast = make_tiny_encoder(tokenizer, layer=layer)
    slow = make_tiny_encoder(tokenizer, layer=layer)
    slow.fused_inference = False
    np.testing.assert_allclose(fast.encode(TEXTS), slow.encode(TEXTS), rtol=0, atol=1e-6)


def test_roberta_is_supported_too(tokenizer):
    torch.manual_seed(0)
    cfg = RobertaConfig(
        vocab_size=tokenizer.vocab_size,
        **TINY_SIZES,
        max_position_embeddings=130,
        pad_token_id=tokenizer.pad_token_id,
    )
    backbone = RobertaModel(cfg, add_pooling_layer=False).eval()
    assert unsupported_reason(backbone) is None
    fast = Encoder.from_backbone(backbone, tokenizer, EncoderConfig(max_seq_length=64))
    slow = Encoder.from_backbone(backbone, tokenizer, EncoderConfig(max_seq_length=64))
    slow.fused_inference = False
    np.testing.assert_allclose(fast.encode(TEXTS), slow.encode(TEXTS), rtol=0, atol=1e-6)
    assert isinstance(_fused(fast), FusedForward)


def test_unsupported_models_fall_back_to_hugging_face(tokenizer):
    backbone = tiny_bert(tokenizer.vocab_size, hidden_act="relu").eval()
    assert "activation 'relu'" in (unsupported_reason(backbone) or "")
    encoder = Encoder.from_backbone(backbone, tokenizer, EncoderConfig(max_seq_length=64))
    out = encoder.encode(TEXTS)
    assert _fused(encoder) is None and out.shape == (3, 32)
    assert isinstance(encoder.cpu_fast_paths, CpuFastPaths)
    assert encoder.cpu_fast_paths.describe()["fused_inference"] == "no: activation 'relu'"


def test_bf16_and_training_do_not_use_the_fused_path(tokenizer, monkeypatch):
    encoder = make_tiny_encoder(tokenizer)
    assert enable_cpu_fast_paths(encoder, training=False).fused is not None
    calls: list[int] = []
    run = FusedForward.__call__
    monkeypatch.setattr(FusedForward, "__call__", lambda *a: calls.append(1) or run(*a))
    encoder.encode(TEXTS, batch_size=2, precision="bf16")
    assert calls == []  # only fp32 runs through it
    encoder.encode(TEXTS, batch_size=2)
    assert calls == [1, 1]  # one call per batch of two
    encoder.train()
    features = encoder.tokenize(TEXTS)
    encoder(features).sum().backward()  # forward() is always the autograd-capable HF path
    assert encoder.backbone.encoder.layer[0].output.dense.weight.grad is not None
