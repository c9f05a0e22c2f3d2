"""Run an exported embedding model with ONNX Runtime, without PyTorch in the loop.

A folder written by :func:`ragtune.model.export.export_onnx` describes itself:

- ``model.onnx``: one graph from token ids to the final vector. Inputs ``input_ids``,
  ``attention_mask`` (and ``token_type_ids`` for BERT-style models), int64, shape
  ``(batch, sequence)``; outputs ``sentence_embedding`` ``(batch, D)`` (pooled, and L2-normalised
  when the config says so) and ``token_embeddings`` ``(batch, sequence, D)``. In an int8 folder
  this same file name holds the quantised graph: one folder is one model.
- the tokenizer files;
- ``ragtune.json``: the :class:`EncoderConfig` plus ``format: "onnx"``, ``quantization``
  (``"none"``, ``"int8"`` or ``"int8-all"``) and an ``onnx`` section (files, opset, exporter,
  inputs, outputs, dim, layers).

Pooling, normalisation and layer are baked into the graph; the prompts and the maximum length are
applied here, before tokens reach the graph, so they can still be changed at load time.

Example::

    encoder = OnnxEncoder.load("runs/demo/model-onnx-int8")
    vectors = encoder.encode_documents(["A passage.", "Another one."])  # (2, D) float32
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from ragtune.errors import RagtuneError
from ragtune.model.batches import length_sorted_batches
from ragtune.model.folder import check_model_folder
from ragtune.model.spec import EncoderConfig
from ragtune.progress import make_progress, progress_enabled

if TYPE_CHECKING:
    import torch

ONNX_FILE = "model.onnx"
CONFIG_FILE = "ragtune.json"
SENTENCE_OUTPUT = "sentence_embedding"
TOKENS_OUTPUT = "token_embeddings"

Quantization = Literal["none", "int8", "int8-all"]
QUANTIZATIONS: tuple[str, ...] = get_args(Quantization)
_ORT_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


def require_onnx(*modules: str) -> None:
    """Raise a RagtuneError naming the ``onnx`` extra when one of ``modules`` is missing."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise RagtuneError(
            f"{', '.join(missing)} is not installed; ONNX export and inference need the onnx "
            "extra: pip install 'ragtune[onnx]'"
        )


