"""What a saved embedding model says about itself.

Pooling, normalisation, layer, maximum length and prompts decide what a vector means; they are
saved with the weights (in the sentence-transformers files and in ``ragtune.json``) so that they
survive save, load, export and serving.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Literal, get_args

from ragtune.config import check_choice, check_int
from ragtune.errors import RagtuneError
from ragtune.model.pooling import POOLING_MODES, PoolingMode

Similarity = Literal["cosine", "dot"]


@dataclass
class EncoderConfig:
    """How token embeddings become one vector, and how texts are prepared.

    Checked at construction, so a hand-edited ``ragtune.json`` fails with one line naming the key.
    """

    SECTION: ClassVar[str] = "encoder"

    pooling: PoolingMode = "mean"
    normalize: bool = True
    layer: int | None = None
    """Pool from this hidden layer (1..num_layers); None means the final layer."""
    max_seq_length: int = 256
    query_prompt: str = ""
    document_prompt: str = ""
    similarity: Similarity = "cosine"
    base_model: str = ""
    """Where the weights came from, for provenance only."""

    def __post_init__(self) -> None:
        check_choice("encoder.pooling", self.pooling, POOLING_MODES)
        check_choice("encoder.similarity", self.similarity, get_args(Similarity))
        if not isinstance(self.normalize, bool):
            raise RagtuneError(f"encoder.normalize must be true or false, got {self.normalize!r}")
        check_int("encoder.max_seq_length", self.max_seq_length, 1)
        if self.layer is not None:
            check_int("encoder.layer", self.layer, 1, meaning="1 = the first transformer layer")
        for key in ("query_prompt", "document_prompt", "base_model"):
            if not isinstance(getattr(self, key), str):
                raise RagtuneError(f"encoder.{key} must be text, got {getattr(self, key)!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RagtuneError(
                f"unknown encoder config keys {unknown}; valid keys: {sorted(known)}"
            )
        return cls(**data)
