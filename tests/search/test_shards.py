"""Sharded encoding: merged shards give the index one process builds; a killed shard reruns."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ragtune.errors import RagtuneError
from ragtune.io import CRASH_ENV
from ragtune.model import Encoder
from ragtune.search import IndexStore, build_index
from ragtune.search.corpus_stream import iter_records, source_kind
from ragtune.search.shards import (
    encode_source_shard,
    merge_shards,
    parse_shard,
    shard_name,
    shards_root,
)
from tests.search.conftest import make_sample_folder


@pytest.fixture
def encoder(tiny_model_dir):
    return Encoder.load(tiny_model_dir, device="cpu")


def write_corpus(path, n: int = 23) -> list[dict]:
    rows = [
        {"_id": f"d{i}", "title": f"doc {i}" if i % 3 else "", "text": f"text number {i}\nline two"}
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def index_contents(folder):
    with IndexStore.open(folder) as store:
        chunks = store.chunks(range(len(store)))
        keys = [(c.path, c.start_line, c.end_line, c.text) for c in chunks]
        return keys, np.array(store.vectors), store.manifest


def test_corpus_records_stream_round_robin(tmp_path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, 7)
    assert source_kind(corpus) == "jsonl" and source_kind(tmp_path) == "jsonl"  # BEIR folder
    ids = [[r.path for r in iter_records(corpus, shard=(i, 3))] for i in range(3)]
    assert ids == [["d0", "d3", "d6"], ["d1", "d4"], ["d2", "d5"]]
    first = next(iter_records(corpus))
    assert first.embed_text == "text number 0\nline two" and (first.start_line, first.end_line) == (
        1,
        2,
    )
    assert next(iter_records(corpus, shard=(1, 3))).embed_text.startswith("doc 1 text number 1")


def test_a_bad_row_names_file_line_and_field(tmp_path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"_id": "a", "text": "ok"}\n{"_id": "b", "text": 3}\n')
    with pytest.raises(RagtuneError, match=r"c\.jsonl:2: expected text, got int \(field 'text'\)"):
        list(iter_records(corpus))
    (tmp_path / "c.csv").write_text("x")
    with pytest.raises(RagtuneError, match="not a folder, .jsonl or .parquet corpus"):
        source_kind(tmp_path / "c.csv")


def test_two_shards_merge_to_the_single_process_index(tmp_path, encoder) -> None:
    corpus = tmp_path / "corpus.jsonl"
    rows = write_corpus(corpus)
    for i in range(2):
        encode_source_shard(corpus, encoder, tmp_path / "two.idx", shard=(i, 2))
    merge_shards(tmp_path / "two.idx")
    encode_source_shard(corpus, encoder, tmp_path / "one.idx", shard=(0, 1))
    merge_shards(tmp_path / "one.idx")

    two, one = index_contents(tmp_path / "two.idx"), index_contents(tmp_path / "one.idx")
    assert [k[0] for k in two[0]] == [r["_id"] for r in rows]  # corpus order, not shard order
    assert two[0] == one[0]
    np.testing.assert_allclose(two[1], one[1], atol=1e-5)
    texts = [(f"{r['title']} {r['text']}" if r["title"] else r["text"]) for r in rows]
    np.testing.assert_allclose(two[1], encoder.encode_documents(texts), atol=1e-5)
    assert two[2]["shards"] == 2 and two[2]["model"]["fingerprint"] == encoder.fingerprint()
    assert two[2]["index"]["kind"] == "flat"


def test_sharded_folder_equals_build_index(tmp_path, encoder) -> None:
    root = make_sample_folder(tmp_path / "repo")
    build_index(root, encoder, tmp_path / "plain.idx")
    for i in range(3):
        encode_source_shard(root, encoder, tmp_path / "sharded.idx", shard=(i, 3))
    merge_shards(tmp_path / "sharded.idx")

    plain, sharded = (
        index_contents(tmp_path / "plain.idx"),
        index_contents(tmp_path / "sharded.idx"),
    )
    assert sharded[0] == plain[0]
    np.testing.assert_allclose(sharded[1], plain[1], atol=1e-5)
    assert sharded[2]["skipped"] == plain[2]["skipped"]
    with (
        IndexStore.open(tmp_path / "sharded.idx") as store,
        IndexStore.open(tmp_path / "plain.idx") as ref,
    ):
        assert store.files() == ref.files()


def test_merge_names_the_missing_shard_and_a_rerun_encodes_only_it(tmp_path, encoder) -> None:
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus)
    out = tmp_path / "c.idx"
    first = encode_source_shard(corpus, encoder, out, shard=(0, 2))
    with pytest.raises(RagtuneError, match=r"shard\(s\) 1 of 2 missing .* --shard 1/2"):
        merge_shards(out)
    again = encode_source_shard(corpus, encoder, out, shard=(0, 2))
    assert again.reused and again.rows == first.rows == 12
    assert not encode_source_shard(corpus, encoder, out, shard=(1, 2)).reused
    merge_shards(out, kind="ivfpq", nprobe=4)
    with IndexStore.open(out) as store:
        assert store.dense.kind == "ivfpq" and store.manifest["index"]["params"]["nprobe"] == 4


@pytest.mark.slow
def test_a_killed_shard_leaves_nothing_and_reruns_alone(tmp_path, encoder, tiny_model_dir) -> None:
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus)
    out = tmp_path / "c.idx"
    encode_source_shard(corpus, encoder, out, shard=(0, 2))
    cli = [sys.executable, "-m", "ragtune.cli.main", "index", str(corpus), "--out", str(out)]
    cli += ["--model", str(tiny_model_dir), "--shard", "1/2"]
    env = {**os.environ, "RAGTUNE_PROGRESS": "0", CRASH_ENV: "index-shard:part"}
    killed = subprocess.run(cli, env=env, capture_output=True)

    assert killed.returncode == -9  # SIGKILL after its first part was written
    assert [p.name for p in shards_root(out).iterdir() if not p.name.startswith(".")] == [
        shard_name(0, 2)
    ]
    with pytest.raises(RagtuneError, match=r"shard\(s\) 1 of 2 missing or incomplete"):
        merge_shards(out)
    assert encode_source_shard(corpus, encoder, out, shard=(0, 2)).reused  # not encoded again
    assert not encode_source_shard(corpus, encoder, out, shard=(1, 2)).reused
    assert merge_shards(out).chunks_total == 23
    assert sorted(p.name for p in shards_root(out).iterdir()) == [
        shard_name(0, 2),
        shard_name(1, 2),
    ]


@pytest.mark.slow
def test_torchrun_two_ranks_write_one_shard_each_and_rank_0_merges(tmp_path, tiny_model_dir):
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus)
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc-per-node", "2", "--master-port", str(free_port())]
    cmd += ["-m", "ragtune.cli.main", "index", str(corpus), "--out", str(tmp_path / "c.idx")]
    cmd += ["--model", str(tiny_model_dir), "--json"]
    env = {**os.environ, "RAGTUNE_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    assert sorted(p.name for p in shards_root(tmp_path / "c.idx").iterdir()) == [
        shard_name(0, 2),
        shard_name(1, 2),
    ]
    encoder = Encoder.load(tiny_model_dir, device="cpu")
    encode_source_shard(corpus, encoder, tmp_path / "one.idx", shard=(0, 1))
    merge_shards(tmp_path / "one.idx")
    two, one = index_contents(tmp_path / "c.idx"), index_contents(tmp_path / "one.idx")
    assert two[0] == one[0]
    np.testing.assert_allclose(two[1], one[1], atol=1e-5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_parse_shard() -> None:
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "1", "a/b", "-1/2"):
        with pytest.raises(RagtuneError, match="expected I/N"):
            parse_shard(bad)


def test_one_process_indexing_removes_only_the_shards_it_made(tmp_path, tiny_model_dir) -> None:
    """A plain ``index corpus.jsonl`` encodes through one shard of its own and removes it after
    the merge; shards that were there before the command (a user's ``--shard`` runs) stay."""
    from typer.testing import CliRunner

    from ragtune.cli.main import app

    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus)
    base = ["index", str(corpus), "--model", str(tiny_model_dir), "--json"]

    own = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "a.idx")])
    assert own.exit_code == 0, own.output
    assert len(index_contents(tmp_path / "a.idx")[0]) == 23
    assert not shards_root(tmp_path / "a.idx").exists()

    kept = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "b.idx"), "--shard", "0/1"])
    assert kept.exit_code == 0, kept.output
    again = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "b.idx")])
    assert again.exit_code == 0, again.output
    assert [p.name for p in shards_root(tmp_path / "b.idx").iterdir()] == [shard_name(0, 1)]
