"""Corpus embeddings cached on disk, shared by evaluation, mining, ``tune`` and the demo.

The file name is ``<model fingerprint[:20]>-<corpus fingerprint[:20]>.npy``: a second evaluation,
or a mining run over the same corpus with the same weights, reads the vectors instead of encoding
again. Written atomically; an unreadable or mismatched file is encoded again and replaced.

Beside each file, ``<same name>.rows`` (NumPy format) holds a 16-byte sha256 of every row's text. A
corpus that is not cached as a whole takes the rows an earlier corpus of the same model already
encoded and encodes only the texts no cached corpus has. Why: ``tune`` encodes every chunk of a
folder with the base model for its round-trip filter, then mines negatives among the train files'
chunks and evaluates the base on the dev and test files' chunks: subsets of the same texts. On the
Python standard library (20,000 chunks, 2 CPU cores) mining alone re-encoded 4 of the run's 20
minutes. Rows are keyed by text, not id: a vector depends on the text and on the model (its prompts
and maximum length are in the model fingerprint), not on what the corpus calls it.
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


def row_keys(texts: Sequence[str]) -> np.ndarray:
    """(N, 16) uint8: the first 16 bytes of each text's sha256."""
    keys = np.empty((len(texts), 16), dtype=np.uint8)
    for i, text in enumerate(texts):
        keys[i] = np.frombuffer(hashlib.sha256(text.encode("utf-8")).digest()[:16], np.uint8)
    return keys


def _rows_path(path: Path) -> Path:
    return path.with_suffix(".rows")


def cached_rows(
    cache_dir: str | Path, model_key: str, keys: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray]:
    """Rows for ``keys`` from every cached corpus of the model whose file names start with
    ``model_key`` (its fingerprint's first 20 hex digits): ``(vectors (N, D) or None,
    found (N,) bool)``; rows not found are zero."""
    found = np.zeros(len(keys), dtype=bool)
    out: np.ndarray | None = None
    wanted = {k.tobytes(): i for i, k in enumerate(keys)}
    for rows_file in sorted(Path(cache_dir).glob(f"{model_key}-*.rows")):
        if found.all():
            break
        try:
            have = np.load(rows_file)
            vectors = np.load(rows_file.with_suffix(".npy"), mmap_mode="r")
        except (OSError, ValueError):
            continue  # a partly deleted or foreign cache is skipped, never trusted
        if have.ndim != 2 or vectors.ndim != 2 or have.shape[0] != vectors.shape[0]:
            continue
        take_from, take_to = [], []
        for j, key in enumerate(have):
            i = wanted.get(key.tobytes())
            if i is not None and not found[i]:
                found[i] = True
                take_from.append(j)
                take_to.append(i)
        if take_from:
            if out is None:
                out = np.zeros((len(keys), vectors.shape[1]), dtype=np.float32)
            elif out.shape[1] != vectors.shape[1]:
                found[take_to] = False
                continue
            out[take_to] = vectors[take_from]
    return out, found


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
    keys = row_keys(texts) if path is not None else None
    reused, found = None, np.zeros(len(texts), dtype=bool)
    if path is not None and keys is not None:
        # the model's part of the file name: hashing every weight again would cost ~0.2 s
        reused, found = cached_rows(path.parent, path.stem.rsplit("-", 1)[0], keys)
    missing = [i for i in range(len(texts)) if not found[i]]
    t0 = time.perf_counter()
    emb = reused
    if emb is None or missing:
        fresh = np.asarray(
            encoder.encode_documents(
                [texts[i] for i in missing], batch_size=batch_size, show_progress=show_progress
            ),
            dtype=np.float32,
        )  # (M, D)
        if emb is None:
            emb = fresh
        else:
            emb[missing] = fresh
    seconds = time.perf_counter() - t0
    rate = len(missing) / max(seconds, 1e-9) if missing else None
    if path is not None and keys is not None:
        for target, array in ((_rows_path(path), keys), (path, emb)):
            buffer = io.BytesIO()
            np.save(buffer, array)
            atomic_write_bytes(target, buffer.getvalue())  # rows first: vectors mark it complete
    return emb, rate


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), so inner products are cosines."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # (N, 1)
    return x / np.maximum(norms, 1e-12)
