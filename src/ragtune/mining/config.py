"""MiningConfig: how hard negatives are found, chosen and filtered (one dataclass, plain values)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, get_args

from ragtune.errors import RagtuneError

Source = Literal["bm25", "dense", "both"]
SOURCES: tuple[str, ...] = get_args(Source)
Sampling = Literal["top", "random"]
SAMPLINGS: tuple[str, ...] = get_args(Sampling)
DenseSearch = Literal["auto", "exact", "hnsw"]
DENSE_SEARCHES: tuple[str, ...] = get_args(DenseSearch)


@dataclass
class MiningConfig:
    """Settings of :func:`ragtune.mining.mine_hard_negatives`.

    Ranks are counted per source after the query's own positives are taken out, starting at 0:
    the window is ranks ``range_min .. range_max - 1`` (``range_min=10`` skips the ten documents
    a source ranks highest, where unlabelled relevant documents crowd). ``num_negatives`` are
    then taken from the window's survivors: the ``"top"`` (highest teacher score first) or a seeded
    ``"random"`` sample.

    The false-negative filters compare a candidate's teacher score ``s`` with the example's
    positive score ``p`` (None switches a filter off); a candidate is dropped when

    * ``margin``:          ``s > p - margin``           (absolute margin below the positive)
    * ``relative_margin``: ``s > relative_margin * p``  (NV-Retriever's TopK-PercPos, e.g. 0.95)
    * ``max_score``:       ``s > max_score``            (absolute ceiling)

    The teacher is the dense encoder (cosine or dot score, as its config says) or, when one is
    given, a cross-encoder that rescores every candidate in the window.

    Every value is checked at construction; errors name the key (``mining.num_negatives``).
    """

    SECTION: ClassVar[str] = "mining"

    source: Source = "dense"
    num_negatives: int = 5
    range_min: int = 0
    range_max: int = 100
    sampling: Sampling = "top"
    margin: float | None = None
    relative_margin: float | None = None
    max_score: float | None = None
    seed: int = 0
    batch_size: int = 32
    cache_dir: str | None = None
    """Corpus embeddings are cached here, in the same files ``evaluate_encoder`` reads."""
    dense_search: DenseSearch = "auto"
    """``exact``: numpy top-k; ``hnsw``: FAISS HNSW; ``auto``: exact below 100k documents."""
    cross_encoder: str | None = None
    """A local sequence-classification model folder that rescores candidates (optional)."""
    keep_incomplete: bool = False
    """Also write examples that found fewer than ``num_negatives`` (at least one) negatives."""

    def __post_init__(self) -> None:
        for name, value, valid in (
            ("source", self.source, SOURCES),
            ("sampling", self.sampling, SAMPLINGS),
            ("dense_search", self.dense_search, DENSE_SEARCHES),
        ):
            if value not in valid:
                raise RagtuneError(
                    f"unknown {name} {value!r}; choose one of {', '.join(map(repr, valid))}"
                )
        for key in ("num_negatives", "batch_size"):
            count = getattr(self, key)
            _require(_integer(count) and count >= 1, key, ">= 1", count)
        for key in ("range_min", "range_max"):
            _require(_integer(getattr(self, key)), key, "an integer", getattr(self, key))
        if not 0 <= self.range_min < self.range_max:
            raise RagtuneError(
                f"mining.range_min and range_max need 0 <= range_min < range_max, "
                f"got range_min={self.range_min}, range_max={self.range_max}"
            )
        if self.margin is not None:
            _require(
                _finite(self.margin) and self.margin >= 0,
                "margin",
                "a finite number >= 0",
                self.margin,
            )
        if self.relative_margin is not None:
            share = self.relative_margin
            _require(
                _finite(share) and 0 < share <= 1,
                "relative_margin",
                "a finite number in (0, 1]",
                share,
            )
        if self.max_score is not None:
            _require(_finite(self.max_score), "max_score", "a finite number", self.max_score)
        _require(
            _integer(self.seed) and 0 <= self.seed <= 2**32 - 1,
            "seed",
            "in [0, 4294967295]",
            self.seed,
        )
        for key, hint in (
            ("cache_dir", "a folder for the embedding cache"),
            ("cross_encoder", "a model folder"),
        ):
            path = getattr(self, key)
            if path is not None and not (isinstance(path, str) and path.strip()):
                raise RagtuneError(f"mining.{key} must not be empty: give {hint}, or leave it out")

    @property
    def filters_on(self) -> bool:
        """True when any false-negative filter is set (they need a teacher score)."""
        return any(v is not None for v in (self.margin, self.relative_margin, self.max_score))

    @property
    def needs_encoder(self) -> bool:
        """Dense candidates need the encoder; filters need it unless a cross-encoder scores."""
        return self.source != "bm25" or (self.filters_on and self.cross_encoder is None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _require(ok: bool, key: str, allowed: str, value: object) -> None:
    """Raise ``mining.<key> must be <allowed>, got <value>`` unless ``ok``."""
    if not ok:
        raise RagtuneError(f"mining.{key} must be {allowed}, got {value!r}")


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