def is_onnx_folder(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder whose ``ragtune.json`` says ``"format": "onnx"``."""
    config = Path(path) / CONFIG_FILE
    if not config.is_file():
        return False
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unreadable, not UTF-8 or not JSON: check_model_folder says so
        return False
    return isinstance(data, dict) and data.get("format") == "onnx"


def read_onnx_folder(folder: Path) -> tuple[EncoderConfig, Quantization, dict[str, Any]]:
    """The folder's EncoderConfig, its quantisation and its ``onnx`` section."""
    path = folder / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RagtuneError(f"{path}: cannot read ONNX model config ({exc})") from None
    if data.pop("format", None) != "onnx":
        raise RagtuneError(f"{folder}: not an ONNX model folder (ragtune.json lacks format: onnx)")
    quantization = data.pop("quantization", "none")
    if quantization not in QUANTIZATIONS:
        raise RagtuneError(
            f"{folder}: unknown quantization {quantization!r}; valid: {', '.join(QUANTIZATIONS)}"
        )
    meta = data.pop("onnx", {})
    try:
        return EncoderConfig.from_dict(data), quantization, meta
    except RagtuneError as exc:
        raise RagtuneError(f"{path}: {exc}") from None  # a bad value: say in which file


class OnnxEncoder:
    """The inference half of :class:`ragtune.model.Encoder`, backed by an ONNX Runtime session.

    It implements :class:`ragtune.model.EmbeddingModel`; it cannot train.
    """

    def __init__(
        self,
        session: Any,
        tokenizer: Any,
        config: EncoderConfig,
        *,
        quantization: Quantization,
        meta: dict[str, Any],
        files: list[Path],
    ) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.config = config
        self.quantization = quantization
        self.meta = meta
        self.files = files
        self._inputs = {i.name: _ORT_INT_TYPES.get(i.type, np.int64) for i in session.get_inputs()}
        self._outputs = [o.name for o in session.get_outputs()]
        if SENTENCE_OUTPUT not in self._outputs:
            raise RagtuneError(f"the ONNX graph has no {SENTENCE_OUTPUT!r} output: {self._outputs}")
        sentence = session.get_outputs()[self._outputs.index(SENTENCE_OUTPUT)]
        self._dim = int(meta.get("dim") or sentence.shape[-1])
        self._fingerprint: str | None = None

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike[str],
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
    ) -> OnnxEncoder:
        """Open an exported folder; the keywords mirror :meth:`Encoder.load`.

        :func:`ragtune.model.load_model` calls this for ONNX folders and ``Encoder.load`` for
        the rest; call it directly when the folder must be an ONNX export.

        Prompts and ``max_seq_length`` may be overridden. Pooling, normalisation and layer are
        part of the graph: asking for other values raises (export again instead). ``device``
        is ``"cpu"`` (default) or ``"cuda"`` (needs onnxruntime-gpu).
        """
        require_onnx("onnxruntime")
        import onnxruntime as ort
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        del revision  # a local folder has no revisions; kept so load_model passes it to both
        hf_logging.set_verbosity_error()
        root = Path(folder).expanduser()
        check_model_folder(root)  # one line naming a damaged or half-written file
        if not is_onnx_folder(root):
            raise RagtuneError(
                f"{root}: not an ONNX model folder (expected ragtune.json with format onnx, as "
                "written by `ragtune export MODEL --format onnx --out DIR`)"
            )
        cfg, quantization, meta = read_onnx_folder(root)
        _check_baked(cfg, meta, pooling=pooling, normalize=normalize, layer=layer)
        overrides: dict[str, Any] = {
            "max_seq_length": max_seq_length,
            "query_prompt": query_prompt,
            "document_prompt": document_prompt,
        }
        cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
        limit = meta.get("max_position_embeddings")
        if limit and cfg.max_seq_length > limit:
            cfg = replace(cfg, max_seq_length=int(limit))  # as Encoder does: positions end there
        files = [root / name for name in meta.get("files", [ONNX_FILE])]
        missing = [str(p.name) for p in files if not p.is_file()]
        if missing:
            raise RagtuneError(f"{root}: ONNX model files missing: {', '.join(missing)}")
        providers = _providers(None if device is None else str(device))
        session = ort.InferenceSession(
            str(files[0]), sess_options=session_options(), providers=providers
        )
        tokenizer = AutoTokenizer.from_pretrained(root, trust_remote_code=trust_remote_code)
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token  # as Encoder does for decoder models
        return cls(session, tokenizer, cfg, quantization=quantization, meta=meta, files=files)

    # ------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def has_token_output(self) -> bool:
        return TOKENS_OUTPUT in self._outputs

    # ------------------------------------------------------------------ inference
    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        prompt: str | None = None,
        normalize: bool | None = None,
        show_progress: bool | None = None,
        output: Literal["sentence", "tokens"] = "sentence",
        precision: Literal["auto", "fp32", "bf16"] = "auto",
        description: str = "encoding",
    ) -> Any:
        """Embed texts: float32 array (N, D), or a list of (tokens_i, D) arrays for ``tokens``.

        Same contract as :meth:`Encoder.encode`: texts are tokenized once, sorted by length so
        batches carry little padding, and returned in input order. The graph already pools (and
        normalises when the config says so); ``normalize=True`` can add normalisation to a graph
        without it, ``normalize=False`` cannot remove it. ``precision`` is fixed at export.
        """
        if isinstance(texts, str):
            raise RagtuneError("encode expects a list of texts, not a single string")
        if output not in ("sentence", "tokens"):
            raise RagtuneError(f"unknown output {output!r}; choose sentence or tokens")
        if output == "tokens" and not self.has_token_output:
            raise RagtuneError(
                f"this ONNX model was exported without a {TOKENS_OUTPUT!r} output; only "
                "sentence embeddings are available (export it again with ragtune to get tokens)"
            )
        if precision not in ("auto", "fp32"):
            raise RagtuneError(
                f"precision {precision!r} is not available for an ONNX model: it runs at the "
                f"precision it was exported with ({self.quantization}); choose auto or fp32"
            )
        if batch_size < 1:
            raise RagtuneError(f"batch_size must be positive, got {batch_size}")
        if normalize is False and self.config.normalize:
            raise RagtuneError(
                "this ONNX graph L2-normalises inside itself, so normalize=False cannot be "
                "honoured; export from a model loaded with normalize=False instead"
            )
        add_norm = bool(normalize) and not self.config.normalize
        texts = [prompt + t for t in texts] if prompt else list(texts)
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32) if output == "sentence" else []
        ids, batches = length_sorted_batches(
            self.tokenizer, texts, self.config.max_seq_length, batch_size
        )
        wanted = [SENTENCE_OUTPUT if output == "sentence" else TOKENS_OUTPUT]
        results: list[Any] = [None] * n
        show = progress_enabled(show_progress, default=n >= 8 * batch_size)
        with make_progress("texts", enabled=show) as bar:
            task = bar.add_task(description, total=n)
            for idx in batches:
                batch = self.tokenizer.pad(
                    {"input_ids": [ids[i] for i in idx]},
                    padding=True,
                    return_tensors="np",
                )
                feeds = self._feeds(batch["input_ids"], batch["attention_mask"])
                (arr,) = self.session.run(wanted, feeds)  # (B, D) or (B, T, D)
                if output == "sentence":
                    if add_norm:
                        arr = arr / np.maximum(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12)
                    for row, i in enumerate(idx):
                        results[i] = arr[row]
                else:
                    mask = batch["attention_mask"].astype(bool)  # (B, T)
                    for row, i in enumerate(idx):
                        results[i] = arr[row][mask[row]].astype(np.float32, copy=False)
                bar.advance(task, len(idx))
        if output == "tokens":
            return results
        return np.stack(results).astype(np.float32, copy=False)

    def encode_queries(self, texts: Sequence[str], **kwargs: Any) -> Any:
        """Encode with the model's saved query prompt (e.g. ``"query: "``)."""
        kwargs.setdefault("description", "encoding queries")
        return self.encode(texts, prompt=self.config.query_prompt or None, **kwargs)

    def encode_documents(self, texts: Sequence[str], **kwargs: Any) -> Any:
        """Encode with the model's saved document prompt (e.g. ``"passage: "``)."""
        kwargs.setdefault("description", "encoding documents")
        return self.encode(texts, prompt=self.config.document_prompt or None, **kwargs)

    def _feeds(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        available = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": np.zeros_like(input_ids),
        }  # one segment per text
        unknown = sorted(set(self._inputs) - set(available))
        if unknown:
            raise RagtuneError(f"the ONNX graph needs inputs ragtune cannot provide: {unknown}")
        return {
            name: available[name].astype(dtype, copy=False) for name, dtype in self._inputs.items()
        }

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> str:
        """sha256 over the effective config and the bytes of every graph file (cache key)."""
        if self._fingerprint is None:
            h = hashlib.sha256(
                json.dumps(
                    {**self.config.to_dict(), "format": "onnx", "quantization": self.quantization},
                    sort_keys=True,
                ).encode()
            )
            for path in self.files:
                h.update(path.name.encode())
                with open(path, "rb") as f:
                    while block := f.read(1 << 22):
                        h.update(block)
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def describe(self) -> dict[str, Any]:
        """What `ragtune info` prints for an exported model."""
        return {
            "architecture": f"{self.meta.get('architecture', 'unknown')} (ONNX)",
            "layers": self.meta.get("layers"),
            "dim": self.dim,
            "format": "onnx",
            "quantization": self.quantization,
            "opset": self.meta.get("opset"),
            "exporter": self.meta.get("exporter"),
            "model_bytes": sum(p.stat().st_size for p in self.files),
            "providers": ", ".join(self.session.get_providers()),
            "vocab_size": len(self.tokenizer),
            **self.config.to_dict(),
        }


