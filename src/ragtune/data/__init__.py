"""Training and evaluation data: types, readers, negatives, the stdlib code-search set, checks.

Typical use::

    from ragtune.data import load_training_data, load_beir, pairs_to_triplets

    train = load_training_data("train.jsonl").records      # or a BEIR folder, or "hf:<name>"
    test = load_beir("data/scifact", "test")                # EvalSet: queries, corpus, qrels
    triplets = pairs_to_triplets(train, negatives_per_query=1, seed=0)
"""

from ragtune.data.beir import beir_training_pairs, load_beir, write_beir_folder
from ragtune.data.check import CheckReport, Finding, check_data
from ragtune.data.codesearch import (
    CodeSearchConfig,
    CodeSearchDataset,
    build_codesearch,
    write_beir,
)
from ragtune.data.negatives import pairs_to_labelled, pairs_to_triplets
from ragtune.data.readers import TrainingData, load_examples, load_training_data, read_examples
from ragtune.data.records import ColumnMap, ReadStats, RecordReader, RowError, Shape
from ragtune.data.schema import Document, EvalSet, Example, LabelledPair, Qrels

__all__ = [
    "CheckReport",
    "CodeSearchConfig",
    "CodeSearchDataset",
    "ColumnMap",
    "Document",
    "EvalSet",
    "Example",
    "Finding",
    "LabelledPair",
    "Qrels",
    "ReadStats",
    "RecordReader",
    "RowError",
    "Shape",
    "TrainingData",
    "beir_training_pairs",
    "build_codesearch",
    "check_data",
    "load_beir",
    "load_examples",
    "load_training_data",
    "pairs_to_labelled",
    "pairs_to_triplets",
    "read_examples",
    "write_beir",
    "write_beir_folder",
]
