"""Atomic folders and the output-path policy: what replaces what, and what is never touched."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import ragtune.io as rio
from ragtune.errors import RagtuneError
from ragtune.io import (
    MARKER,
    artefact_kind,
    atomic_dir,
    check_output,
    clean_leftovers,
    exchange,
    read_marker,
)


def user_folder(path: Path) -> dict[str, bytes]:
    """A folder of the user's own files; returns their bytes for comparing afterwards."""
    (path / "sub").mkdir(parents=True)
    (path / "notes.txt").write_text("my notes\n")
    (path / "sub" / "data.bin").write_bytes(bytes(range(256)))
    return snapshot(path)


def snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def write_index_like(folder: Path, text: str) -> None:
    with atomic_dir(folder, "index") as tmp:
        (tmp / "data.txt").write_text(text)


def test_a_new_folder_appears_complete_with_its_marker(tmp_path):
    write_index_like(tmp_path / "idx", "v1")
    marker = read_marker(tmp_path / "idx")
    assert marker is not None
    assert (marker["kind"], marker["complete"], marker["files"]) == ("index", True, {"data.txt": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # no temporary sibling left


def test_an_artefact_of_the_same_kind_is_replaced(tmp_path):
    write_index_like(tmp_path / "idx", "v1")
    write_index_like(tmp_path / "idx", "version 2")
    assert (tmp_path / "idx" / "data.txt").read_text() == "version 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_a_folder_of_user_files_is_refused_and_kept(tmp_path):
    before = user_folder(tmp_path / "mine")
    with pytest.raises(RagtuneError) as err:
        write_index_like(tmp_path / "mine", "v1")
    assert str(err.value) == (
        f"{tmp_path / 'mine'} holds files ragtune did not write, not a ragtune index; it was left "
        "unchanged: choose a new or empty folder, or pass --overwrite to replace it"
    )
    assert snapshot(tmp_path / "mine") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_another_kind_of_artefact_is_refused(tmp_path):
    with atomic_dir(tmp_path / "out", "model") as tmp:
        (tmp / "weights").write_text("w")
    with pytest.raises(RagtuneError, match="holds a ragtune model, not a ragtune index"):
        write_index_like(tmp_path / "out", "v1")
    assert (tmp_path / "out" / "weights").read_text() == "w"


def test_overwrite_replaces_a_foreign_folder(tmp_path):
    user_folder(tmp_path / "mine")
    with atomic_dir(tmp_path / "mine", "index", overwrite=True) as tmp:
        (tmp / "data.txt").write_text("v1")
    assert sorted(snapshot(tmp_path / "mine")) == [MARKER, "data.txt"]


def test_a_failing_body_leaves_the_old_folder_and_nothing_else(tmp_path):
    write_index_like(tmp_path / "idx", "v1")
    with pytest.raises(RuntimeError, match="disk full"), atomic_dir(tmp_path / "idx", "index"):
        raise RuntimeError("disk full")
    assert (tmp_path / "idx" / "data.txt").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_exchange_swaps_two_folders_in_one_step(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x").write_text("a")
    (tmp_path / "b" / "x").write_text("b")
    if not exchange(tmp_path / "a", tmp_path / "b"):
        pytest.skip("this kernel or file system has no renameat2(RENAME_EXCHANGE)")
    assert (tmp_path / "a" / "x").read_text() == "b" and (tmp_path / "b" / "x").read_text() == "a"


def test_without_exchange_two_renames_replace_the_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(rio, "exchange", lambda a, b: False)
    write_index_like(tmp_path / "idx", "v1")
    write_index_like(tmp_path / "idx", "v2")
    assert (tmp_path / "idx" / "data.txt").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_carried_entries_move_into_the_new_folder(tmp_path):
    with atomic_dir(tmp_path / "out", "model") as tmp:
        (tmp / "weights").write_text("old")
    (tmp_path / "out" / "run").mkdir()
    (tmp_path / "out" / "run" / "log.jsonl").write_text("{}\n")
    with atomic_dir(tmp_path / "out", "model", carry=("run",)) as tmp:
        (tmp / "weights").write_text("new")
    assert (tmp_path / "out" / "weights").read_text() == "new"
    assert (tmp_path / "out" / "run" / "log.jsonl").read_text() == "{}\n"
    assert "run/log.jsonl" not in read_marker(tmp_path / "out")["files"]  # type: ignore[index]


def test_a_failed_exchange_gives_the_carried_run_back(tmp_path, monkeypatch):
    with atomic_dir(tmp_path / "out", "model") as tmp:
        (tmp / "weights").write_text("old")
    (tmp_path / "out" / "run").mkdir()
    (tmp_path / "out" / "run" / "log.jsonl").write_text("{}\n")

    def interrupted(new: Path, target: Path) -> None:
        raise KeyboardInterrupt  # Ctrl-C between the carry and the exchange

    monkeypatch.setattr(rio, "replace_path", interrupted)
    with pytest.raises(KeyboardInterrupt), atomic_dir(tmp_path / "out", "model", carry=("run",)):
        pass
    assert (tmp_path / "out" / "run" / "log.jsonl").read_text() == "{}\n"
    assert (tmp_path / "out" / "weights").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_artefact_holding_a_file_of_the_users_is_not_replaced(tmp_path):
    write_index_like(tmp_path / "idx", "v1")
    (tmp_path / "idx" / "my-notes.txt").write_text("mine\n")
    with pytest.raises(RagtuneError, match=r"also holds files ragtune did not write \(my-notes"):
        write_index_like(tmp_path / "idx", "v2")
    assert (tmp_path / "idx" / "my-notes.txt").read_text() == "mine\n"
    assert (tmp_path / "idx" / "data.txt").read_text() == "v1"


def test_files_get_the_users_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_dir(tmp_path / "out", "index") as tmp:
            fd = os.open(tmp / "private.bin", os.O_CREAT | os.O_WRONLY, 0o600)  # as mkstemp does
            os.close(fd)
    finally:
        os.umask(old)
    assert (tmp_path / "out" / "private.bin").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o750


def test_leftovers_of_a_dead_run_are_removed_or_named(tmp_path, capsys):
    write_index_like(tmp_path / "idx", "v1")
    pid = dead_pid()
    marked = tmp_path / f".idx.ragtune-tmp-{pid}-abc"
    marked.mkdir()
    (marked / MARKER).write_text(json.dumps({"kind": "index", "complete": False}))
    half_written = tmp_path / f".idx.ragtune-tmp-{pid}-ghi"  # killed while it was written
    half_written.mkdir()
    (half_written / "vectors.npy").write_bytes(b"\x93NUMPY")
    unmarked = tmp_path / ".idx.tmp-def"  # an older version's name: not certainly ours
    unmarked.mkdir()
    (unmarked / "half.bin").write_bytes(b"x")
    assert clean_leftovers(tmp_path / "idx") == [unmarked]
    assert not marked.exists() and not half_written.exists()
    assert (unmarked / "half.bin").read_bytes() == b"x"
    assert f"{unmarked}" in capsys.readouterr().err.replace("\n", "")


def test_a_complete_leftover_is_moved_in_when_the_target_vanished(tmp_path):
    new = tmp_path / f".idx.ragtune-tmp-{dead_pid()}-abc"
    with atomic_dir(new, "index") as tmp:  # a complete artefact, as a killed rename leaves it
        (tmp / "data.txt").write_text("v2")
    clean_leftovers(tmp_path / "idx")
    assert (tmp_path / "idx" / "data.txt").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_a_leftover_of_a_running_process_is_left_alone(tmp_path):
    busy = tmp_path / f".idx.ragtune-tmp-{os.getppid()}-abc"
    busy.mkdir()
    (busy / MARKER).write_text("{}")
    assert clean_leftovers(tmp_path / "idx") == []
    assert busy.exists()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "the output path is empty; pass --out with a new path"),
        (".", "--out '.' is the current directory; pass --out with a new folder inside it"),
        ("..", "--out '..' is a folder above the current directory; pass --out with a new folder"),
    ],
)
def test_paths_that_can_never_be_outputs(tmp_path, monkeypatch, path, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RagtuneError) as err:
        check_output(path, "index", overwrite=True)
    assert str(err.value).startswith(message)


