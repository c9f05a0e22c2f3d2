"""A model folder loads only when complete: each damaged file is named in one line.

A publish killed with SIGKILL at any point leaves the previous or the new model, each complete,
and the next run finishes or removes what it left beside the folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ragtune.errors import RagtuneError
from ragtune.io import MARKER, clean_leftovers
from ragtune.model import Encoder
from ragtune.model.export import export_onnx
from ragtune.model.folder import check_model_folder
from ragtune.train.publish import publish
from tests.conftest import make_tiny_encoder

REPO = Path(__file__).resolve().parents[2]
BAD_JSON = "not valid JSON (Expecting value at line 1 column 1); the model is damaged"


@pytest.fixture
def saved(tmp_path, tiny_encoder) -> Path:
    return tiny_encoder.save(tmp_path / "m")


def plain_st_folder(folder: Path) -> Path:
    """The same folder as sentence-transformers writes it: no ragtune.json, no marker."""
    (folder / "ragtune.json").unlink()
    (folder / MARKER).unlink()
    return folder


def garble(path: Path) -> None:
    """Overwrite the start of a file with bytes of the same length (its size stays the same)."""
    data = bytearray(path.read_bytes())
    data[:8] = b"garbage!"
    path.write_bytes(bytes(data))


def load_error(folder: Path) -> str:
    with pytest.raises(RagtuneError) as err:
        Encoder.load(folder)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_complete_folder_loads_and_matches(saved, tiny_encoder):
    again = Encoder.load(saved)
    assert np.abs(again.encode(["a text"]) - tiny_encoder.encode(["a text"])).max() < 1e-6


def test_a_ragtune_folder_without_its_marker_is_refused(saved):
    (saved / MARKER).unlink()
    (saved / "modules.json").unlink()  # what an interrupted publish of an earlier version left
    assert load_error(saved) == (
        f"{saved}: incomplete model folder: it has ragtune.json but no {MARKER}, which ragtune "
        "writes last (the write was interrupted, or the folder was copied in part); save or "
        "export the model again"
    )


def test_a_folder_of_an_earlier_version_still_loads(saved, tiny_encoder):
    (saved / MARKER).unlink()  # earlier versions wrote no marker, and modules.json last
    again = Encoder.load(saved)
    assert np.abs(again.encode(["a text"]) - tiny_encoder.encode(["a text"])).max() < 1e-6


def test_edited_prompts_and_model_card_do_not_make_a_model_unloadable(saved, tiny_encoder):
    config = saved / "config_sentence_transformers.json"
    data = json.loads(config.read_text())
    data["prompts"] = {"query": "query: ", "document": "passage: "}
    config.write_text(json.dumps(data, indent=4))
    (saved / "README.md").write_text("# my model\n\nnotes of my own\n")
    again = Encoder.load(saved)  # ragtune.json still decides the prompts: none here
    assert np.abs(again.encode(["a text"]) - tiny_encoder.encode(["a text"])).max() < 1e-6


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("config.json", "the file is empty (0 bytes or blank); the model is damaged"),
        ("modules.json", "the file is empty (0 bytes or blank); the model is damaged"),
        ("ragtune.json", "the file is empty (0 bytes or blank); the model is damaged"),
    ],
)
def test_an_emptied_config_is_named(saved, name, problem):
    (saved / name).write_bytes(b"")
    assert load_error(saved) == f"{saved / name}: {problem}"


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json"])
def test_an_emptied_file_is_named_with_its_sizes(saved, name):
    size = (saved / name).stat().st_size
    (saved / name).write_bytes(b"")
    assert load_error(saved) == (
        f"{saved / name}: 0 bytes, but {size} when the model was saved (truncated or changed "
        "since); save or export the model again"
    )


def test_a_missing_tokenizer_is_named(saved):
    (saved / "tokenizer.json").unlink()
    assert load_error(saved) == (
        f"{saved / 'tokenizer.json'}: missing (the model folder is incomplete); save it again"
    )


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("config.json", BAD_JSON),
        ("modules.json", BAD_JSON),
        ("ragtune.json", BAD_JSON),
        ("model.safetensors", "not a safetensors file (bad header length); damaged"),
    ],
)
def test_a_corrupted_file_of_the_same_size_is_named(saved, name, problem):
    garble(saved / name)
    assert load_error(saved) == f"{saved / name}: {problem}"


def test_plain_sentence_transformers_folders_still_load(saved, tiny_encoder):
    plain = plain_st_folder(saved)
    again = Encoder.load(plain)
    assert np.abs(again.encode(["a text"]) - tiny_encoder.encode(["a text"])).max() < 1e-6


def test_a_truncated_plain_folder_is_caught_by_the_safetensors_header(saved):
    plain = plain_st_folder(saved)
    weights = plain / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as f:
        f.truncate(size - 100)
    assert load_error(plain) == (
        f"{weights}: {size - 100} bytes, but its header describes {size} (truncated or "
        "corrupted); the model is damaged"
    )


def test_a_plain_folder_without_tokenizer_files_is_refused(saved):
    plain = plain_st_folder(saved)
    (plain / "tokenizer.json").unlink()
    message = load_error(plain)
    assert message.startswith(f"{plain}: no tokenizer files (one of tokenizer.json, vocab.txt")
    assert message.endswith("Copy the tokenizer of the base model into it")


def test_an_empty_json_file_in_a_plain_folder_is_named(saved):
    plain = plain_st_folder(saved)
    (plain / "modules.json").write_text("  \n")
    assert load_error(plain) == (
        f"{plain / 'modules.json'}: the file is empty (0 bytes or blank); the model is damaged"
    )


def test_weights_are_readable_as_the_umask_says(tmp_path, tiny_encoder):
    old = os.umask(0o022)
    try:
        folder = tiny_encoder.save(tmp_path / "m")
    finally:
        os.umask(old)
    assert (folder / "model.safetensors").stat().st_mode & 0o777 == 0o644
    assert (folder / "1_Pooling").stat().st_mode & 0o777 == 0o755


@pytest.fixture
def onnx_folder(tmp_path, tiny_encoder) -> Path:
    pytest.importorskip("onnxruntime")
    return export_onnx(tiny_encoder, tmp_path / "onnx")


def test_an_emptied_onnx_graph_is_named(onnx_folder):
    graph = onnx_folder / "model.onnx"
    size = graph.stat().st_size
    graph.write_bytes(b"")
    with pytest.raises(RagtuneError) as err:
        check_model_folder(onnx_folder)
    assert str(err.value) == (
        f"{graph}: 0 bytes, but {size} when the model was saved (truncated or changed since); "
        "save or export the model again"
    )


def test_a_corrupted_onnx_graph_of_the_same_size_is_named(onnx_folder):
    graph = onnx_folder / "model.onnx"
    graph.write_bytes(b"\xff" * graph.stat().st_size)
    with pytest.raises(RagtuneError) as err:
        check_model_folder(onnx_folder)
    assert str(err.value).startswith(f"{graph}: not a readable ONNX graph (")


# ----------------------------------------------------------------------------- kill -9 in publish
PUBLISH = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from types import SimpleNamespace
    from transformers import AutoTokenizer
    from ragtune.model.resolve import bundled_model_path
    from ragtune.train.publish import publish
    from tests.conftest import make_tiny_encoder

    out = Path(sys.argv[1])
    encoder = make_tiny_encoder(AutoTokenizer.from_pretrained(bundled_model_path()), seed=1)
    result = SimpleNamespace(steps=1, seconds=1.0, pairs_per_second=1.0, best_score=None,
                             improved=True, metric="nDCG@10", base_score=None, best_step=1)
    publish(encoder, out / "run", out, result)
    """
)


