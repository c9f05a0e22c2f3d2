"""Retrieval metrics from a run and qrels, computed with trec_eval (through pytrec_eval).

A *run* maps each query id to the documents retrieved for it and their scores:
``{"q1": {"d7": 12.3, "d2": 11.0, ...}}``. Qrels give graded relevance: ``{"q1": {"d2": 2}}``.
Metrics know nothing of models; any retriever that produces a run can be scored.

How each number is computed, for one query with ranked list ``d_1, d_2, ...`` (rank ``i`` from
1), graded relevance ``rel(d)`` (missing = 0), relevant meaning ``rel >= 1``, and ``R`` the
number of relevant documents in the qrels:

* ``nDCG@k`` (trec_eval ``ndcg_cut.k``): ``DCG@k / IDCG@k`` with *linear* gains,
  ``DCG@k = sum_{i<=k} rel(d_i) / log2(i + 1)``; ``IDCG@k`` is the same sum over the qrels'
  relevance grades sorted in decreasing order. (Not the ``2^rel - 1`` gain of some papers; the
  two agree for binary qrels.)
* ``MRR@k``: ``1 / i`` for the first relevant ``d_i`` with ``i <= k``, else 0. trec_eval's
  ``recip_rank`` has no cut-off, so the run is truncated to its top ``k`` before evaluating.
* ``Recall@k`` (``recall.k``): relevant documents in the top ``k``, divided by ``R``.
* ``MAP@k`` (``map_cut.k``): ``sum_{i<=k, d_i relevant} P@i``, divided by ``R`` (not by
  ``min(k, R)``): a query with more than ``k`` relevant documents cannot reach 1.
* ``P@k`` (``P.k``): relevant documents in the top ``k``, divided by ``k`` (even when fewer than
  ``k`` documents were retrieved).

Conventions (BEIR's): queries with no relevant document in the qrels are left out entirely;
queries in the qrels but missing from the run (or with an empty ranking) score 0 on every
metric; run entries for queries not in the qrels are ignored. Documents are ranked by
descending score, equal scores keeping the run's own order (the order the retriever returned
them in): trec_eval itself would order ties by descending document id, so scores are replaced by
ranks before evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pytrec_eval

from ragtune.data.schema import Qrels
from ragtune.errors import RagtuneError

Run = dict[str, dict[str, float]]
"""query id -> {document id -> score}; higher is better."""

DEFAULT_K: tuple[int, ...] = (1, 3, 5, 10, 100)
METRIC_FAMILIES: tuple[str, ...] = ("nDCG", "MRR", "Recall", "MAP", "P")

# Our name for each trec_eval measure whose per-k output is named f"{prefix}_{k}".
_TREC_MEASURES = {"nDCG": "ndcg_cut", "Recall": "recall", "MAP": "map_cut", "P": "P"}


def metric_names(k_values: Iterable[int] = DEFAULT_K) -> list[str]:
    """Names in output order, e.g. ``["nDCG@1", "nDCG@10", ..., "P@10"]``."""
    ks = _check_k(k_values)
    return [f"{family}@{k}" for family in METRIC_FAMILIES for k in ks]


def compute_per_query(
    run: Mapping[str, Mapping[str, float]], qrels: Qrels, k_values: Iterable[int] = DEFAULT_K
) -> dict[str, dict[str, float]]:
    """Every metric of every judged query: ``{qid: {"nDCG@10": 0.61, ...}}``.

    Only queries with at least one relevant document appear; see the module docstring for the
    formulas and conventions.
    """
    ks = _check_k(k_values)
    judged = {
        qid: {doc: int(rel) for doc, rel in docs.items()}
        for qid, docs in qrels.items()
        if any(rel > 0 for rel in docs.values())
    }
    ranked = {qid: _ranked(run[qid]) for qid in judged if run.get(qid)}
    names = metric_names(ks)
    out = {qid: dict.fromkeys(names, 0.0) for qid in judged}
    if not ranked:
        return out

    cut = ",".join(str(k) for k in ks)
    evaluator = pytrec_eval.RelevanceEvaluator(
        judged, {f"{measure}.{cut}" for measure in _TREC_MEASURES.values()}
    )
    for qid, values in evaluator.evaluate(_as_scores(ranked)).items():
        for family, measure in _TREC_MEASURES.items():
            for k in ks:
                out[qid][f"{family}@{k}"] = float(values[f"{measure}_{k}"])

    rr_evaluator = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"})
    for k in ks:
        truncated = {qid: docs[:k] for qid, docs in ranked.items()}
        for qid, values in rr_evaluator.evaluate(_as_scores(truncated)).items():
            out[qid][f"MRR@{k}"] = float(values["recip_rank"])
    return out


def mean_metrics(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Average each metric over queries (an empty dict when there are no queries)."""
    if not per_query:
        return {}
    names = next(iter(per_query.values())).keys()
    n = len(per_query)
    return {name: sum(q[name] for q in per_query.values()) / n for name in names}


def compute_metrics(
    run: Mapping[str, Mapping[str, float]], qrels: Qrels, k_values: Iterable[int] = DEFAULT_K
) -> dict[str, float]:
    """Mean nDCG/MRR/Recall/MAP/P at each ``k`` over the judged queries.

    Example::

        >>> run = {"q1": {"a": 2.0, "b": 1.0}}  # "a" ranked first, then "b"
        >>> compute_metrics(run, {"q1": {"b": 1}}, k_values=[1, 2])["MRR@2"]
        0.5
    """
    ks = _check_k(k_values)
    per_query = compute_per_query(run, qrels, ks)
    if not per_query:
        raise RagtuneError("no query in the qrels has a relevant document: nothing to evaluate")
    return mean_metrics(per_query)


def _ranked(scores: Mapping[str, float]) -> list[str]:
    """Document ids by descending score; sorted() is stable, so ties keep the run's order."""
    return sorted(scores, key=lambda doc: -scores[doc])


def _as_scores(ranked: Mapping[str, Sequence[str]]) -> dict[str, dict[str, float]]:
    """Replace scores by ``n - rank`` so trec_eval sees exactly our order, with no ties."""
    return {
        qid: {doc: float(len(docs) - i) for i, doc in enumerate(docs)}
        for qid, docs in ranked.items()
        if docs
    }


def _check_k(k_values: Iterable[int]) -> list[int]:
    given = list(k_values)
    ks = sorted(set(int(k) for k in given))
    if not ks or ks[0] < 1:
        raise RagtuneError(f"k values must be positive integers, got {given}")
    return ks
