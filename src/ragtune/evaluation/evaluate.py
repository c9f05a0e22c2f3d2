"""Evaluate a retriever on an :class:`EvalSet`: encode, search exactly, score the run.

:func:`evaluate_encoder` embeds every query (with the model's query prompt) and every document
(``Document.full_text()``: title, a space, text; with the document prompt), ranks documents by
inner product with :func:`ragtune.search.topk.top_k`, and scores the top 100 with
:mod:`ragtune.evaluation.metrics`. For a cosine model the vectors are L2-normalised first (a
no-op when the model already normalises), so the inner product is the cosine.

Corpus embeddings are the slow part (SciFact's 5,183 abstracts take minutes on a CPU), so with
``cache_dir`` they are saved as ``<model fingerprint>-<corpus fingerprint>.npy`` and a second
evaluation of the same weights, config and corpus reads them back instead of encoding.

:func:`evaluate_bm25` does the same for the BM25 baseline.

Example::

    evalset = load_beir("data/scifact", split="test")
    base = evaluate_encoder(Encoder.load("sentence-transformers/all-MiniLM-L6-v2"), evalset,
                            name="base", cache_dir=".cache/embeddings")
    print(base.metrics["nDCG@10"])
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ragtune.data.schema import EvalSet
from ragtune.errors import RagtuneError
from ragtune.evaluation.metrics import DEFAULT_K, Run, compute_per_query, mean_metrics
from ragtune.model.corpus import (  # noqa: F401 - corpus_fingerprint is re-exported
    corpus_fingerprint,
    encode_documents_cached,
    l2_normalize,
)
from ragtune.search.bm25 import BM25Retriever
from ragtune.search.topk import top_k

RUN_DEPTH = 100
"""Documents kept per query in :attr:`EvalResult.run` (more if a k value asks for more)."""


class EncoderLike(Protocol):
    """What evaluation needs from a model (:class:`ragtune.model.Encoder` has it all)."""

    @property
    def config(self) -> Any: ...  # needs .similarity ("cosine" | "dot")

    def encode_queries(self, texts: Sequence[str], **kwargs: Any) -> Any: ...

    def encode_documents(self, texts: Sequence[str], **kwargs: Any) -> Any: ...

    def fingerprint(self) -> str: ...


@dataclass
class EvalResult:
    """One system's scores on one evaluation set."""

    system: str
    metrics: dict[str, float]
    """Means over judged queries, e.g. ``{"nDCG@10": 0.645, ...}``."""
    per_query: dict[str, dict[str, float]]
    """``{query id: {metric: value}}`` for error analysis and significance tests."""
    run: Run
    """Top :data:`RUN_DEPTH` documents per query with their scores, best first."""
    seconds: float
    """Wall time of the whole evaluation (encoding or indexing, search and scoring)."""
    docs_per_second: float | None
    """Corpus encoding (or BM25 indexing) throughput; None when embeddings came from the cache."""
    num_queries: int
    num_docs: int
    source: str = ""
    """Where the system came from: the model path or id, or the BM25 settings."""

    def to_dict(self, *, include_run: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not include_run:
            del data["run"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalResult:
        return cls(**{"run": {}, **data})


def evaluate_encoder(
    encoder: EncoderLike,
    evalset: EvalSet,
    *,
    name: str = "model",
    source: str = "",
    k_values: Iterable[int] = DEFAULT_K,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
    show_progress: bool | None = None,
) -> EvalResult:
    """Dense retrieval metrics of ``encoder`` on ``evalset`` (exact search over the corpus).

    ``name`` labels the system in reports; ``source`` records where the model came from.
    """
    ks = sorted(set(k_values))
    queries, doc_ids = _check(evalset, ks)
    start = time.perf_counter()

    doc_emb, docs_per_second = encode_corpus(
        encoder,
        evalset,
        doc_ids,
        batch_size=batch_size,
        cache_dir=cache_dir,
        show_progress=show_progress,
    )  # (N, D)

    q_emb = np.asarray(
        encoder.encode_queries(
            list(queries.values()), batch_size=batch_size, show_progress=show_progress
        ),
        dtype=np.float32,
    )  # (Q, D)
    similarity = getattr(encoder.config, "similarity", "cosine")
    if similarity == "cosine":
        q_emb, doc_emb = l2_normalize(q_emb), l2_normalize(doc_emb)
    elif similarity != "dot":
        raise RagtuneError(f"unknown similarity {similarity!r}; valid: cosine, dot")

    scores, indices = top_k(q_emb, doc_emb, k=max(RUN_DEPTH, ks[-1]))  # (Q, depth)
    run = {
        qid: {doc_ids[i]: float(s) for s, i in zip(row_s, row_i, strict=True)}
        for qid, row_s, row_i in zip(queries, scores, indices, strict=True)
    }
    return _result(name, source, run, evalset, ks, start, docs_per_second)


def encode_corpus(
    encoder: EncoderLike,
    evalset: EvalSet,
    doc_ids: Sequence[str] | None = None,
    *,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
    show_progress: bool | None = None,
) -> tuple[np.ndarray, float | None]:
    """Document embeddings (N, D) in ``doc_ids`` order (default: corpus order), cached on disk.

    Returns the embeddings and the encoding rate in docs/s (None when they came from the cache),
    so evaluation, mining and search over the same corpus encode it once per model.
    """
    ids = list(evalset.corpus) if doc_ids is None else list(doc_ids)
    texts = [evalset.corpus[d].full_text() for d in ids]
    return encode_documents_cached(
        encoder,
        ids,
        texts,
        batch_size=batch_size,
        cache_dir=cache_dir,
        show_progress=show_progress,
    )


def evaluate_bm25(
    evalset: EvalSet,
    *,
    name: str = "BM25",
    k_values: Iterable[int] = DEFAULT_K,
    k1: float = 0.9,
    b: float = 0.4,
    show_progress: bool | None = None,
) -> EvalResult:
    """BM25 metrics on ``evalset`` (see :mod:`ragtune.search.bm25` for the recipe)."""
    ks = sorted(set(k_values))
    queries, _ = _check(evalset, ks)
    start = time.perf_counter()
    bm25 = BM25Retriever.build(evalset.corpus, k1=k1, b=b, show_progress=show_progress)
    docs_per_second = len(bm25) / max(time.perf_counter() - start, 1e-9)
    run = bm25.search_run(queries, max(RUN_DEPTH, ks[-1]), show_progress=show_progress)
    return _result(name, f"bm25(k1={k1}, b={b})", run, evalset, ks, start, docs_per_second)


def _check(evalset: EvalSet, ks: list[int]) -> tuple[dict[str, str], list[str]]:
    if not ks or ks[0] < 1:
        raise RagtuneError(f"k values must be positive integers, got {ks}")
    if not evalset.queries:
        raise RagtuneError(f"{evalset.name}: no query has a relevant document; nothing to evaluate")
    if not evalset.corpus:
        raise RagtuneError(f"{evalset.name}: the corpus is empty")
    return evalset.queries, list(evalset.corpus)


def without_identical_ids(run: Run) -> Run:
    """``run`` less every hit whose document id is the query's own id.

    Why: in some corpora a query is also a document (BEIR's ArguAna: 48 of BIRCO-ArguAna's 100
    queries are corpus ids), and a retriever finding the query itself is no answer. BEIR's
    evaluation drops such hits by default (``ignore_identical_ids=True``); so does every score
    here, dense and BM25 alike, so both are judged by the same rule.
    """
    return {qid: {d: s for d, s in hits.items() if d != qid} for qid, hits in run.items()}


def _result(
    name: str,
    source: str,
    run: Run,
    evalset: EvalSet,
    ks: list[int],
    start: float,
    docs_per_second: float | None,
) -> EvalResult:
    run = without_identical_ids(run)
    if evalset.unjudged:
        run = {
            qid: {d: s for d, s in hits.items() if d not in evalset.unjudged.get(qid, ())}
            for qid, hits in run.items()
        }
    per_query = compute_per_query(run, evalset.qrels, ks)
    return EvalResult(
        system=name,
        metrics=mean_metrics(per_query),
        per_query=per_query,
        run=run,
        seconds=time.perf_counter() - start,
        docs_per_second=docs_per_second,
        num_queries=len(per_query),
        num_docs=len(evalset.corpus),
        source=source,
    )
