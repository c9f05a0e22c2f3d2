"""Batches for contrastive training: tokenized once, no duplicate queries or positives per batch.

Every distinct text is tokenized exactly once (queries with the query prompt, documents with the
document prompt) and given an integer id; examples become tuples of ids. Each text also gets an
identity id: texts that are the same by :func:`~ragtune.data.identity.text_identity` (spacing and
Unicode form aside) share it, while each keeps its own tokens. The identity ids are what the InfoNCE
loss uses to mask in-batch false negatives, and a batch never holds two examples with the same
query or the same positive by identity: with in-batch negatives such a pair would make one
example's positive a "negative" of the other.

Rows are also grouped by query (:mod:`ragtune.train.query_groups`): with ``group_by_query`` an
epoch holds one row per distinct query, and each batch carries every query's known positives so
the loss never uses a document relevant to a query as that query's negative.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ragtune.data.identity import text_identity
from ragtune.data.schema import Example, LabelledPair
from ragtune.errors import RagtuneError
from ragtune.model.batches import Features, pad
from ragtune.progress import console
from ragtune.train.query_groups import QueryGroups, group_queries


@dataclass
class TokenCache:
    """Token ids of every distinct text, tokenized once for the whole run.

    ``identity[i]`` is the identity id of text ``i``: equal for texts of one kind that are the
    same text (:func:`~ragtune.data.identity.text_identity`), distinct otherwise.
    """

    ids: list[list[int]] = field(default_factory=list)
    index: dict[tuple[str, str], int] = field(default_factory=dict)
    identity: list[int] = field(default_factory=list)
    identities: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, text: str, kind: str) -> int:
        key = (kind, text)
        found = self.index.get(key)
        if found is None:
            found = len(self.ids)
            self.index[key] = found
            self.ids.append([])
            same = self.identities.setdefault((kind, text_identity(text)), len(self.identities))
            self.identity.append(same)
        return found

    def tokenize(
        self, tokenizer: Any, max_length: int, prompts: dict[str, str], chunk: int = 4096
    ) -> None:
        """Fill in token ids for every text added so far (fast tokenizers batch in Rust)."""
        keys = sorted(self.index.items(), key=lambda kv: kv[1])
        for start in range(0, len(keys), chunk):
            part = keys[start : start + chunk]
            texts = [prompts.get(kind, "") + text for (kind, text), _ in part]
            encoded = tokenizer(
                texts, truncation=True, max_length=max_length, return_attention_mask=False
            )["input_ids"]
            for (_, idx), ids in zip(part, encoded):
                self.ids[idx] = ids


@dataclass(frozen=True)
class Row:
    """One example as text ids: query, then positive/document, then negatives; label if any."""

    query: int
    document: int
    negatives: tuple[int, ...] = ()
    label: float | None = None


@dataclass
class TrainingSet:
    """Examples as id rows plus the token cache that holds their texts.

    ``groups`` holds the rows of each distinct query and its known positives (empty for
    labelled pairs, whose loss takes no negatives to mask).
    """

    rows: list[Row]
    cache: TokenCache
    labelled: bool
    num_negatives: int
    groups: QueryGroups = field(default_factory=lambda: QueryGroups({}, {}))

    @property
    def num_texts(self) -> int:
        return len(self.cache.ids)


def build_training_set(
    examples: Sequence[Example | LabelledPair],
    tokenizer: Any,
    max_length: int,
    query_prompt: str = "",
    document_prompt: str = "",
    num_negatives: int | None = None,
    notes: list[str] | None = None,
) -> TrainingSet:
    """Turn examples into id rows, tokenizing each distinct text once.

    ``num_negatives`` fixes how many negatives every row uses (a batch needs a fixed number);
    None means the smallest count present in the data, so nothing is padded with fake negatives
    (and the rows that lose negatives are counted in a note, printed or appended to ``notes``).
    """
    if not examples:
        raise RagtuneError("no training examples")
    labelled = isinstance(examples[0], LabelledPair)
    if any(isinstance(e, LabelledPair) != labelled for e in examples):
        raise RagtuneError("training data mixes labelled pairs with (query, positive) examples")
    cache = TokenCache()
    rows: list[Row] = []
    if labelled:
        for e in examples:
            assert isinstance(e, LabelledPair)
            rows.append(
                Row(
                    cache.add(e.query, "query"),
                    cache.add(e.document, "document"),
                    label=float(e.label),
                )
            )
        n_neg = 0
    else:
        counts = [len(e.negatives) for e in examples]  # type: ignore[union-attr]
        n_neg = min(counts) if num_negatives is None else num_negatives
        if num_negatives is None and n_neg < max(counts):
            # Said, never silent: the rows with more negatives lose the extra ones.
            cut = sum(c > n_neg for c in counts)
            note = (
                f"[yellow]{cut} of {len(examples)} examples have more than {n_neg} negatives; "
                f"every row uses {n_neg} (the smallest count: a batch needs one shape). "
                "Set num_negatives to choose, after mining or filtering the short rows."
            )
            if notes is None:
                console.print(note)
            else:
                notes.append(note)  # the caller prints it after its own checks
        if n_neg > min(counts):
            short = sum(c < n_neg for c in counts)
            raise RagtuneError(
                f"{short} of {len(examples)} examples have fewer than {n_neg} negatives; "
                "lower num_negatives or mine more negatives"
            )
        for e in examples:
            assert isinstance(e, Example)
            rows.append(
                Row(
                    cache.add(e.query, "query"),
                    cache.add(e.positive, "document"),
                    tuple(cache.add(n, "document") for n in e.negatives[:n_neg]),
                )
            )
    cache.tokenize(tokenizer, max_length, {"query": query_prompt, "document": document_prompt})
    same = cache.identity
    groups = QueryGroups({}, {})
    if not labelled:
        groups = group_queries(
            [same[r.query] for r in rows],
            [same[r.document] for r in rows],
            [[same[n] for n in r.negatives] for r in rows],
        )
    return TrainingSet(rows, cache, labelled, n_neg, groups)


def epoch_batches(
    data: TrainingSet,
    batch_size: int,
    seed: int,
    epoch: int,
    group_by_length: bool = False,
    min_fill: float = 0.5,
    group_by_query: bool = True,
) -> list[list[int]]:
    """Row indices for every batch of one epoch; the same (seed, epoch) gives the same batches.

    With ``group_by_query`` (and rows that are not labelled pairs) the epoch's rows are one per
    distinct query (:meth:`~ragtune.train.query_groups.QueryGroups.epoch_rows`: over ``k``
    epochs each of a query's ``k`` positives once); without, every row. For data where each
    query has one positive both give the same batches.

    Rows are shuffled, then placed greedily: a row whose query or positive text is already in the
    open batch waits for the next one (labelled pairs only avoid repeating a pair). With
    ``group_by_length`` rows are sorted by length inside windows of 50 batches, then the batches
    are shuffled, which cuts padding without making batches predictable. A batch that cannot be
    filled without repeating a text is kept when it is at least ``min_fill`` full (several
    processes need ``min_fill=1``: every rank takes an equal slice); the rest wait for the
    next epoch's shuffle.
    """
    rng = random.Random(seed * 100_003 + epoch)
    if group_by_query and not data.labelled:
        order = data.groups.epoch_rows(seed, epoch)  # one row per query
    else:
        order = list(range(len(data.rows)))
    rng.shuffle(order)
    if group_by_length:
        window = batch_size * 50
        lengths = [len(data.cache.ids[r.document]) for r in data.rows]
        order = [
            i
            for s in range(0, len(order), window)
            for i in sorted(order[s : s + window], key=lambda i: -lengths[i])
        ]
    same = data.cache.identity
    batches: list[list[int]] = []
    pending = order
    while pending:
        batch: list[int] = []
        seen: set[int] = set()
        deferred: list[int] = []
        for i in pending:
            row = data.rows[i]
            query, document = same[row.query], same[row.document]
            keys = (
                {("q", query), ("d", document)}
                if not data.labelled
                else {("p", query * 1_000_003 + document)}
            )
            if len(batch) < batch_size and not (keys & seen):  # type: ignore[operator]
                batch.append(i)
                seen |= keys  # type: ignore[arg-type]
            else:
                deferred.append(i)
        if len(batch) < batch_size and batches and len(batch) < min_fill * batch_size:
            break  # too few in-batch negatives to be worth a step (min_fill=1: full batches only)
        batches.append(batch)
        pending = deferred
    if group_by_length:
        rng.shuffle(batches)
    return batches


def collate(
    data: TrainingSet, batch: Sequence[int], pad_id: int, known_positives: bool = True
) -> dict[str, Any]:
    """Tokenized text columns and loss extras for one batch.

    Returns ``{"texts": {column: features}, "extra": {name: tensor}, "reshape": {...}}`` with
    columns named as the losses expect: query/positive/negatives, or query/document/label.
    The extras of (query, positive) rows are identity ids: ``query_ids`` (B,),
    ``positive_ids`` (B,), ``negative_ids`` (B, N) and, with ``known_positives``,
    ``known_positive_ids`` (B, K): every known positive of each row's query, padded with -1
    (K is the training set's largest group, the same for every batch).
    """
    rows = [data.rows[i] for i in batch]
    ids, same = data.cache.ids, data.cache.identity
    texts: dict[str, Features] = {"query": pad([ids[r.query] for r in rows], pad_id)}
    extra: dict[str, torch.Tensor] = {}
    reshape: dict[str, tuple[int, int]] = {}
    if data.labelled:
        texts["document"] = pad([ids[r.document] for r in rows], pad_id)
        extra["label"] = torch.tensor([r.label for r in rows], dtype=torch.float32)
    else:
        texts["positive"] = pad([ids[r.document] for r in rows], pad_id)
        extra["query_ids"] = torch.tensor([same[r.query] for r in rows], dtype=torch.long)
        extra["positive_ids"] = torch.tensor([same[r.document] for r in rows], dtype=torch.long)
        if data.num_negatives:
            flat = [ids[n] for r in rows for n in r.negatives]  # (B * N) texts, row-major
            texts["negatives"] = pad(flat, pad_id)
            reshape["negatives"] = (len(rows), data.num_negatives)
            extra["negative_ids"] = torch.tensor(
                [[same[n] for n in r.negatives] for r in rows], dtype=torch.long
            )
        if known_positives:
            extra["known_positive_ids"] = data.groups.known_positive_ids(
                [same[r.query] for r in rows]
            )
    return {"texts": texts, "extra": extra, "reshape": reshape}
