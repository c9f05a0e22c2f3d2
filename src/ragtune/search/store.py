"""The on-disk index of a folder: chunk metadata in SQLite, vectors in numpy and FAISS.

Layout of an index folder (written in one piece by :func:`write_store` inside
:func:`ragtune.io.atomic_dir`, so a reader never sees half of an update)::

    manifest.json    format, the model that built it (reference, fingerprint, dim, full encoder
                     config with prompts), chunking and walk settings, counts, and the size and
                     sha256 of every other file (written last: see ragtune.search.manifest)
    chunks.sqlite    files(path, sha256, model_fingerprint, chunks)
                     chunks(id, path, start_line, end_line, text)
    vectors.npy      (N, D) float32; row i is the embedding of chunk id i
    dense/           ragtune.search.topk.DenseIndex over the same rows (position i = chunk id i)

``vectors.npy`` repeats what the FAISS index holds so that an update can copy the vectors of
unchanged files into a new index of any kind without reading FAISS internals.

:meth:`IndexStore.open` verifies the folder before anything uses it: the manifest parses and names
the model, every file has the size and sha256 the manifest lists, and the SQLite chunks, the
vectors and the FAISS index agree on the number of chunks and their dimension. A folder that fails
any check is refused with one line naming the file and the problem, so a server never starts on
an index that would fail its searches.

A server reads through one :class:`IndexStore` from several threads: SQLite access is serialised
by a lock (a connection opened read-only with ``check_same_thread=False``).
"""

from __future__ import annotations

import io
import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.errors import RagtuneError
from ragtune.search.manifest import FORMAT as FORMAT  # re-exported: the writer records it
from ragtune.search.manifest import (
    MANIFEST,
    REBUILD,
    changed_since,
    check_fields,
    read_manifest,
    verify_contents,
    write_manifest,
)
from ragtune.search.topk import INDEX_KINDS, DenseIndex

DATABASE, VECTORS, DENSE = "chunks.sqlite", "vectors.npy", "dense"
DENSE_META, DENSE_FAISS = f"{DENSE}/index.json", f"{DENSE}/index.faiss"
REQUIRED = (DATABASE, VECTORS, DENSE_META, DENSE_FAISS)

