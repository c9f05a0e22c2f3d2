"""Sharded encoding: ``n`` processes each embed one shard of a corpus; a merge builds the index.

Shard ``i`` of ``n`` holds the units (files or documents, see
:mod:`ragtune.search.corpus_stream`) whose stream position is ``i`` modulo ``n``. Each shard is
one folder, written atomically with its completion marker (:func:`ragtune.io.atomic_dir`, kind
``index-shard``), beside the index::

    docs.idx.shards/shard-1-of-4/
        shard.json          source, shard, model fingerprint and config, settings, rows
        chunks.jsonl        one line per row: unit, path, start_line, end_line, text, sha256
        vectors-00000.npy   (<= 16384, D) float32 embeddings of those rows, in order; then 00001...

A killed shard leaves no folder (only a temporary one, cleared by the next run), so it is rerun
alone; a shard already complete for the same model, source and settings is not encoded again.
:func:`merge_shards` puts the rows back in stream order (a k-way merge on the unit number: row
``j`` of the index is the ``j``-th chunk of the corpus, as a single process would number it),
streams them into the index folder's ``chunks.sqlite`` and ``vectors.npy`` (a memory map, never
all in RAM), then builds the FAISS index from that file, block by block.

Under ``torchrun --nproc-per-node N`` each rank takes shard ``RANK`` of ``WORLD_SIZE``
(:func:`shard_from_env`); rank 0 merges after :func:`wait_for_ranks`.

Example::

    encode_shard("corpus.jsonl", encoder, "corpus.idx", shard=(0, 2))   # one process each
    encode_shard("corpus.jsonl", encoder, "corpus.idx", shard=(1, 2))
    merge_shards("corpus.idx", kind="ivfpq")                             # corpus.idx ready
"""

from __future__ import annotations

import heapq
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ragtune.errors import RagtuneError
from ragtune.io import atomic_dir, check_output, crash_point, read_marker
from ragtune.model import EmbeddingModel
from ragtune.search.build import FileChunker, IndexConfig, model_record
from ragtune.search.corpus_stream import Record, iter_records, source_kind
from ragtune.search.files import walk_text_files
from ragtune.search.store import FORMAT, ChunkTable, StoredChunk, StoredFile, finish_store
from ragtune.search.topk import DenseIndex, IndexKind, choose_kind

SHARD_KIND = "index-shard"
SHARD_META = "shard.json"
CHUNKS = "chunks.jsonl"
PART_ROWS = 16_384  # rows per vectors-*.npy part: the most a shard holds in RAM at once
ADD_ROWS = 65_536  # rows read per step when the FAISS index is built from vectors.npy


@dataclass
class ShardReport:
    """What one shard run did."""

    shard: str
    folder: str
    rows: int = 0
    reused: bool = False
    seconds: float = 0.0


@dataclass
class MergeReport:
    """What a merge did."""

    out_dir: str
    shards: int = 0
    chunks_total: int = 0
    files_total: int = 0
    index_kind: str = ""
    index_params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def shards_root(out_dir: str | os.PathLike[str]) -> Path:
    """Where the shards of index ``out_dir`` are written: ``<out_dir>.shards/`` beside it."""
    out = Path(out_dir)
    return out.parent / f"{out.name}.shards"


def shard_name(index: int, count: int) -> str:
    return f"shard-{index}-of-{count}"


def parse_shard(text: str) -> tuple[int, int]:
    """``"1/4"`` -> ``(1, 4)``; anything else is a one-line error."""
    left, sep, right = text.partition("/")
    if sep and left.strip().isdigit() and right.strip().isdigit():
        index, count = int(left), int(right)
        if 0 <= index < count:
            return index, count
    raise RagtuneError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. 0/4")


