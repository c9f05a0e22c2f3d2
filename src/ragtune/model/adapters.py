"""LoRA adapters on an :class:`~ragtune.model.Encoder`, through PEFT (the ``lora`` extra).

LoRA freezes every weight ``W`` of the backbone and learns, for each targeted linear layer, a
low-rank update ``W + (alpha / r) * B @ A`` with ``A`` (r, in) and ``B`` (out, r), ``B`` starting
at zero so that training starts from the base model exactly. Only ``A`` and ``B`` train: on
MiniLM-L6 with rank 16 on every attention and feed-forward linear that is 663,552 parameters,
2.9% of its 23.2M, so the optimizer state and the checkpoints' weights (2.5 MiB instead of
87 MiB) are ~35x smaller (benchmarks/lora.py).

How ragtune uses it:

- :func:`apply_adapter` (called by ``train/prepare.py``) wraps ``encoder.backbone`` in a
  ``peft.PeftModel``; the encoder keeps tokenizing, pooling and normalising as before, and the
  optimizer sees only the adapter's parameters (the base ones have ``requires_grad=False``).
- :meth:`Encoder.save` of an adapted encoder writes the *merged* plain model (``W + s * B @ A``
  folded into each weight, on a copy; the training encoder stays adapted), so every loader,
  sentence-transformers included, reads the published folder as an ordinary model.
- :func:`save_adapter` writes the adapter alone in PEFT's own format (``adapter_config.json``,
  ``adapter_model.safetensors``): ``PeftModel.from_pretrained(base, folder)`` or
  :func:`load_adapter` put it back on the base model.
- Checkpoints hold :func:`adapter_state_dict` only (train/checkpoint.py).

Reference:
    Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models" (arXiv 2106.09685);
    PEFT, https://github.com/huggingface/peft (the implementation used here).

Example::

    encoder = Encoder.load("sentence-transformers/all-MiniLM-L6-v2")
    add_lora(encoder, LoraSettings(rank=16, alpha=32.0))
    ...  # train: only the adapter's parameters have requires_grad
    encoder.save("runs/merged")          # a plain sentence-transformers folder
    encoder.save_adapter("runs/adapter")  # the adapter alone (PEFT format)
"""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from ragtune.errors import RagtuneError
from ragtune.io import atomic_dir

if TYPE_CHECKING:
    from ragtune.model.encoder import Encoder

ADAPTER_KIND = "adapter"
"""The artefact kind in the completion marker of a folder written by :func:`save_adapter`."""
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class LoraSettings:
    """The LoRA hyper-parameters (``TrainConfig``'s ``lora_*`` fields)."""

    rank: int = 16
    """r, the inner dimension of ``B @ A``."""
    alpha: float = 32.0
    """The update is scaled by ``alpha / rank`` (2 by default, PEFT's and the paper's usual)."""
    dropout: float = 0.05
    """Dropout on the adapter's input (the base layer's path has none added)."""
    targets: tuple[str, ...] = ("query", "key", "value", "dense")
    """Module-name suffixes that get adapters; BERT's names: every attention and FFN linear."""


class AdapterOptions(Protocol):
    """What :func:`apply_adapter` reads from a config (``TrainConfig`` has these fields)."""

    @property
    def adapter(self) -> str: ...
    @property
    def lora_rank(self) -> int: ...
    @property
    def lora_alpha(self) -> float: ...
    @property
    def lora_dropout(self) -> float: ...
    @property
    def lora_targets(self) -> tuple[str, ...]: ...


def apply_adapter(encoder: Encoder, cfg: AdapterOptions) -> None:
    """Give ``encoder`` the adapter that ``cfg.adapter`` names (``"none"``: leave it as it is)."""
    if cfg.adapter == "none":
        return
    if cfg.adapter != "lora":
        raise RagtuneError(f"train.adapter: unknown adapter {cfg.adapter!r}; choose none or lora")
    settings = LoraSettings(
        rank=cfg.lora_rank,
        alpha=cfg.lora_alpha,
        dropout=cfg.lora_dropout,
        targets=tuple(cfg.lora_targets),
    )
    add_lora(encoder, settings)


def add_lora(encoder: Encoder, settings: LoraSettings) -> None:
    """Wrap ``encoder.backbone`` in a PEFT LoRA model in place; only the adapter trains after.

    The new ``A`` matrices are drawn from torch's global RNG (seed it for a reproducible start);
    ``B`` is zero, so the adapted encoder embeds exactly like the base one until it trains.
    """
    peft = _peft()
    if is_adapted(encoder.backbone):
        raise RagtuneError("the model already has adapters; load the base model to add new ones")
    config = peft.LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.targets),
    )
    try:
        with warnings.catch_warnings():  # PEFT asks a deprecated transformers 5 property
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
            encoder.backbone = peft.get_peft_model(encoder.backbone, config)
        if encoder.config.base_model:  # the name the user gave, not the resolved local folder
            encoder.backbone.peft_config[
                "default"
            ].base_model_name_or_path = encoder.config.base_model
    except ValueError as exc:  # PEFT: "Target modules {...} not found in the base model"
        names = ", ".join(settings.targets)
        raise RagtuneError(
            f"train.lora_targets: no module of {type(encoder.backbone).__name__} matches "
            f"{names} ({str(exc).splitlines()[0][:160]}); give the suffixes of its linear "
            "layers' names, e.g. query,key,value,dense for BERT"
        ) from None
    _forget_fused_forward(encoder)