_SCHEMA = """
CREATE TABLE files (
    path TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    model_fingerprint TEXT NOT NULL,
    chunks INTEGER NOT NULL
);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL REFERENCES files(path),
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX chunks_by_path ON chunks(path);
"""


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as stored: its id (= row in the vectors and position in FAISS) and location."""

    id: int
    path: str
    start_line: int
    end_line: int
    text: str


@dataclass(frozen=True)
class StoredFile:
    path: str
    sha256: str
    model_fingerprint: str
    chunks: int


class IndexStore:
    """Read access to an index folder. Open with :meth:`open`; close when done."""

    def __init__(self, folder: Path, manifest: dict[str, Any], conn: sqlite3.Connection) -> None:
        self.folder = folder
        self.manifest = manifest
        self._conn = conn
        self._lock = threading.Lock()
        self._dense: DenseIndex | None = None
        self._vectors: np.ndarray | None = None

    @classmethod
    def open(cls, folder: str | Path, *, checksums: bool = True) -> IndexStore:
        """Open and verify an index folder; a broken one raises one :class:`RagtuneError` line.

        Args:
            checksums: hash every file against the manifest (reads the index once); without,
                only sizes and structure are checked.
        """
        folder = Path(folder)
        manifest = read_manifest(folder)
        check_fields(folder, manifest)
        verify_contents(folder, manifest, REQUIRED, checksums=checksums)
        uri = (folder / DATABASE).resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        store = cls(folder, manifest, conn)
        try:
            store._check_consistency()
        except BaseException:
            store.close()
            raise
        return store

    def changed_on_disk(self) -> str:
        """Why the folder no longer matches what was verified at open (sizes), or ``""``."""
        return changed_since(self.folder, self.manifest)

    def _check_consistency(self) -> None:
        """Chunk rows, vectors and FAISS positions must line up one to one (ids 0..N-1)."""
        db = self.folder / DATABASE
        try:
            n, low, high = self._query(
                "SELECT COUNT(*), COALESCE(MIN(id), 0), COALESCE(MAX(id), -1) FROM chunks"
            )[0]
            n_files = self.file_count()
        except sqlite3.DatabaseError as exc:
            raise RagtuneError(f"{db}: not a readable index database ({exc}); {REBUILD}") from None
        if (low, high) != (0, n - 1):
            raise RagtuneError(f"{db}: chunk ids are not 0..{n - 1}; {REBUILD}")
        counts = self.manifest.get("counts", {})
        if counts.get("chunks", n) != n or counts.get("files", n_files) != n_files:
            raise RagtuneError(
                f"{db}: {n} chunks of {n_files} files, {MANIFEST} records {counts.get('chunks')} "
                f"of {counts.get('files')}; {REBUILD}"
            )
        dim = self.manifest["model"]["dim"]
        path = self.folder / VECTORS
        try:
            vectors = np.load(path, mmap_mode="r")
        except (ValueError, OSError) as exc:
            raise RagtuneError(f"{path}: not a readable .npy array ({exc}); {REBUILD}") from None
        if vectors.dtype != np.float32 or vectors.shape != (n, dim):
            raise RagtuneError(
                f"{path}: holds {vectors.dtype} vectors of shape {vectors.shape}, expected "
                f"float32 ({n}, {dim}) for {n} chunks of dimension {dim}; {REBUILD}"
            )
        self._vectors = vectors
        dense = _load_dense(self.folder)
        if dense.dim == dim and dense.ntotal == n:
            dense.attach_vectors(vectors)  # IVF-PQ re-ranks its candidates with them
        if dense.ntotal != n or dense.dim != dim:
            raise RagtuneError(
                f"{self.folder / DENSE_FAISS}: holds {dense.ntotal} vectors of dimension "
                f"{dense.dim}, {DATABASE} has {n} chunks and the model {dim} dimensions; {REBUILD}"
            )
        if dense.kind != self.manifest["index"]["kind"]:
            raise RagtuneError(
                f"{self.folder / DENSE_META}: kind {dense.kind!r}, {MANIFEST} records "
                f"{self.manifest['index']['kind']!r}; {REBUILD}"
            )
        self._dense = dense

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> IndexStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ content
    @property
    def dense(self) -> DenseIndex:
        """The FAISS index (loaded and checked by :meth:`open`)."""
        if self._dense is None:
            self._dense = DenseIndex.load(self.folder / DENSE)
        return self._dense

    @property
    def vectors(self) -> np.ndarray:
        """All chunk embeddings (N, D), memory-mapped (checked by :meth:`open`)."""
        if self._vectors is None:
            self._vectors = np.load(self.folder / VECTORS, mmap_mode="r")
        return self._vectors

    def __len__(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM chunks")[0][0])

    def file_count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM files")[0][0])

    def files(self) -> dict[str, StoredFile]:
        rows = self._query("SELECT path, sha256, model_fingerprint, chunks FROM files")
        return {r[0]: StoredFile(*r) for r in rows}

    def chunks_of(self, path: str) -> list[StoredChunk]:
        """The chunks of one file, in line order."""
        rows = self._query(
            "SELECT id, path, start_line, end_line, text FROM chunks WHERE path = ? ORDER BY id",
            (path,),
        )
        return [StoredChunk(*r) for r in rows]

    def chunks(self, ids: Sequence[int]) -> list[StoredChunk]:
        """The chunks with these ids, in the order given."""
        wanted = [int(i) for i in ids]
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        rows = self._query(
            f"SELECT id, path, start_line, end_line, text FROM chunks WHERE id IN ({marks})",
            wanted,
        )
        by_id = {r[0]: StoredChunk(*r) for r in rows}
        missing = [i for i in wanted if i not in by_id]
        if missing:
            raise RagtuneError(f"{self.folder}: chunk ids {missing[:5]} are missing; rebuild it")
        return [by_id[i] for i in wanted]

    def texts(self) -> list[str]:
        """Every chunk's text, by id (for BM25)."""
        return [r[0] for r in self._query("SELECT text FROM chunks ORDER BY id")]

    def sample_texts(self, n: int) -> list[str]:
        """The texts of the first ``n`` chunks by id (without reading the others)."""
        rows = self._query("SELECT text FROM chunks ORDER BY id LIMIT ?", (max(0, n),))
        return [r[0] for r in rows]

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()


