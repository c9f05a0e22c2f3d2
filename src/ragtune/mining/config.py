"""MiningConfig: how hard negatives are found, chosen and filtered (one dataclass, plain values)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

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
    """

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
        if self.num_negatives < 1:
            raise RagtuneError(f"num_negatives must be at least 1, got {self.num_negatives}")
        if not 0 <= self.range_min < self.range_max:
            raise RagtuneError(
                f"need 0 <= range_min < range_max, got range_min={self.range_min}, "
                f"range_max={self.range_max}"
            )
        if self.margin is not None and self.margin < 0:
            raise RagtuneError(f"margin must be >= 0, got {self.margin}")
        if self.relative_margin is not None and not 0 < self.relative_margin <= 1:
            raise RagtuneError(f"relative_margin must be in (0, 1], got {self.relative_margin}")
        if self.batch_size < 1:
            raise RagtuneError(f"batch_size must be at least 1, got {self.batch_size}")

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
