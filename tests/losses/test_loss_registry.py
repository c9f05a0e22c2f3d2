"""build_loss / LossConfig: every loss by name, settings validated, nothing silently ignored."""

from __future__ import annotations

import pytest
import torch

import ragtune.losses as losses
from ragtune.losses import (
    LOSS_NAMES,
    ContrastiveLoss,
    CosineSimilarityLoss,
    GradCache,
    InfoNCELoss,
    LossConfig,
    LossError,
    MatryoshkaLoss,
    OnlineContrastiveLoss,
    TripletLoss,
    build_from_config,
    build_loss,
    wrap_grad_cache,
)


def test_every_name_builds_its_loss():
    expected = {
        "infonce": InfoNCELoss,
        "contrastive": ContrastiveLoss,
        "online_contrastive": OnlineContrastiveLoss,
        "triplet": TripletLoss,
        "cosine": CosineSimilarityLoss,
    }
    assert set(LOSS_NAMES) == set(expected)
    for name, cls in expected.items():
        assert type(build_loss(name)) is cls  # type: ignore[arg-type]
        assert type(build_from_config(LossConfig(name=name))) is cls  # type: ignore[arg-type]


def test_kwargs_reach_the_loss():
    loss = build_loss("infonce", scale=50.0, similarity="dot", symmetric=True)
    assert (loss.scale, loss.similarity, loss.symmetric) == (50.0, "dot", True)
    assert build_loss("triplet", margin=0.2, distance="euclidean").margin == 0.2


def test_unknown_names_and_arguments_raise_listing_the_valid_ones():
    with pytest.raises(
        ValueError, match="unknown loss 'mnrl'; choose one of 'infonce', 'contrastive'"
    ):
        build_loss("mnrl")  # type: ignore[arg-type]
    with pytest.raises(
        LossError, match="loss 'cosine' does not take margin; it accepts label_range"
    ):
        build_loss("cosine", margin=0.5)
    with pytest.raises(LossError, match="unknown loss 'ranknet'"):
        LossConfig(name="ranknet")  # type: ignore[arg-type]
    with pytest.raises(LossError, match="unknown similarity 'l2'"):
        LossConfig(similarity="l2")  # type: ignore[arg-type]


def test_config_fields_the_loss_does_not_use_must_stay_default():
    with pytest.raises(LossError, match="loss 'infonce' does not use margin"):
        build_from_config(LossConfig(name="infonce", margin=0.3))
    with pytest.raises(LossError, match="loss 'triplet' does not use scale, symmetric"):
        build_from_config(LossConfig(name="triplet", scale=30.0, symmetric=True))


def test_config_settings_reach_the_loss():
    loss = build_from_config(
        LossConfig(scale=40.0, symmetric=True, false_negative_margin=0.1, mask_duplicates=False)
    )
    assert isinstance(loss, InfoNCELoss)
    assert (loss.scale, loss.symmetric, loss.false_negative_margin, loss.mask_duplicates) == (
        40.0,
        True,
        0.1,
        False,
    )
    contrastive = build_from_config(LossConfig(name="contrastive", distance="euclidean"))
    assert contrastive.margin == 1.0  # margin None -> the loss's default for the distance
    cosine = build_from_config(LossConfig(name="cosine", label_range="[-1,1]"))
    assert cosine.label_range == "[-1,1]"


def test_matryoshka_and_grad_cache_wrappers():
    cfg = LossConfig(
        matryoshka_dims=(32, 16), matryoshka_weights=(1.0, 0.5), cache_mini_batch_size=8
    )
    loss = build_from_config(cfg)
    assert isinstance(loss, MatryoshkaLoss) and isinstance(loss.loss, InfoNCELoss)
    assert (loss.dims, loss.weights) == ((32, 16), (1.0, 0.5))
    assert loss(query=torch.ones(2, 32), positive=torch.ones(2, 32)).isfinite()
    gc = wrap_grad_cache(loss, cfg)
    assert isinstance(gc, GradCache) and gc.mini_batch_size == 8 and gc.loss is loss
    assert gc.inputs == ("query", "positive")
    assert wrap_grad_cache(loss, LossConfig()) is None
    with pytest.raises(LossError, match="one entry per matryoshka_dims"):
        LossConfig(matryoshka_dims=(32, 16), matryoshka_weights=(1.0,))
    with pytest.raises(LossError, match="cache_mini_batch_size must be >= 0"):
        LossConfig(cache_mini_batch_size=-1)


def test_public_api_is_exported():
    for name in losses.__all__:
        assert hasattr(losses, name), name
