"""A cross-encoder teacher: reads query and document together and scores their relevance.

A bi-encoder judges a pair from two separately made vectors; a cross-encoder attends across both
texts and is a markedly better judge of "is this actually relevant?", which is what the
false-negative filters ask. When :attr:`MiningConfig.cross_encoder` names one, every candidate in
the rank window and every positive is rescored with it and the filters compare those scores.

The model is any local Hugging Face folder that ``AutoModelForSequenceClassification`` loads
(safetensors weights), e.g. a copy of ``cross-encoder/ms-marco-MiniLM-L6-v2``. Scores are
probabilities in (0, 1): ``sigmoid(logit)`` for a one-label model, ``softmax(logits)[1]`` for a
two-label (irrelevant, relevant) model, so ``relative_margin`` and ``max_score`` read the same
for every model. transformers is imported only when one is loaded.

Anything with a matching :meth:`CrossEncoder.score` method can be passed to
:func:`ragtune.mining.mine_hard_negatives` instead (tests use a fake with hand-set scores).

Example::

    judge = CrossEncoder.load("models/ms-marco-MiniLM-L6-v2")
    judge.score(["what causes scurvy?"], ["Scurvy results from a lack of vitamin C."])  # (1,)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ragtune.errors import RagtuneError
from ragtune.progress import make_progress, progress_enabled


class PairScorer(Protocol):
    """What mining needs from a cross-encoder."""

    def score(
        self, queries: Sequence[str], documents: Sequence[str], *, batch_size: int = 32
    ) -> np.ndarray: ...


class CrossEncoder:
    """A sequence-classification transformer over ``(query, document)`` pairs."""

    def __init__(self, model: Any, tokenizer: Any, max_length: int = 512) -> None:
        num_labels = int(model.config.num_labels)
        if num_labels not in (1, 2):
            raise RagtuneError(
                f"a cross-encoder needs 1 (relevance logit) or 2 (irrelevant, relevant) labels, "
                f"this model has {num_labels}"
            )
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, device: str | None = None, max_length: int = 512
    ) -> CrossEncoder:
        """Load from a local folder (no download; safetensors weights only)."""
        folder = Path(path)
        if not folder.is_dir():
            raise RagtuneError(
                f"cross-encoder {path}: not a local folder; download the model first and pass "
                "its folder"
            )
        if not any(folder.glob("*.safetensors")):
            raise RagtuneError(f"cross-encoder {path}: no .safetensors weights in the folder")
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model = AutoModelForSequenceClassification.from_pretrained(
            folder, local_files_only=True, use_safetensors=True
        )
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(model.to(dev), tokenizer, max_length=max_length)

    def score(
        self,
        queries: Sequence[str],
        documents: Sequence[str],
        *,
        batch_size: int = 32,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Relevance probability of each ``(queries[i], documents[i])`` pair, shape (N,)."""
        import torch

        if len(queries) != len(documents):
            raise RagtuneError(f"{len(queries)} queries but {len(documents)} documents to score")
        out = np.zeros(len(queries), dtype=np.float32)
        device = next(self.model.parameters()).device
        show = progress_enabled(show_progress, default=len(queries) >= 8 * batch_size)
        with make_progress("pairs", enabled=show) as bar, torch.inference_mode():
            task = bar.add_task("cross-encoder", total=len(queries))
            for start in range(0, len(queries), batch_size):
                stop = start + batch_size
                batch = self.tokenizer(
                    list(queries[start:stop]),
                    list(documents[start:stop]),
                    padding=True,
                    truncation="longest_first",
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                logits = self.model(**batch.to(device)).logits.float()  # (B, labels)
                if logits.shape[1] == 1:
                    probs = torch.sigmoid(logits[:, 0])  # (B,)
                else:
                    probs = torch.softmax(logits, dim=1)[:, 1]  # (B,)
                out[start:stop] = probs.cpu().numpy()
                bar.advance(task, logits.shape[0])
        return out
