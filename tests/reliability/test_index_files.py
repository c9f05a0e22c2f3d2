"""A damaged index is refused with one line naming the file, before any model loads.

Each case copies the sample index (tests/search/conftest.py: 8 chunks of 4 files, 32 dims, flat),
damages one thing and checks the exact error of :meth:`IndexStore.open`, that the folder's bytes
are unchanged by the attempt, and that nothing was left in it. Damage that keeps every file's
size and hash (an index "resealed" after an edit) reaches the structural checks: counts,
dimensions and readability of SQLite, numpy and FAISS. The commands ``ragtune search`` and
``ragtune serve`` refuse such a folder with exit code 1 and one line.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from ragtune.errors import RagtuneError
from ragtune.search import IndexStore
from ragtune.search.manifest import write_manifest
from ragtune.search.topk import DenseIndex
from tests.search.conftest import sample_index, tiny_model_dir  # noqa: F401 - fixtures

REBUILD = "rebuild the index with `ragtune index`"


@pytest.fixture
def index(tmp_path, sample_index) -> Path:  # noqa: F811 - the fixture imported above
    """A private copy of the sample index, free to damage."""
    return Path(shutil.copytree(sample_index, tmp_path / "repo.idx"))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}  # fmt: skip


def refused(folder: Path) -> str:
    """The error :meth:`IndexStore.open` raises; the attempt must change and leave nothing."""
    before = snapshot(folder) if folder.is_dir() else None
    with pytest.raises(RagtuneError) as caught:
        IndexStore.open(folder)
    assert (snapshot(folder) if folder.is_dir() else None) == before
    message = str(caught.value)
    assert "\n" not in message
    return message


def reseal(folder: Path) -> None:
    """Record the current files in the manifest, as if the index had been written like this."""
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["contents"]
    write_manifest(folder, manifest)


def edit_manifest(folder: Path, change) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_a_complete_index_lists_every_file_with_size_and_sha256(index):
    contents = json.loads((index / "manifest.json").read_text())["contents"]
    assert sorted(contents) == ["chunks.sqlite", "dense/index.faiss", "dense/index.json",
                                "vectors.npy"]  # fmt: skip
    for name, entry in contents.items():
        assert entry["bytes"] == (index / name).stat().st_size
        assert len(entry["sha256"]) == 64
    with IndexStore.open(index) as store:
        assert (len(store), store.dense.ntotal, store.vectors.shape) == (8, 8, (8, 32))
        assert store.changed_on_disk() == ""


# ---------------------------------------------------------------- the folder and its manifest
def test_a_folder_that_does_not_exist(tmp_path):
    missing = tmp_path / "nowhere.idx"
    assert refused(missing) == (
        f"{missing}: no such index folder; build one with `ragtune index DIR --out INDEX`"
    )


def test_a_folder_without_the_manifest_written_last(index):
    (index / "manifest.json").unlink()
    assert refused(index) == (
        f"{index}: not a ragtune index (no manifest.json, which is written last: an index whose "
        "build was interrupted has none); build one with `ragtune index DIR --out INDEX`"
    )


def test_an_empty_manifest(index):
    (index / "manifest.json").write_bytes(b"")
    assert refused(index) == (
        f"{index / 'manifest.json'}: the file is empty (0 bytes or blank); {REBUILD}"
    )


def test_a_truncated_manifest(index):
    data = (index / "manifest.json").read_bytes()
    (index / "manifest.json").write_bytes(data[: len(data) // 2])
    message = refused(index)
    assert message.startswith(f"{index / 'manifest.json'}: not valid JSON (")
    assert message.endswith(f"); {REBUILD}")


def test_a_manifest_of_binary_garbage(index):
    (index / "manifest.json").write_bytes(b"\xff\xfe\x00garbage")
    assert refused(index) == f"{index / 'manifest.json'}: not UTF-8 text (corrupted); {REBUILD}"


def test_a_manifest_that_is_not_an_object(index):
    (index / "manifest.json").write_text("[1, 2]")
    assert refused(index) == f"{index / 'manifest.json'}: expected a JSON object, got list"


def test_a_manifest_without_file_checksums(index):
    edit_manifest(index, lambda m: m.pop("contents"))
    assert refused(index) == (
        f"{index / 'manifest.json'}: lists no file sizes and checksums ('contents'), so the "
        "index cannot be verified (built by an older ragtune, or not by ragtune); " + REBUILD
    )


def test_a_manifest_without_the_model_fingerprint(index):
    edit_manifest(index, lambda m: m["model"].pop("fingerprint"))
    assert refused(index) == (
        f"{index / 'manifest.json'}: no model fingerprint ('model.fingerprint'); {REBUILD}"
    )


def test_a_manifest_with_a_bad_dimension(index):
    edit_manifest(index, lambda m: m["model"].update(dim="32"))
    assert refused(index) == (
        f"{index / 'manifest.json'}: 'model.dim' must be a positive integer, got '32'"
    )


def test_a_manifest_of_another_format(index):
    edit_manifest(index, lambda m: m.update(format="ragtune-index/0"))
    assert refused(index) == (
        f"{index}: index format 'ragtune-index/0' is not 'ragtune-index/1'; rebuild it with "
        "`ragtune index`"
    )


def test_a_manifest_that_does_not_list_the_faiss_file(index):
    edit_manifest(index, lambda m: m["contents"].pop("dense/index.faiss"))
    assert refused(index) == (
        f"{index / 'manifest.json'}: does not list dense/index.faiss; {REBUILD}"
    )


# ---------------------------------------------------------------- files missing, cut or changed
def test_a_truncated_faiss_file(index):
    path = index / "dense" / "index.faiss"
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:100])
    assert refused(index) == (
        f"{path}: 100 bytes, manifest.json lists {size} (truncated or overwritten after the "
        f"index was written); {REBUILD}"
    )


def test_an_empty_chunk_database(index):
    path = index / "chunks.sqlite"
    size = path.stat().st_size
    path.write_bytes(b"")
    assert refused(index) == (
        f"{path}: 0 bytes, manifest.json lists {size} (truncated or overwritten after the "
        f"index was written); {REBUILD}"
    )


def test_a_missing_vectors_file(index):
    (index / "vectors.npy").unlink()
    assert refused(index) == (
        f"{index / 'vectors.npy'}: missing (listed in manifest.json); {REBUILD}"
    )


def test_a_flipped_byte_in_the_vectors(index):
    path = index / "vectors.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the same size: only the hash tells
    path.write_bytes(bytes(data))
    assert refused(index) == (
        f"{path}: its content differs from the sha256 in manifest.json (corrupted or changed "
        f"after the index was written); {REBUILD}"
    )
    with IndexStore.open(index, checksums=False) as store:  # sizes only: it opens
        assert len(store) == 8


# ---------------------------------------------------------------- resealed: structure checks
def test_faiss_metadata_that_is_not_json(index):
    (index / "dense" / "index.json").write_text('{"kind": "flat", ')
    reseal(index)
    message = refused(index)
    assert message.startswith(f"{index / 'dense' / 'index.json'}: not valid JSON (")


def test_a_faiss_file_of_garbage(index):
    path = index / "dense" / "index.faiss"
    path.write_bytes(b"\x00garbage" * 100)
    reseal(index)
    assert refused(index) == f"{path}: FAISS cannot read it (truncated or corrupted); {REBUILD}"


def test_a_faiss_index_with_the_wrong_vector_count(index):
    shutil.rmtree(index / "dense")
    DenseIndex.build(np.eye(7, 32, dtype=np.float32), kind="flat").save(index / "dense")
    reseal(index)
    assert refused(index) == (
        f"{index / 'dense' / 'index.faiss'}: holds 7 vectors of dimension 32, chunks.sqlite has "
        f"8 chunks and the model 32 dimensions; {REBUILD}"
    )


def test_a_vectors_file_with_the_wrong_shape(index):
    np.save(index / "vectors.npy", np.zeros((9, 32), dtype=np.float32))
    reseal(index)
    assert refused(index) == (
        f"{index / 'vectors.npy'}: holds float32 vectors of shape (9, 32), expected float32 "
        f"(8, 32) for 8 chunks of dimension 32; {REBUILD}"
    )


def test_a_chunk_database_of_garbage(index):
    (index / "chunks.sqlite").write_bytes(b"not a database" * 100)
    reseal(index)
    assert refused(index) == (
        f"{index / 'chunks.sqlite'}: not a readable index database (file is not a database); "
        + REBUILD
    )


def test_counts_that_disagree_with_the_manifest(index):
    edit_manifest(index, lambda m: m["counts"].update(chunks=9))
    assert refused(index) == (
        f"{index / 'chunks.sqlite'}: 8 chunks of 4 files, manifest.json records 9 of 4; {REBUILD}"
    )


# ---------------------------------------------------------------- the commands refuse it
def run_cli(args: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    """``ragtune ARGS`` in this process: (exit code, stdout, stderr)."""
    from ragtune.cli.main import main

    monkeypatch.setattr(sys, "argv", ["ragtune", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


def test_search_and_serve_refuse_a_truncated_index(index, monkeypatch, capsys):
    path = index / "dense" / "index.faiss"
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:-1])
    line = (
        f"error: {path}: {size - 1} bytes, manifest.json lists {size} (truncated or overwritten "
        f"after the index was written); {REBUILD}\n"
    )
    assert run_cli(["search", str(index), "backoff"], monkeypatch, capsys) == (1, "", line)
    serve = ["serve", str(index), "--port", "0", "--log-level", "warning"]
    assert run_cli(serve, monkeypatch, capsys) == (1, "", line)  # no "serving ..." line


@pytest.mark.parametrize("port", ["65536", "-1", "100000"])
def test_serve_refuses_a_port_out_of_range(port, index, monkeypatch, capsys):
    code, out, err = run_cli(["serve", str(index), "--port", port], monkeypatch, capsys)
    assert (code, out) == (1, "")
    assert err == f"error: --port must be 1-65535, or 0 for any free port; got {port}\n"


def test_serve_refuses_a_port_in_use(index, monkeypatch, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = run_cli(["serve", str(index), "--port", str(port)], monkeypatch, capsys)
    assert (code, out) == (1, "")
    assert err == (
        f"error: cannot listen on 127.0.0.1:{port} (Address already in use); pass another "
        "--port, or --port 0 for any free one\n"
    )


def test_serve_refuses_an_address_of_another_machine_and_a_bad_log_level(
    index, monkeypatch, capsys
):
    argv = [
        "serve",
        str(index),
        "--host",
        "192.0.2.1",
        "--api-key",
        "secret",
    ]  # key: beyond loopback
    code, out, err = run_cli(argv, monkeypatch, capsys)
    assert (code, out) == (1, "")  # 192.0.2.0/24 is reserved for documentation: never local
    assert err == (
        "error: cannot listen on 192.0.2.1:8000 (Cannot assign requested address); 192.0.2.1 "
        "is not an address of this machine; pass another --host\n"
    )
    code, _, err = run_cli(["serve", str(index), "--log-level", "loud"], monkeypatch, capsys)
    assert (code, err) == (
        1,
        "error: unknown log level 'loud'; valid: critical, error, warning, info, debug, trace\n",
    )
