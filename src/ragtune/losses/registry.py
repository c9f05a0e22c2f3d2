"""Build losses by name or from a LossConfig."""

from __future__ import annotations

import inspect
from dataclasses import fields
from typing import Any

from torch import nn

from ragtune.losses.checks import LossError, check_choice
from ragtune.losses.config import LOSS_NAMES, LossConfig, LossName
from ragtune.losses.contrastive import ContrastiveLoss
from ragtune.losses.cosine_similarity import CosineSimilarityLoss
from ragtune.losses.gradcache import GradCache
from ragtune.losses.infonce import InfoNCELoss
from ragtune.losses.matryoshka import MatryoshkaLoss
from ragtune.losses.online_contrastive import OnlineContrastiveLoss
from ragtune.losses.triplet import TripletLoss

LOSSES: dict[str, type[nn.Module]] = {
    "infonce": InfoNCELoss,
    "contrastive": ContrastiveLoss,
    "online_contrastive": OnlineContrastiveLoss,
    "triplet": TripletLoss,
    "cosine": CosineSimilarityLoss,
}

# LossConfig field -> constructor argument, per loss. Fields not listed must stay at default.
_CONFIG_FIELDS: dict[str, dict[str, str]] = {
    "infonce": {
        "scale": "scale",
        "similarity": "similarity",
        "symmetric": "symmetric",
        "false_negative_margin": "false_negative_margin",
        "mask_duplicates": "mask_duplicates",
    },
    "contrastive": {"margin": "margin", "distance": "distance"},
    "online_contrastive": {"margin": "margin", "distance": "distance"},
    "triplet": {"margin": "margin", "distance": "distance"},
    "cosine": {"label_range": "label_range"},
}
_WRAPPER_FIELDS = ("name", "matryoshka_dims", "matryoshka_weights", "cache_mini_batch_size")


def build_loss(name: LossName, **kwargs: Any) -> nn.Module:
    """Construct the loss called ``name`` with ``kwargs``; unknown names or arguments raise.

    >>> build_loss("triplet", margin=0.2, distance="euclidean")
    """
    check_choice("loss", name, LOSS_NAMES)
    cls = LOSSES[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise LossError(
            f"loss {name!r} does not take {', '.join(unknown)}; it accepts {', '.join(accepted)}"
        )
    return cls(**kwargs)


def build_from_config(cfg: LossConfig) -> nn.Module:
    """The loss described by ``cfg``, wrapped in MatryoshkaLoss when ``matryoshka_dims`` is set.

    A field the chosen loss does not use but that differs from its default raises, so a setting
    can never be silently ignored (e.g. ``margin`` with ``name="infonce"``).
    """
    check_choice("loss", cfg.name, LOSS_NAMES)
    used = _CONFIG_FIELDS[cfg.name]
    default = LossConfig()
    ignored = [
        f.name
        for f in fields(cfg)
        if f.name not in used
        and f.name not in _WRAPPER_FIELDS
        and getattr(cfg, f.name) != getattr(default, f.name)
    ]
    if ignored:
        raise LossError(
            f"loss {cfg.name!r} does not use {', '.join(ignored)}; "
            f"its settings are {', '.join(used)}"
        )
    loss = build_loss(cfg.name, **{arg: getattr(cfg, field) for field, arg in used.items()})
    if cfg.matryoshka_dims:
        loss = MatryoshkaLoss(loss, cfg.matryoshka_dims, cfg.matryoshka_weights or None)
    return loss


def wrap_grad_cache(loss: nn.Module, cfg: LossConfig) -> GradCache | None:
    """GradCache around ``loss`` with ``cfg.cache_mini_batch_size`` rows per pass, or None if 0."""
    if cfg.cache_mini_batch_size == 0:
        return None
    return GradCache(loss, mini_batch_size=cfg.cache_mini_batch_size)
