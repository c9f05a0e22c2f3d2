"""Build or update the index of a folder: walk, chunk, embed what changed, write atomically.

On a re-run over an existing index, a file whose content hash (sha256) and embedding model are
unchanged keeps its chunks and vectors; changed and new files are chunked and embedded again;
files no longer present are dropped. If the model, the chunking or the walk settings differ from
the ones the index was built with, everything is embedded again (the report says why).

The model is recorded in the manifest (reference, fingerprint, dim and its full config, prompts
included) so that :mod:`ragtune.search.searcher` and the server load the same model.

Example::

    encoder = load_model("sentence-transformers/all-MiniLM-L6-v2")  # PyTorch or ONNX
    report = build_index("my-repo", encoder, "my-repo.idx",
                         model_ref="sentence-transformers/all-MiniLM-L6-v2")
    report.files_changed, report.chunks_embedded
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ragtune.errors import RagtuneError
from ragtune.io import artefact_kind, atomic_dir, check_output
from ragtune.model import EmbeddingModel
from ragtune.model.precision import encoding_precision
from ragtune.search.chunking import Chunk, HFTokenCounter, chunk_text
from ragtune.search.files import DEFAULT_MAX_FILE_BYTES, walk_text_files
from ragtune.search.store import FORMAT, MANIFEST, IndexStore, StoredChunk, StoredFile, write_store
from ragtune.search.topk import INDEX_KINDS, DenseIndex, IndexKind


@dataclass
class IndexConfig:
    """How a folder is walked, chunked and indexed."""

    max_tokens: int | None = None
    """Token budget per chunk; None: the model's max_seq_length minus special tokens, the
    document prompt and the path header."""
    overlap_lines: int = 2
    min_tokens: int | None = None
    """Chunks smaller than this may grow across a section boundary (None: max_tokens // 4)."""
    embed_path: bool = True
    """Embed ``"<path>\\n<chunk>"`` so that file and folder names count (the stored text and
    line numbers are the chunk's own)."""
    exclude: tuple[str, ...] = ()
    use_gitignore: bool = True
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    kind: IndexKind | Literal["auto"] = "auto"
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.kind != "auto" and self.kind not in INDEX_KINDS:
            raise RagtuneError(
                f"unknown index kind {self.kind!r}; valid kinds: auto, {', '.join(INDEX_KINDS)}"
            )
        if self.overlap_lines < 0:
            raise RagtuneError(f"overlap_lines must be >= 0, got {self.overlap_lines}")
        if self.max_tokens is not None and self.max_tokens < 8:
            raise RagtuneError(f"max_tokens must be at least 8, got {self.max_tokens}")
        if self.min_tokens is not None and self.min_tokens < 0:
            raise RagtuneError(f"min_tokens must be >= 0, got {self.min_tokens}")
        if self.max_file_bytes < 1:
            raise RagtuneError(
                f"max_file_bytes (--max-file-bytes) must be at least 1, got {self.max_file_bytes}"
            )
        if self.batch_size < 1:
            raise RagtuneError(
                f"batch_size (--batch-size) must be at least 1, got {self.batch_size}"
            )

    def settings(self) -> dict[str, Any]:
        """What decides the chunks and their vectors: a change means embedding everything."""
        keep = (
            "max_tokens",
            "overlap_lines",
            "min_tokens",
            "embed_path",
            "exclude",
            "use_gitignore",
            "max_file_bytes",
        )
        return {k: v for k, v in asdict(self).items() if k in keep} | {
            "exclude": list(self.exclude)
        }


@dataclass
class BuildReport:
    """What an index run did."""

    out_dir: str
    files_unchanged: int = 0
    files_changed: int = 0
    files_new: int = 0
    files_deleted: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_total: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    index_kind: str = ""
    full_rebuild_reason: str = ""
    seconds: float = 0.0


def build_index(
    folder: str | os.PathLike[str],
    encoder: EmbeddingModel,
    out_dir: str | os.PathLike[str],
    config: IndexConfig | None = None,
    *,
    model_ref: str | None = None,
    show_progress: bool | None = None,
    overwrite: bool = False,
) -> BuildReport:
    """Index the text files under ``folder`` into ``out_dir`` (created or updated atomically).

    Args:
        folder: the folder to index; chunk paths are relative to it.
        encoder: the embedding model (documents are encoded with its document prompt).
        out_dir: the index folder; an existing index there is updated incrementally.
        config: walking, chunking and index settings.
        model_ref: how to load ``encoder`` again (hub id or folder); a folder is recorded as an
            absolute path. Default: the encoder's ``base_model``.
        show_progress: draw the encoding bar (default: for more than a few batches).
        overwrite: replace ``out_dir`` even when it is not a ragtune index. Without it, a
            folder of other files, ``folder`` itself or a folder above it is refused (before
            anything is embedded), as :func:`ragtune.io.check_output` says.
    """
    config = config or IndexConfig()
    started = time.perf_counter()
    root = Path(folder)
    out = check_output(out_dir, "index", overwrite=overwrite, sources=[root])
    out_abs, root_abs = out.resolve(), root.resolve()
    exclude = list(config.exclude)
    if out_abs.is_relative_to(root_abs) and out_abs != root_abs:
        exclude.append("/" + out_abs.relative_to(root_abs).as_posix() + "/")  # never index itself
    walk = walk_text_files(
        root,
        exclude=exclude,
        use_gitignore=config.use_gitignore,
        max_file_bytes=config.max_file_bytes,
    )
    report = BuildReport(out_dir=str(out), skipped=dict(sorted(walk.skipped.items())))
    if not walk.files:
        skipped = ", ".join(f"{v} {k}" for k, v in report.skipped.items()) or "nothing"
        raise RagtuneError(f"{root}: no text files to index (skipped: {skipped})")

    fingerprint = encoder.fingerprint()
    ours = (out / MANIFEST).is_file() and artefact_kind(out) == "index"
    old, damaged = None, ""
    if ours:
        try:
            old = IndexStore.open(out)
        except RagtuneError as exc:  # our own index, damaged: build it again from scratch
            damaged = f"the old index failed verification: {exc}"
    try:
        old_files = old.files() if old is not None else {}
        report.full_rebuild_reason = _rebuild_reason(old, fingerprint, config) if old else damaged
        reusable = old is not None and not report.full_rebuild_reason

        chunker = FileChunker(encoder, config)
        files: list[StoredFile] = []
        chunks: list[StoredChunk] = []
        copied: dict[int, int] = {}  # new chunk id -> row of its vector in the old index
        to_embed: dict[int, str] = {}  # new chunk id -> text to embed
        for f in walk.files:
            before = old_files.get(f.path)
            if before is None:
                report.files_new += 1
            elif before.sha256 == f.sha256:
                report.files_unchanged += 1
            else:
                report.files_changed += 1
            if old is not None and reusable and before is not None and before.sha256 == f.sha256:
                kept = old.chunks_of(f.path)
                for c in kept:
                    copied[len(chunks)] = c.id
                    chunks.append(
                        StoredChunk(len(chunks), f.path, c.start_line, c.end_line, c.text)
                    )
                files.append(StoredFile(f.path, f.sha256, fingerprint, len(kept)))
                continue
            new, header = chunker(f.path, f.text)
            for piece in new:
                to_embed[len(chunks)] = header + piece.text
                chunks.append(
                    StoredChunk(len(chunks), f.path, piece.start_line, piece.end_line, piece.text)
                )
            files.append(StoredFile(f.path, f.sha256, fingerprint, len(new)))
        report.files_deleted = len(set(old_files) - {f.path for f in walk.files})

        vectors = np.zeros((len(chunks), encoder.dim), dtype=np.float32)  # (N, D)
        if to_embed:
            vectors[list(to_embed)] = encoder.encode_documents(
                list(to_embed.values()),
                batch_size=config.batch_size,
                show_progress=show_progress,
                description="embedding chunks",
            )  # (M, D)
        if copied and old is not None:
            vectors[list(copied)] = old.vectors[list(copied.values())]
    finally:
        if old is not None:
            old.close()

    dense = DenseIndex.build(vectors, kind=config.kind)
    report.chunks_embedded = len(to_embed)
    report.chunks_reused = len(copied)
    report.chunks_total = len(chunks)
    report.index_kind = dense.kind
    manifest = {
        "format": FORMAT,
        "model": model_record(encoder, model_ref),
        "settings": config.settings(),
        "index": {"kind": dense.kind, "params": dense.params},
        "source": str(root_abs),
        "counts": {"files": len(files), "chunks": len(chunks)},
        "skipped": report.skipped,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with atomic_dir(out, "index", overwrite=overwrite) as tmp:
        write_store(tmp, manifest, files, chunks, vectors, dense)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


class FileChunker:
    """Chunks one file as :func:`build_index` does, and says what header to embed them with.

    The budget per chunk is the model's (``max_seq_length`` minus special tokens and the
    document prompt), or ``config.max_tokens`` if smaller, minus the tokens of the
    ``"<path>\\n"`` header when paths are embedded.
    """

    def __init__(self, encoder: EmbeddingModel, config: IndexConfig) -> None:
        self.config = config
        self.counter = HFTokenCounter(encoder.tokenizer)
        specials = int(encoder.tokenizer.num_special_tokens_to_add(pair=False))
        prompt = encoder.config.document_prompt
        prompt_tokens = self.counter.prompt_tokens(prompt) if prompt else 0
        self.budget = encoder.config.max_seq_length - specials - prompt_tokens
        if self.budget < 8:
            raise RagtuneError(
                f"the model reads {encoder.config.max_seq_length} tokens; after special tokens "
                "and the document prompt fewer than 8 remain for the text"
            )
        if config.max_tokens is not None and config.max_tokens > self.budget:
            raise RagtuneError(
                f"max_tokens {config.max_tokens} exceeds what the model reads per document "
                f"({self.budget} tokens after special tokens and the document prompt)"
            )

    def __call__(self, path: str, text: str) -> tuple[list[Chunk], str]:
        """``(chunks, header)``: embed each chunk as ``header + chunk.text``."""
        header = f"{path}\n" if self.config.embed_path else ""
        header_tokens = self.counter.prompt_tokens(header) if header else 0
        if header_tokens > self.budget // 4:
            header, header_tokens = "", 0  # a path this long would crowd out the text
        limit = min(self.config.max_tokens or self.budget, self.budget - header_tokens)
        chunks = chunk_text(
            path,
            text,
            self.counter,
            max_tokens=limit,
            overlap_lines=self.config.overlap_lines,
            min_tokens=self.config.min_tokens,
        )
        return chunks, header


def _rebuild_reason(old: IndexStore, fingerprint: str, config: IndexConfig) -> str:
    model = old.manifest.get("model", {})
    if model.get("fingerprint") != fingerprint:
        return "the embedding model changed"
    if old.manifest.get("settings") != config.settings():
        return "the chunking or walk settings changed"
    return ""


def model_record(encoder: EmbeddingModel, model_ref: str | None = None) -> dict[str, Any]:
    """What an index records of its model: reference, fingerprint, dim and full config."""
    return {
        "ref": _model_ref(model_ref, encoder),
        "fingerprint": encoder.fingerprint(),
        "dim": encoder.dim,
        "config": encoder.config.to_dict(),
        "precision": encoding_precision(encoder),  # fp32, bf16 (checked), int8 (ONNX)
    }


def _model_ref(model_ref: str | None, encoder: EmbeddingModel) -> str:
    ref = model_ref if model_ref is not None else encoder.config.base_model
    if ref and Path(ref).expanduser().is_dir():
        return str(Path(ref).expanduser().resolve())
    return ref
