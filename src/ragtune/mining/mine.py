"""Hard-negative mining: (query, positive) pairs + a corpus -> (query, positive, negatives).

In-batch negatives are mostly easy; a *hard* negative is a document a retriever ranks high for a
query although it is not the query's positive. Training against those teaches the fine
distinctions retrieval needs, but the highest-ranked "negatives" are often relevant documents
nobody labelled (false negatives), and training pushes them away. This module finds candidates,
takes the query's positives out, keeps a rank window, asks a teacher how close each candidate is
to the positive and drops the suspicious ones (rules and formulas in
:mod:`ragtune.mining.filters`), then picks ``num_negatives`` per example.

The pipeline, top to bottom in :func:`mine_hard_negatives`:

1. group examples by query (``query_id``, else the query text); every positive of a query is
   excluded from its negatives, by id and by identical text;
2. embed queries and corpus with the encoder (the corpus through the embedding cache shared
   with evaluation) when a dense source or a dense teacher needs it;
3. retrieve each query's top ``range_max`` + (its positives) candidates from BM25, the dense
   index or both (union, keeping each source's rank and score);
4. score the window's candidates and each positive with the teacher (cross-encoder if given,
   else the encoder), order them hardest first, drop text duplicates and false negatives;
5. take the ``top`` ``num_negatives`` or a seeded ``random`` sample of the survivors.

Inputs: training records (``Example`` pairs, or ``LabelledPair`` whose label > 0.5 marks a
positive), a corpus ``{id: Document}`` (default: the distinct positives), a
:class:`~ragtune.mining.config.MiningConfig`, an :class:`~ragtune.model.Encoder` and optionally a
cross-encoder.

Reference: Karpukhin et al., "Dense Passage Retrieval" (EMNLP 2020): BM25 hard negatives;
de Souza P. Moreira et al., "NV-Retriever" (arXiv 2407.15831, 2024): positive-aware filtering.

Example::

    encoder = Encoder.load("sentence-transformers/all-MiniLM-L6-v2")
    cfg = MiningConfig(source="both", num_negatives=5, range_min=10, range_max=100,
                       relative_margin=0.95, cache_dir=".cache/emb")
    result = mine_beir("data/scifact", cfg, encoder=encoder)
    result.save("mined.jsonl")        # `ragtune train --data mined.jsonl` reads it as is
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ragtune.data.beir import beir_training_pairs, iter_corpus
from ragtune.data.schema import Document, Example, LabelledPair
from ragtune.errors import RagtuneError
from ragtune.mining.candidates import (
    bm25_candidates,
    corpus_embeddings,
    dense_candidates,
    l2_normalize,
)
from ragtune.mining.config import MiningConfig
from ragtune.mining.cross_encoder import CrossEncoder, PairScorer
from ragtune.mining.filters import (
    false_negative_filters,
    first_occurrences,
    in_window,
    is_positive,
    normalise_text,
    ranks_without,
    select_negatives,
)
from ragtune.mining.inputs import (
    Query,
    corpus_from_positives,
    group_by_query,
    positive_pairs,
    positives_in_corpus,
)
from ragtune.mining.result import MinedExample, MiningResult, MiningSummary
from ragtune.model import Encoder

logger = logging.getLogger(__name__)

# Where a retrieved document ends up, most decisive first (a document several sources return
# takes the first of its outcomes in this order).
_OUTCOMES = ("positive_id", "positive_text", "above_range_min", "in_window", "beyond_range_max")


@dataclass
class _Pool:
    """A query's candidates in the rank window: corpus positions and what each source said."""

    indices: np.ndarray  # (M,) int64
    sources: list[dict[str, dict[str, float]]]
    outcomes: Counter[str]


