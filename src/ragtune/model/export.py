"""Export an :class:`Encoder` to ONNX: one graph from token ids to the final vector.

The transformer, the pooling and (when the config says so) the L2 normalisation are traced as
one graph, so any ONNX runtime (Python, C#, Java, JavaScript) gets the same vector without
re-implementing pooling. Prompts and the maximum length travel in ``ragtune.json`` and are
applied by :class:`ragtune.model.onnx.OnnxEncoder` before tokens reach the graph. The folder
layout is described in :mod:`ragtune.model.onnx`.

Exporter. ``torch.onnx.export``'s default exporter (``torch.export`` based) needs the
``onnxscript`` package; when it is installed it is tried first, and the TorchScript tracer
(``dynamo=False``) is used when it is missing or fails. ``ragtune.json`` records which one ran.
A tracer records one path through Python control flow, so the example batch is padded (texts of
two lengths): transformers may skip the attention mask for an unpadded batch, and a graph traced
that way would let padding leak into every later batch.

int8. ONNX Runtime dynamic quantisation: MatMul and embedding Gather weights are stored as
signed int8 (``QInt8``) once; activations are quantised to uint8 at run time with one range per
batch tensor. ``per_channel=True`` gives each output column of a weight matrix its own scale: in
a small model one outlier column would otherwise set the scale of all the others (on
all-MiniLM-L6-v2 per-tensor weights drop the minimum cosine to fp32 on short texts from about
0.975 to 0.92). One exception stays fp32: the feed-forward down-projections (MatMuls whose
weight narrows the width, ``(intermediate, hidden)``). Their input, the GELU output, carries the
largest activation outliers of a trained transformer, and a single uint8 range over it costs the
most: quantising them too takes MiniLM's worst text from cosine 0.986 to 0.975 (300 SciFact
queries: 0.992 to 0.978). The price (benchmarks/onnx_speed.py, 2 shared cores): int8 encodes
11.8 SciFact documents/s instead of 15.1 (fp32: 7.3) and takes 32 MB instead of 21 (fp32: 86);
SciFact nDCG@10 is the same within noise either way (0.647 and 0.652; fp32 0.645), so the
choice buys per-vector fidelity, not measured retrieval quality. ``quantize="int8-all"``
quantises the down-projections too: on the quiet 2-core box it encodes 44.8 documents/s against
35.3 (int8) and 28.5 (ragtune's fused fp32 PyTorch path), 1.57x the latter. Because activation
ranges are measured per batch, an int8 vector depends slightly on which texts share its batch;
fp32 graphs do not. The int8 graph replaces the fp32 one under the same name, ``model.onnx``.

Example::

    encoder = Encoder.load("sentence-transformers/all-MiniLM-L6-v2")
    export_onnx(encoder, "minilm-onnx-int8", quantize="int8")
    OnnxEncoder.load("minilm-onnx-int8").encode(["hello"])  # (1, 384)
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import inspect
import json
import logging
import os
import shutil
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ragtune.errors import RagtuneError
from ragtune.io import atomic_dir, check_output
from ragtune.model.encoder import Encoder
from ragtune.model.onnx import (
    CONFIG_FILE,
    ONNX_FILE,
    QUANTIZATIONS,
    SENTENCE_OUTPUT,
    TOKENS_OUTPUT,
    OnnxEncoder,
    Quantization,
    require_onnx,
)
from ragtune.model.pooling import pool

SAMPLE_TEXTS: tuple[str, ...] = (
    "x",
    "Where is the HTTP status line parsed?",
    "Vitamin D supplementation reduces the risk of fractures in elderly women.",
    "The mitochondrion produces most of the cell's ATP through oxidative phosphorylation, "
    "a process that couples electron transport to the synthesis of ATP from ADP.",
    "def add(a, b): return a + b",
    "query: how do I rotate the logs of a long-running service without restarting it?",
)
"""Short, long, code and prompt-like texts for the parity check printed by ``ragtune export``."""


class _EmbeddingGraph(nn.Module):
    """The whole embedding recipe as one module: what gets traced into ``model.onnx``."""

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        features = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            features["token_type_ids"] = token_type_ids
        tokens, mask = self.encoder.token_embeddings(features)  # (B, T, D), (B, T)
        emb = pool(tokens, mask, self.encoder.config.pooling)  # (B, D)
        if self.encoder.config.normalize:
            emb = F.normalize(emb, p=2, dim=-1)
        return emb, tokens


OPSETS = range(14, 21)  # what both torch exporters take (the TorchScript fallback stops at 20)


def check_opset(opset: int) -> None:
    """Refuse an opset the exporters cannot write, before any model loads."""
    if opset not in OPSETS:
        raise RagtuneError(
            f"--opset must be between {OPSETS.start} and {OPSETS.stop - 1}, got {opset}"
        )


def export_onnx(
    encoder: Encoder,
    out_dir: str | os.PathLike[str],
    *,
    quantize: Quantization = "none",
    opset: int = 17,
    overwrite: bool = False,
) -> Path:
    """Write an ONNX Runtime model folder for ``encoder`` atomically and return its path.

    ``quantize="int8"`` stores the dynamically quantised graph instead of the fp32 one. A model
    that pools from an intermediate layer is exported truncated to that layer (as
    :meth:`Encoder.save` does). If anything fails, ``out_dir`` is left as it was. An existing
    ``out_dir`` is replaced only when it is an earlier export (or ``overwrite``); that is checked
    before the model is traced.
    """
    if quantize not in QUANTIZATIONS:
        valid = ", ".join(QUANTIZATIONS)
        raise RagtuneError(f"unknown quantize {quantize!r}; choose one of {valid}")
    require_onnx("onnx", "onnxruntime")
    check_opset(opset)
    target = check_output(out_dir, "onnx-model", overwrite=overwrite)
    import onnx

    model = _export_ready(encoder)
    cfg = replace(model.config, layer=None)
    example = _example_batch(model)
    with atomic_dir(target, "onnx-model", overwrite=overwrite) as tmp:
        staging = tmp / "_graph"
        staging.mkdir()
        was_training = model.training
        try:
            exporter = _trace_to_onnx(
                _EmbeddingGraph(model).eval(), example, staging / ONNX_FILE, opset
            )
        finally:
            model.train(was_training)  # the caller's encoder may be mid-training
        if quantize in ("int8", "int8-all"):
            _quantize_int8(
                staging / ONNX_FILE, tmp / ONNX_FILE, every_matmul=quantize == "int8-all"
            )
            files = [ONNX_FILE]
        else:
            files = sorted(p.name for p in staging.iterdir())  # model.onnx (+ external data)
            files.remove(ONNX_FILE)
            files.insert(0, ONNX_FILE)
            for name in files:
                os.replace(staging / name, tmp / name)
        shutil.rmtree(staging)
        onnx.checker.check_model(str(tmp / ONNX_FILE))
        model.tokenizer.save_pretrained(tmp)
        meta = {
            "files": files,
            "opset": _opset_of(tmp / ONNX_FILE),
            "exporter": exporter,
            "inputs": list(example),
            "outputs": [SENTENCE_OUTPUT, TOKENS_OUTPUT],
            "dim": model.dim,
            "layers": model.num_layers,
            "architecture": type(model.backbone).__name__,
            "max_position_embeddings": getattr(
                model.backbone.config, "max_position_embeddings", None
            ),
        }
        description = {**cfg.to_dict(), "format": "onnx", "quantization": quantize, "onnx": meta}
        (tmp / CONFIG_FILE).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    return target


def parity(
    encoder: Encoder, exported: OnnxEncoder, texts: Sequence[str] = SAMPLE_TEXTS
) -> dict[str, float]:
    """How far the exported vectors are from the torch ones: max abs diff and min cosine."""
    reference = encoder.encode(list(texts), precision="fp32", show_progress=False)  # (N, D)
    got = exported.encode(list(texts), show_progress=False)  # (N, D)
    cos = (reference * got).sum(1) / np.maximum(
        np.linalg.norm(reference, axis=1) * np.linalg.norm(got, axis=1), 1e-12
    )  # (N,)
    return {"max_abs_diff": float(np.abs(reference - got).max()), "min_cosine": float(cos.min())}


def _export_ready(encoder: Encoder) -> Encoder:
    """The encoder as it will be traced: truncated to its layer, fp32, on the CPU."""
    model = encoder
    layer = encoder.config.layer
    if layer is not None and layer < encoder.num_layers:
        model = encoder.truncate(layer)  # a copy: the user's encoder is not touched
    param = next(model.backbone.parameters())
    if param.device.type != "cpu" or param.dtype != torch.float32:
        model = copy.deepcopy(model) if model is encoder else model
        model = model.to("cpu", torch.float32)
    return model


def _example_batch(model: Encoder) -> dict[str, torch.Tensor]:
    """Two texts of different lengths, so that the traced graph keeps the padding mask."""
    batch = model.tokenizer(
        ["an example", "a longer example sentence, so that the example batch has padding"],
        padding=True,
        return_tensors="pt",
    )
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if bool(batch["attention_mask"].all()):
        raise RagtuneError("the tokenizer did not pad the example batch; cannot trace the mask")
    accepts = inspect.signature(model.backbone.forward).parameters
    if "token_type_ids" in batch and "token_type_ids" in accepts:
        inputs["token_type_ids"] = torch.zeros_like(batch["input_ids"])
    return inputs


def _trace_to_onnx(
    graph: nn.Module, example: dict[str, torch.Tensor], path: Path, opset: int
) -> str:
    """Write ``path`` with the default exporter when it can run, else TorchScript; say which."""
    names = list(example)
    args = tuple(example.values())
    outputs = [SENTENCE_OUTPUT, TOKENS_OUTPUT]
    if importlib.util.find_spec("onnxscript") is not None and _export_dynamo(
        graph, args, names, outputs, path, opset
    ):
        return "dynamo"
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes[SENTENCE_OUTPUT] = {0: "batch"}
    axes[TOKENS_OUTPUT] = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings():
        # Known and harmless here: the legacy-exporter notice, shape checks frozen by the tracer
        # (the parity tests guard the result), and notes about how indexing is lowered.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*aten::index.*", category=UserWarning)
        torch.onnx.export(
            graph,
            args,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=names,
            output_names=outputs,
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    return "torchscript"


def _export_dynamo(
    graph: nn.Module,
    args: tuple[torch.Tensor, ...],
    names: list[str],
    outputs: list[str],
    path: Path,
    opset: int,
) -> bool:
    """Try the default (torch.export) exporter; False when it fails or misses the opset.

    It cannot trace every model yet, and its down-conversion to an older opset can fail (for
    BERT at opset 17 with onnxscript 0.7 it leaves opset 18): then the tracer is used instead.
    """
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    try:
        with warnings.catch_warnings(), _quiet_logging("onnxscript", "torch.onnx"):
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)  # notes about axis names
            torch.onnx.export(
                graph,
                args,
                str(path),
                dynamo=True,
                opset_version=opset,
                verbose=False,
                input_names=names,
                output_names=outputs,
                external_data=False,
                dynamic_shapes={name: {0: batch, 1: seq} for name in names},
            )
        if _opset_of(path) == opset:
            return True
    except Exception:  # any failure of the new exporter: the tracer below is the fallback
        pass
    for leftover in path.parent.iterdir():
        leftover.unlink()
    return False


def _quantize_int8(source: Path, target: Path, every_matmul: bool = False) -> None:
    """Dynamic int8 quantisation, per-channel signed weights (see the module docstring)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    keep_fp32 = [] if every_matmul else down_projections(onnx.load(str(source)))
    with _quiet_logging(""):  # the root logger: onnxruntime advises pre-processing
        quantize_dynamic(
            source,
            target,
            per_channel=True,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=keep_fp32,
        )


