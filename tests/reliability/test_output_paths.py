"""Every command's output path: nothing the user made is ever removed or overwritten.

Each command that writes a folder (index, export, train, demo, data build-stdlib, eval) or a
file (encode, mine) is pointed at the user's own folder, at a file, at '' and '.', and the index
at its own source and the source's parent: exit code 1, one line saying why and what to pass,
the user's bytes unchanged and nothing left beside them. An earlier artefact of the same kind is
replaced; ``--overwrite`` replaces anything but the source. An index replacement killed with
SIGKILL leaves a complete index, and the next run cleans up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ragtune.data.beir import write_beir_folder
from ragtune.data.schema import Document
from ragtune.search.store import IndexStore
from tests.conftest import make_tiny_encoder
from tests.train.conftest import synthetic_pairs, write_jsonl

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class World:
    """Inputs every command can read: a tiny model, a folder to index, pairs, a BEIR folder."""

    model: Path
    src: Path
    pairs: Path
    beir: Path
    texts: Path
    pysrc: Path
    mine_pairs: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory, tokenizer) -> World:
    root = tmp_path_factory.mktemp("inputs")
    model = make_tiny_encoder(tokenizer).save(root / "tiny")
    src = root / "repo"
    (src / "docs").mkdir(parents=True)
    (src / "README.md").write_text("# Demo\n\nHow the parser reads a status line.\n")
    (src / "docs" / "notes.txt").write_text("Retry with exponential backoff.\n")
    pairs = write_jsonl(root / "pairs.jsonl", synthetic_pairs(8))
    docs = [Document("d1", "The cat slept on the mat."), Document("d2", "Tax is due in April.")]
    beir = write_beir_folder(
        root / "beir",
        docs,
        {"q1": "cat", "q2": "tax"},
        {"test": {"q1": {"d1": 1}, "q2": {"d2": 1}}},
    )
    texts = root / "texts.txt"
    texts.write_text("first text\nsecond text\n")
    pysrc = root / "pysrc"
    pysrc.mkdir()
    (pysrc / "m.py").write_text('def f():\n    """Return one."""\n    return 1\n')
    shared_words = [("cat food", "the best cat food"), ("cat toys", "toys for indoor cats")]
    shared_words += [("dog food", "dog food for small dogs"), ("dog toys", "toys dogs love")]
    rows = [{"query": q, "positive": p} for q, p in shared_words]
    mine_pairs = write_jsonl(root / "mine.jsonl", rows)
    return World(model, src, pairs, beir, texts, pysrc, mine_pairs)


Argv = Callable[[str, World], list[str]]
FOLDER_COMMANDS: dict[str, tuple[str, Argv]] = {
    "index": ("index", lambda out, w: ["index", str(w.src), "--out", out, "-m", str(w.model)]),
    "export": ("onnx-model", lambda out, w: ["export", str(w.model), "--out", out]),
    "train": (
        "model",
        lambda out, w: ["train", "--data", str(w.pairs), "-m", str(w.model), "--out", out],
    ),
    "demo": ("demo", lambda out, w: ["demo", "--out", out, "--model", str(w.model)]),
    "build-stdlib": (
        "dataset",
        lambda out, w: ["data", "build-stdlib", "--out", out, "--root", str(w.pysrc)],
    ),
    "eval": ("report", lambda out, w: ["eval", "--bm25", "--data", str(w.beir), "--out", out]),
}
FILE_COMMANDS: dict[str, Argv] = {
    "encode": lambda out, w: ["encode", str(w.texts), "-m", str(w.model), "--out", out],
    "mine": lambda out, w: [
        "mine",
        "--data",
        str(w.mine_pairs),
        "--source",
        "bm25",
        "-n",
        "1",
        "--out",
        out,
    ],
}
# Typer turns a Path option's '' into '.'; string options keep ''.
STRING_OUT = {"train", "demo"}


def ragtune(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    """Run the CLI as a user would (its own error handling); return exit code and stderr."""
    from ragtune.cli.main import main

    capsys.readouterr()
    old = sys.argv
    sys.argv = ["ragtune", *argv]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = old
    return code, capsys.readouterr().err


def user_files(folder: Path) -> dict[str, bytes]:
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("my own notes\n")
    (folder / "sub" / "data.bin").write_bytes(bytes(range(256)))
    return snapshot(folder)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ----------------------------------------------------------------------------- folder outputs
@pytest.mark.parametrize("command", FOLDER_COMMANDS)
def test_a_folder_of_user_files_is_refused(capsys, work, world, command):
    kind, argv = FOLDER_COMMANDS[command]
    before = user_files(work / "mine")
    code, err = ragtune(capsys, argv(str(work / "mine"), world))
    assert (code, err) == (
        1,
        f"error: {work / 'mine'} holds files ragtune did not write, not a ragtune {kind}; it was "
        "left unchanged: choose a new or empty folder, or pass --overwrite to replace it\n",
    )
    assert snapshot(work / "mine") == before
    assert sorted(p.name for p in work.iterdir()) == ["mine"]


@pytest.mark.parametrize("command", FOLDER_COMMANDS)
def test_a_file_where_a_folder_goes_is_refused(capsys, work, world, command):
    _, argv = FOLDER_COMMANDS[command]
    (work / "notes.txt").write_bytes(b"keep me")
    code, err = ragtune(capsys, argv(str(work / "notes.txt"), world))
    assert (code, err) == (
        1,
        f"error: {work / 'notes.txt'} is a file, not a folder, and was left unchanged; pass "
        "--out with a folder path (or --overwrite to replace the file)\n",
    )
    assert (work / "notes.txt").read_bytes() == b"keep me"
    assert sorted(p.name for p in work.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("path", ["", "."])
@pytest.mark.parametrize("command", [*FOLDER_COMMANDS, *FILE_COMMANDS])
def test_the_empty_string_and_the_current_directory_are_refused(capsys, work, world, command, path):
    before = user_files(work)
    argv = FOLDER_COMMANDS[command][1] if command in FOLDER_COMMANDS else FILE_COMMANDS[command]
    code, err = ragtune(capsys, argv(path, world))
    if path == "" and command in STRING_OUT:  # the config check may say it first, in its words
        assert code == 1 and err.count("\n") == 1
        assert err.startswith("error: ") and "empty" in err
    else:
        assert (code, err) == (
            1,
            "error: --out '.' is the current directory; pass --out with a new folder inside it\n",
        )
    assert snapshot(work) == before


def test_index_refuses_its_own_source_and_the_sources_parent(capsys, work, world):
    _, argv = FOLDER_COMMANDS["index"]
    before = snapshot(world.src.parent)
    for out, what in ((world.src, "the source folder"), (world.src.parent, "a folder above the")):
        code, err = ragtune(capsys, [*argv(str(out), world), "--overwrite"])
        assert code == 1 and err.count("\n") == 1
        assert err.startswith(f"error: --out {str(out)!r} is {what}")
        assert err.endswith("; pass --out with a separate folder\n")
    assert snapshot(world.src.parent) == before


def test_index_refuses_a_model_folder(capsys, work, world, tokenizer):
    model = make_tiny_encoder(tokenizer).save(work / "model")
    before = snapshot(model)
    code, err = ragtune(capsys, FOLDER_COMMANDS["index"][1](str(model), world))
    assert code == 1
    assert err.startswith(f"error: {model} holds a ragtune model, not a ragtune index;")
    assert snapshot(model) == before


def test_an_earlier_index_is_replaced_and_overwrite_takes_a_user_folder(capsys, work, world):
    _, argv = FOLDER_COMMANDS["index"]
    assert ragtune(capsys, argv(str(work / "idx"), world)) == (0, "")
    (world.src / "extra.txt").write_text("A new file about glaciers.\n")
    try:
        assert ragtune(capsys, argv(str(work / "idx"), world)) == (0, "")
    finally:
        (world.src / "extra.txt").unlink()
    with IndexStore.open(work / "idx") as store:
        assert store.file_count() == 3

    user_files(work / "mine")
    assert ragtune(capsys, [*argv(str(work / "mine"), world), "--overwrite"]) == (0, "")
    assert not (work / "mine" / "notes.txt").exists()
    with IndexStore.open(work / "mine") as store:
        assert store.file_count() == 2
    assert sorted(p.name for p in work.iterdir()) == ["idx", "mine"]


def test_an_earlier_report_is_replaced(capsys, work, world):
    _, argv = FOLDER_COMMANDS["eval"]
    assert ragtune(capsys, argv(str(work / "report"), world))[0] == 0
    (work / "report" / "report.md").write_text("stale")
    assert ragtune(capsys, argv(str(work / "report"), world))[0] == 0
    assert (work / "report" / "report.md").read_text() != "stale"
    assert sorted(p.name for p in work.iterdir()) == ["report"]


# ----------------------------------------------------------------------------- file outputs
@pytest.mark.parametrize("command", FILE_COMMANDS)
def test_an_existing_file_is_kept_unless_overwrite(capsys, work, world, command):
    out = work / ("v.npy" if command == "encode" else "mined.jsonl")
    out.write_bytes(b"the user's file")
    code, err = ragtune(capsys, FILE_COMMANDS[command](str(out), world))
    assert (code, err) == (
        1,
        f"error: {out} already exists and was left unchanged; pass --overwrite to replace it\n",
    )
    assert out.read_bytes() == b"the user's file"
    assert ragtune(capsys, [*FILE_COMMANDS[command](str(out), world), "--overwrite"])[0] == 0
    assert out.read_bytes() != b"the user's file"


@pytest.mark.parametrize("command", FILE_COMMANDS)
def test_a_folder_where_a_file_goes_is_refused(capsys, work, world, command):
    before = user_files(work / "mine")
    code, err = ragtune(capsys, FILE_COMMANDS[command](str(work / "mine"), world))
    assert (code, err) == (
        1,
        f"error: --out {str(work / 'mine')!r} is a folder; pass --out with a file path\n",
    )
    assert snapshot(work / "mine") == before


# ----------------------------------------------------------------------------- kill -9
PATCHED = (
    "import sys, ragtune.io as rio; rio.exchange = lambda a, b: False; "
    "from ragtune.cli.main import main; sys.argv = ['ragtune', *sys.argv[1:]]; main()"
)


@pytest.mark.parametrize(
    ("point", "exchange"), [("replace:exchanged", True), ("replace:between-renames", False)]
)
def test_an_index_replacement_killed_leaves_a_complete_index(capsys, work, world, point, exchange):
    argv = FOLDER_COMMANDS["index"][1](str(work / "idx"), world)
    assert ragtune(capsys, argv)[0] == 0
    (world.src / "extra.txt").write_text("A new file about glaciers.\n")
    try:
        env = {**os.environ, "RAGTUNE_CRASH_AT": point, "PYTHONPATH": str(REPO / "src")}
        prefix = ["-m", "ragtune.cli.main"] if exchange else ["-c", PATCHED]
        proc = subprocess.run([sys.executable, *prefix, *argv], env=env, capture_output=True)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
        leftovers = [p.name for p in work.iterdir() if p.name != "idx"]
        assert len(leftovers) == (1 if exchange else 2)  # the old index; and the new one
        assert all(name.startswith(".idx.ragtune-") for name in leftovers)
        if exchange:  # never a moment without an index: it is already the new one
            with IndexStore.open(work / "idx") as store:
                assert store.file_count() == 3
        else:  # two renames: killed between them, the index is missing until the next run
            assert not (work / "idx").exists()

        code, err = ragtune(capsys, argv)  # the next run repairs first, then updates
        assert code == 0 and "left by an interrupted run" not in err
        assert sorted(p.name for p in work.iterdir()) == ["idx"]
        with IndexStore.open(work / "idx") as store:
            assert store.file_count() == 3
    finally:
        (world.src / "extra.txt").unlink()
