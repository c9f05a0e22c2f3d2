"""The rules that turn a ranked candidate list into hard negatives: pure functions on arrays.

For one example with positive score ``p`` (the teacher's score of the query and its positive) and
candidates ranked by a retriever, in this order:

1. **Positives out.** A candidate that is one of the query's positives, by id or by the same
   text (:func:`~ragtune.data.identity.text_identity`: spacing and Unicode form aside), is removed
   before ranks are counted: it is never a negative and never takes a rank slot
   (:func:`is_positive`, :func:`ranks_without`).
2. **Rank window.** Ranks ``range_min .. range_max - 1`` (0-based) are kept (:func:`in_window`):
   the very top of a ranking is where unlabelled relevant documents sit.
3. **One copy per text.** Only the first candidate with a given text is kept
   (:func:`first_occurrences`); two identical negatives teach nothing new.
4. **False-negative filters** on the teacher score ``s`` (:func:`false_negative_filters`); each
   drops what the earlier ones left above its threshold, so the counts add up::

       margin           drop if  s > p - margin
       relative_margin  drop if  s > relative_margin * p      (positive-aware, "TopK-PercPos")
       max_score        drop if  s > max_score

5. **Selection** of ``n`` from the survivors, hardest first or a seeded sample
   (:func:`select_negatives`).

Reference: de Souza P. Moreira et al., "NV-Retriever: Improving text embedding models with
effective hard-negative mining" (arXiv 2407.15831, 2024): positive-aware thresholds
(``relative_margin=0.95``) beat a fixed top-k window and an absolute ceiling.

Example::

    keep, removed = false_negative_filters(np.array([0.82, 0.70, 0.40]), 0.80,
                                           relative_margin=0.95)
    # threshold 0.95 * 0.80 = 0.76: keep == [False, True, True], removed["relative_margin"] == 1
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from ragtune.data.identity import text_identity
from ragtune.errors import RagtuneError

FILTER_NAMES: tuple[str, ...] = ("margin", "relative_margin", "max_score")

normalise_text = text_identity
"""The key of "same text" in mining: :func:`ragtune.data.identity.text_identity`."""


def is_positive(
    ids: Sequence[str],
    texts: Sequence[str],
    positive_ids: Collection[str],
    positive_texts: Collection[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Which candidates are positives: ``(by_id (M,) bool, by_text_only (M,) bool)``.

    ``texts`` and ``positive_texts`` must already be normalised (:func:`normalise_text`).
    ``by_text_only`` marks copies of a positive under another id (the ones an id check misses).
    """
    by_id = np.array([i in positive_ids for i in ids], dtype=bool)
    by_text = np.array([t in positive_texts for t in texts], dtype=bool)
    return by_id, by_text & ~by_id


def ranks_without(excluded: np.ndarray) -> np.ndarray:
    """0-based rank of every candidate once the ``excluded`` (M,) ones are taken out; -1 for those.

    >>> ranks_without(np.array([False, True, False, False])).tolist()
    [0, -1, 1, 2]
    """
    ranks = np.cumsum(~excluded) - 1  # (M,)
    return np.where(excluded, -1, ranks)


def in_window(ranks: np.ndarray, range_min: int, range_max: int) -> np.ndarray:
    """True for ranks in ``range_min .. range_max - 1`` (a rank of -1 is never in)."""
    return (ranks >= range_min) & (ranks < range_max)


def first_occurrences(keys: Sequence[str]) -> np.ndarray:
    """True for the first candidate with each key (e.g. normalised text), False for repeats."""
    seen: set[str] = set()
    keep = np.zeros(len(keys), dtype=bool)
    for i, key in enumerate(keys):
        if key not in seen:
            seen.add(key)
            keep[i] = True
    return keep


def false_negative_filters(
    scores: np.ndarray,
    positive_score: float,
    *,
    margin: float | None = None,
    relative_margin: float | None = None,
    max_score: float | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """Drop candidates the teacher scores too close to (or above) the positive.

    Args:
        scores: ``(M,)`` teacher scores of the candidates.
        positive_score: the teacher's score of the query with its positive.
        margin, relative_margin, max_score: thresholds as in the module docstring; None is off.

    Returns:
        ``(keep (M,) bool, removed)`` where ``removed`` counts, for each of :data:`FILTER_NAMES`,
        the candidates it dropped that the filters before it had kept. A score equal to a
        threshold is kept.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise RagtuneError(f"scores must be a 1-D array, got shape {scores.shape}")
    thresholds = {
        "margin": None if margin is None else positive_score - margin,
        "relative_margin": None if relative_margin is None else relative_margin * positive_score,
        "max_score": max_score,
    }
    keep = np.ones(scores.shape, dtype=bool)
    removed = dict.fromkeys(FILTER_NAMES, 0)
    for name in FILTER_NAMES:
        limit = thresholds[name]
        if limit is None:
            continue
        drop = keep & (scores > limit)
        removed[name] = int(drop.sum())
        keep &= ~drop
    return keep, removed


def select_negatives(
    num_available: int, n: int, sampling: str, rng: np.random.Generator
) -> np.ndarray:
    """Positions of the negatives to take from a pool ordered hardest first.

    ``"top"`` takes the first ``n``; ``"random"`` draws ``n`` distinct positions uniformly with
    ``rng`` and returns them in pool order. Fewer than ``n`` available: all of them.
    """
    k = min(n, num_available)
    if sampling == "top":
        return np.arange(k, dtype=np.int64)
    if sampling == "random":
        return np.sort(rng.choice(num_available, size=k, replace=False)).astype(np.int64)
    raise RagtuneError(f"unknown sampling {sampling!r}; choose one of 'top', 'random'")
