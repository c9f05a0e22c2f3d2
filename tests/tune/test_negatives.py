"""tune's hard negatives: the false-negative filter keeps what scores below (1 - margin) x p."""

from __future__ import annotations

from pathlib import Path

import ragtune.tune.negatives as negatives
from ragtune.pseudo.pairs import PseudoPair
from ragtune.search.chunking import Chunk
from ragtune.tune.config import TuneConfig


def test_the_margin_of_the_config_becomes_mining_threshold_one_minus_margin(monkeypatch):
    seen = []

    def fake_mine(examples, corpus, config, encoder):
        seen.append((config.relative_margin, sorted(corpus)))
        raise negatives.RagtuneError("stop here")

    monkeypatch.setattr(negatives, "mine_hard_negatives", fake_mine)
    chunks = [Chunk("a.md", 1, 3, "alpha text"), Chunk("b.md", 1, 2, "beta text")]
    pairs = [PseudoPair("what is alpha", "a.md:1-3", "a.md", 1, 3, "title")]
    cfg = TuneConfig(input="docs", output="out", relative_margin=0.05)
    out = negatives.mine_examples(cfg, pairs, chunks, {"a.md", "b.md"}, None, Path("cache"))
    # mining drops s > relative_margin * p: a 5% margin is a 0.95 x p ceiling, not 0.05 x p
    # (which dropped every candidate of a SciFact run: 0 of 6,000 pairs found a negative)
    assert seen == [(0.95, ["a.md:1-3", "b.md:1-2"])]
    assert [(e.query, e.positive, e.negatives) for e in out] == [
        ("what is alpha", "alpha text", ())
    ]
