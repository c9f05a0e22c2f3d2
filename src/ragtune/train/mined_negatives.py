"""The mined candidate of ``recipe: auto``: whether one can exist, and its data.

One dense-mined hard negative per training example, from ranks 10-99 of the base model among the
training positives, with the false-negative filter (:mod:`ragtune.mining`); the search trains
one candidate on these rows (train/recipe.py says why only one).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ragtune.data.schema import Example
from ragtune.errors import RagtuneError
from ragtune.model.encoder import Encoder
from ragtune.train.config import TrainConfig


def mining_corpus(examples: list[Any], cfg: TrainConfig, fixed: Mapping[str, Any]) -> int:
    """How many documents a mined candidate would search (0: no mined candidate).

    Only for pairs without negatives, the InfoNCE loss (which takes hard negatives beside the
    in-batch ones) and ``num_negatives`` not set by the user; the corpus is the distinct training
    positives (the documents the data name, no dev query's), and it must hold the mining window
    (ranks 10-99) at least in part: 50 documents or more.
    """
    if "num_negatives" in fixed or cfg.loss.name != "infonce":
        return 0
    if not examples or not all(isinstance(e, Example) and not e.negatives for e in examples):
        return 0
    corpus = len({e.positive for e in examples})
    return corpus if corpus >= 50 else 0


MINING_RANKS = (10, 100)
MINING_RELATIVE_MARGIN = 0.95
MIN_MINED_SHARE = 0.9
"""The mined candidate trains only when this share of the examples found a negative."""


def mine_negatives(
    encoder: Encoder, examples: list[Any], cfg: TrainConfig
) -> tuple[list[Example] | None, dict[str, Any]]:
    """One dense-mined hard negative per example, with the false-negative filter, and a record.

    Ranks 10-99 of the base model among the training positives, minus any candidate scoring
    above 0.95 x the example's positive (NV-Retriever's TopK-PercPos, arXiv 2407.15831); None when
    fewer than 90% of the examples found one (the candidate is then dropped, and the record
    says why).
    """
    from ragtune.mining import MiningConfig, mine_hard_negatives

    low, high = MINING_RANKS
    mcfg = MiningConfig(
        source="dense",
        num_negatives=1,
        range_min=low,
        range_max=high,
        relative_margin=MINING_RELATIVE_MARGIN,
        batch_size=cfg.eval_batch_size,
        seed=cfg.seed,
    )
    t0 = time.perf_counter()
    try:
        result = mine_hard_negatives(examples, None, mcfg, encoder=encoder)
    except RagtuneError as exc:
        seconds = time.perf_counter() - t0
        return None, {"seconds": round(seconds, 1), "note": f"mined candidate dropped: {exc}"}
    seconds = time.perf_counter() - t0
    found = len(result.examples)
    record: dict[str, Any] = {
        "seconds": round(seconds, 1),
        "examples": len(examples),
        "mined": found,
        "ranks": [low, high - 1],
        "relative_margin": MINING_RELATIVE_MARGIN,
    }
    if found < MIN_MINED_SHARE * len(examples):
        record["note"] = (
            f"mined candidate dropped: only {found} of {len(examples)} examples found a hard "
            f"negative in ranks {low}-{high - 1} after the false-negative filter"
        )
        return None, record
    record["note"] = (
        f"mined 1 hard negative for {found} of {len(examples)} examples in {seconds:.0f} s "
        f"(dense, ranks {low}-{high - 1}, false-negative filter at {MINING_RELATIVE_MARGIN} x "
        "the positive's score)"
    )
    return [m.to_example() for m in result.examples], record
