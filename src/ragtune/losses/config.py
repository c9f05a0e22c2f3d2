"""LossConfig: the loss section of a training config (one dataclass, plain values)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

from ragtune.losses.checks import LossError, check_choice
from ragtune.losses.cosine_similarity import LABEL_RANGES, LabelRange
from ragtune.losses.similarity import DISTANCES, SIMILARITIES, Distance, Similarity

LossName = Literal["infonce", "contrastive", "online_contrastive", "triplet", "cosine"]
LOSS_NAMES: tuple[str, ...] = get_args(LossName)


@dataclass
class LossConfig:
    """Which loss to train with and its settings; fields a loss does not use must stay default.

    ``scale``, ``similarity``, ``symmetric``, ``false_negative_margin`` and ``mask_duplicates``
    are InfoNCE's; ``margin`` and ``distance`` are the triplet and (online) contrastive losses'
    (``margin=None`` takes the loss's default for the distance); ``label_range`` is the cosine
    loss's. ``matryoshka_dims`` (empty = off) wraps any loss in
    :class:`~ragtune.losses.matryoshka.MatryoshkaLoss` (``matryoshka_weights`` empty = all 1).
    ``cache_mini_batch_size`` > 0 turns on GradCache with that many rows per encoder pass.

    Every value is checked at construction; errors name the key as ``--set`` takes it
    (``loss.scale``). Whether a Matryoshka dim fits the model is known only once it loads.
    """

    SECTION: ClassVar[str] = "loss"

    name: LossName = "infonce"
    scale: float = 20.0
    similarity: Similarity = "cosine"
    symmetric: bool = False
    margin: float | None = None
    distance: Distance = "cosine"
    false_negative_margin: float | None = None
    mask_duplicates: bool = True
    label_range: LabelRange = "[0,1]"
    matryoshka_dims: tuple[int, ...] = ()
    matryoshka_weights: tuple[float, ...] = ()
    cache_mini_batch_size: int = 0

    def __post_init__(self) -> None:
        check_choice("loss", self.name, LOSS_NAMES)
        check_choice("similarity", self.similarity, SIMILARITIES)
        check_choice("distance", self.distance, DISTANCES)
        check_choice("label_range", self.label_range, LABEL_RANGES)
        # scale multiplies cosine similarities before the softmax (1 / temperature): 0 makes every
        # candidate equally likely, a negative scale rewards ranking the positive last.
        _require(_finite(self.scale) and self.scale > 0, "scale", "a finite number > 0", self.scale)
        margin = self.margin  # None: the loss's default for its distance
        if margin is not None:  # at 0 a contrastive loss no longer pushes negatives away
            _require(_finite(margin) and margin > 0, "margin", "a finite number > 0", margin)
        masking = self.false_negative_margin  # None: no masking by score
        if masking is not None:
            _require(
                _finite(masking) and masking >= 0,
                "false_negative_margin",
                "a finite number >= 0",
                masking,
            )
        dims = self.matryoshka_dims
        _require(
            all(_integer(d) and d >= 1 for d in dims) and len(set(dims)) == len(dims),
            "matryoshka_dims",
            "distinct integers >= 1 (empty: off)",
            dims,
        )
        _require(
            all(_finite(w) and w > 0 for w in self.matryoshka_weights),
            "matryoshka_weights",
            "finite numbers > 0 (empty: all 1)",
            self.matryoshka_weights,
        )
        if self.matryoshka_weights and len(self.matryoshka_weights) != len(self.matryoshka_dims):
            raise LossError(
                f"loss.matryoshka_weights {self.matryoshka_weights} must have one entry per "
                f"matryoshka_dims {self.matryoshka_dims} (or be empty for all 1)"
            )
        size = self.cache_mini_batch_size
        _require(
            _integer(size) and size >= 0, "cache_mini_batch_size", ">= 0 (0 = no GradCache)", size
        )


def _require(ok: bool, key: str, allowed: str, value: object) -> None:
    """Raise ``loss.<key> must be <allowed>, got <value>`` unless ``ok``."""
    if not ok:
        raise LossError(f"loss.{key} must be {allowed}, got {value!r}")


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
