"""The on-disk index of a folder: chunk metadata in SQLite, vectors in numpy and FAISS.

Layout of an index folder (written in one piece by :func:`write_store` inside
:func:`ragtune.io.atomic_dir`, so a reader never sees half of an update)::

    manifest.json    format, the model that built it (reference, fingerprint, dim, full encoder
                     config with prompts), chunking and walk settings, counts
    chunks.sqlite    files(path, sha256, model_fingerprint, chunks)
                     chunks(id, path, start_line, end_line, text)
    vectors.npy      (N, D) float32; row i is the embedding of chunk id i
    dense/           ragtune.search.topk.DenseIndex over the same rows (position i = chunk id i)

``vectors.npy`` repeats what the FAISS index holds so that an update can copy the vectors of
unchanged files into a new index of any kind without reading FAISS internals.

A server reads through one :class:`IndexStore` from several threads: SQLite access is serialised
by a lock (a connection opened read-only with ``check_same_thread=False``).
"""

from __future__ import annotations

import io
import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.errors import RagtuneError
from ragtune.search.topk import DenseIndex

FORMAT = "ragtune-index/1"
MANIFEST, DATABASE, VECTORS, DENSE = "manifest.json", "chunks.sqlite", "vectors.npy", "dense"

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
    def open(cls, folder: str | Path) -> IndexStore:
        folder = Path(folder)
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            raise RagtuneError(
                f"{folder}: not a ragtune index (no {MANIFEST}); build one with "
                "`ragtune index DIR --out INDEX`"
            )
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            raise RagtuneError(
                f"{folder}: index format {manifest.get('format')!r} is not {FORMAT!r}; rebuild it "
                "with `ragtune index`"
            )
        uri = (folder / DATABASE).resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        return cls(folder, manifest, conn)

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
        """The FAISS index, loaded on first use."""
        if self._dense is None:
            self._dense = DenseIndex.load(self.folder / DENSE)
        return self._dense

    @property
    def vectors(self) -> np.ndarray:
        """All chunk embeddings (N, D), memory-mapped."""
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
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (folder / MANIFEST).write_text(text, encoding="utf-8")