def write_store(
    folder: Path,
    manifest: dict[str, Any],
    files: Sequence[StoredFile],
    chunks: Sequence[StoredChunk],
    vectors: np.ndarray,
    dense: DenseIndex,
) -> None:
    """Write a complete index into the (fresh, empty) ``folder``.

    ``chunks[i].id`` must be ``i``, matching row ``i`` of ``vectors`` (N, D) and position ``i``
    of ``dense``.
    """
    if any(c.id != i for i, c in enumerate(chunks)):
        raise ValueError("chunk ids must be 0..N-1 in order")
    if vectors.shape[0] != len(chunks) or dense.ntotal != len(chunks):
        raise ValueError(
            f"{len(chunks)} chunks but {vectors.shape[0]} vectors and {dense.ntotal} indexed"
        )
    conn = sqlite3.connect(folder / DATABASE)
    try:
        with conn:
            conn.executescript(_SCHEMA)
            conn.executemany(
                "INSERT INTO files VALUES (?, ?, ?, ?)",
                [(f.path, f.sha256, f.model_fingerprint, f.chunks) for f in files],
            )
            conn.executemany(
                "INSERT INTO chunks VALUES (?, ?, ?, ?, ?)",
                [(c.id, c.path, c.start_line, c.end_line, c.text) for c in chunks],
            )
    finally:
        conn.close()
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(vectors, dtype=np.float32))
    (folder / VECTORS).write_bytes(buffer.getvalue())
    dense.save(folder / DENSE)
    write_manifest(folder, manifest)  # last: its presence marks the index complete


class ChunkTable:
    """``chunks.sqlite`` written in blocks, for indexes too large to hold as lists.

    Rows must arrive in id order (0, 1, ...), each file's chunks together.
    """

    def __init__(self, folder: Path) -> None:
        self._conn = sqlite3.connect(folder / DATABASE)
        self._conn.executescript(_SCHEMA)
        self.files = 0
        self.chunks = 0

    def add(self, files: Sequence[StoredFile], chunks: Sequence[StoredChunk]) -> None:
        if any(c.id != self.chunks + i for i, c in enumerate(chunks)):
            raise ValueError("chunk ids must continue 0..N-1 in order")
        try:
            with self._conn:
                self._conn.executemany(
                    "INSERT INTO files VALUES (?, ?, ?, ?)",
                    [(f.path, f.sha256, f.model_fingerprint, f.chunks) for f in files],
                )
                self._conn.executemany(
                    "INSERT INTO chunks VALUES (?, ?, ?, ?, ?)",
                    [(c.id, c.path, c.start_line, c.end_line, c.text) for c in chunks],
                )
        except sqlite3.IntegrityError:
            paths = [f.path for f in files]
            twice = [p for p, n in Counter(paths).items() if n > 1]
            dup = twice[0] if twice else next((p for p in paths if self._has(p)), paths[0])
            raise RagtuneError(
                f"document or file {dup!r} appears twice in the source; ids must be unique"
            ) from None
        self.files += len(files)
        self.chunks += len(chunks)

    def _has(self, path: str) -> bool:
        return bool(self._conn.execute("SELECT 1 FROM files WHERE path = ?", (path,)).fetchone())

    def close(self) -> None:
        self._conn.close()


def finish_store(folder: Path, manifest: dict[str, Any], dense: DenseIndex) -> None:
    """Complete an index whose ``chunks.sqlite`` (:class:`ChunkTable`) and ``vectors.npy`` are
    written: save the FAISS index, then the manifest (last)."""
    dense.save(folder / DENSE)
    write_manifest(folder, manifest)


def _load_dense(folder: Path) -> DenseIndex:
    """The FAISS index, with its metadata file checked first (a clear line, not a KeyError)."""
    meta_path, faiss_path = folder / DENSE_META, folder / DENSE_FAISS
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RagtuneError(f"{meta_path}: not valid JSON ({exc}); {REBUILD}") from None
    if (
        not isinstance(meta, dict)
        or meta.get("kind") not in INDEX_KINDS
        or not isinstance(meta.get("dim"), int)
        or not isinstance(meta.get("params"), dict)
    ):
        raise RagtuneError(f"{meta_path}: expected an object with kind, dim and params; {REBUILD}")
    try:
        return DenseIndex.load(folder / DENSE)
    except (RuntimeError, TypeError, ValueError):  # FAISS reports unreadable files as RuntimeError
        raise RagtuneError(
            f"{faiss_path}: FAISS cannot read it (truncated or corrupted); {REBUILD}"
        ) from None
