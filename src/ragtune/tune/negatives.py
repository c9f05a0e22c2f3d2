"""Training examples from the train split's pseudo-pairs, with one mined hard negative each.

The negative is mined with the base model among the train files' chunks, and a candidate scoring
above (1 - margin) x the positive is dropped as a likely unlabelled positive (NV-Retriever's
positive-aware filter, Moreira et al. 2024): a folder has many chunks that answer a query.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragtune.data.schema import Document, Example
from ragtune.errors import RagtuneError
from ragtune.mining import MiningConfig, mine_hard_negatives
from ragtune.model.encoder import Encoder
from ragtune.progress import console
from ragtune.pseudo.pairs import PseudoPair, chunk_id
from ragtune.search.chunking import Chunk
from ragtune.tune.config import TuneConfig


def mine_examples(
    cfg: TuneConfig,
    pairs: list[PseudoPair],
    chunks: list[Chunk],
    paths: set[str],
    encoder: Encoder,
    cache: Path,
) -> list[Example]:
    """One example per pair (positive: the pair's document, else its chunk), each with a hard
    negative from the chunks of ``paths`` unless ``cfg.negatives`` is none or fewer than half
    of the pairs found one (then in-batch negatives only, for all)."""
    by_id = {chunk_id(c): c for c in chunks}
    examples = [
        Example(
            p.query, p.document or by_id[p.chunk_id].text, query_id=f"t{i}", positive_id=p.chunk_id
        )
        for i, p in enumerate(pairs)
    ]
    if cfg.negatives == "none":
        return examples
    corpus = {cid: Document(cid, c.text) for cid, c in by_id.items() if c.path in paths}
    try:
        mined = mine_hard_negatives(
            examples,
            corpus,
            MiningConfig(
                source="dense",
                num_negatives=1,
                # mining drops s > relative_margin * p: the config's margin is 1 minus that
                relative_margin=1.0 - cfg.relative_margin,
                cache_dir=str(cache),
                seed=cfg.seed,
            ),
            encoder=encoder,
        )
    except RagtuneError as exc:
        console.print(f"[yellow]no hard negatives ({exc}); training with in-batch negatives")
        return examples
    found = mined.training_examples()
    if 2 * len(found) < len(examples):
        # Fewer than half found a negative: dropping the rest would cost more than they add.
        console.print(f"only {len(found)} of {len(examples)} pairs found a hard negative: not used")
        return examples
    return found


def example_from_json(row: dict[str, Any]) -> Example:
    """An :class:`Example` back from its ``asdict`` row in mined.jsonl."""
    return Example(
        query=row["query"],
        positive=row["positive"],
        negatives=tuple(row.get("negatives") or ()),
        query_id=row.get("query_id"),
        positive_id=row.get("positive_id"),
        negative_ids=tuple(row.get("negative_ids") or ()),
    )


__all__ = ["example_from_json", "mine_examples"]