def down_projections(model: Any) -> list[str]:
    """Names of the MatMuls whose constant weight (K, N) narrows the width (K > N).

    In a transformer these are the feed-forward output projections (BERT ``output.dense``,
    LLaMA ``down_proj``), found by shape so that no architecture's naming is assumed.
    """
    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    names = []
    for node in model.graph.node:
        weight = shapes.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is not None and len(weight) == 2 and weight[0] > weight[1] and node.name:
            names.append(node.name)
    return names


@contextlib.contextmanager
def _quiet_logging(*names: str) -> Iterator[None]:
    """Only errors from these loggers ("" is the root) while the block runs.

    A NullHandler on the root also stops a bare ``logging.warning`` call from installing a
    stderr handler on the root logger for the rest of the process (it does when there is none).
    """
    loggers = [logging.getLogger(name or None) for name in names]
    levels = [logger.level for logger in loggers]
    handler = logging.NullHandler()
    logging.getLogger().addHandler(handler)
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        logging.getLogger().removeHandler(handler)


def _opset_of(path: Path) -> int:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next(int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def exported_files(folder: str | os.PathLike[str]) -> list[tuple[str, int]]:
    """(name, bytes) for every file in an exported folder, largest first."""
    root = Path(folder)
    files = [(str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*") if p.is_file()]
    return sorted(files, key=lambda item: (-item[1], item[0]))