def mine_hard_negatives(
    examples: Sequence[Example | LabelledPair],
    corpus: Mapping[str, Document] | None = None,
    cfg: MiningConfig | None = None,
    *,
    encoder: Encoder | None = None,
    cross_encoder: PairScorer | None = None,
) -> MiningResult:
    """Mine ``cfg.num_negatives`` hard negatives for every example (see the module docstring).

    Returns the examples that found enough negatives (all with at least one if
    ``cfg.keep_incomplete``) and a summary counting what every step removed; examples left
    short are counted and logged as a warning. Raises :class:`RagtuneError` for an empty
    corpus, a missing encoder, or when no example finds a single negative.
    """
    cfg = cfg or MiningConfig()
    started = time.perf_counter()
    pairs, without_positives = positive_pairs(examples)
    corpus = corpus_from_positives(pairs) if corpus is None else corpus
    if not corpus:
        raise RagtuneError("the corpus is empty: there is nothing to mine negatives from")
    if cross_encoder is None and cfg.cross_encoder:
        cross_encoder = CrossEncoder.load(cfg.cross_encoder)
    if encoder is None and cfg.needs_encoder:
        why = (
            f"source {cfg.source!r} needs"
            if cfg.source != "bm25"
            else "the false-negative filters (margin, relative_margin, max_score) need"
        )
        raise RagtuneError(f"{why} an encoder: pass encoder=Encoder.load(...) or --model")

    doc_ids = list(corpus)
    doc_texts = [corpus[d].full_text() for d in doc_ids]
    norm = [normalise_text(t) for t in doc_texts]
    queries = group_by_query(pairs)
    summary = MiningSummary(
        config=cfg.to_dict(),
        corpus_size=len(doc_ids),
        examples=len(pairs),
        queries=len(queries),
        written=0,
        queries_without_positives=without_positives,
    )
    seconds = summary.seconds

    # ---- 2. embeddings: queries (Q, D) and corpus (N, D), unit length for a cosine model
    q_emb = doc_emb = None
    if encoder is not None:
        t = time.perf_counter()
        doc_emb, summary.embeddings_from_cache = corpus_embeddings(
            encoder, doc_ids, doc_texts, batch_size=cfg.batch_size, cache_dir=cfg.cache_dir
        )
        q_emb = np.asarray(
            encoder.encode_queries([q.text for q in queries], batch_size=cfg.batch_size),
            dtype=np.float32,
        )
        if encoder.config.similarity == "cosine":
            q_emb, doc_emb = l2_normalize(q_emb), l2_normalize(doc_emb)
        seconds["encode"] = time.perf_counter() - t

    # ---- 3. candidates: deep enough that the window survives taking the positives out
    t = time.perf_counter()
    id_position = {d: i for i, d in enumerate(doc_ids)}
    text_positions: dict[str, list[int]] = {}
    for i, text in enumerate(norm):
        text_positions.setdefault(text, []).append(i)
    depth = cfg.range_max + max(
        positives_in_corpus(q, id_position, text_positions) for q in queries
    )
    lists: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # source -> (scores, indices) (Q, K)
    if cfg.source in ("bm25", "both"):
        lists["bm25"] = bm25_candidates([q.text for q in queries], doc_texts, depth)
    if cfg.source in ("dense", "both"):
        assert q_emb is not None and doc_emb is not None
        lists["dense"] = dense_candidates(q_emb, doc_emb, depth, cfg.dense_search)
    pools = [_window(g, q, lists, doc_ids, norm, cfg) for g, q in enumerate(queries)]
    seconds["candidates"] = time.perf_counter() - t

    # ---- 4. teacher scores of every pooled candidate and every positive
    t = time.perf_counter()
    pool_scores: list[np.ndarray] | None = None
    positive_scores: np.ndarray | None = None
    if cross_encoder is not None:
        flat_q = [q.text for q, p in zip(queries, pools, strict=True) for _ in p.indices]
        flat_d = [doc_texts[i] for p in pools for i in p.indices]
        flat = cross_encoder.score(flat_q, flat_d, batch_size=cfg.batch_size)  # (sum M,)
        pool_scores = np.split(flat, np.cumsum([len(p.indices) for p in pools])[:-1])
        positive_scores = cross_encoder.score(
            [e.query for e in pairs], [e.positive for e in pairs], batch_size=cfg.batch_size
        )  # (E,)
    elif encoder is not None:
        assert q_emb is not None and doc_emb is not None
        pool_scores = [doc_emb[p.indices] @ q_emb[g] for g, p in enumerate(pools)]  # (M,) each
        pos_emb = _positive_embeddings(encoder, pairs, doc_emb, text_positions, cfg.batch_size)
        query_of = np.zeros(len(pairs), dtype=np.int64)
        for g, q in enumerate(queries):
            query_of[q.examples] = g
        positive_scores = np.einsum("ed,ed->e", pos_emb, q_emb[query_of])  # (E,)
    seconds["score"] = time.perf_counter() - t

    # ---- 4-5. per example: hardest first, one copy per text, filters, selection
    t = time.perf_counter()
    mined: dict[int, MinedExample] = {}
    found = np.zeros(len(pairs), dtype=np.int64)
    kept_scores, removed_scores = [], []
    counts = summary.counts
    for g, (q, pool) in enumerate(zip(queries, pools, strict=True)):
        indices, sources = pool.indices, pool.sources
        scores = None if pool_scores is None else pool_scores[g]
        if scores is not None:
            order = np.lexsort((indices, -scores))  # score desc, then corpus position
            indices, scores = indices[order], scores[order]
            sources = [sources[i] for i in order]
        unique = first_occurrences([norm[i] for i in indices])
        indices, sources = indices[unique], [s for s, u in zip(sources, unique, strict=True) if u]
        scores = None if scores is None else scores[unique]
        for e in q.examples:
            for outcome, n in pool.outcomes.items():
                counts[outcome] += n
            counts["retrieved"] += sum(pool.outcomes.values())  # each outcome once
            counts["duplicate_text"] += int((~unique).sum())
            keep = np.ones(len(indices), dtype=bool)
            if scores is not None and positive_scores is not None:
                keep, removed = false_negative_filters(
                    scores,
                    float(positive_scores[e]),
                    margin=cfg.margin,
                    relative_margin=cfg.relative_margin,
                    max_score=cfg.max_score,
                )
                for name, n in removed.items():
                    counts[name] += n
                removed_scores.append(scores[~keep])
            survivors = np.flatnonzero(keep)
            rng = np.random.default_rng([cfg.seed, e])
            chosen = survivors[
                select_negatives(len(survivors), cfg.num_negatives, cfg.sampling, rng)
            ]
            counts["kept"] += len(survivors)
            found[e] = len(chosen)
            if len(chosen) == cfg.num_negatives or (len(chosen) and cfg.keep_incomplete):
                if scores is not None:
                    kept_scores.append(scores[chosen])
                mined[e] = _mined(
                    pairs[e],
                    chosen,
                    indices,
                    sources,
                    scores,
                    None if positive_scores is None else positive_scores[e],
                    doc_ids,
                    doc_texts,
                )
                counts["selected"] += len(chosen)
    seconds["select"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - started

    result = MiningResult([mined[e] for e in sorted(mined)], summary)
    summary.written = len(result.examples)
    summary.short = int(((found > 0) & (found < cfg.num_negatives)).sum())
    summary.empty = int((found == 0).sum())
    summary.fewest_found = int(found.min())
    if positive_scores is not None:
        summary.positive_scores = np.asarray(positive_scores, dtype=np.float32)
    summary.kept_scores = _concat(kept_scores)
    summary.removed_scores = _concat(removed_scores)
    _warn(summary, cfg)
    if not result.examples:
        raise RagtuneError(
            f"no example found {cfg.num_negatives} negative(s) (at most {int(found.max())} "
            f"in ranks {cfg.range_min}..{cfg.range_max - 1} after the filters; "
            f"{summary.counts['retrieved']:,} candidates retrieved over {len(pairs):,} "
            "examples); widen --range, relax the filters, lower --num-negatives or use a "
            "bigger corpus"
        )
    return result


def mine_beir(
    folder: str | os.PathLike[str],
    cfg: MiningConfig | None = None,
    *,
    split: str = "train",
    encoder: Encoder | None = None,
    cross_encoder: PairScorer | None = None,
) -> MiningResult:
    """Mine negatives for the judged pairs of ``qrels/<split>.tsv`` from the folder's corpus."""
    pairs = beir_training_pairs(folder, split)
    corpus = {doc.id: doc for _, doc in iter_corpus(Path(folder) / "corpus.jsonl")}
    return mine_hard_negatives(pairs, corpus, cfg, encoder=encoder, cross_encoder=cross_encoder)


def _window(
    g: int,
    q: Query,
    lists: Mapping[str, tuple[np.ndarray, np.ndarray]],
    doc_ids: Sequence[str],
    norm: Sequence[str],
    cfg: MiningConfig,
) -> _Pool:
    """Query ``g``'s candidates in the window of at least one source and above none's range_min."""
    outcome: dict[int, str] = {}
    sources: dict[int, dict[str, dict[str, float]]] = {}
    for source, (scores, indices) in lists.items():
        valid = indices[g] >= 0
        row, row_scores = indices[g][valid], scores[g][valid]  # (K',)
        by_id, by_text = is_positive(
            [doc_ids[i] for i in row], [norm[i] for i in row], q.positive_ids, q.positive_texts
        )
        ranks = ranks_without(by_id | by_text)
        window = in_window(ranks, cfg.range_min, cfg.range_max)
        for i, pid, ptext, rank, win, score in zip(
            row.tolist(), by_id, by_text, ranks.tolist(), window, row_scores.tolist(), strict=True
        ):
            now = _outcome(bool(pid), bool(ptext), rank, bool(win), cfg.range_min)
            outcome[i] = min(outcome.get(i, now), now, key=_OUTCOMES.index)
            if rank >= 0:
                sources.setdefault(i, {})[source] = {"rank": rank, "score": round(score, 6)}
    pooled = [i for i, o in outcome.items() if o == "in_window"]
    return _Pool(
        np.asarray(pooled, dtype=np.int64), [sources[i] for i in pooled], Counter(outcome.values())
    )


def _outcome(by_id: bool, by_text: bool, rank: int, windowed: bool, range_min: int) -> str:
    if by_id:
        return "positive_id"
    if by_text:
        return "positive_text"
    if rank < range_min:
        return "above_range_min"
    return "in_window" if windowed else "beyond_range_max"


def _positive_embeddings(
    encoder: Encoder,
    pairs: Sequence[Example],
    doc_emb: np.ndarray,
    text_positions: Mapping[str, list[int]],
    batch_size: int,
) -> np.ndarray:
    """(E, D) embedding of each example's positive: its corpus row, or encoded when not there."""
    rows = [text_positions.get(normalise_text(e.positive), [-1])[0] for e in pairs]
    out = doc_emb[np.maximum(rows, 0)].copy()  # (E, D)
    missing = [i for i, r in enumerate(rows) if r < 0]
    if missing:
        emb = np.asarray(
            encoder.encode_documents([pairs[i].positive for i in missing], batch_size=batch_size),
            dtype=np.float32,
        )
        out[missing] = l2_normalize(emb) if encoder.config.similarity == "cosine" else emb
    return out


def _mined(
    e: Example,
    chosen: np.ndarray,
    indices: np.ndarray,
    sources: Sequence[dict[str, dict[str, float]]],
    scores: np.ndarray | None,
    positive_score: float | None,
    doc_ids: Sequence[str],
    doc_texts: Sequence[str],
) -> MinedExample:
    picked = indices[chosen].tolist()
    return MinedExample(
        query=e.query,
        positive=e.positive,
        negatives=tuple(doc_texts[i] for i in picked),
        query_id=e.query_id,
        positive_id=e.positive_id,
        negative_ids=tuple(doc_ids[i] for i in picked),
        positive_score=None if positive_score is None else round(float(positive_score), 6),
        negative_scores=tuple(
            None if scores is None else round(float(scores[c]), 6) for c in chosen.tolist()
        ),
        negative_sources=tuple(sources[c] for c in chosen.tolist()),
    )


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def _warn(summary: MiningSummary, cfg: MiningConfig) -> None:
    n = cfg.num_negatives
    if summary.queries_without_positives:
        summary.warnings.append(
            f"{summary.queries_without_positives:,} queries have no positive and were skipped"
        )
    if summary.short:
        fate = (
            "kept (`ragtune train` then uses the smallest count for every example unless "
            "num_negatives is set)"
            if cfg.keep_incomplete
            else "left out (widen the range, relax the filters or pass keep_incomplete)"
        )
        summary.warnings.append(
            f"{summary.short:,} of {summary.examples:,} examples found fewer than {n} "
            f"negatives (fewest {summary.fewest_found}) and were {fate}"
        )
    if summary.empty:
        summary.warnings.append(
            f"{summary.empty:,} of {summary.examples:,} examples found no "
            "negative at all and were left out"
        )
    for message in summary.warnings:
        logger.warning(message)