def shard_from_env() -> tuple[int, int] | None:
    """``(RANK, WORLD_SIZE)`` under torchrun (WORLD_SIZE > 1), else None."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return None
    return int(os.environ.get("RANK", "0")), world


def wait_for_ranks(timeout_hours: float = 24.0) -> None:
    """A barrier across the torchrun ranks (gloo; initialised here if needed), then shut down.

    The timeout is long because ranks finish their shards at different times.
    """
    from datetime import timedelta

    import torch.distributed as dist

    own = not dist.is_initialized()
    if own:
        dist.init_process_group("gloo", timeout=timedelta(hours=timeout_hours))
    dist.barrier()
    if own:
        dist.destroy_process_group()


def encode_shard(
    source: str | os.PathLike[str],
    encoder: EmbeddingModel,
    out_dir: str | os.PathLike[str],
    *,
    shard: tuple[int, int],
    meta: dict[str, Any],
    records: Iterator[Record] | None = None,
    batch_size: int = 32,
    show_progress: bool | None = None,
) -> ShardReport:
    """Embed shard ``shard = (i, n)`` of ``source`` into ``shards_root(out_dir)/shard-i-of-n``.

    Args:
        meta: what decides the rows (model record, settings, skip counts); a complete shard
            with the same ``meta`` is kept as it is.
        records: the shard's records (default: :func:`iter_records` of a corpus ``source``;
            a folder passes its chunked files).
    """
    started = time.perf_counter()
    index, count = shard
    folder = shards_root(out_dir) / shard_name(index, count)
    report = ShardReport(shard=f"{index}/{count}", folder=str(folder))
    check_output(folder, SHARD_KIND)
    record = {"source": str(Path(source).resolve()), "shard": [index, count], **meta}
    if _complete(folder) and _same_run(_read_meta(folder), _as_recorded(record, encoder, folder)):
        report.rows, report.reused = int(_read_meta(folder)["rows"]), True
        return report
    if records is None:
        records = iter_records(source, shard=shard)
    from ragtune.progress import make_progress, progress_enabled

    progress = make_progress("chunks", enabled=progress_enabled(show_progress, True))
    with atomic_dir(folder, SHARD_KIND) as tmp, progress:
        task = progress.add_task(f"shard {index}/{count}", total=None)
        rows, part = 0, 0
        with open(tmp / CHUNKS, "w", encoding="utf-8") as out:
            for block in _blocks(records, PART_ROWS):
                vectors = encoder.encode_documents(
                    [r.embed_text for r in block], batch_size=batch_size, show_progress=False
                )  # (B, D)
                np.save(tmp / f"vectors-{part:05d}.npy", np.asarray(vectors, dtype=np.float32))
                for r in block:
                    row = [r.unit, r.path, r.start_line, r.end_line, r.text, r.sha256]
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
                rows, part = rows + len(block), part + 1
                progress.advance(task, len(block))
                crash_point("index-shard:part")  # tests: a kill mid-shard leaves no shard
        if "model" in record:  # as encoding resolved it (precision): what a searcher rebuilds
            config = encoder.config.to_dict()
            resolved = {"fingerprint": _fingerprint_under(encoder, config), "config": config}
            if "precision" in record["model"]:
                resolved["precision"] = model_record(encoder)["precision"]
            record["model"] = record["model"] | resolved
        text = json.dumps(record | {"rows": rows, "parts": part}, indent=2, ensure_ascii=False)
        (tmp / SHARD_META).write_text(text + "\n", encoding="utf-8")
    report.rows = rows
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def encode_source_shard(
    source: str | os.PathLike[str],
    encoder: EmbeddingModel,
    out_dir: str | os.PathLike[str],
    config: IndexConfig | None = None,
    *,
    shard: tuple[int, int] = (0, 1),
    model_ref: str | None = None,
    show_progress: bool | None = None,
) -> ShardReport:
    """:func:`encode_shard` for a folder (walked and chunked as ``ragtune index DIR`` does) or a
    corpus file, recording the model and settings the merge checks."""
    config = config or IndexConfig()
    meta: dict[str, Any] = {"model": model_record(encoder, model_ref)}
    records = None
    if source_kind(source) == "folder":
        root, out = Path(source), Path(out_dir).resolve()
        exclude = list(config.exclude)
        for inside in (out, shards_root(out)):  # never index the index or its shards
            if inside.is_relative_to(root.resolve()) and inside != root.resolve():
                exclude.append("/" + inside.relative_to(root.resolve()).as_posix() + "/")
        walk = walk_text_files(
            root,
            exclude=exclude,
            use_gitignore=config.use_gitignore,
            max_file_bytes=config.max_file_bytes,
        )
        if not walk.files:
            raise RagtuneError(f"{root}: no text files to index")
        meta |= {"settings": config.settings(), "skipped": dict(sorted(walk.skipped.items()))}
        records = iter_records(
            root, chunker=FileChunker(encoder, config), files=walk.files, shard=shard
        )
    return encode_shard(
        source,
        encoder,
        out_dir,
        shard=shard,
        meta=meta,
        records=records,
        batch_size=config.batch_size,
        show_progress=show_progress,
    )


def merge_shards(
    out_dir: str | os.PathLike[str],
    *,
    kind: IndexKind | Literal["auto"] = "auto",
    overwrite: bool = False,
    **index_params: Any,
) -> MergeReport:
    """Build the index ``out_dir`` from all the shards in ``shards_root(out_dir)``.

    Every shard ``0..n-1`` of one run must be complete and agree on the model, the source and
    the settings; a missing one is named with the command that writes it. ``index_params`` go to
    :class:`ragtune.search.topk.DenseIndex` (``nprobe``, ``rerank``, ``nlist``...).
    """
    started = time.perf_counter()
    out = check_output(out_dir, "index", overwrite=overwrite)
    folders, metas = _all_shards(shards_root(out))
    first = {k: v for k, v in metas[0].items() if k not in ("shard", "rows", "parts")}
    for f, m in zip(folders, metas, strict=True):
        if not _same_run(m | {"shard": None}, metas[0] | {"shard": None}):
            raise RagtuneError(
                f"{f}: built with another model, source or settings than {folders[0].name}; "
                "rerun that shard with the same options"
            )
    total = sum(int(m["rows"]) for m in metas)
    if total == 0:
        raise RagtuneError(f"{first['source']}: nothing to index (no chunks in any shard)")
    dim = int(first["model"]["dim"])
    report = MergeReport(out_dir=str(out), shards=len(folders), chunks_total=total)
    with atomic_dir(out, "index", overwrite=overwrite) as tmp:
        vectors = np.lib.format.open_memmap(tmp / "vectors.npy", "w+", np.float32, (total, dim))
        table = ChunkTable(tmp)
        pending: list[tuple[StoredChunk, str]] = []
        shards = (_read_shard(f) for f in folders)
        merged = heapq.merge(*shards, key=lambda row: row[0])  # by unit; stable within a shard
        for chunk_id, (_, path, start, end, text, sha, vector) in enumerate(merged):
            vectors[chunk_id] = vector
            pending.append((StoredChunk(chunk_id, path, start, end, text), sha))
            if len(pending) >= PART_ROWS:
                _flush(table, pending, first["model"]["fingerprint"])
        _flush(table, pending, first["model"]["fingerprint"], last=True)
        vectors.flush()
        del vectors
        report.files_total = table.files
        resolved = choose_kind(total) if kind == "auto" else kind
        dense = build_dense(tmp / "vectors.npy", resolved, **index_params)
        report.index_kind, report.index_params = dense.kind, dict(dense.params)
        manifest = {
            "format": FORMAT,
            "model": first["model"],
            "settings": first.get("settings", {}),
            "index": {"kind": dense.kind, "params": dense.params},
            "source": first["source"],
            "counts": {"files": table.files, "chunks": total},
            "skipped": first.get("skipped", {}),
            "shards": len(folders),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        table.close()
        finish_store(tmp, manifest, dense)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def build_dense(vectors_path: Path, kind: IndexKind, **params: Any) -> DenseIndex:
    """A FAISS index over the ``.npy`` file's rows, read ``ADD_ROWS`` at a time.

    IVF kinds train first on rows spread evenly over the file (a corpus sorted by topic would
    give a biased sample if the first rows were taken).
    """
    vectors = np.load(vectors_path, mmap_mode="r")  # (N, D)
    n, dim = vectors.shape
    dense = DenseIndex(dim, kind, **params)
    if kind in ("ivf", "ivfpq"):
        from ragtune.search.ivfpq import plan

        wanted = plan(n, dim).train_size if kind == "ivfpq" else n
        rows = np.linspace(0, n - 1, num=min(n, wanted)).astype(np.int64)
        dense.train(np.asarray(vectors[np.unique(rows)], dtype=np.float32), n_total=n)
    del vectors
    header = np.load(vectors_path, mmap_mode="r").offset
    with open(vectors_path, "rb") as f:  # read, not mapped: the file's pages stay out of RSS
        f.seek(header)
        for start in range(0, n, ADD_ROWS):
            count = min(ADD_ROWS, n - start)
            dense.add(np.fromfile(f, dtype=np.float32, count=count * dim).reshape(count, dim))
    return dense


def _flush(
    table: ChunkTable,
    pending: list[tuple[StoredChunk, str]],
    fingerprint: str,
    *,
    last: bool = False,
) -> None:
    """Insert the pending chunks; a file whose chunks may continue in the next block waits."""
    if not pending:
        return
    keep: list[tuple[StoredChunk, str]] = []
    if not last:  # the trailing file may have more chunks in the next block
        tail = pending[-1][0].path
        while pending and pending[-1][0].path == tail:
            keep.insert(0, pending.pop())
    files: list[StoredFile] = []
    for chunk, sha in pending:
        if files and files[-1].path == chunk.path and files[-1].sha256 == sha:
            files[-1] = StoredFile(chunk.path, sha, fingerprint, files[-1].chunks + 1)
        else:
            files.append(StoredFile(chunk.path, sha, fingerprint, 1))
    table.add(files, [c for c, _ in pending])
    pending[:] = keep


def _read_shard(folder: Path) -> Iterator[tuple[Any, ...]]:
    """``(unit, path, start, end, text, sha256, vector)`` rows in order, one part in RAM."""
    meta = _read_meta(folder)
    with open(folder / CHUNKS, encoding="utf-8") as lines:
        for part in range(int(meta["parts"])):
            block = np.load(folder / f"vectors-{part:05d}.npy")  # (<= PART_ROWS, D)
            for vector in block:
                unit, path, start, end, text, sha = json.loads(next(lines))
                yield unit, path, start, end, text, sha, vector


def _all_shards(root: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    found = sorted(p for p in root.glob("shard-*-of-*") if p.is_dir()) if root.is_dir() else []
    if not found:
        raise RagtuneError(
            f"{root}: no shards to merge; write them with `ragtune index SOURCE --out INDEX "
            "--shard I/N` (or under torchrun)"
        )
    counts = {int(p.name.rsplit("-", 1)[1]) for p in found}
    if len(counts) != 1:
        raise RagtuneError(
            f"{root}: shards of runs with different counts ({sorted(counts)}); remove the "
            "folders of the run you do not want"
        )
    count = counts.pop()
    folders = [root / shard_name(i, count) for i in range(count)]
    missing = [i for i, f in enumerate(folders) if not _complete(f)]
    if missing:
        rerun = ", ".join(f"--shard {i}/{count}" for i in missing)
        raise RagtuneError(
            f"{root}: shard(s) {', '.join(map(str, missing))} of {count} missing or incomplete; "
            f"rerun `ragtune index SOURCE --out INDEX` with {rerun}, then merge"
        )
    return folders, [_read_meta(f) for f in folders]


def _as_recorded(record: dict[str, Any], encoder: EmbeddingModel, folder: Path) -> dict[str, Any]:
    """``record`` with the encoder's fingerprint under the config the shard recorded (as
    :func:`ragtune.search.searcher.load_index_encoder` checks an index's model)."""
    stored = _read_meta(folder).get("model", {}).get("config")
    if "model" not in record or not isinstance(stored, dict):
        return record
    try:
        fingerprint = _fingerprint_under(encoder, stored)
    except (TypeError, ValueError, RagtuneError):
        return record
    return record | {"model": record["model"] | {"fingerprint": fingerprint}}


