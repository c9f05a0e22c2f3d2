"""The fused fp32 CPU inference path gives the Hugging Face forward's embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import RobertaConfig, RobertaModel

from ragtune.model import CpuFastPaths, Encoder, EncoderConfig, enable_cpu_fast_paths
from ragtune.model.cpu.bf16 import cpu_supports_bf16
from ragtune.model.cpu.fused import FusedBf16Forward, FusedForward, unsupported_reason
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


def test_bf16_runs_its_own_fused_forward_and_training_the_hugging_face_one(tokenizer, monkeypatch):
    encoder = make_tiny_encoder(tokenizer)
    assert enable_cpu_fast_paths(encoder, training=False).fused is not None
    calls: list[str] = []
    run, run16 = FusedForward.__call__, FusedBf16Forward.__call__
    monkeypatch.setattr(FusedForward, "__call__", lambda *a: calls.append("fp32") or run(*a))
    monkeypatch.setattr(FusedBf16Forward, "__call__", lambda *a: calls.append("bf16") or run16(*a))
    encoder.encode(TEXTS, batch_size=2, precision="bf16")
    if cpu_supports_bf16():
        assert calls == ["bf16", "bf16"]  # one call per batch of two
    else:  # oneDNN builds no bf16 inner product on AVX2 alone: bf16 autocast of the HF layers
        assert calls == []
    done = len(calls)
    encoder.encode(TEXTS, batch_size=2, precision="fp32")
    assert calls[done:] == ["fp32", "fp32"]
    encoder.train()
    features = encoder.tokenize(TEXTS)
    encoder(features).sum().backward()  # forward() is always the autograd-capable HF path
    assert encoder.backbone.encoder.layer[0].output.dense.weight.grad is not None


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_fused_bf16_agrees_with_bf16_autocast_of_the_hugging_face_forward(tokenizer):
    encoder = make_tiny_encoder(tokenizer)
    fused16 = encoder.encode(TEXTS, precision="bf16")
    fp32 = encoder.encode(TEXTS, precision="fp32")
    encoder.fused_inference = False  # bf16 autocast over the Hugging Face layers
    autocast = encoder.encode(TEXTS, precision="bf16")
    # both are bf16 GEMMs with fp32 LayerNorm and residual: as close to fp32 as each other
    assert _cosines(fused16, fp32).min() > 0.9995
    assert _cosines(autocast, fp32).min() > 0.9995
    assert _cosines(fused16, autocast).min() > 0.9995
    assert not np.array_equal(fused16, fp32)  # the GEMMs did run in bf16


def test_fused_bf16_casts_the_weights_again_after_they_change(tokenizer):
    encoder = make_tiny_encoder(tokenizer)
    before = encoder.encode(TEXTS, precision="bf16")
    with torch.no_grad():  # what an optimizer step does between two evaluations
        torch.manual_seed(1)
        for p in encoder.backbone.encoder.parameters():
            p.add_(torch.randn_like(p))
    after = encoder.encode(TEXTS, precision="bf16")
    encoder.fused_inference = False
    reference = encoder.encode(TEXTS, precision="bf16")
    assert _cosines(after, reference).min() > 0.9995
    assert _cosines(after, before).min() < 0.99  # the old bf16 copies were not used


def test_padding_is_skipped_and_each_text_encodes_as_it_would_alone(tokenizer, monkeypatch):
    """The linears run on the real tokens only (fused.real_rows); a text's tokens and vector are
    the ones it gets in a batch of its own, where there is no padding at all."""
    from ragtune.model.cpu import fused as fused_module

    encoder = make_tiny_encoder(tokenizer)
    forward = FusedForward(encoder.backbone)
    features = _features(tokenizer)
    mask = features["attention_mask"]
    rows = fused_module.real_rows(mask)
    assert rows is not None and rows.numel() == int(mask.sum()) < mask.numel()
    assert fused_module.real_rows(torch.ones(2, 5, dtype=torch.long)) is None
    little = torch.ones(2, 10, dtype=torch.long)
    little[1, -2:] = 0  # 10% padding: below UNPAD_FROM, the padded batch is cheaper
    assert fused_module.real_rows(little) is None
    with torch.inference_mode():
        batch = forward(features, 2)  # (3, T, H), padded rows zero
        for i, text in enumerate(TEXTS):
            alone = forward(dict(tokenizer([text], return_tensors="pt")), 2)[0]
            n = int(mask[i].sum())
            torch.testing.assert_close(batch[i, :n], alone, rtol=0, atol=1e-5)
            assert not batch[i, n:].any()  # padding comes back as zeros
        seen: list[int] = []  # what the linears were given: real tokens only, never B x T
        real_linear = fused_module._linear
        monkeypatch.setattr(
            fused_module, "_linear", lambda x, lin: seen.append(x.shape[0]) or real_linear(x, lin)
        )
        forward(features, 1)
    assert seen == [int(mask.sum())] * 3  # query, key and value of the one layer
