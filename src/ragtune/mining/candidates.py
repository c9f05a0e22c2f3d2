"""Candidate negatives: ranked corpus positions per query from BM25 and/or a dense model.

Every source returns the same shape, ``(scores (Q, K) float32, indices (Q, K) int64)`` best first,
with index ``-1`` in slots it could not fill (a BM25 query sharing no word with a document never
lists that document; an approximate index may come back short).

* :func:`bm25_candidates` is :class:`ragtune.search.bm25.BM25Retriever` (the evaluation
  baseline's recipe: Lucene BM25, ``k1=0.9, b=0.4``, lowercase, English stop-words, Snowball
  stemming) with unmatched documents dropped.
* :func:`dense_candidates` is exact top-k (:func:`ragtune.search.topk.top_k`) or, for large
  corpora, a FAISS HNSW :class:`ragtune.search.topk.DenseIndex`.
* :func:`corpus_embeddings` encodes the corpus once and caches it as
  ``<cache_dir>/<model fingerprint[:20]>-<corpus fingerprint[:20]>.npy``: the same file name and
  contents (raw ``encode_documents`` output of ``Document.full_text()``) that
  ``ragtune.evaluation.evaluate_encoder`` uses, so mining and evaluation share the work.

Example::

    scores, indices = bm25_candidates(["what causes scurvy?"], doc_texts, k=100)
    doc_emb, cached = corpus_embeddings(encoder, doc_ids, doc_texts, cache_dir=".cache/emb")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ragtune.errors import RagtuneError
from ragtune.model import Encoder
from ragtune.model.corpus import (  # noqa: F401 - re-exported for mining
    corpus_fingerprint,
    encode_documents_cached,
    l2_normalize,
)
from ragtune.search.bm25 import BM25Retriever
from ragtune.search.topk import DenseIndex, choose_kind, top_k


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
    bm25 = BM25Retriever.build(list(doc_texts), k1=k1, b=b)
    return bm25.search(list(queries), k, unmatched="drop", show_progress=show_progress)


def dense_candidates(
    query_emb: np.ndarray, doc_emb: np.ndarray, k: int, search: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` documents per query by inner product: exact, or HNSW for large corpora.

    ``search="auto"`` is exact below :data:`ragtune.search.topk.AUTO_FLAT_BELOW` documents.
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
    """``(embeddings (N, D) float32, read_from_cache)``, sharing evaluation's cache files."""
    emb, rate = encode_documents_cached(
        encoder,
        doc_ids,
        doc_texts,
        batch_size=batch_size,
        cache_dir=cache_dir,
        show_progress=show_progress,
    )
    return emb, rate is None
