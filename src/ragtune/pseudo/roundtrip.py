"""Round-trip consistency: keep a pseudo-query only if the base retriever finds its chunk.

A generated query is kept when its own chunk ranks in the top ``k`` of the base retriever over
every chunk of the folder, the retriever being BM25 and the base dense model fused by reciprocal
rank (Cormack et al. 2009, ``1 / (rrf_k + rank)`` summed over both lists). A query its chunk
cannot be found for is either too vague ("Return the result.") or about something else than
the chunk (a held-out sentence that only makes sense in context): training on it teaches noise.

Reference: Alberti et al. 2019, "Synthetic QA Corpora Generation with Roundtrip Consistency"
(keep a generated question only when a model answers it with the passage it came from); the
same filter drives InPars and Promptagator's consistency step.

Example::

    result = round_trip_filter(pairs, chunks, encoder, RoundTripConfig(k=10))
    result.removed            # Counter({"cloze": 812, "identifier": 40})
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ragtune.model.corpus import encode_documents_cached, l2_normalize
from ragtune.pseudo.code import is_code
from ragtune.pseudo.pairs import PseudoPair, chunk_id
from ragtune.search.bm25 import BM25Retriever
from ragtune.search.chunking import Chunk
from ragtune.search.topk import top_k

Tokenizer = Literal["auto", "english", "code"]


@dataclass(frozen=True)
class RoundTripConfig:
    """How strict the filter is; ``k=0`` turns it off."""

    k: int = 10
    """Keep a pair when its chunk is in the fused top ``k``."""
    depth: int = 100
    """How deep each list is read before fusing (a chunk below it in both is never kept)."""
    rrf_k: int = 60
    tokenizer: Tokenizer = "auto"
    """BM25 tokenizer; auto: ``code`` when most chunks are source files, else ``english``."""
    batch_size: int = 32


@dataclass
class RoundTripResult:
    kept: list[PseudoPair]
    removed: Counter[str] = field(default_factory=Counter)
    """Pairs removed, by generator."""
    ranks: list[int] = field(default_factory=list)
    """Fused rank (1-based; 0: not in the fused list) of every pair's chunk, in input order."""
    dense_ranks: list[int] = field(default_factory=list)
    """Rank (1-based; 0: below ``depth``) of every pair's chunk in the base dense model's list
    alone, in input order: how hard the pair is for the model being tuned
    (:mod:`ragtune.tune.selection`)."""
    docs_per_second: float | None = None
    """How fast the base model encoded the chunks here (None: they came from the cache): the
    speed of this machine on this folder's own texts, which ``tune`` plans the index with."""


def fused_order(rankings: Sequence[np.ndarray], n_docs: int, rrf_k: int = 60) -> np.ndarray:
    """Reciprocal-rank fusion of ranked index lists: ``(Q, depth)`` each -> ``(Q, n')`` fused.

    ``-1`` entries (no hit) are ignored; ties keep the lower document index first. The result
    lists every document that appears in any input, best first, padded with ``-1``.
    """
    q = rankings[0].shape[0]
    scores = np.zeros((q, n_docs), dtype=np.float64)  # (Q, N)
    for ranking in rankings:
        rows, cols = np.nonzero(ranking >= 0)
        scores[rows, ranking[rows, cols]] += 1.0 / (rrf_k + cols + 1)
    order = np.argsort(-scores, axis=1, kind="stable")  # (Q, N)
    present = np.take_along_axis(scores, order, axis=1) > 0
    return np.where(present, order, -1)


def rank_of(order: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1-based position of ``targets[i]`` in ``order[i]`` (0 when absent): shape (Q,)."""
    hit = order == targets[:, None]  # (Q, N)
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, 0)


def round_trip_filter(
    pairs: Sequence[PseudoPair],
    chunks: Sequence[Chunk],
    encoder: Any,
    cfg: RoundTripConfig = RoundTripConfig(),
    *,
    cache_dir: str | Path | None = None,
    show_progress: bool | None = None,
) -> RoundTripResult:
    """The pairs whose chunk the fused base retriever ranks in the top ``cfg.k``."""
    if cfg.k == 0 or not pairs:
        return RoundTripResult(list(pairs), Counter(), [0] * len(pairs), [0] * len(pairs))
    ids = [chunk_id(c) for c in chunks]
    position = {cid: i for i, cid in enumerate(ids)}
    texts = [c.text for c in chunks]
    queries = [p.query for p in pairs]
    targets = np.array([position.get(p.chunk_id, -2) for p in pairs], dtype=np.int64)
    depth = min(cfg.depth, len(chunks))

    tokenizer = cfg.tokenizer
    if tokenizer == "auto":
        tokenizer = "code" if 2 * sum(is_code(c.path) for c in chunks) > len(chunks) else "english"
    bm25 = BM25Retriever.build(texts, tokenizer=tokenizer, show_progress=show_progress)
    _, lexical = bm25.search(queries, depth, unmatched="drop", show_progress=show_progress)

    docs, rate = encode_documents_cached(
        encoder,
        ids,
        texts,
        batch_size=cfg.batch_size,
        cache_dir=cache_dir,
        show_progress=show_progress,
    )  # (N, D)
    q = np.asarray(
        encoder.encode_queries(queries, batch_size=cfg.batch_size, show_progress=show_progress),
        dtype=np.float32,
    )  # (Q, D)
    if getattr(encoder.config, "similarity", "cosine") == "cosine":
        q, docs = l2_normalize(q), l2_normalize(docs)
    _, dense = top_k(q, docs, depth)  # (Q, depth)

    ranks = np.zeros(len(pairs), dtype=np.int64)
    for start in range(0, len(pairs), 1024):  # (1024, N) fused scores at a time
        part = slice(start, start + 1024)
        order = fused_order([lexical[part], dense[part]], len(chunks), cfg.rrf_k)
        ranks[part] = rank_of(order, targets[part])
    kept, removed = [], Counter[str]()
    for pair, rank in zip(pairs, ranks, strict=True):
        if 0 < rank <= cfg.k:
            kept.append(pair)
        else:
            removed[pair.generator] += 1
    dense_ranks = rank_of(dense, targets)  # (Q,): -1 padding and -2 targets never match
    return RoundTripResult(
        kept, removed, [int(r) for r in ranks], [int(r) for r in dense_ranks], rate
    )


__all__ = ["RoundTripConfig", "RoundTripResult", "fused_order", "rank_of", "round_trip_filter"]
