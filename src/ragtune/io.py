"""Atomic writes: a crash never leaves a half-written model, checkpoint, index or report.

Everything is written to a temporary sibling first and moved into place in one rename; a rename
within one folder is atomic on POSIX file systems. Replacing an existing folder exchanges the two
names in one step (Linux ``renameat2(RENAME_EXCHANGE)``), so no instant exists where the path is
missing; elsewhere two renames are used and a killed run is repaired by the next one.

:func:`check_output` is the one policy for output paths, run by every command before any work;
the folder writer enforces it again at the moment of replacement, so that no library call removes
a folder ragtune did not write. A folder ragtune wrote carries a marker, ``.ragtune-artefact``,
written last::

    {"kind": "index", "complete": true, "completed": "2026-01-01T12:00:00+0000",
     "ragtune": "0.1.0", "files": {"manifest.json": 1234, ...}}

``files`` holds the size of every file present when it was written, which lets loaders notice a
file truncated later (:func:`ragtune.model.folder.check_model_folder`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.markup import escape

from ragtune.errors import RagtuneError

MARKER = ".ragtune-artefact"
CRASH_ENV = "RAGTUNE_CRASH_AT"
"""Names a point in a write (e.g. ``replace:exchanged``) where the process kills itself with
SIGKILL: how the tests prove that a killed run leaves the old or the new artefact, never half."""

_LEFTOVER = ".ragtune-"  # temporary siblings are named ".<target>.ragtune-<tag>-<pid>-<random>"
_LEGACY_LEFTOVERS = (".tmp-", ".old-")  # names used by ragtune before the marker existed


# ------------------------------------------------------------------------------------- markers
def write_marker(folder: Path, kind: str, **extra: Any) -> None:
    """Write ``folder/.ragtune-artefact`` saying what the folder is and that it is complete."""
    from ragtune import __version__

    files = {
        p.relative_to(folder).as_posix(): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MARKER
    }
    record = {
        "kind": kind,
        "complete": True,
        "completed": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "ragtune": __version__,
        **extra,
        "files": files,
    }
    atomic_write_json(folder / MARKER, record)


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The folder's marker, None when it has none; an unreadable marker reads as kind "unknown"."""
    path = Path(folder) / MARKER
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {"kind": "unknown", "complete": False}
    return data if isinstance(data, dict) else {"kind": "unknown", "complete": False}


