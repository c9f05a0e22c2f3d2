"""Walk a folder and yield the text files worth indexing.

What is left out, and why:

* Version-control and tool folders (``.git``, ``node_modules``, ``.venv``, caches...): see
  :data:`DEFAULT_EXCLUDES`. They are large and never what a question is about.
* Whatever ``.gitignore`` files say, at the root and in sub-folders (each applies below its own
  folder, as in git), plus extra patterns from the caller. Patterns are matched by ``pathspec``'s
  git-compatible implementation (negation, ``**``, anchored and directory-only patterns).
* Symbolic links: a link can point outside the folder, and an index must only hold what is inside.
* Binary files (a NUL byte in the first 8 KiB), files that are not valid UTF-8, and files larger
  than ``max_file_bytes`` (minified bundles, data dumps, lock files).

Example::

    walk = walk_text_files("my-repo")
    for f in walk.files: print(f.path, f.sha256[:8], len(f.text))
    print(walk.skipped)       # {"binary": 3, "ignored": 120, ...}
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ragtune.errors import RagtuneError

DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".git/",
    ".hg/",
    ".svn/",
    "__pycache__/",
    "node_modules/",
    ".venv/",
    "venv/",
    ".tox/",
    ".nox/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    "*.egg-info/",
    ".ipynb_checkpoints/",
    ".DS_Store",
    "*.pyc",
    "*.pyo",
)
"""Always excluded (gitignore syntax), whatever the folder's own ``.gitignore`` says."""

DEFAULT_MAX_FILE_BYTES = 1_000_000
_SNIFF_BYTES = 8192  # git's own heuristic: a NUL in the first 8 KiB means binary

SkipReason = Literal["ignored", "symlink", "binary", "not_utf8", "too_large", "unreadable"]


@dataclass(frozen=True)
class TextFile:
    """One file to index: its path relative to the root (POSIX ``/``), text and content hash."""

    path: str
    text: str
    sha256: str


@dataclass
class Walk:
    """The files found, in sorted path order, and how many were skipped for each reason."""

    files: list[TextFile] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def walk_text_files(
    root: str | os.PathLike[str],
    *,
    exclude: Sequence[str] = (),
    use_gitignore: bool = True,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> Walk:
    """Every indexable text file under ``root``.

    Args:
        root: the folder to walk.
        exclude: extra gitignore-style patterns, relative to ``root`` (e.g. ``"*.lock"``,
            ``"docs/build/"``).
        use_gitignore: honour ``.gitignore`` files found in the tree.
        max_file_bytes: larger files are skipped (reason ``too_large``).
    """
    import pathspec

    root = Path(root)
    if not root.is_dir():
        raise RagtuneError(f"{root}: not a folder")
    base = pathspec.GitIgnoreSpec.from_lines([*DEFAULT_EXCLUDES, *exclude])
    # (folder relative to root with trailing "/", or "" for the root; its .gitignore spec)
    specs: list[tuple[str, pathspec.PathSpec]] = [("", base)]
    walk = Walk()

    def ignored(rel: str, is_dir: bool) -> bool:
        for folder, spec in specs:
            if rel.startswith(folder):
                sub = rel[len(folder) :] + ("/" if is_dir else "")
                if spec.match_file(sub):
                    return True
        return False

    def visit(folder: Path, rel_folder: str) -> None:
        gitignore = folder / ".gitignore"
        pushed = False
        if use_gitignore and gitignore.is_file() and not gitignore.is_symlink():
            lines = gitignore.read_text(encoding="utf-8", errors="replace").splitlines()
            specs.append((rel_folder, pathspec.GitIgnoreSpec.from_lines(lines)))
            pushed = True
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            walk.skipped["unreadable"] += 1
            entries = []
        for entry in entries:
            rel = rel_folder + entry.name
            if entry.is_symlink():
                walk.skipped["symlink"] += 1
            elif entry.is_dir():
                if ignored(rel, is_dir=True):
                    walk.skipped["ignored"] += 1
                else:
                    visit(Path(entry.path), rel + "/")
            elif entry.is_file():
                if ignored(rel, is_dir=False):
                    walk.skipped["ignored"] += 1
                    continue
                found = read_text_file(Path(entry.path), rel, max_file_bytes)
                if isinstance(found, TextFile):
                    walk.files.append(found)
                else:
                    walk.skipped[found] += 1
        if pushed:
            specs.pop()

    visit(root, "")
    return walk


def read_text_file(
    path: Path, rel: str, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> TextFile | SkipReason:
    """The file as a :class:`TextFile` if it is UTF-8 text, else the reason it is skipped."""
    try:
        if path.stat().st_size > max_file_bytes:
            return "too_large"
        data = path.read_bytes()
    except OSError:
        return "unreadable"
    if b"\x00" in data[:_SNIFF_BYTES]:
        return "binary"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "not_utf8"
    return TextFile(rel, text, hashlib.sha256(data).hexdigest())