def test_the_source_and_its_parents_are_refused_even_with_overwrite(tmp_path):
    src = tmp_path / "repo" / "src"
    src.mkdir(parents=True)
    for out, what in ((src, "the source folder"), (tmp_path / "repo", "a folder above the")):
        with pytest.raises(RagtuneError, match=what):
            check_output(out, "index", overwrite=True, sources=[src])
    assert check_output(src / "idx", "index", sources=[src]) == src / "idx"  # inside is fine


def test_file_outputs(tmp_path):
    (tmp_path / "v.npy").write_bytes(b"mine")
    with pytest.raises(RagtuneError, match="already exists and was left unchanged; pass --overw"):
        check_output(tmp_path / "v.npy", "embeddings", is_file=True)
    assert check_output(tmp_path / "v.npy", "embeddings", is_file=True, overwrite=True)
    with pytest.raises(RagtuneError, match="is a folder; pass --out with a file path"):
        check_output(tmp_path, "embeddings", is_file=True)
    assert (tmp_path / "v.npy").read_bytes() == b"mine"


def test_folders_from_before_markers_are_recognised(tmp_path):
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / "manifest.json").write_text('{"format": "ragtune-index/1"}')
    (tmp_path / "run-only" / "run").mkdir(parents=True)
    (tmp_path / "run-only" / "run" / "config.yaml").write_text("model: x\n")
    assert artefact_kind(tmp_path / "idx") == "index"
    assert artefact_kind(tmp_path / "run-only") == "model"  # a training killed before publishing
