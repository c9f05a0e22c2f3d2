"""Search an index: dense (FAISS) by default, or hybrid (BM25 + dense, reciprocal rank fusion).

Hybrid mode ranks the top ``max(50, 4k)`` chunks of each retriever and fuses them with reciprocal
rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009)::

    score(d) = sum over retrievers r that found d of  1 / (60 + rank_r(d))      (ranks from 1)

so a chunk found by both beats one found by a single retriever at the same rank; the reported
score is that fused score. Dense scores are cosine similarities (inner products of normalised
vectors). The BM25 index is built on the first hybrid query from the stored chunk texts.

Example::

    hits = search("my-repo.idx", "where is the HTTP status line parsed?", k=5)
    print(hits[0].path, hits[0].start_line, hits[0].end_line, hits[0].score)

    searcher = Searcher.open("my-repo.idx")           # keep the model loaded for many queries
    searcher.search("how are retries configured?", k=3, hybrid=True)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.errors import RagtuneError
from ragtune.model import EmbeddingModel, EncoderConfig, load_model
from ragtune.search.bm25 import BM25Retriever
from ragtune.search.store import IndexStore

RRF_K = 60


@dataclass(frozen=True)
class Hit:
    """One search result: where it is (``path:start_line-end_line``), its score and text."""

    rank: int
    path: str
    start_line: int
    end_line: int
    score: float
    text: str

    @property
    def location(self) -> str:
        return f"{self.path}:{self.start_line}-{self.end_line}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], k: int = RRF_K
) -> list[tuple[int, float]]:
    """Fuse rankings (ids, best first) into ``[(id, score)]`` best first; ties by lower id."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            fused[doc] = fused.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def load_index_encoder(
    store: IndexStore, model: str | None = None, device: str | None = None
) -> EmbeddingModel:
    """The model that built ``store``, loaded with its recorded config and checked by fingerprint.

    Args:
        model: load from here instead of the recorded reference (a moved or copied folder).
    """
    record = store.manifest["model"]
    ref = model or record.get("ref")
    if not ref:
        raise RagtuneError(
            f"{store.folder}: the index does not record where its model is; pass --model"
        )
    config = EncoderConfig.from_dict(record["config"])
    encoder = load_model(
        ref,
        pooling=config.pooling,
        normalize=config.normalize,
        layer=config.layer,
        max_seq_length=config.max_seq_length,
        query_prompt=config.query_prompt,
        document_prompt=config.document_prompt,
        device=device,
    )
    encoder.config = config  # the recorded recipe, provenance included, so fingerprints compare
    if encoder.fingerprint() != record["fingerprint"]:
        raise RagtuneError(
            f"the model loaded from {ref!r} is not the one that built {store.folder} "
            f"(fingerprint {encoder.fingerprint()[:12]} != {record['fingerprint'][:12]}); "
            "pass the right --model or rebuild the index with `ragtune index`"
        )
    return encoder


class Searcher:
    """Queries against one index with one model.

    Args:
        store: the open index.
        encoder: its model (see :func:`load_index_encoder`).
        embed_queries: how query vectors are computed (default ``encoder.encode_queries``); the
            server passes its batching queue here so that only one thread runs the model.
    """

    def __init__(
        self,
        store: IndexStore,
        encoder: EmbeddingModel,
        embed_queries: Callable[[list[str]], np.ndarray] | None = None,
    ) -> None:
        if encoder.dim != store.manifest["model"]["dim"]:
            raise RagtuneError(
                f"the model embeds in {encoder.dim} dimensions, the index holds "
                f"{store.manifest['model']['dim']}"
            )
        self.store = store
        self.encoder = encoder
        self.embed_queries = embed_queries or (
            lambda texts: encoder.encode_queries(texts, show_progress=False)
        )
        self._bm25: BM25Retriever | None = None
        self._lock = threading.Lock()  # FAISS and the lazy BM25 build, shared by server threads

    @classmethod
    def open(
        cls,
        index_dir: str | Path,
        *,
        model: str | None = None,
        device: str | None = None,
        checksums: bool = True,
    ) -> Searcher:
        """Verify the index (``checksums``: hash every file, as a server does once at start;
        without, sizes and structure only) and load the model it was built with."""
        store = IndexStore.open(index_dir, checksums=checksums)
        try:
            return cls(store, load_index_encoder(store, model, device))
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        self.store.close()

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        hybrid: bool = False,
        nprobe: int | None = None,
        rerank: int | None = None,
    ) -> list[Hit]:
        """The ``k`` best chunks for ``query``.

        ``nprobe`` (IVF cells visited) and ``rerank`` (IVF-PQ candidates re-scored exactly)
        override the index's recorded defaults for this query; other kinds ignore them.
        """
        if not query.strip():
            raise RagtuneError("the query is empty")
        vector = self.embed_queries([query])  # (1, D)
        return self.search_vector(query, vector, k, hybrid=hybrid, nprobe=nprobe, rerank=rerank)

    def search_vector(
        self,
        query: str,
        vector: np.ndarray,
        k: int,
        *,
        hybrid: bool = False,
        nprobe: int | None = None,
        rerank: int | None = None,
    ) -> list[Hit]:
        """Like :meth:`search` with the query already embedded (``vector`` (1, D))."""
        if k < 1:
            raise RagtuneError(f"k must be at least 1, got {k}")
        depth = max(50, 4 * k) if hybrid else k
        with self._lock:
            scores, ids = self.store.dense.search(
                vector, depth, nprobe=nprobe, rerank=rerank
            )  # (1, depth)
            found = ids[0] >= 0
            dense_ids = [int(i) for i in ids[0][found]]
            dense_scores = [float(s) for s in scores[0][found]]
            lexical: list[int] = []
            if hybrid and len(self.store):
                if self._bm25 is None:
                    self._bm25 = BM25Retriever.build(self.store.texts(), tokenizer="code")
                _, found_ids = self._bm25.search([query], depth, unmatched="drop")  # (1, depth)
                lexical = [int(i) for i in found_ids[0] if i >= 0]
        if hybrid:
            ranked = reciprocal_rank_fusion([dense_ids, lexical])[:k]
        else:
            ranked = list(zip(dense_ids, dense_scores, strict=True))[:k]
        chunks = self.store.chunks([doc for doc, _ in ranked])
        return [
            Hit(rank, c.path, c.start_line, c.end_line, round(score, 6), c.text)
            for rank, (c, (_, score)) in enumerate(zip(chunks, ranked, strict=True), start=1)
        ]


def search(
    index_dir: str | Path,
    query: str,
    k: int = 10,
    *,
    hybrid: bool = False,
    model: str | None = None,
    device: str | None = None,
    nprobe: int | None = None,
    rerank: int | None = None,
) -> list[Hit]:
    """Load the index and its model, and return the ``k`` best chunks for ``query``.

    A one-off query checks the index's sizes and structure but does not hash a possibly
    multi-GB index each time (``Searcher.open`` and the server do).
    """
    searcher = Searcher.open(index_dir, model=model, device=device, checksums=False)
    try:
        return searcher.search(query, k, hybrid=hybrid, nprobe=nprobe, rerank=rerank)
    finally:
        searcher.close()
