"""The embedding model: transformer + pooling + normalisation, resolution and saving.

:func:`load_model` opens any model folder or hub id as an :class:`EmbeddingModel` (the PyTorch
:class:`Encoder`, or the ONNX Runtime encoder for an export); :mod:`ragtune.model.cpu` holds the
CPU speed paths, which training and encoding switch on explicitly.
"""

from ragtune.model.cpu import CpuFastPaths, cpu_supports_bf16, enable_cpu_fast_paths
from ragtune.model.encoder import Encoder
from ragtune.model.loading import load_model
from ragtune.model.pooling import POOLING_MODES, PoolingMode, pool
from ragtune.model.protocol import EmbeddingModel
from ragtune.model.resolve import DEFAULT_MODEL, resolve_model_path
from ragtune.model.spec import EncoderConfig

__all__ = [
    "DEFAULT_MODEL",
    "POOLING_MODES",
    "CpuFastPaths",
    "EmbeddingModel",
    "Encoder",
    "EncoderConfig",
    "PoolingMode",
    "cpu_supports_bf16",
    "enable_cpu_fast_paths",
    "load_model",
    "pool",
    "resolve_model_path",
]
