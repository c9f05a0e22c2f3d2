"""Candidate negatives: ranked corpus positions per query from BM25 and/or a dense model.

Every source returns the same shape, ``(scores (Q, K) float32, indices (Q, K) int64)`` best first,
with index ``-1`` in slots it could not fill (a BM25 query sharing no word with a document never
lists that document; an approximate index may come back short).

* :func:`bm25_candidates` indexes the corpus with bm25s using the recipe of
  :mod:`ragtune.evaluation.bm25` (Lucene BM25, ``k1=0.9, b=0.4``, lowercase, English stop-words,
  Snowball stemming). It is a few lines of its own because mining may not import evaluation;
  the two should share one module once BM25 moves below both stages.
* :func:`dense_candidates` is exact top-k (:func:`ragtune.index.top_k`) or, for large corpora, a
  FAISS HNSW :class:`ragtune.index.DenseIndex`.
* :func:`corpus_embeddings` encodes the corpus once and caches it as
  ``<cache_dir>/<model fingerprint[:20]>-<corpus fingerprint[:20]>.npy``: the same file name and
  contents (raw ``encode_documents`` output of ``Document.full_text()``) that
  ``ragtune.evaluation.evaluate_encoder`` uses, so mining and evaluation share the work.

Example::

    scores, indices = bm25_candidates(["what causes scurvy?"], doc_texts, k=100)
    doc_emb, cached = corpus_embeddings(encoder, doc_ids, doc_texts, cache_dir=".cache/emb")
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ragtune.errors import RagtuneError
from ragtune.index import DenseIndex, choose_kind, select_top_k, top_k
from ragtune.io import atomic_write_bytes
from ragtune.model import Encoder
from ragtune.progress import make_progress, progress_enabled

_SCORE_BLOCK = 1 << 24  # BM25 scores held at once (64 MB of float32)


def bm25_candidates(
    queries: Sequence[str],
    doc_texts: Sequence[str],
    k: int,
    *,
    k1: float = 0.9,
    b: float = 0.4,
    show_progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` documents per query by BM25; documents sharing no term with it are left out."""
    import bm25s
    import Stemmer
    from bm25s.tokenization import Tokenizer

    if not doc_texts:
        raise RagtuneError("cannot build a BM25 index over an empty corpus")
    tokenizer = Tokenizer(lower=True, stopwords="en", stemmer=Stemmer.Stemmer("english").stemWord)
    model = bm25s.BM25(k1=k1, b=b, method="lucene")
    model.index(
        tokenizer.tokenize(list(doc_texts), return_as="ids", show_progress=False),
        show_progress=False,
    )
    empty = tokenizer.get_vocab_dict().get("")  # what unknown words map to; never a match
    query_ids = tokenizer.tokenize(
        list(queries), update_vocab=False, return_as="ids", show_progress=False
    )
    n_docs = len(doc_texts)
    k = min(k, n_docs)
    out_s = np.zeros((len(queries), k), dtype=np.float32)
    out_i = np.full((len(queries), k), -1, dtype=np.int64)
    block = max(1, _SCORE_BLOCK // n_docs)
    show = progress_enabled(show_progress, default=len(queries) >= 1000)
    with make_progress("queries", enabled=show) as bar:
        task = bar.add_task("BM25 candidates", total=len(queries))
        for start in range(0, len(queries), block):
            rows = []
            for ids in query_ids[start : start + block]:
                known = [t for t in ids if t != empty]
                rows.append(
                    np.asarray(model.get_scores(known), dtype=np.float32)
                    if known
                    else np.zeros(n_docs, dtype=np.float32)
                )
            s, i = select_top_k(np.stack(rows), k)  # (B, k)
            out_s[start : start + len(rows)] = s
            out_i[start : start + len(rows)] = np.where(s > 0, i, -1)
            bar.advance(task, len(rows))
    return out_s, out_i


def dense_candidates(
    query_emb: np.ndarray, doc_emb: np.ndarray, k: int, search: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` documents per query by inner product: exact, or HNSW for large corpora.

    ``search="auto"`` is exact below :data:`ragtune.index.AUTO_FLAT_BELOW` documents.
    """
    if search == "auto":
        search = "exact" if choose_kind(doc_emb.shape[0]) == "flat" else "hnsw"
    if search == "exact":
        return top_k(query_emb, doc_emb, k)
    if search == "hnsw":
        return DenseIndex.build(doc_emb, "hnsw").search(query_emb, k)
    raise RagtuneError(f"unknown dense search {search!r}; choose one of 'auto', 'exact', 'hnsw'")


def corpus_embeddings(
    encoder: Encoder,
    doc_ids: Sequence[str],
    doc_texts: Sequence[str],
    *,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
    show_progress: bool | None = None,
) -> tuple[np.ndarray, bool]:
    """``(embeddings (N, D) float32, read_from_cache)`` as ``encode_documents`` returns them."""
    path = None
    if cache_dir is not None:
        key = f"{encoder.fingerprint()[:20]}-{corpus_fingerprint(doc_ids, doc_texts)[:20]}"
        path = Path(cache_dir) / f"{key}.npy"
        if path.is_file():
            try:
                emb = np.load(path)
            except (OSError, ValueError):
                emb = None  # unreadable: encode again and overwrite
            if emb is not None and emb.ndim == 2 and emb.shape[0] == len(doc_ids):
                return emb.astype(np.float32, copy=False), True
    emb = np.asarray(
        encoder.encode_documents(
            list(doc_texts), batch_size=batch_size, show_progress=show_progress
        ),
        dtype=np.float32,
    )  # (N, D)
    if path is not None:
        buffer = io.BytesIO()
        np.save(buffer, emb)
        atomic_write_bytes(path, buffer.getvalue())
    return emb, False


def corpus_fingerprint(doc_ids: Sequence[str], texts: Sequence[str]) -> str:
    """sha256 over ids and texts in order, each length-prefixed (evaluation's cache key)."""
    h = hashlib.sha256()
    for doc_id, text in zip(doc_ids, texts, strict=True):
        for part in (doc_id, text):
            data = part.encode("utf-8")
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
    return h.hexdigest()


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), so inner products are cosines."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # (N, 1)
    return x / np.maximum(norms, 1e-12)