def artefact_kind(folder: Path) -> str | None:
    """What ragtune artefact ``folder`` is (its marker's kind), or None for a foreign folder.

    Folders written before markers existed are recognised by their own files: an index by its
    manifest's format, a model by ``ragtune.json``, and a training output that has only its
    ``run/`` folder so far (a run killed before it published) as a model; an evaluation report
    (written without a marker, so that its folder holds only the report) by ``report.json``.
    """
    marker = read_marker(folder)
    if marker is not None:
        return str(marker.get("kind", "unknown"))
    with contextlib.suppress(OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if str(manifest.get("format", "")).startswith("ragtune-index"):
            return "index"
    with contextlib.suppress(OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        own = json.loads((folder / "ragtune.json").read_text(encoding="utf-8"))
        return "onnx-model" if own.get("format") == "onnx" else "model"
    entries = {p.name for p in folder.iterdir() if not is_leftover_of(p, folder.name)}
    if {"report.json", "report.md"} <= entries:
        with contextlib.suppress(OSError, UnicodeDecodeError, json.JSONDecodeError):
            if "systems" in json.loads((folder / "report.json").read_text(encoding="utf-8")):
                return "report"
    if entries == {"run"} and (folder / "run" / "config.yaml").is_file():
        return "model"
    return None


# ------------------------------------------------------------------------------------- policy
def check_output(
    path: str | os.PathLike[str],
    kind: str,
    *,
    overwrite: bool = False,
    sources: Sequence[str | os.PathLike[str]] = (),
    is_file: bool = False,
    flag: str = "--out",
) -> Path:
    """Refuse an output path that would destroy something ragtune did not write; call it first.

    Allowed: a new path, an empty folder, a ragtune artefact of the same ``kind`` (replaced),
    and with ``overwrite`` any other existing folder or file. Never allowed: the empty string,
    the current directory or a folder above it, a source folder (``sources``) or a folder above
    one. A file output (``is_file``) may not be a folder and replaces a file only with
    ``overwrite``. Leftovers of killed runs beside the path are cleaned first.
    """
    text = os.fspath(path)
    if not text.strip():
        raise RagtuneError(f"the output path is empty; pass {flag} with a new path")
    out = Path(text).expanduser()
    where = out.resolve()
    cwd = Path.cwd().resolve()
    if where == cwd or cwd.is_relative_to(where):
        what = "the current directory" if where == cwd else "a folder above the current directory"
        raise RagtuneError(f"{flag} {text!r} is {what}; pass {flag} with a new folder inside it")
    for source in sources:
        src = Path(source).expanduser().resolve()
        if where == src or src.is_relative_to(where):
            what = "the source folder" if where == src else f"a folder above the source {source}"
            raise RagtuneError(f"{flag} {text!r} is {what}; pass {flag} with a separate folder")
    if is_file:
        if out.is_dir():
            raise RagtuneError(f"{flag} {text!r} is a folder; pass {flag} with a file path")
        if os.path.lexists(out) and not overwrite:
            raise RagtuneError(
                f"{text} already exists and was left unchanged; pass --overwrite to replace it"
            )
        return out
    clean_leftovers(out)
    if not os.path.lexists(out):
        return out
    if not out.is_dir():
        if overwrite:
            return out
        raise RagtuneError(
            f"{text} is a file, not a folder, and was left unchanged; pass {flag} with a folder "
            "path (or --overwrite to replace the file)"
        )
    _check_replaceable(out, kind, overwrite)
    return out


def claim_output(
    path: str | os.PathLike[str],
    kind: str,
    *,
    overwrite: bool = False,
    sources: Sequence[str | os.PathLike[str]] = (),
    flag: str = "--out",
) -> Path:
    """:func:`check_output` for a folder that a command fills while it works (training's
    ``run/``, the demo's parts): with ``overwrite``, an existing path of another kind is
    replaced at once by an empty folder of this ``kind``, so later writes are not refused."""
    out = check_output(path, kind, overwrite=overwrite, sources=sources, flag=flag)
    if overwrite and os.path.lexists(out):
        foreign = not out.is_dir() or (any(out.iterdir()) and artefact_kind(out) != kind)
        if foreign:
            with atomic_dir(out, kind, overwrite=True):
                pass
    return out


def _refusal(out: Path, kind: str) -> str:
    found = artefact_kind(out)
    what = "files ragtune did not write" if found is None else f"a ragtune {found}"
    return (
        f"{out} holds {what}, not a ragtune {kind}; it was left unchanged: choose a new or empty "
        "folder, or pass --overwrite to replace it"
    )


# ------------------------------------------------------------------------------------- folders
@contextlib.contextmanager
def atomic_dir(
    target: str | os.PathLike[str],
    kind: str | None = None,
    *,
    overwrite: bool = False,
    carry: Sequence[str] = (),
    marker: bool = True,
) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it replaces ``target`` in one step.

    Args:
        target: the folder to create or replace.
        kind: the artefact kind written into the marker ("model", "index", ...). None keeps a
            marker the body wrote itself, else marks the folder as a generic "folder".
        overwrite: replace ``target`` even when it is not a ragtune artefact of this kind.
        carry: names inside the existing ``target`` that move into the new folder just before
            the exchange (a model's ``run/`` folder), so that they survive the replacement.
        marker: write the marker; False for a folder whose own files say what it is (an
            evaluation report: ``report.json`` and ``report.md``, see :func:`artefact_kind`).

    If the body raises, the temporary folder is removed and ``target`` is left as it was. An
    existing ``target`` that holds something else than this kind of artefact is refused (a
    :class:`ragtune.errors.RagtuneError`) unless ``overwrite``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(target)
    tmp = Path(tempfile.mkdtemp(prefix=_leftover_prefix(target, "tmp"), dir=target.parent))
    moved: list[str] = []
    try:
        yield tmp
        written = read_marker(tmp)
        final_kind = kind or (str(written["kind"]) if written else "folder")
        _check_replaceable(target, final_kind, overwrite)
        if marker:
            write_marker(tmp, final_kind, **({"carry": list(carry)} if carry else {}))
        _apply_umask(tmp)
        _fsync_tree(tmp)
        for name in carry:
            if (target / name).exists():
                os.rename(target / name, tmp / name)
                moved.append(name)
                crash_point("replace:carried")
        replace_path(tmp, target)
    except BaseException:
        for name in moved:  # the carried entries are the user's run: give them back first
            if (tmp / name).exists() and target.is_dir() and not (target / name).exists():
                os.rename(tmp / name, target / name)
        _remove(tmp)
        raise


def replace_path(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``, replacing what is there without a moment where it is missing.

    Uses an atomic exchange where the kernel offers one; otherwise two renames, undone if the
    second fails (a kill between them is repaired by :func:`clean_leftovers` on the next run).
    """
    if not os.path.lexists(target):
        os.rename(new, target)
        return
    if exchange(new, target):
        crash_point("replace:exchanged")
        _remove(new)  # after the exchange ``new`` holds the previous artefact
        return
    old = Path(tempfile.mkdtemp(prefix=_leftover_prefix(target, "old"), dir=target.parent))
    os.rmdir(old)
    os.rename(target, old)
    crash_point("replace:between-renames")
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise
    _remove(old)


def discard_own(target: Path) -> None:
    """Remove the folder ``target``, which this command wrote earlier (the caller checked its
    marker), with no moment where half of it is there: it is renamed aside, then deleted. A kill
    between the two leaves a leftover that :func:`clean_leftovers` removes or restores."""
    aside = Path(tempfile.mkdtemp(prefix=_leftover_prefix(target, "old"), dir=target.parent))
    os.rmdir(aside)
    os.rename(target, aside)
    crash_point("discard:renamed")
    _remove(aside)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2: Any = None


def exchange(a: Path, b: Path) -> bool:
    """Swap the paths ``a`` and ``b`` atomically (Linux renameat2); False when unavailable."""
    global _renameat2
    if _renameat2 is None:
        _renameat2 = False
        with contextlib.suppress(OSError, AttributeError, TypeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            fn = libc.renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
            fn.argtypes += [ctypes.c_uint]
            fn.restype = ctypes.c_int
            _renameat2 = fn
    if not _renameat2:
        return False
    code = _renameat2(
        _AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), ctypes.c_uint(_RENAME_EXCHANGE)
    )
    if code == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this file system cannot exchange
        return False
    raise OSError(errno, os.strerror(errno), str(b))


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL when ``RAGTUNE_CRASH_AT`` names this point (tests only)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


# ------------------------------------------------------------------------------------- leftovers
def is_leftover_of(path: Path, name: str) -> bool:
    """True when ``path`` is named like a temporary sibling of a folder called ``name``."""
    prefix = f".{name}"
    rest = path.name[len(prefix) :] if path.name.startswith(prefix) else ""
    return rest.startswith(_LEFTOVER) or rest.startswith(_LEGACY_LEFTOVERS)


_WARNED: set[str] = set()  # leftovers already named in a warning by this process


def clean_leftovers(target: Path) -> list[Path]:
    """Repair or remove what killed runs left beside ``target``; return the ones kept.

    A complete new artefact whose move was interrupted is finished (``target`` missing, or its
    carried entries already inside the new folder). Other leftovers are removed when they are
    ragtune's: named ``.<target>.ragtune-<tag>-<pid>-<random>`` by a process that no longer runs,
    or holding a marker, or empty. Anything else (names of older versions) is kept and named in
    a warning, never deleted.
    """
    parent = target.parent
    if not parent.is_dir():
        return []
    leftovers = sorted(
        (p for p in parent.iterdir() if is_leftover_of(p, target.name) and p.is_dir()),
        key=lambda p: (f"{_LEFTOVER}old-" in p.name, p.name),  # a new artefact before an old
    )
    leftovers = [p for p in leftovers if not _owner_alive(p)]
    for p in leftovers:
        marker = read_marker(p)
        if not marker or not marker.get("complete"):
            continue
        carried = [n for n in marker.get("carry", []) if (p / n).exists()]
        missing = not os.path.lexists(target)
        if missing or (carried and not any((target / n).exists() for n in carried)):
            replace_path(p, target)
            from ragtune.progress import console

            console.print(
                f"[yellow]warning:[/] finished an interrupted write of {escape(str(target))}",
                soft_wrap=True,
            )
    kept = []
    for p in leftovers:
        if not p.exists():
            continue
        if _pid_of(p) is not None or read_marker(p) is not None or not any(p.iterdir()):
            _remove(p)
        else:
            kept.append(p)
    unwarned = [p for p in kept if str(p) not in _WARNED]  # each check_output call sees them
    if unwarned:
        from ragtune.progress import console

        _WARNED.update(str(p) for p in unwarned)
        names = escape(", ".join(str(p) for p in unwarned))
        console.print(
            f"[yellow]warning:[/] left by an interrupted run and not removed (no ragtune marker "
            f"inside): {names}; delete it once you have checked it",
            soft_wrap=True,
        )
    return kept


def _leftover_prefix(target: Path, tag: str) -> str:
    return f".{target.name}{_LEFTOVER}{tag}-{os.getpid()}-"


def _pid_of(path: Path) -> int | None:
    """The process id in a temporary folder's name (``.<target>.ragtune-<tag>-<pid>-<random>``),
    None for names without one (those of older ragtune versions)."""
    parts = path.name.rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit() or _LEFTOVER not in parts[0]:
        return None
    return int(parts[1])


def _owner_alive(path: Path) -> bool:
    """Whether the process whose id is in the leftover's name still runs (then it is not ours)."""
    pid = _pid_of(path)
    if pid is None:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_replaceable(target: Path, kind: str, overwrite: bool) -> None:
    if overwrite or not os.path.lexists(target):
        return
    if not target.is_dir():
        raise RagtuneError(f"{target} is a file, not a folder; it was left unchanged")
    if not any(target.iterdir()):
        return
    if artefact_kind(target) != kind:
        raise RagtuneError(_refusal(target, kind))
    if extra := sorted(_foreign_entries(target, kind)):
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        raise RagtuneError(
            f"{target} is a ragtune {kind} but also holds files ragtune did not write ({shown}); "
            "it was left unchanged: move them out, choose another path, or pass --overwrite"
        )


REPORT_FILES = frozenset({"report.json", "report.md", "metrics.png", "per_query.jsonl"})


def _foreign_entries(folder: Path, kind: str) -> set[str]:
    """Top-level files of an artefact folder that its marker does not list (the user's own
    files put beside ours); a folder from before markers is checked only when it is a report."""
    marker = read_marker(folder)
    if marker is not None and isinstance(marker.get("files"), dict):
        ours = {name.split("/", 1)[0] for name in marker["files"]}
        ours |= {str(name) for name in marker.get("carry", [])} | {MARKER}
    elif kind == "report":
        ours = set(REPORT_FILES)
    else:
        return set()
    # Files only: an artefact's folders (a run/, 2_Normalize/ of a model) are its own structure.
    return {
        p.name
        for p in folder.iterdir()
        if p.is_file() and p.name not in ours and not is_leftover_of(p, folder.name)
    }


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# ------------------------------------------------------------------------------------- files
def read_json_file(path: Path, expected: type, damaged: str) -> Any:
    """Parse the JSON file ``path`` of an artefact, which must hold an ``expected`` (dict/list).

    Empty, non-UTF-8, malformed or wrongly shaped content is one RagtuneError naming the file,
    what is wrong and ``damaged`` (what the user can do about it); the caller checks existence.
    """
    data = path.read_bytes()
    if not data.strip():
        raise RagtuneError(f"{path}: the file is empty (0 bytes or blank); {damaged}")
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise RagtuneError(f"{path}: not UTF-8 text (corrupted); {damaged}") from None
    except json.JSONDecodeError as exc:
        raise RagtuneError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); {damaged}"
        ) from None
    if not isinstance(value, expected):
        name = "a JSON list" if expected is list else "a JSON object"
        raise RagtuneError(f"{path}: expected {name}, got {type(value).__name__}")
    return value


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.chmod(tmp, 0o666 & ~umask())
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def umask() -> int:
    """The process's file-creation mask (read without changing it for longer than a call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _apply_umask(root: Path) -> None:
    """Give every file and folder the mode a plain ``open``/``mkdir`` would have.

    Some writers create private files (``mkstemp`` and libraries built on it make them 0600);
    a published model or index should be readable as the user's umask says.
    """
    mask = umask()
    os.chmod(root, 0o777 & ~mask)
    for p in root.rglob("*"):
        if p.is_symlink():
            continue
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def _fsync_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
