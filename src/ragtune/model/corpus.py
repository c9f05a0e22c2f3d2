"""Corpus embeddings cached on disk, shared by evaluation, mining and the demo.

The file name is ``<model fingerprint[:20]>-<corpus fingerprint[:20]>.npy``: a second evaluation,
or a mining run over the same corpus with the same weights, reads the vectors instead of encoding
again. Written atomically; an unreadable or mismatched file is encoded again and replaced.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.io import atomic_write_bytes


def corpus_fingerprint(doc_ids: Sequence[str], texts: Sequence[str]) -> str:
    """sha256 over ids and texts in order, length-prefixed so that no two corpora collide."""
    h = hashlib.sha256()
    for doc_id, text in zip(doc_ids, texts, strict=True):
        for part in (doc_id, text):
            data = part.encode("utf-8")
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
    return h.hexdigest()


def cache_path(
    cache_dir: str | Path, encoder: Any, doc_ids: Sequence[str], texts: Sequence[str]
) -> Path:
    key = f"{encoder.fingerprint()[:20]}-{corpus_fingerprint(doc_ids, texts)[:20]}"
    return Path(cache_dir) / f"{key}.npy"


def encode_documents_cached(
    encoder: Any,
    doc_ids: Sequence[str],
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
    show_progress: bool | None = None,
) -> tuple[np.ndarray, float | None]:
    """``(embeddings (N, D) float32, docs/s)``; docs/s is None when they came from the cache."""
    path = cache_path(cache_dir, encoder, doc_ids, texts) if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            cached = np.load(path)
        except (OSError, ValueError):
            cached = None  # unreadable: encode again and overwrite
        if cached is not None and cached.ndim == 2 and cached.shape[0] == len(doc_ids):
            return cached.astype(np.float32, copy=False), None
    t0 = time.perf_counter()
    emb = np.asarray(
        encoder.encode_documents(list(texts), batch_size=batch_size, show_progress=show_progress),
        dtype=np.float32,
    )  # (N, D)
    rate = len(texts) / max(time.perf_counter() - t0, 1e-9)
    if path is not None:
        buffer = io.BytesIO()
        np.save(buffer, emb)
        atomic_write_bytes(path, buffer.getvalue())
    return emb, rate


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), so inner products are cosines."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # (N, 1)
    return x / np.maximum(norms, 1e-12)
