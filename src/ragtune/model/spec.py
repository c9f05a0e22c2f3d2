"""What a saved embedding model says about itself.

Pooling, normalisation, layer, maximum length and prompts decide what a vector means; they are
saved with the weights (in the sentence-transformers files and in ``ragtune.json``) so that they
survive save, load, export and serving.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from ragtune.errors import RagtuneError
from ragtune.model.pooling import PoolingMode, check_pooling_mode

Similarity = Literal["cosine", "dot"]


@dataclass
class EncoderConfig:
    """How token embeddings become one vector, and how texts are prepared."""

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
        check_pooling_mode(self.pooling)
        if self.similarity not in ("cosine", "dot"):
            raise RagtuneError(f"unknown similarity {self.similarity!r}; choose cosine or dot")
        if self.max_seq_length < 1:
            raise RagtuneError(f"max_seq_length must be positive, got {self.max_seq_length}")
        if self.layer is not None and self.layer < 1:
            raise RagtuneError(
                f"layer must be >= 1 (1 = first transformer layer), got {self.layer}"
            )

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