def is_adapted(backbone: nn.Module) -> bool:
    """Whether ``backbone`` carries PEFT adapters (without importing PEFT when it cannot)."""
    return type(backbone).__module__.startswith("peft.")


def merged_backbone(backbone: nn.Module) -> nn.Module:
    """A plain Hugging Face model with the adapters folded into its weights; a copy.

    ``backbone`` itself keeps its adapters and its training state: the merge runs on a deep copy
    (one extra model in memory for the duration of a save).
    """
    if not is_adapted(backbone):
        return backbone
    merged: nn.Module = copy.deepcopy(backbone).merge_and_unload()  # type: ignore[operator]
    for param in merged.parameters():
        param.requires_grad_(True)  # an ordinary model again, as Encoder.load would give
        param.grad = None
    return merged


def adapter_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter's tensors by their names in ``module``: what a checkpoint must keep.

    These are the trainable parameters of an adapted model (PEFT freezes every base weight).
    """
    return {
        name: param.detach()
        for name, param in module.named_parameters()
        if param.requires_grad and ".lora_" in name
    }


def load_adapter_state_dict(
    module: nn.Module, tensors: dict[str, torch.Tensor], where: str
) -> None:
    """Copy adapter tensors into ``module``; one line naming ``where`` when they do not fit."""
    own = adapter_state_dict(module)
    if set(tensors) != set(own):
        extra, missing = sorted(set(tensors) - set(own)), sorted(set(own) - set(tensors))
        raise RagtuneError(
            f"{where}: holds adapter tensors for other layers than this model's (not in the "
            f"model: {extra[:2] or 'none'}; missing: {missing[:2] or 'none'}); resume with the "
            "run's own lora_rank and lora_targets"
        )
    for name, tensor in tensors.items():
        if tensor.shape != own[name].shape:
            raise RagtuneError(
                f"{where}: {name} has shape {tuple(tensor.shape)}, the model's "
                f"{tuple(own[name].shape)}; resume with the run's own lora_rank"
            )
    with torch.no_grad():
        params = dict(module.named_parameters())
        for name, tensor in tensors.items():
            params[name].copy_(tensor)


def save_adapter(encoder: Encoder, path: str | os.PathLike[str]) -> Path:
    """Write the adapter alone (PEFT format, safetensors) atomically to ``path``.

    The base model is named in ``adapter_config.json`` (``base_model_name_or_path``); pooling and
    prompts stay with the base model's folder, which :func:`load_adapter` is applied on top of.
    """
    backbone = encoder.backbone
    if not is_adapted(backbone):
        raise RagtuneError("the model has no adapter to save; train with --set adapter=lora")
    target = Path(path)
    with atomic_dir(target, ADAPTER_KIND) as tmp:
        backbone.save_pretrained(str(tmp), safe_serialization=True)
    return target


def load_adapter(encoder: Encoder, path: str | os.PathLike[str]) -> None:
    """Put an adapter written by :func:`save_adapter` (or PEFT) on ``encoder``, frozen.

    Only ``adapter_model.safetensors`` is read (pickled weights can run code when loaded).
    """
    peft = _peft()
    folder = Path(path)
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (folder / name).is_file():
            raise RagtuneError(
                f"{folder / name}: missing; an adapter folder holds {ADAPTER_CONFIG} and "
                f"{ADAPTER_WEIGHTS} (ragtune reads safetensors only)"
            )
    if is_adapted(encoder.backbone):
        raise RagtuneError("the model already has adapters; load the base model to add one")
    try:
        with warnings.catch_warnings():  # PEFT asks a deprecated transformers 5 property
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
            encoder.backbone = peft.PeftModel.from_pretrained(encoder.backbone, str(folder))
    except (ValueError, RuntimeError, KeyError) as exc:
        raise RagtuneError(
            f"{folder}: the adapter does not fit this model ({str(exc).splitlines()[0][:160]})"
        ) from None
    _forget_fused_forward(encoder)


def trainable_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, as a LoRA comparison reports them."""
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return trainable, total


def _forget_fused_forward(encoder: Encoder) -> None:
    """A fused CPU forward built before the adapter would skip it: have it checked again.

    The check then refuses the model (the adapted layers are not plain ``nn.Linear``), so
    encoding runs the PEFT forward.
    """
    from ragtune.model.cpu.fast_paths import NOT_ASKED

    paths = encoder.cpu_fast_paths
    if paths is not None:
        paths.fused, paths.fused_reason = None, NOT_ASKED


def _peft() -> Any:
    try:
        import peft
    except ImportError:
        raise RagtuneError(
            "LoRA adapters need PEFT: pip install 'ragtune[lora]' (or peft>=0.10)"
        ) from None
    return peft
