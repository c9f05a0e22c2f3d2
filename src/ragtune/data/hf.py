"""Rows of a Hugging Face ``datasets`` dataset (a hub name or a local path), streamed.

``datasets`` is optional (``pip install 'ragtune[hf]'``) and imported only here. Hub and local
dataset scripts/files are opened with ``streaming=True``, so nothing is loaded whole; a folder
written by ``Dataset.save_to_disk`` is memory-mapped with ``load_from_disk``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragtune.data.records import ColumnMap, RecordReader, Row, RowError, Shape
from ragtune.errors import DataError, RagtuneError


def read_hf(
    name: str,
    *,
    split: str = "train",
    config_name: str | None = None,
    columns: ColumnMap = ColumnMap(),
    shape: Shape | None = None,
    skip_invalid: bool = False,
) -> RecordReader:
    """Records of one split of a ``datasets`` dataset; the row number stands in for the line."""
    datasets = import_datasets()
    source = f"hf:{name}[{split}]"
    try:
        if (Path(name) / "state.json").is_file() or (Path(name) / "dataset_dict.json").is_file():
            loaded = datasets.load_from_disk(name)
            dataset = loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        else:
            dataset = datasets.load_dataset(name, config_name, split=split, streaming=True)
    except KeyError:
        raise DataError(
            f"no split {split!r}", path=source, hint="pick one with split=..."
        ) from None
    except (
        Exception
    ) as exc:  # DatasetNotFoundError, FileNotFoundError, ValueError for bad splits...
        raise DataError(
            f"cannot open the dataset: {type(exc).__name__}: {exc}",
            path=source,
            hint="give a hub name (owner/name) or a local path after 'hf:'",
        ) from None
    return RecordReader(
        _rows(dataset), source=source, columns=columns, shape=shape, skip_invalid=skip_invalid
    )


def _rows(dataset: Any) -> Iterator[tuple[int, Row | RowError]]:
    yield from enumerate(dataset, start=1)


def import_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise RagtuneError(
            "reading Hugging Face datasets needs the datasets library: pip install 'ragtune[hf]'"
        ) from None
    return datasets
