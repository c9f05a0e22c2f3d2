"""Candidate negatives: ranked corpus positions per query from BM25 and/or a dense model.

Every source returns the same shape, ``(scores (Q, K) float32, indices (Q, K) int64)`` best first,
with index ``-1`` in slots it could not fill (a BM25 query sharing no word with a document never
lists that document; an approximate index may come back short).

* :func:`bm25_candidates` indexes the corpus with bm25s using the recipe of
  :mod:`ragtune.search.bm25` (Lucene BM25, ``k1=0.9, b=0.4``, lowercase, English stop-words,
  Snowball stemming). It is a few lines of its own because mining may not import evaluation;
  the two should share one module once BM25 moves below both stages.
* :func:`dense_candidates` is exact top-k (:func:`ragtune.search.topk.top_k`) or, for large corpora, a
  FAISS HNSW :class:`ragtune.search.topk.DenseIndex`.
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
from ragtune.progress import make_progress, progress_enabled
from ragtune.search.topk import DenseIndex, choose_kind, select_top_k, top_k

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
