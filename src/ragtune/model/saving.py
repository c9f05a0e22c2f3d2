"""Read and write model folders in the sentence-transformers layout.

Written (loadable by every sentence-transformers release since 2.x):
``modules.json``, ``sentence_bert_config.json``, ``config_sentence_transformers.json`` (prompts,
similarity), ``1_Pooling/config.json``, ``2_Normalize/`` when normalising, the transformer's
``config.json`` and tokenizer files, weights as ``model.safetensors``, and ``ragtune.json`` with the
full :class:`EncoderConfig`, and last the completion marker ``.ragtune-artefact`` (kind
``"model"``, see :mod:`ragtune.io`) that loaders require of a folder with ``ragtune.json``.
Read: those folders, folders written by sentence-transformers 2-6, and plain Hugging Face model
folders (mean pooling by default).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ragtune.errors import RagtuneError
from ragtune.io import write_marker
from ragtune.model.spec import EncoderConfig

RAGTUNE_FILE = "ragtune.json"

_POOLING_FLAGS = {
    "cls": "pooling_mode_cls_token",
    "mean": "pooling_mode_mean_tokens",
    "max": "pooling_mode_max_tokens",
    "weighted_mean": "pooling_mode_weightedmean_tokens",
    "last_token": "pooling_mode_lasttoken",
}
# sentence-transformers >= 5 writes a single "pooling_mode" string with these names.
_ST_MODE_NAMES = {
    "mean": "mean",
    "cls": "cls",
    "max": "max",
    "weightedmean": "weighted_mean",
    "weighted_mean": "weighted_mean",
    "lasttoken": "last_token",
    "last_token": "last_token",
}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RagtuneError(f"{path}: cannot read model config ({exc})") from None


def read_folder_config(folder: Path, num_layers: int | None = None) -> tuple[EncoderConfig, Path]:
    """Return the folder's EncoderConfig and the sub-folder that holds the transformer."""
    own = folder / RAGTUNE_FILE
    modules_file = folder / "modules.json"
    transformer_dir = folder
    pooling, normalize = "mean", False
    max_len: int | None = None
    prompts: dict[str, str] = {}
    similarity = "cosine"
    if modules_file.is_file():
        for module in _read_json(modules_file):
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            sub = folder / module.get("path", "")
            if kind == "Transformer":
                transformer_dir = sub
            elif kind == "Pooling":
                pooling = _pooling_from_st(_read_json(sub / "config.json"), sub)
            elif kind == "Normalize":
                normalize = True
            else:
                raise RagtuneError(
                    f"{modules_file}: module type {module.get('type')!r} is not supported "
                    "(ragtune reads Transformer, Pooling and Normalize modules)"
                )
        sbert = transformer_dir / "sentence_bert_config.json"
        if not sbert.is_file():
            sbert = folder / "sentence_bert_config.json"
        if sbert.is_file():
            max_len = _read_json(sbert).get("max_seq_length")
        st_cfg = folder / "config_sentence_transformers.json"
        if st_cfg.is_file():
            data = _read_json(st_cfg)
            prompts = data.get("prompts") or {}
            similarity = data.get("similarity_fn_name") or "cosine"
            if similarity not in ("cosine", "dot"):
                similarity = "cosine"
    if own.is_file():
        # ragtune's own description wins: it carries the layer and exact prompts.
        try:
            return EncoderConfig.from_dict(_read_json(own)), transformer_dir
        except RagtuneError as exc:
            raise RagtuneError(f"{own}: {exc}") from None  # a bad value: say in which file
    cfg = EncoderConfig(
        pooling=pooling,  # type: ignore[arg-type]
        normalize=normalize,
        max_seq_length=int(max_len) if max_len else 512,
        query_prompt=prompts.get("query", ""),
        document_prompt=prompts.get("document", prompts.get("passage", "")),
        similarity=similarity,  # type: ignore[arg-type]
    )
    return cfg, transformer_dir


def _pooling_from_st(data: dict[str, Any], where: Path) -> str:
    if "pooling_mode" in data and isinstance(data["pooling_mode"], str):
        mode = _ST_MODE_NAMES.get(data["pooling_mode"])
        if mode is None:
            raise RagtuneError(f"{where}: pooling mode {data['pooling_mode']!r} is not supported")
        return mode
    active = [mode for mode, flag in _POOLING_FLAGS.items() if data.get(flag)]
    if data.get("pooling_mode_mean_sqrt_len_tokens"):
        active.append("mean_sqrt_len")
    if len(active) != 1:
        raise RagtuneError(
            f"{where}/config.json: exactly one pooling mode must be on, found {active or 'none'}"
        )
    if active[0] == "mean_sqrt_len":
        raise RagtuneError(f"{where}: pooling mode mean_sqrt_len_tokens is not supported")
    return active[0]


def write_folder_config(
    folder: Path, cfg: EncoderConfig, dim: int, versions: dict[str, str]
) -> None:
    """Write the sentence-transformers module files, ragtune.json and the marker into ``folder``.

    Call it after the weights and the tokenizer: the marker lists every file present.
    """
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    if cfg.normalize:
        modules.append(
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
        (folder / "2_Normalize").mkdir(exist_ok=True)
    _write(folder / "modules.json", modules)
    _write(
        folder / "sentence_bert_config.json",
        {"max_seq_length": cfg.max_seq_length, "do_lower_case": False},
    )
    pooling = {"word_embedding_dimension": dim, "pooling_mode_mean_sqrt_len_tokens": False}
    pooling.update({flag: mode == cfg.pooling for mode, flag in _POOLING_FLAGS.items()})
    pooling["include_prompt"] = True
    (folder / "1_Pooling").mkdir(exist_ok=True)
    _write(folder / "1_Pooling" / "config.json", pooling)
    _write(
        folder / "config_sentence_transformers.json",
        {
            "__version__": versions,
            "prompts": {"query": cfg.query_prompt, "document": cfg.document_prompt},
            "default_prompt_name": None,
            "similarity_fn_name": cfg.similarity,
        },
    )
    _write(folder / RAGTUNE_FILE, cfg.to_dict())
    write_marker(folder, "model")


def _write(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
