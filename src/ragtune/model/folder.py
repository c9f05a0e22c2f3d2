"""Model-folder validation: refuse a half-written or damaged model before anything loads it.

Loaders call :func:`check_model_folder` first. A folder ragtune wrote (it holds ``ragtune.json``)
must carry its completion marker (``.ragtune-artefact``, written last, see :mod:`ragtune.io`),
and every file the marker lists must still have the size it had then. Every folder, ragtune's or
a plain sentence-transformers / Hugging Face one, is checked as far as its files go:

- JSON files (``config.json``, ``modules.json``, ``ragtune.json``, the pooling config, the
  tokenizer's) must parse, and hold an object (``modules.json``: a list);
- ``*.safetensors`` must have a readable header whose tensors end where the file ends;
- ``model.onnx`` must not be empty and, when ``onnx`` is installed, must parse;
- the tokenizer's vocabulary must be there (without it every word would become ``[UNK]``).

Each problem is one :class:`RagtuneError` line naming the file and what is wrong with it.
"""

from __future__ import annotations

import contextlib
import json
import struct
from pathlib import Path
from typing import Any

from ragtune.errors import RagtuneError
from ragtune.io import MARKER, read_json_file, read_marker

RAGTUNE_FILE = "ragtune.json"
ONNX_FILE = "model.onnx"
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)
"""Any one of these holds a vocabulary the tokenizer can be built from."""
_MODEL_KINDS = ("model", "onnx-model")
_MAX_HEADER = 100 << 20  # safetensors caps its JSON header at 100 MB


def check_model_folder(path: str | Path) -> None:
    """Raise a one-line RagtuneError when the model folder at ``path`` is incomplete or damaged.

    A path that is not a folder (a hub id) is left to the resolver.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        return
    own = folder / RAGTUNE_FILE
    if own.exists():
        _check_marker(folder)
    own_data = _json(own, dict) if own.exists() else {}
    transformer_dir = folder
    modules = folder / "modules.json"
    if modules.exists():
        for module in _json(modules, list):
            if not isinstance(module, dict):
                raise RagtuneError(f"{modules}: each module must be a JSON object")
            sub = folder / str(module.get("path", ""))
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            if kind == "Transformer":
                transformer_dir = sub
            elif kind == "Pooling":
                _json(sub / "config.json", dict, required=True)
    for name in ("config.json", "sentence_bert_config.json", "config_sentence_transformers.json"):
        for where in {folder, transformer_dir}:
            if (where / name).exists():
                _json(where / name, dict)
    if own_data.get("format") == "onnx":
        _check_onnx(folder / ONNX_FILE)
    else:
        for weights in sorted(transformer_dir.glob("*.safetensors")):
            check_safetensors(weights)
    _check_tokenizer(transformer_dir)


def _check_marker(folder: Path) -> None:
    """The completion marker, and the sizes it recorded for the files nobody edits by hand.

    A folder written before markers existed passes when it has ``modules.json``: earlier
    versions wrote it last, so an interrupted write of theirs has none. Sizes are compared for
    weights and tokenizer files only; the JSON configs (prompts, pooling) and the model card
    are the user's to edit, and the JSON is parsed anyway.
    """
    marker = read_marker(folder)
    if marker is None:
        if (folder / "modules.json").is_file() or _is_onnx(folder):
            return
        raise RagtuneError(
            f"{folder}: incomplete model folder: it has {RAGTUNE_FILE} but no {MARKER}, which "
            "ragtune writes last (the write was interrupted, or the folder was copied in part); "
            "save or export the model again"
        )
    if marker.get("kind") not in _MODEL_KINDS or not marker.get("complete"):
        raise RagtuneError(
            f"{folder / MARKER}: unreadable or not a model's marker (kind "
            f"{marker.get('kind')!r}); save or export the model again"
        )
    files = marker.get("files")
    for name, size in (files if isinstance(files, dict) else {}).items():
        file = folder / name
        if not file.exists():
            if file.suffix == ".safetensors" or name == "README.md":
                continue  # the loader says why only safetensors are read; a card is optional
            raise RagtuneError(f"{file}: missing (the model folder is incomplete); save it again")
        actual = file.stat().st_size
        if _sized(file) and actual != size:
            raise RagtuneError(
                f"{file}: {actual} bytes, but {size} when the model was saved (truncated or "
                "changed since); save or export the model again"
            )


def _sized(file: Path) -> bool:
    """Whether the marker's recorded size must still hold: weights and tokenizer files."""
    return file.suffix in (".safetensors", ".onnx", ".data") or file.name in TOKENIZER_FILES


def _is_onnx(folder: Path) -> bool:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        data = json.loads((folder / RAGTUNE_FILE).read_text(encoding="utf-8"))
        return bool(data.get("format") == "onnx")
    return False


def _json(path: Path, expected: type, *, required: bool = False) -> Any:
    """Parse ``path``; one line naming the file when it is missing, empty or not JSON."""
    if not path.is_file():
        if required:
            raise RagtuneError(f"{path}: missing (the model folder is incomplete)")
        return expected()
    return read_json_file(path, expected, "the model is damaged")


def check_safetensors(path: Path) -> None:
    """Check the header of a safetensors file: its length, JSON, and that the data fits exactly.

    Layout: 8 bytes little-endian header length ``n``, ``n`` bytes of JSON mapping tensor names
    to ``data_offsets`` ``[begin, end)`` within the data that follows.
    """
    size = path.stat().st_size
    if size == 0:
        raise RagtuneError(f"{path}: the weights file is empty (0 bytes); the model is damaged")
    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 0 < n <= min(_MAX_HEADER, size - 8):
            raise RagtuneError(f"{path}: not a safetensors file (bad header length); damaged")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError, TypeError):
        raise RagtuneError(f"{path}: not a safetensors file (unreadable header); damaged") from None
    expected = 8 + n + max(ends, default=0)
    if expected != size:
        raise RagtuneError(
            f"{path}: {size} bytes, but its header describes {expected} (truncated or "
            "corrupted); the model is damaged"
        )


def _check_onnx(path: Path) -> None:
    if not path.is_file():
        return  # the ONNX loader names the missing files
    if path.stat().st_size == 0:
        raise RagtuneError(f"{path}: the ONNX graph is empty (0 bytes); export the model again")
    try:
        import onnx
    except ImportError:
        return
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises its own DecodeError types
        raise RagtuneError(
            f"{path}: not a readable ONNX graph ({type(exc).__name__}); export the model again"
        ) from None
    if not proto.graph.node:
        raise RagtuneError(f"{path}: the ONNX graph has no nodes (corrupted); export it again")


def _check_tokenizer(folder: Path) -> None:
    present = [name for name in TOKENIZER_FILES if (folder / name).is_file()]
    if not present:
        raise RagtuneError(
            f"{folder}: no tokenizer files (one of {', '.join(TOKENIZER_FILES)}); without them "
            "every word would be an unknown token. Copy the tokenizer of the base model into it"
        )
    for name in present:
        file = folder / name
        if file.stat().st_size == 0:
            raise RagtuneError(f"{file}: the tokenizer file is empty (0 bytes); it is damaged")
        if file.suffix == ".json":
            _json(file, dict)
    if (folder / "tokenizer_config.json").exists():
        _json(folder / "tokenizer_config.json", dict)
