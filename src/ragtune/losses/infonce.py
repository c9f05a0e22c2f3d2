"""InfoNCE with in-batch negatives (a.k.a. MultipleNegativesRankingLoss), with false-negative masks.

Each query must pick its own positive out of every document in the batch: all B positives plus,
when given, all B*N hard negatives (shared across the batch, not only the example's own N).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ragtune.losses.checks import (
    LossError,
    check_choice,
    check_id_rows,
    check_ids,
    check_negatives,
    check_pair,
)
from ragtune.losses.distributed import gather, gather_with_grad, rank_and_world_size
from ragtune.losses.known_positives import known_positive_mask
from ragtune.losses.similarity import SIMILARITIES, Similarity, score_matrix


class InfoNCELoss(nn.Module):
    r"""Cross-entropy of each query over all in-batch documents, its positive being the target.

    Formula, for query i with target document t(i) among the candidates c::

        loss_i = -log( exp(s * sim(q_i, d_t(i))) / sum_c exp(s * sim(q_i, d_c)) )

    averaged over the batch. ``s`` is ``scale`` (default 20, i.e. temperature ``1 / scale`` =
    0.05); with ``similarity="dot"`` the raw dot products are scaled too, so ``scale=1`` is usual
    there. With ``symmetric=True`` the document->query term (each positive picks its own query
    out of all queries) is added and the two are averaged.

    False negatives are masked: a masked candidate's logit is set to -inf before the softmax, so
    it is neither a negative nor a target. The target itself is never masked.

    * ``mask_duplicates`` (default on, acts when ids are given): another example's positive whose
      ``positive_ids`` equals this example's positive id (the same text), or that belongs to an
      example with the same ``query_ids`` (another relevant document of the same query); and,
      given ``known_positive_ids``, every candidate that is a *known positive* of the row's
      query: an in-batch positive (by ``positive_ids``) or a hard negative (by
      ``negative_ids``) whose text id is in the query's row of ``known_positive_ids``. In the
      symmetric term, positive j does not count query i as a negative when j is one of i's
      known positives.
    * ``false_negative_margin=m``: any other candidate, in-batch positive or hard negative, whose
      similarity exceeds the example's positive similarity plus ``m`` (a "negative" that scores
      above the positive is more often unlabelled-relevant than truly hard).

    Each call sets ``last_stats``: ``masked_false_negatives`` (id masks, known positives
    included), ``masked_by_margin`` (margin masks not already id-masked) and ``candidates``
    (columns per query), counted over both directions when symmetric, on this rank; given
    ``known_positive_ids`` also ``masked_known_positives`` (the id masks that are a known
    positive of the row's query) and ``masked_known_hard_negatives`` (those of them that are
    hard negatives).

    So the loss of query i is, with M(i) its masked columns (never its target t(i))::

        loss_i = -s * sim(q_i, d_t(i)) + log sum_{c not in M(i)} exp(s * sim(q_i, d_c))

    Across devices (``gather_across_devices``, acting only when torch.distributed is initialised
    with more than one rank), positives, hard negatives and ids are gathered from all ranks, so each
    local query scores against the global batch; its target is offset by ``rank * B``. The mean of
    the per-rank losses equals the single-process loss on the combined batch, and under DDP the
    parameter gradients match too (see :mod:`ragtune.losses.distributed`).

    Inputs:
        query (B, D), positive (B, D); optional negatives (B, N, D), query_ids (B,),
        positive_ids (B,) and negative_ids (B, N) integer ids of the texts (equal id = equal
        text), and known_positive_ids (B, K): the ids of every known positive of each query,
        rows padded with -1 (K the same on every rank when gathering across devices).

    Reference:
        van den Oord et al. 2018, "Representation Learning with Contrastive Predictive Coding"
        (arXiv 1807.03748); Henderson et al. 2017, "Efficient Natural Language Response Suggestion
        for Smart Reply" (arXiv 1705.00652) for in-batch negatives.

    Example:
        >>> loss_fn = InfoNCELoss(scale=20.0, false_negative_margin=0.1)
        >>> q, p, n = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 2, 8)
        >>> ids = torch.tensor([0, 1, 0, 2])
        >>> loss = loss_fn(query=q, positive=p, negatives=n, positive_ids=ids)
        >>> loss_fn.last_stats["masked_false_negatives"]  # examples 0 and 2 share a positive
        2.0
    """

    inputs: ClassVar[tuple[str, ...]] = ("query", "positive")
    optional_inputs: ClassVar[tuple[str, ...]] = (
        "negatives",
        "query_ids",
        "positive_ids",
        "negative_ids",
        "known_positive_ids",
    )

    def __init__(
        self,
        scale: float = 20.0,
        similarity: Similarity = "cosine",
        symmetric: bool = False,
        mask_duplicates: bool = True,
        false_negative_margin: float | None = None,
        gather_across_devices: bool = True,
    ) -> None:
        super().__init__()
        check_choice("similarity", similarity, SIMILARITIES)
        if scale <= 0:
            raise ValueError(f"scale must be > 0 (temperature = 1/scale), got {scale}")
        self.scale = scale
        self.similarity: Similarity = similarity
        self.symmetric = symmetric
        self.mask_duplicates = mask_duplicates
        self.false_negative_margin = false_negative_margin
        self.gather_across_devices = gather_across_devices
        self.last_stats: dict[str, float] = {}

    @property
    def temperature(self) -> float:
        return 1.0 / self.scale

    def forward(
        self,
        query: torch.Tensor,
        positive: torch.Tensor,
        negatives: torch.Tensor | None = None,
        query_ids: torch.Tensor | None = None,
        positive_ids: torch.Tensor | None = None,
        negative_ids: torch.Tensor | None = None,
        known_positive_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_pair("query", query, "positive", positive)
        b = query.size(0)
        if negatives is not None:
            check_negatives(query, negatives)
        for name, ids in (("query_ids", query_ids), ("positive_ids", positive_ids)):
            if ids is not None:
                check_ids(name, ids, b)
        if negative_ids is not None:
            if negatives is None:
                raise LossError("negative_ids given without negatives")
            check_id_rows("negative_ids", negative_ids, b, negatives.size(1))
        if known_positive_ids is not None:
            check_id_rows("known_positive_ids", known_positive_ids, b)
        if not self.mask_duplicates:
            query_ids = positive_ids = negative_ids = known_positive_ids = None

        rank, world_size = rank_and_world_size() if self.gather_across_devices else (0, 1)
        share = gather_with_grad if world_size > 1 else _identity
        share_ids = gather if world_size > 1 else _identity
        all_positive = share(positive)  # (W*B, D)
        all_query_ids = share_ids(query_ids) if query_ids is not None else None  # (W*B,)
        all_positive_ids = share_ids(positive_ids) if positive_ids is not None else None
        targets = rank * b + torch.arange(b, device=query.device)  # (B,)

        candidates = all_positive
        all_negative_ids = None
        if negatives is not None:
            all_negatives = share(negatives.flatten(0, 1))  # (W*B*N, D)
            candidates = torch.cat([all_positive, all_negatives])  # (W*B + W*B*N, D)
            if negative_ids is not None:
                all_negative_ids = share_ids(negative_ids).flatten()  # (W*B*N,)
        n_ex = all_positive.size(0)

        stats = {"masked_false_negatives": 0.0, "masked_by_margin": 0.0}
        stats["candidates"] = float(candidates.size(0))
        known = None  # (B, C): candidate c is a known positive of query i
        if known_positive_ids is not None:
            stats["masked_known_positives"] = 0.0  # summed over the directions below
            column_ids = torch.cat(
                [
                    _or_unknown(all_positive_ids, n_ex, query.device),
                    _or_unknown(all_negative_ids, candidates.size(0) - n_ex, query.device),
                ]
            )  # (C,)
            known = known_positive_mask(known_positive_ids, column_ids)
            # a hard-negative column is never a target: each known positive there is masked
            stats["masked_known_hard_negatives"] = float(known[:, n_ex:].sum())
        loss = self._direction(
            query,
            candidates,
            targets,
            query_ids,
            all_query_ids,
            positive_ids,
            all_positive_ids,
            known,
            stats,
        )
        if self.symmetric:
            all_query = share(query)  # (W*B, D)
            # Each positive against all queries; the same id rules decide which are false
            # negatives: query i is one for positive j when j is among i's known positives.
            reverse_known = None  # (B, W*B)
            if known_positive_ids is not None and positive_ids is not None:
                all_known = share_ids(known_positive_ids)  # (W*B, K)
                reverse_known = known_positive_mask(all_known, positive_ids).T
            reverse = self._direction(
                positive,
                all_query,
                targets,
                query_ids,
                all_query_ids,
                positive_ids,
                all_positive_ids,
                reverse_known,
                stats,
            )
            loss = (loss + reverse) / 2
        self.last_stats = stats
        return loss

    def _direction(
        self,
        rows: torch.Tensor,  # (B, D)
        columns: torch.Tensor,  # (C, D); columns [0, W*B) belong to examples, in rank order
        targets: torch.Tensor,  # (B,)
        row_query_ids: torch.Tensor | None,  # (B,)
        column_query_ids: torch.Tensor | None,  # (W*B,)
        row_positive_ids: torch.Tensor | None,  # (B,)
        column_positive_ids: torch.Tensor | None,  # (W*B,)
        known: torch.Tensor | None,  # (B, C): the column is a known positive of the row's query
        stats: dict[str, float],
    ) -> torch.Tensor:
        sims = score_matrix(rows, columns, self.similarity)  # (B, C)
        b, c = sims.shape
        is_target = F.one_hot(targets, c).bool()  # (B, C)

        id_mask = torch.zeros_like(is_target)  # (B, C)
        for row_ids, column_ids in (
            (row_query_ids, column_query_ids),
            (row_positive_ids, column_positive_ids),
        ):
            if row_ids is not None and column_ids is not None:
                n_ex = column_ids.size(0)  # example columns (hard negatives: known rule only)
                id_mask[:, :n_ex] |= row_ids[:, None] == column_ids[None, :]
        if known is not None:
            known = known & ~is_target
            stats["masked_known_positives"] += float(known.sum())
            id_mask |= known
        id_mask &= ~is_target

        margin_mask = torch.zeros_like(is_target)
        if self.false_negative_margin is not None:
            with torch.no_grad():
                target_sims = sims.gather(1, targets[:, None])  # (B, 1)
                margin_mask = sims > target_sims + self.false_negative_margin
            margin_mask &= ~is_target & ~id_mask

        stats["masked_false_negatives"] += float(id_mask.sum())
        stats["masked_by_margin"] += float(margin_mask.sum())
        logits = (self.scale * sims).masked_fill(id_mask | margin_mask, float("-inf"))
        return F.cross_entropy(logits, targets)


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def _or_unknown(ids: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor:
    """``ids``, or ``n`` unknown ids (-1: a known-positive row never holds them)."""
    if ids is not None:
        return ids.long()
    return torch.full((n,), -1, dtype=torch.long, device=device)