def _fingerprint_under(encoder: EmbeddingModel, config: dict[str, Any]) -> str:
    """The fingerprint with ``config`` (a recorded ``to_dict``) in place of the live config."""
    from ragtune.model import EncoderConfig

    own = encoder.config
    try:
        encoder.config = EncoderConfig.from_dict(config)
        return encoder.fingerprint()
    finally:
        encoder.config = own


def _same_run(existing: dict[str, Any], record: dict[str, Any]) -> bool:
    """Whether a complete shard was written from the same source, settings and model (by
    fingerprint; the recorded config and precision also hold what encoding resolved)."""

    def key(meta: dict[str, Any]) -> dict[str, Any]:
        resolved = ("config", "precision")  # known only once encoding ran
        model = {k: v for k, v in meta.get("model", {}).items() if k not in resolved}
        rest = {k: v for k, v in meta.items() if k not in ("rows", "parts", "model")}
        return json.loads(json.dumps(rest | {"model": model}))  # tuples compare as lists

    return key(existing) == key(record)


def _complete(folder: Path) -> bool:
    marker = read_marker(folder) or {}
    done = marker.get("kind") == SHARD_KIND and bool(marker.get("complete"))
    return done and (folder / SHARD_META).is_file()


def _read_meta(folder: Path) -> dict[str, Any]:
    from ragtune.io import read_json_file

    meta: dict[str, Any] = read_json_file(folder / SHARD_META, dict, "rerun that shard")
    return meta


def _blocks(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    block: list[Record] = []
    for r in records:
        block.append(r)
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block
