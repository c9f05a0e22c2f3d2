"""The run's data: training examples, and a dev set to choose the best model with.

When no evaluation data is given, a dev set is carved out of the training data *by query*
(the held-out queries' examples are removed from training), so every run can compare the tuned
model with the base model on queries it has not trained on.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import Any

from ragtune.data.beir import load_beir
from ragtune.data.readers import load_training_data
from ragtune.data.records import ColumnMap
from ragtune.data.schema import Document, EvalSet, Example, LabelledPair
from ragtune.errors import RagtuneError
from ragtune.progress import console

MIN_DEV_QUERIES = 20
MAX_DEV_QUERIES = 500


def load_run_data(cfg: Any, notes: list[str] | None = None) -> tuple[list[Any], EvalSet | None]:
    """Examples to train on and the dev EvalSet (from ``eval_data`` or carved out).

    With ``notes`` what the dev set came to is appended there (for the caller to print after its
    own checks) instead of printed at once.
    """
    columns = ColumnMap(
        query=cfg.query_column,
        positive=cfg.positive_column,
        negative=cfg.negative_column,
        document=cfg.document_column,
        label=cfg.label_column,
    )
    loaded = load_training_data(
        cfg.data, columns, split=cfg.train_split, skip_invalid=cfg.skip_invalid
    )
    if loaded.stats.skipped:
        console.print(loaded.stats.summary(), style="yellow", markup=False)
    examples = list(loaded.records)
    if cfg.eval_data:
        return examples, load_beir(cfg.eval_data, cfg.eval_split)
    return carve_dev_set(examples, cfg.dev_fraction, cfg.seed, notes)


def carve_dev_set(
    examples: Sequence[Example | LabelledPair],
    fraction: float,
    seed: int,
    notes: list[str] | None = None,
) -> tuple[list[Any], EvalSet | None]:
    """Hold out a share of the queries (with all their examples) as a retrieval dev set.

    The dev corpus is every positive document in the data, so held-out queries must find their
    document among all the others, as at search time.
    """

    def positive_of(e: Example | LabelledPair) -> str | None:
        if isinstance(e, Example):
            return e.positive
        return e.document if e.label > 0.5 else None

    queries = sorted({e.query for e in examples})
    n_dev = min(MAX_DEV_QUERIES, int(len(queries) * fraction))
    if fraction <= 0 or n_dev < MIN_DEV_QUERIES:
        if fraction > 0:
            _note(
                f"[yellow]only {len(queries)} distinct queries: too few to hold out a "
                "dev set; the model is not compared with the base model during training",
                notes,
            )
        return list(examples), None
    rng = random.Random(seed)
    dev_queries = set(rng.sample(queries, n_dev))
    corpus: dict[str, Document] = {}
    doc_ids: dict[str, str] = {}
    for e in examples:
        text = positive_of(e)
        if text is not None and text not in doc_ids:
            doc_ids[text] = f"d{len(doc_ids)}"
            corpus[doc_ids[text]] = Document(doc_ids[text], text)
    query_ids = {q: f"q{i}" for i, q in enumerate(sorted(dev_queries))}
    qrels: dict[str, dict[str, int]] = {}
    for e in examples:
        text = positive_of(e)
        if e.query in dev_queries and text is not None:
            qrels.setdefault(query_ids[e.query], {})[doc_ids[text]] = 1
    train = [e for e in examples if e.query not in dev_queries]
    dev = EvalSet({qid: q for q, qid in query_ids.items()}, corpus, qrels, name="held-out dev")
    _note(
        f"held out {len(dev.queries)} of {len(queries)} queries as the dev set "
        f"({len(train)} training examples remain; dev corpus {len(corpus)} documents)",
        notes,
    )
    return train, dev


def _note(text: str, notes: list[str] | None) -> None:
    if notes is None:
        console.print(text)
    else:
        notes.append(text)


def data_fingerprint(examples: Sequence[Any]) -> str:
    """sha256 over every example's texts and labels, in order: which data trained the model."""
    h = hashlib.sha256()
    for e in examples:
        if isinstance(e, LabelledPair):
            parts = [e.query, e.document, repr(e.label)]
        else:
            parts = [e.query, e.positive, *e.negatives]
        for part in parts:
            h.update(part.encode("utf-8"))
            h.update(b"\x00")
        h.update(b"\x01")
    return h.hexdigest()


def check_loss_matches_data(loss_fn: Any, labelled: bool) -> None:
    """Refuse a loss that needs labels on unlabelled data, or one that ignores given labels."""
    needs = tuple(getattr(loss_fn, "inputs", ()))
    if labelled and "label" not in needs:
        raise RagtuneError(
            f"the loss needs {needs} but the data are labelled pairs "
            "(query, document, label): use --loss contrastive or cosine"
        )
    if not labelled and "label" in needs:
        raise RagtuneError(
            f"the loss needs {needs} but the data have no labels: use "
            "--loss infonce or triplet, or convert pairs with pairs_to_labelled"
        )
