"""Reading training data: one entry point, :func:`load_training_data`, and the readers under it.

Which reader runs is decided by one rule, in this order:

1. ``source`` starts with ``hf:`` -> a Hugging Face dataset (a hub name or a local path follows);
2. ``source`` is a folder holding ``corpus.jsonl`` -> a BEIR folder (pairs of qrels/<split>.tsv);
3. ``source`` is a file ending in ``.jsonl``, ``.json``, ``.csv``, ``.tsv`` or ``.parquet``
   (or ``-``: JSON Lines on standard input);
4. anything else is an error that repeats this rule.

Files are streamed (:func:`read_examples` never holds the file in memory, except a ``.json``
array, which is one value); the columns they need are described in :mod:`ragtune.data.records`.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ragtune.data.beir import beir_splits, beir_training_pairs, is_beir_folder
from ragtune.data.hf import read_hf
from ragtune.data.jsonl import (
    iter_json_array_rows,
    iter_jsonl_rows,
    iter_jsonl_stream,
    looks_like_json_array,
)
from ragtune.data.parquet import iter_parquet_rows
from ragtune.data.records import ColumnMap, ReadStats, Record, RecordReader, Shape
from ragtune.data.tabular import iter_csv_rows
from ragtune.errors import DataError

logger = logging.getLogger(__name__)

FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")
SourceKind = Literal["file", "beir", "hf"]


def read_examples(
    path: str | os.PathLike[str],
    columns: ColumnMap = ColumnMap(),
    *,
    shape: Shape | None = None,
    skip_invalid: bool = False,
) -> RecordReader:
    """Stream the records of a ``.jsonl``/``.json``/``.csv``/``.tsv``/``.parquet`` file
    (``-``: JSON Lines on standard input).

    The returned reader is an iterator of :class:`Example` or :class:`LabelledPair`; its ``stats``
    (:class:`ReadStats`) count rows read, kept and skipped as iteration goes.

    Example::

        reader = read_examples("train.csv", ColumnMap(query="question"), skip_invalid=True)
        for record in reader:
            ...
        print(reader.stats.summary())
    """
    if os.fspath(path) == "-":  # JSON Lines on standard input
        rows = iter_jsonl_stream(sys.stdin.buffer, "<stdin>")
        return RecordReader(
            rows, source="<stdin>", columns=columns, shape=shape, skip_invalid=skip_invalid
        )
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise DataError(
            f"unknown file type {path.suffix or '(none)'!r}",
            path=str(path),
            hint=f"name the file with one of {', '.join(FILE_SUFFIXES)}",
        )
    if not path.is_file():
        raise DataError("file not found" if not path.exists() else "not a file", path=str(path))
    cells_are_text = suffix in (".csv", ".tsv")
    if suffix == ".jsonl" or (suffix == ".json" and not looks_like_json_array(path)):
        rows = iter_jsonl_rows(path)
    elif suffix == ".json":
        rows = iter_json_array_rows(path)
    elif cells_are_text:
        rows = iter_csv_rows(path, delimiter="," if suffix == ".csv" else "\t")
    else:
        rows = iter_parquet_rows(path)
    return RecordReader(
        rows,
        source=str(path),
        columns=columns,
        shape=shape,
        skip_invalid=skip_invalid,
        cells_are_text=cells_are_text,
    )


def load_examples(
    path: str | os.PathLike[str],
    columns: ColumnMap = ColumnMap(),
    *,
    shape: Shape | None = None,
    skip_invalid: bool = False,
) -> list[Record]:
    """All records of a file as a list; skipped rows (only with ``skip_invalid``) are logged.

    Use :func:`load_training_data` to get the :class:`ReadStats` back as well.
    """
    reader = read_examples(path, columns, shape=shape, skip_invalid=skip_invalid)
    records = list(reader)
    _log_skips(reader.stats)
    return records


@dataclass
class TrainingData:
    """Records plus what reading them found (``stats.skipped``, ``stats.first_errors``)."""

    records: list[Record]
    stats: ReadStats
    kind: SourceKind


def load_training_data(
    source: str | os.PathLike[str],
    columns: ColumnMap = ColumnMap(),
    *,
    shape: Shape | None = None,
    skip_invalid: bool = False,
    split: str = "train",
    hf_config: str | None = None,
    title_separator: str = " ",
) -> TrainingData:
    """Load training records from a file, a BEIR folder or a Hugging Face dataset.

    See the module docstring for the dispatch rule. ``split`` picks the BEIR qrels file or the
    ``datasets`` split; ``columns``/``shape``/``skip_invalid`` apply to files and datasets.
    An empty result is an error: training on nothing is never what was meant.
    """
    text = os.fspath(source)
    kind: SourceKind
    if text.startswith("hf:"):
        kind, reader = (
            "hf",
            read_hf(
                text[3:],
                split=split,
                config_name=hf_config,
                columns=columns,
                shape=shape,
                skip_invalid=skip_invalid,
            ),
        )
        records = list(reader)
        stats = reader.stats
    elif is_beir_folder(text):
        kind = "beir"
        records = list(beir_training_pairs(text, split, title_separator=title_separator))
        stats = ReadStats(source=text, shape="pairs", rows=len(records), kept=len(records))
    elif text == "-" or Path(text).suffix.lower() in FILE_SUFFIXES or Path(text).is_file():
        kind, reader = "file", read_examples(text, columns, shape=shape, skip_invalid=skip_invalid)
        records = list(reader)
        stats = reader.stats
    else:
        what = "a folder without corpus.jsonl" if Path(text).is_dir() else "not found"
        raise DataError(
            f"cannot read training data from here ({what})",
            path=text,
            hint=f"give a {'/'.join(FILE_SUFFIXES)} file, a BEIR folder (with corpus.jsonl) "
            "or hf:<dataset name or path>",
        )
    if not records:
        detail = f"; splits: {', '.join(beir_splits(text))}" if kind == "beir" else ""
        raise DataError(f"no training examples found ({stats.summary()}){detail}", path=text)
    _log_skips(stats)
    return TrainingData(records=records, stats=stats, kind=kind)


def _log_skips(stats: ReadStats) -> None:
    if stats.skipped:
        logger.warning("%s; first problems: %s", stats.summary(), " | ".join(stats.first_errors))
