"""The embedding model: a Hugging Face transformer, a pooling layer, optional L2 normalisation.

One :class:`Encoder` embeds both queries and documents (shared weights: the Sentence-BERT siamese
setup). It pools from the final layer or from any intermediate layer ``k``; :meth:`Encoder.truncate`
then drops the layers above ``k`` so they are no longer computed. It implements
:class:`ragtune.model.EmbeddingModel`, as the ONNX Runtime encoder does, and is the one that trains.

A constructed encoder is the Hugging Face model as loaded: ragtune's CPU speed paths
(:mod:`ragtune.model.cpu`) are switched on by training, and by :meth:`Encoder.encode` on its first
CPU call, through :func:`ragtune.model.cpu.enable_cpu_fast_paths`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ragtune.errors import RagtuneError
from ragtune.io import atomic_dir
from ragtune.model.adapters import is_adapted, merged_backbone, save_adapter
from ragtune.model.batches import length_sorted_batches
from ragtune.model.cpu.encode_precision import choose_encode_precision
from ragtune.model.cpu.fast_paths import (
    NOT_ASKED,
    CpuFastPaths,
    FusedForward,
    enable_cpu_fast_paths,
)
from ragtune.model.folder import check_model_folder
from ragtune.model.onnx import is_onnx_folder
from ragtune.model.pooling import pool
from ragtune.model.precision import Precision, autocast_dtype
from ragtune.model.protocol import Output
from ragtune.model.resolve import resolve_model_path
from ragtune.model.saving import read_folder_config, write_folder_config
from ragtune.model.spec import EncoderConfig
from ragtune.progress import make_progress, progress_enabled

Features = dict[str, torch.Tensor]


class Encoder(nn.Module):
    """Texts -> token embeddings -> pooled (and optionally normalised) vectors."""

    def __init__(self, backbone: Any, tokenizer: Any, config: EncoderConfig) -> None:
        super().__init__()
        self.backbone: Any = backbone  # any Hugging Face PreTrainedModel
        self.tokenizer = tokenizer
        self.config = config
        limit = getattr(backbone.config, "max_position_embeddings", None)
        if limit and config.max_seq_length > limit:
            self.config = replace(config, max_seq_length=int(limit))
        if config.layer is not None and config.layer > self.num_layers:
            raise RagtuneError(
                f"layer {config.layer} does not exist: the model has {self.num_layers} layers"
            )
        if getattr(backbone, "pooler", None) is not None:
            # BERT-style [CLS] pooler heads are unused by embedding pooling: drop them so they
            # are neither computed nor saved (and DDP sees no parameters without gradients).
            backbone.pooler = None
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token  # decoder models ship without one
        self.cpu_fast_paths: CpuFastPaths | None = None
        """What :func:`~ragtune.model.cpu.enable_cpu_fast_paths` switched on (None: nothing yet)."""
        self.fused_inference = True
        """fp32 CPU encoding through oneDNN-fused layers where the architecture allows it
        (model/cpu/fused.py); set False to always run the Hugging Face forward."""
        self.precision: Precision = "auto"
        """The precision of encode calls that pass none: on a CPU, "auto" is bf16 only after
        the model's own texts agree (model/cpu/encode_precision.py), else fp32."""
        self.encode_precision: str | None = None
        """What the last encode call ran in ("fp32" or "bf16"); None before the first."""

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_backbone(cls, backbone: nn.Module, tokenizer: Any, config: EncoderConfig) -> Encoder:
        """Wrap an already built transformer (tests build tiny random ones this way)."""
        return cls(backbone, tokenizer, config)

    @classmethod
    def load(
        cls,
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
    ) -> Encoder:
        """Load a ragtune, sentence-transformers or plain Hugging Face model folder or hub id.

        Keyword arguments override what the folder says about itself. Weights are read from
        safetensors only; ``trust_remote_code`` stays off unless asked for. PyTorch models only:
        an ONNX export is refused with a pointer to :func:`ragtune.model.load_model`, which
        opens either kind for inference.
        """
        from transformers import AutoConfig, AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        if is_onnx_folder(name_or_path):
            raise RagtuneError(
                f"{name_or_path} is an ONNX export, not a PyTorch model: it runs inference only "
                "(open it with ragtune.load_model); training and export need the PyTorch model "
                "folder it was exported from"
            )

        hf_logging.disable_progress_bar()  # ragtune draws its own bars; keep stderr readable
        hf_logging.set_verbosity_error()
        folder = resolve_model_path(name_or_path, revision=revision)
        check_model_folder(folder)  # one line naming a damaged or half-written file
        cfg, transformer_dir = read_folder_config(folder)
        overrides: dict[str, Any] = {
            "pooling": pooling,
            "normalize": normalize,
            "layer": layer,
            "max_seq_length": max_seq_length,
            "query_prompt": query_prompt,
            "document_prompt": document_prompt,
        }
        cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
        if not cfg.base_model:
            cfg = replace(cfg, base_model=str(name_or_path))
        if not any(transformer_dir.glob("*.safetensors")):
            raise RagtuneError(
                f"{transformer_dir}: no .safetensors weights found; ragtune loads safetensors only "
                "(pickled .bin weights can run code when loaded). Convert them first, e.g. "
                "`model.save_pretrained(dir, safe_serialization=True)` in a trusted environment"
            )
        hf_config = AutoConfig.from_pretrained(transformer_dir, trust_remote_code=trust_remote_code)
        backbone = AutoModel.from_pretrained(
            transformer_dir,
            config=hf_config,
            use_safetensors=True,
            trust_remote_code=trust_remote_code,
        )
        tokenizer = AutoTokenizer.from_pretrained(
            transformer_dir, trust_remote_code=trust_remote_code
        )
        encoder = cls(backbone, tokenizer, cfg)
        dev = torch.device(device) if device else default_device()
        return encoder.to(dev).eval()

    # ------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        return int(self.backbone.config.hidden_size)

    @property
    def num_layers(self) -> int:
        return len(_layer_list(self.backbone))

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    # ------------------------------------------------------------------ forward
    def tokenize(self, texts: Sequence[str], prompt: str | None = None) -> Features:
        """Tokenize a batch (prompt prepended), padded to its longest text and truncated."""
        if prompt:
            texts = [prompt + t for t in texts]
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.config.max_seq_length,
            return_tensors="pt",
        )
        return dict(batch)

    def token_embeddings(self, features: Features) -> tuple[torch.Tensor, torch.Tensor]:
        """Token-level embeddings (B, T, D) from the chosen layer, and the mask (B, T)."""
        inputs = {k: v for k, v in features.items() if k in _MODEL_INPUTS}
        layer = self.config.layer
        want_hidden = layer is not None and layer < self.num_layers
        out = self.backbone(**inputs, output_hidden_states=want_hidden, return_dict=True)
        # hidden_states[0] is the embedding output; hidden_states[k] is layer k's output.
        tokens = out.hidden_states[layer] if want_hidden else out.last_hidden_state
        return tokens, features["attention_mask"]

    def forward(self, features: Features) -> torch.Tensor:
        """Pooled embeddings (B, D), normalised if the config says so; keeps the graph."""
        tokens, mask = self.token_embeddings(features)  # (B, T, D), (B, T)
        # Pool in fp32 even under bf16 autocast: a mean over 256 bf16 tokens loses digits.
        emb = pool(tokens.float(), mask, self.config.pooling)  # (B, D)
        return F.normalize(emb, p=2, dim=-1) if self.config.normalize else emb

    # ------------------------------------------------------------------ inference
    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        prompt: str | None = None,
        normalize: bool | None = None,
        show_progress: bool | None = None,
        output: Output = "sentence",
        precision: Precision | None = None,
        description: str = "encoding",
    ) -> Any:
        """Embed texts: float32 array (N, D), or a list of (tokens_i, D) arrays for ``tokens``.

        Texts are tokenized once, sorted by token length so batches carry little padding, and
        returned in input order. ``normalize`` overrides the config for this call only.
        ``precision`` (default: ``self.precision``) is fp32, bf16 or auto; what the call ran in
        is kept as ``self.encode_precision``.
        """
        if isinstance(texts, str):
            raise RagtuneError("encode expects a list of texts, not a single string")
        if output not in ("sentence", "tokens"):
            raise RagtuneError(f"unknown output {output!r}; choose sentence or tokens")
        if batch_size < 1:
            raise RagtuneError(f"batch_size must be positive, got {batch_size}")
        texts = [prompt + t for t in texts] if prompt else list(texts)
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32) if output == "sentence" else []
        ids, batches = length_sorted_batches(
            self.tokenizer, texts, self.config.max_seq_length, batch_size
        )
        norm = self.config.normalize if normalize is None else normalize
        device = self.device
        precision = self.precision if precision is None else precision
        if precision == "auto" and device.type == "cpu":
            precision = choose_encode_precision(self, texts, batch_size=batch_size).precision
        autocast = autocast_dtype(precision, device)
        self.encode_precision = "fp32" if autocast is None else "bf16"
        results: list[Any] = [None] * n
        was_training = self.training
        self.eval()
        depth = self.num_layers if self.config.layer is None else self.config.layer
        show = progress_enabled(show_progress, default=n >= 8 * batch_size)
        try:
            fused: Any = self._fused_forward()
            if autocast is not None:  # bf16 GEMMs with an fp32 residual (model/cpu/fused.py)
                bf16 = fused is not None and autocast is torch.bfloat16
                fused = fused.in_bf16() if bf16 else None  # None: the HF forward, autocast
            with make_progress("texts", enabled=show) as bar, torch.inference_mode():
                task = bar.add_task(description, total=n)
                for idx in batches:
                    batch = self.tokenizer.pad(
                        {"input_ids": [ids[i] for i in idx]},
                        padding=True,
                        return_tensors="pt",
                    )
                    batch = {k: v.to(device) for k, v in batch.items()}
                    with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                        if fused is not None:
                            tokens, mask = fused(batch, depth), batch["attention_mask"]
                        else:
                            tokens, mask = self.token_embeddings(batch)
                        if output == "sentence":
                            emb = pool(tokens.float(), mask, self.config.pooling)
                    if output == "sentence":
                        if norm:
                            emb = F.normalize(emb, p=2, dim=-1)
                        arr = emb.cpu().numpy()
                        for row, i in enumerate(idx):
                            results[i] = arr[row]
                    else:
                        tok = tokens.float().cpu().numpy()
                        m = mask.bool().cpu().numpy()
                        for row, i in enumerate(idx):
                            results[i] = tok[row][m[row]]
                    bar.advance(task, len(idx))
        finally:
            self.train(was_training)
        if output == "tokens":
            return results
        return np.stack(results).astype(np.float32, copy=False)

    def _fused_forward(self) -> FusedForward | None:
        """The fused fp32 CPU path; the CPU paths are switched on here on the first CPU call."""
        if self.device.type != "cpu":
            return None
        paths = self.cpu_fast_paths
        # Kept once made (disable() is not undone here); training's setup leaves fused for later.
        if paths is None or (self.fused_inference and paths.fused_reason == NOT_ASKED):
            enable_cpu_fast_paths(self, training=False, fused=self.fused_inference)
        paths = self.cpu_fast_paths
        return paths.fused if paths is not None and self.fused_inference else None

    def encode_queries(self, texts: Sequence[str], **kwargs: Any) -> Any:
        """Encode with the model's saved query prompt (e.g. ``"query: "``)."""
        kwargs.setdefault("description", "encoding queries")
        return self.encode(texts, prompt=self.config.query_prompt or None, **kwargs)

    def encode_documents(self, texts: Sequence[str], **kwargs: Any) -> Any:
        """Encode with the model's saved document prompt (e.g. ``"passage: "``)."""
        kwargs.setdefault("description", "encoding documents")
        return self.encode(texts, prompt=self.config.document_prompt or None, **kwargs)

    def set_attention_dropout(self, p: float) -> None:
        """Set the attention-probability dropout (hidden dropout is left alone).

        With p > 0 PyTorch's fused attention is unavailable on CPU and training falls back to the
        slower, memory-hungry math path; p = 0 keeps the fused kernels.
        """
        cfg = self.backbone.config
        for attr in ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop"):
            if hasattr(cfg, attr):
                setattr(cfg, attr, p)
        for module in self.backbone.modules():
            if isinstance(getattr(module, "dropout_prob", None), float):
                module.dropout_prob = p
            name = type(module).__name__.lower()
            if "selfattention" in name or name.endswith("attention"):
                for child_name, child in module.named_children():
                    if isinstance(child, nn.Dropout) and "dropout" in child_name:
                        child.p = p

    def set_hidden_dropout(self, p: float) -> None:
        """Set every dropout outside the attention probabilities (embeddings, residual outputs)."""
        cfg = self.backbone.config
        for attr in (
            "hidden_dropout_prob",
            "hidden_dropout",
            "dropout",
            "resid_pdrop",
            "embd_pdrop",
        ):
            if isinstance(getattr(cfg, attr, None), float):
                setattr(cfg, attr, p)
        attention_cores = [
            m
            for m in self.backbone.modules()
            if "selfattention" in type(m).__name__.lower()
            or type(m).__name__.lower().endswith("attention")
        ]
        inside = {id(c) for core in attention_cores for c in core.children()}
        for module in self.backbone.modules():
            if isinstance(module, nn.Dropout) and id(module) not in inside:
                module.p = p

    # ------------------------------------------------------------------ layers
    def truncate(self, k: int) -> Encoder:
        """A copy that keeps the embeddings and layers 1..k and pools from layer k.

        Its embeddings equal this model's layer-k embeddings, without computing layers above k.
        """
        total = self.num_layers
        if not 1 <= k <= total:
            raise RagtuneError(f"cannot truncate to {k} layers: the model has {total}")
        backbone = copy.deepcopy(self.backbone)
        layers = _layer_list(backbone)
        del layers[k:]
        for attr in ("num_hidden_layers", "n_layers", "n_layer", "num_layers"):
            if hasattr(backbone.config, attr):
                setattr(backbone.config, attr, k)
        if hasattr(backbone.config, "layer_types") and backbone.config.layer_types:
            backbone.config.layer_types = backbone.config.layer_types[:k]
        return Encoder(backbone, self.tokenizer, replace(self.config, layer=None))

    # ------------------------------------------------------------------ saving
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a sentence-transformers-compatible folder atomically.

        A model that pools from an intermediate layer is saved truncated to that layer, so that
        any loader (sentence-transformers included) computes the same embeddings. A model with
        LoRA adapters is saved merged (:mod:`ragtune.model.adapters`): a plain model, written
        from a copy, while this encoder keeps its adapters; :meth:`save_adapter` writes them alone.
        """
        model = self
        if is_adapted(self.backbone):
            model = Encoder(merged_backbone(self.backbone), self.tokenizer, self.config)
        if model.config.layer is not None and model.config.layer < model.num_layers:
            model = model.truncate(model.config.layer)
        target = Path(path)
        with atomic_dir(target) as tmp:
            model.backbone.save_pretrained(tmp, safe_serialization=True)
            model.tokenizer.save_pretrained(tmp)
            write_folder_config(tmp, model.config, model.dim, library_versions())
        return target

    def save_adapter(self, path: str | os.PathLike[str]) -> Path:
        """Write only the LoRA adapter (PEFT format, safetensors) atomically to ``path``."""
        return save_adapter(self, path)

    def fingerprint(self) -> str:
        """sha256 over the config and every weight: a key for caches of embeddings."""
        recipe = {k: v for k, v in self.config.to_dict().items() if k != "base_model"}
        h = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode())
        for name, tensor in sorted(self.backbone.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return h.hexdigest()

    def describe(self) -> dict[str, Any]:
        """What `ragtune info` prints: architecture, sizes and the embedding recipe."""
        return {
            "architecture": type(self.backbone).__name__,
            "layers": self.num_layers,
            "dim": self.dim,
            "parameters": sum(p.numel() for p in self.backbone.parameters()),
            "vocab_size": int(getattr(self.backbone.config, "vocab_size", 0)),
            **self.config.to_dict(),
        }


_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


def _layer_list(backbone: nn.Module) -> nn.ModuleList:
    """The ModuleList of transformer blocks, wherever the architecture keeps it."""
    cfg = backbone.config
    expected = next(
        (
            getattr(cfg, a)
            for a in ("num_hidden_layers", "n_layers", "n_layer", "num_layers")
            if isinstance(getattr(cfg, a, None), int)
        ),
        None,
    )
    for name in ("encoder.layer", "transformer.layer", "layers", "h", "encoder.layers", "layer"):
        obj: Any = backbone
        for part in name.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList):
            return obj
    candidates = [m for m in backbone.modules() if isinstance(m, nn.ModuleList)]
    for m in candidates:
        if expected is None or len(m) == expected:
            return m
    raise RagtuneError(f"cannot find the transformer layers of {type(backbone).__name__}")


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def library_versions() -> dict[str, str]:
    import transformers

    from ragtune import __version__

    return {
        "ragtune": __version__,
        "transformers": transformers.__version__,
        "pytorch": torch.__version__,
    }
