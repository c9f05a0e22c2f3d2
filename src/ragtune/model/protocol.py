"""What every embedding model offers its callers: the :class:`EmbeddingModel` protocol.

Two classes implement it: :class:`ragtune.model.Encoder` (PyTorch; it also trains, truncates
and saves) and :class:`ragtune.model.onnx.OnnxEncoder` (an exported graph run by ONNX Runtime,
inference only). Evaluation, search, the index builder and the server take an
``EmbeddingModel``, so either kind of folder works there; :func:`ragtune.model.load_model`
opens both. Code that trains takes an ``Encoder``.

Example::

    model = load_model("runs/demo/model-onnx-int8")  # or a PyTorch folder, or a hub id
    assert isinstance(model, EmbeddingModel)
    vectors = model.encode_documents(["A passage."])  # (1, model.dim) float32
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from ragtune.model.precision import Precision
from ragtune.model.spec import EncoderConfig

Output = Literal["sentence", "tokens"]


@runtime_checkable
class EmbeddingModel(Protocol):
    """Texts in, float32 vectors out, with the recipe and identity callers record."""

    config: EncoderConfig
    """Pooling, normalisation, layer, ``max_seq_length``, prompts, similarity, provenance."""

    tokenizer: Any
    """The Hugging Face tokenizer (chunking and length checks count tokens with it)."""

    @property
    def dim(self) -> int:
        """Length of one embedding vector."""
        ...

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        prompt: str | None = None,
        normalize: bool | None = None,
        show_progress: bool | None = None,
        output: Output = "sentence",
        precision: Precision = "auto",
        description: str = "encoding",
    ) -> Any:
        """Embed texts: float32 array (N, D), or a list of (tokens_i, D) arrays for ``tokens``."""
        ...

    def encode_queries(self, texts: Sequence[str], **kwargs: Any) -> Any:
        """:meth:`encode` with the model's query prompt."""
        ...

    def encode_documents(self, texts: Sequence[str], **kwargs: Any) -> Any:
        """:meth:`encode` with the model's document prompt."""
        ...

    def fingerprint(self) -> str:
        """sha256 over the recipe and the weights: the key of embedding caches and indexes."""
        ...

    def describe(self) -> dict[str, Any]:
        """What ``ragtune info`` prints: architecture, sizes and the embedding recipe."""
        ...