def session_options() -> Any:
    """All graph optimisations on; as many intra-op threads as PyTorch would use."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads() or os.cpu_count() or 1
    options.log_severity_level = 3  # errors only: keep stderr readable
    return options


def _providers(device: str | None) -> list[Any]:
    import onnxruntime as ort

    kind, _, index = (device or "cpu").partition(":")
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    if kind == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RagtuneError(
                "device 'cuda' asked for, but this onnxruntime has no CUDAExecutionProvider "
                "(install onnxruntime-gpu, or use device='cpu')"
            )
        return [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]
    raise RagtuneError(f"unknown device {device!r} for an ONNX model; choose cpu or cuda")


def _check_baked(
    cfg: EncoderConfig,
    meta: dict[str, Any],
    *,
    pooling: str | None,
    normalize: bool | None,
    layer: int | None,
) -> None:
    """Refuse overrides of what the graph computes: they would be silently ignored."""
    asked = []
    if pooling is not None and pooling != cfg.pooling:
        asked.append(f"pooling={pooling!r} (graph: {cfg.pooling!r})")
    if normalize is not None and normalize != cfg.normalize:
        asked.append(f"normalize={normalize} (graph: {cfg.normalize})")
    if layer is not None and layer != meta.get("layers"):
        asked.append(f"layer={layer} (graph: the last of its {meta.get('layers')} layers)")
    if asked:
        raise RagtuneError(
            "pooling, normalisation and layer are baked into an ONNX graph and cannot be changed "
            f"at load time: {'; '.join(asked)}. Export again from the torch model with the "
            "settings you want"
        )
