"""An index folder's manifest: written last, it is the mark that the index is complete.

The manifest (``manifest.json``) records the model, settings and counts of an index, and under
``contents`` the size and sha256 of every other file in the folder::

    "contents": {"chunks.sqlite": {"bytes": 20480, "sha256": "9f2c..."},
                 "dense/index.faiss": {"bytes": 1069, "sha256": "41ab..."}, ...}

:func:`write_manifest` is the last write of an index, so a folder whose writer was killed half-way
has no manifest, and one whose files were later truncated, emptied or changed no longer matches
it. :func:`read_manifest` and :func:`verify_contents` check both before anything is loaded; every
problem is one :class:`RagtuneError` line naming the file and what is wrong with it.

Example::

    write_manifest(folder, {"format": FORMAT, "model": {...}, ...})    # after all other files
    manifest = read_manifest(folder)                                   # before opening any
    verify_contents(folder, manifest)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ragtune.errors import RagtuneError
from ragtune.io import read_json_file
from ragtune.search.topk import INDEX_KINDS

FORMAT = "ragtune-index/1"
MANIFEST = "manifest.json"
REBUILD = "rebuild the index with `ragtune index`"
_READ_BYTES = 1 << 20


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` with the size and sha256 of every file now in ``folder``; call last.

    Hidden files (``.ragtune-artefact`` markers of :mod:`ragtune.io`) are not index content and
    are left out.
    """
    contents = {
        path.relative_to(folder).as_posix(): {"bytes": path.stat().st_size, "sha256": _sha256(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and path.relative_to(folder).as_posix() != MANIFEST
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    }
    text = json.dumps({**manifest, "contents": contents}, indent=2, ensure_ascii=False) + "\n"
    (folder / MANIFEST).write_text(text, encoding="utf-8")


def read_manifest(folder: Path) -> dict[str, Any]:
    """The parsed manifest of ``folder``, or a one-line error saying why there is none."""
    if not folder.is_dir():
        raise RagtuneError(
            f"{folder}: no such index folder; build one with `ragtune index DIR --out INDEX`"
        )
    path = folder / MANIFEST
    if not path.is_file():
        raise RagtuneError(
            f"{folder}: not a ragtune index (no {MANIFEST}, which is written last: an index "
            "whose build was interrupted has none); build one with `ragtune index DIR --out INDEX`"
        )
    manifest: dict[str, Any] = read_json_file(path, dict, REBUILD)
    return manifest


def check_fields(folder: Path, manifest: dict[str, Any]) -> None:
    """The manifest's own fields: the format, the model that built the index, the index kind."""
    where = folder / MANIFEST
    if manifest.get("format") != FORMAT:
        raise RagtuneError(
            f"{folder}: index format {manifest.get('format')!r} is not {FORMAT!r}; rebuild it "
            "with `ragtune index`"
        )
    model = manifest.get("model")
    if not isinstance(model, dict):
        raise RagtuneError(f"{where}: no 'model' object; {REBUILD}")
    fingerprint = model.get("fingerprint")
    if not isinstance(fingerprint, str) or not fingerprint:
        raise RagtuneError(f"{where}: no model fingerprint ('model.fingerprint'); {REBUILD}")
    dim = model.get("dim")
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise RagtuneError(f"{where}: 'model.dim' must be a positive integer, got {dim!r}")
    if not isinstance(model.get("config"), dict):
        raise RagtuneError(f"{where}: no model config ('model.config'); {REBUILD}")
    index = manifest.get("index")
    kind = index.get("kind") if isinstance(index, dict) else None
    if kind not in INDEX_KINDS:
        raise RagtuneError(
            f"{where}: 'index.kind' must be one of {', '.join(INDEX_KINDS)}, got {kind!r}"
        )
    counts = manifest.get("counts", {})
    if not isinstance(counts, dict):
        raise RagtuneError(f"{where}: 'counts' must be an object, got {counts!r}")


def verify_contents(
    folder: Path, manifest: dict[str, Any], required: tuple[str, ...], *, checksums: bool = True
) -> None:
    """Check that every file the manifest lists is there with its size (and its sha256).

    Args:
        required: files the index cannot work without; each must be listed.
        checksums: also hash every file (reads the whole index once); sizes alone catch
            truncated and emptied files, hashes also catch changed bytes.
    """
    where = folder / MANIFEST
    contents = manifest.get("contents")
    if not isinstance(contents, dict) or not contents:
        raise RagtuneError(
            f"{where}: lists no file sizes and checksums ('contents'), so the index cannot be "
            f"verified (built by an older ragtune, or not by ragtune); {REBUILD}"
        )
    for name in required:
        if name not in contents:
            raise RagtuneError(f"{where}: does not list {name}; {REBUILD}")
    for name, entry in contents.items():
        path = folder / name
        if not isinstance(entry, dict) or not _is_size(entry.get("bytes")):
            raise RagtuneError(f"{where}: the entry of {name} has no size ('bytes'); {REBUILD}")
        if not path.is_file():
            raise RagtuneError(f"{path}: missing (listed in {MANIFEST}); {REBUILD}")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise RagtuneError(
                f"{path}: {size} bytes, {MANIFEST} lists {entry['bytes']} (truncated or "
                f"overwritten after the index was written); {REBUILD}"
            )
        if checksums and _sha256(path) != entry.get("sha256"):
            raise RagtuneError(
                f"{path}: its content differs from the sha256 in {MANIFEST} (corrupted or "
                f"changed after the index was written); {REBUILD}"
            )


def changed_since(folder: Path, manifest: dict[str, Any]) -> str:
    """Why the files of ``folder`` no longer match the (verified) ``manifest``, or ``""``.

    Sizes only, so cheap enough for a health check.
    """
    for name, entry in manifest.get("contents", {}).items():
        path = folder / name
        if not path.is_file():
            return f"{path}: missing"
        if path.stat().st_size != entry["bytes"]:
            return f"{path}: {path.stat().st_size} bytes, {MANIFEST} lists {entry['bytes']}"
    return ""


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_READ_BYTES):
            digest.update(block)
    return digest.hexdigest()