def published_old_model(tmp_path: Path, tokenizer) -> tuple[Path, np.ndarray, np.ndarray]:
    """``out`` holding the seed-0 model and a ``run/`` folder; the vectors of seeds 0 and 1."""
    old, new = make_tiny_encoder(tokenizer, seed=0), make_tiny_encoder(tokenizer, seed=1)
    out = old.save(tmp_path / "out")
    (out / "run").mkdir()
    (out / "run" / "log.jsonl").write_text('{"step": 1}\n')
    return out, old.encode(["a text"]), new.encode(["a text"])


@pytest.mark.parametrize(
    ("point", "expect"),
    [
        ("publish:built", "old"),  # the new folder is complete beside the old one
        ("replace:carried", "old"),  # run/ already moved into the new folder
        ("replace:exchanged", "new"),  # swapped; the old folder not yet removed
    ],
)
def test_a_publish_killed_at_any_point_leaves_one_complete_model(
    tmp_path, tokenizer, point, expect
):
    out, old_vectors, new_vectors = published_old_model(tmp_path, tokenizer)
    env = {**os.environ, "RAGTUNE_CRASH_AT": point, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", PUBLISH, str(out)], env=env, cwd=REPO, capture_output=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(".out.")]) == 1

    loaded = Encoder.load(out).encode(["a text"])
    assert np.abs(loaded - (old_vectors if expect == "old" else new_vectors)).max() < 1e-6

    clean_leftovers(out)  # what the next run does first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (out / "run" / "log.jsonl").read_text() == '{"step": 1}\n'
    final = Encoder.load(out).encode(["a text"])
    finished = "old" if point == "publish:built" else "new"
    assert np.abs(final - (old_vectors if finished == "old" else new_vectors)).max() < 1e-6
    marker = json.loads((out / MARKER).read_text())
    assert marker["kind"] == "model" and marker["complete"] is True


def test_an_uninterrupted_publish_replaces_the_model_and_keeps_run(tmp_path, tokenizer):
    out, _, new_vectors = published_old_model(tmp_path, tokenizer)
    result = SimpleNamespace(
        steps=1, seconds=1.0, pairs_per_second=1.0, best_score=None, improved=True, best_step=1
    )
    publish(make_tiny_encoder(tokenizer, seed=1), out / "run", out, result)
    assert np.abs(Encoder.load(out).encode(["a text"]) - new_vectors).max() < 1e-6
    assert (out / "README.md").is_file() and (out / "run" / "summary.json").is_file()
    assert (out / "run" / "log.jsonl").read_text() == '{"step": 1}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
