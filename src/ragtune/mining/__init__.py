"""Hard-negative mining: BM25 and/or dense candidates, false-negative filters, n-tuples out.

Example::

    from ragtune.mining import MiningConfig, mine_beir
    result = mine_beir("data/scifact", MiningConfig(source="both", relative_margin=0.95),
                       encoder=Encoder.load("sentence-transformers/all-MiniLM-L6-v2"))
    result.save("mined.jsonl")
"""

from ragtune.mining.config import MiningConfig, Sampling, Source
from ragtune.mining.cross_encoder import CrossEncoder
from ragtune.mining.mine import corpus_from_positives, mine_beir, mine_hard_negatives
from ragtune.mining.result import MinedExample, MiningResult, MiningSummary

__all__ = [
    "CrossEncoder",
    "MinedExample",
    "MiningConfig",
    "MiningResult",
    "MiningSummary",
    "Sampling",
    "Source",
    "corpus_from_positives",
    "mine_beir",
    "mine_hard_negatives",
]
