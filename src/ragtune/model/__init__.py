"""The embedding model: transformer + pooling + normalisation, resolution and saving."""

from ragtune.model.encoder import Encoder
from ragtune.model.pooling import POOLING_MODES, PoolingMode, pool
from ragtune.model.precision import cpu_supports_bf16
from ragtune.model.resolve import DEFAULT_MODEL, resolve_model_path
from ragtune.model.spec import EncoderConfig

__all__ = [
    "DEFAULT_MODEL",
    "POOLING_MODES",
    "Encoder",
    "EncoderConfig",
    "PoolingMode",
    "cpu_supports_bf16",
    "pool",
    "resolve_model_path",
]
