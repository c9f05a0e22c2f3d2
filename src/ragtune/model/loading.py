"""Open any model folder or hub id as an :class:`~ragtune.model.protocol.EmbeddingModel`.

One rule: a folder whose ``ragtune.json`` says ``"format": "onnx"`` (written by ``ragtune export
--format onnx``) runs through ONNX Runtime; everything else (ragtune, sentence-transformers or
plain Hugging Face folders, hub ids) is the PyTorch :class:`~ragtune.model.Encoder`.
``Encoder.load`` opens PyTorch models only, so that code which trains gets a model it can train.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ragtune.model.encoder import Encoder
from ragtune.model.onnx import OnnxEncoder, is_onnx_folder
from ragtune.model.protocol import EmbeddingModel

if TYPE_CHECKING:
    import torch


def load_model(
    name_or_path: str | os.PathLike[str],
    *,
    pooling: str | None = None,
    normalize: bool | None = None,
    layer: int | None = None,
    max_seq_length: int | None = None,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
    device: str | torch.device | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
) -> EmbeddingModel:
    """An ONNX export as an :class:`OnnxEncoder`, anything else as an :class:`Encoder`.

    Keyword arguments override what the folder says about itself, as in :meth:`Encoder.load`;
    an ONNX graph refuses other pooling, normalisation or layer than it was exported with.
    """
    load = OnnxEncoder.load if is_onnx_folder(name_or_path) else Encoder.load
    return load(
        name_or_path,
        pooling=pooling,
        normalize=normalize,
        layer=layer,
        max_seq_length=max_seq_length,
        query_prompt=query_prompt,
        document_prompt=document_prompt,
        device=device,
        trust_remote_code=trust_remote_code,
        revision=revision,
    )
