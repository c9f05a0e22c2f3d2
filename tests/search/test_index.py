"""Indexing a folder: what is skipped, exact chunk line ranges, incremental updates."""

from __future__ import annotations

import numpy as np
import pytest

from ragtune.errors import RagtuneError
from ragtune.model import Encoder
from ragtune.search import IndexConfig, IndexStore, build_index, search
from ragtune.search.chunking import HFTokenCounter, split_lines
from tests.search.conftest import HTTP_PY, NOTES_TXT, README, make_sample_folder


@pytest.fixture
def encoder(tiny_model_dir):
    return Encoder.load(tiny_model_dir, device="cpu")


def spy_on_documents(encoder, monkeypatch) -> list[str]:
    """Record every text the build embeds."""
    seen: list[str] = []
    real = encoder.encode_documents

    def recording(texts, **kwargs):
        seen.extend(texts)
        return real(texts, **kwargs)

    monkeypatch.setattr(encoder, "encode_documents", recording)
    return seen


def chunk_ranges(store: IndexStore, path: str) -> list[tuple[int, int]]:
    return [(c.start_line, c.end_line) for c in store.chunks_of(path)]


def test_index_skips_what_it_should_and_cites_exact_lines(tmp_path, encoder, tiny_model_dir):
    root = make_sample_folder(tmp_path / "repo")
    report = build_index(root, encoder, tmp_path / "idx", model_ref=str(tiny_model_dir))

    assert report.skipped == {"binary": 1, "ignored": 3, "not_utf8": 1}  # log, build/, node_m.
    assert (report.files_new, report.files_changed, report.files_deleted) == (4, 0, 0)
    with IndexStore.open(tmp_path / "idx") as store:
        assert sorted(store.files()) == [".gitignore", "README.md", "notes.txt", "src/http.py"]
        # The tiny model reads 64 tokens: 62 after [CLS]/[SEP], 55 after the "src/http.py\n"
        # header (7 tokens). Token counts of http.py's sections (found by the tokenizer):
        tok = HFTokenCounter(encoder.tokenizer)
        counts = tok.count(split_lines(HTTP_PY))
        assert tok.prompt_tokens("src/http.py\n") == 7
        assert [sum(counts[a - 1 : b]) for a, b in [(1, 5), (6, 12), (13, 20), (21, 26)]] == [
            17, 52, 56, 34,
        ]  # fmt: skip
        # so: the module docstring and import (17 >= 55 // 4, stays alone); parse_status_line
        # with its comment and decorator; parse_headers (56 > 55) split inside at lines 13-17
        # (53 tokens) and 16-18 with two lines of overlap; the class.
        assert chunk_ranges(store, "src/http.py") == [(1, 3), (6, 10), (13, 17), (16, 18), (21, 26)]
        assert chunk_ranges(store, "README.md") == [(1, 11)]  # 36 tokens: one chunk
        assert chunk_ranges(store, "notes.txt") == [(1, 2)]
        http_lines = split_lines(HTTP_PY)
        for c in store.chunks_of("src/http.py"):
            assert c.text == "\n".join(http_lines[c.start_line - 1 : c.end_line])
        assert store.chunks_of("README.md")[0].text == README.rstrip("\n")
        assert store.chunks_of("notes.txt")[0].text == NOTES_TXT.rstrip("\n")

        # each stored vector is the document embedding of "<path>\n<chunk text>"
        chunks = store.chunks(range(len(store)))
        expected = encoder.encode_documents([f"{c.path}\n{c.text}" for c in chunks])
        np.testing.assert_allclose(store.vectors, expected, atol=1e-5)
        assert store.dense.ntotal == len(chunks) and store.dense.kind == "flat"
        model = store.manifest["model"]
        assert model["ref"] == str(tiny_model_dir.resolve())
        assert model["fingerprint"] == encoder.fingerprint()
        assert model["config"]["max_seq_length"] == 64


def test_reindex_embeds_only_changed_and_new_files(tmp_path, encoder, monkeypatch):
    root = make_sample_folder(tmp_path / "repo")
    out = tmp_path / "idx"
    build_index(root, encoder, out)
    with IndexStore.open(out) as store:
        before = {c.text: store.vectors[c.id].copy() for c in store.chunks_of("src/http.py")}

    (root / "notes.txt").write_text("Retries wait one second.\nThen two.\n")
    (root / "README.md").unlink()
    (root / "docs").mkdir()
    (root / "docs" / "new.md").write_text("# New page\n\nFresh words.\n")
    embedded = spy_on_documents(encoder, monkeypatch)
    report = build_index(root, encoder, out)

    assert (report.files_unchanged, report.files_changed, report.files_new) == (2, 1, 1)
    assert report.files_deleted == 1
    assert embedded == [  # files in path order; each chunk with its path header
        "docs/new.md\n# New page\n\nFresh words.",
        "notes.txt\nRetries wait one second.\nThen two.",
    ]
    assert (report.chunks_embedded, report.chunks_reused, report.chunks_total) == (2, 6, 8)
    with IndexStore.open(out) as store:
        assert sorted(store.files()) == [".gitignore", "docs/new.md", "notes.txt", "src/http.py"]
        assert store.chunks_of("README.md") == []
        for c in store.chunks_of("src/http.py"):  # copied bit for bit, under new ids
            np.testing.assert_array_equal(store.vectors[c.id], before[c.text])
        np.testing.assert_array_equal(np.asarray(store.vectors), _faiss_vectors(store))

    embedded.clear()
    again = build_index(root, encoder, out)
    assert embedded == [] and again.files_unchanged == 4 and again.chunks_embedded == 0

    changed = build_index(root, encoder, out, IndexConfig(overlap_lines=1))
    assert changed.full_rebuild_reason == "the chunking or walk settings changed"
    assert changed.chunks_embedded == changed.chunks_total == 8


def _faiss_vectors(store: IndexStore) -> np.ndarray:
    """Every vector the FAISS flat index holds, by position (to check rows line up)."""
    return store.dense._index.reconstruct_n(0, store.dense.ntotal)


def test_a_failed_update_leaves_the_old_index_intact(tmp_path, encoder, monkeypatch):
    root = make_sample_folder(tmp_path / "repo")
    out = tmp_path / "idx"
    build_index(root, encoder, out)
    manifest = (out / "manifest.json").read_text()
    (root / "notes.txt").write_text("changed\n")

    def broken(texts, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(encoder, "encode_documents", broken)
    with pytest.raises(RuntimeError):
        build_index(root, encoder, out)
    assert (out / "manifest.json").read_text() == manifest
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp dirs


def test_a_damaged_index_of_ours_is_rebuilt_from_scratch(tmp_path, encoder):
    root = make_sample_folder(tmp_path / "repo")
    out = tmp_path / "idx"
    first = build_index(root, encoder, out)
    faiss_file = next(out.rglob("*.faiss"))
    faiss_file.write_bytes(faiss_file.read_bytes()[:100])  # truncated by a crash or a full disk
    with pytest.raises(RagtuneError):
        IndexStore.open(out)
    again = build_index(root, encoder, out)
    assert again.full_rebuild_reason.startswith("the old index failed verification: ")
    assert again.chunks_embedded == again.chunks_total == first.chunks_total
    IndexStore.open(out).close()  # whole again


def test_index_inside_the_folder_is_not_indexed(tmp_path, encoder):
    root = make_sample_folder(tmp_path / "repo")
    build_index(root, encoder, root / ".idx")
    report = build_index(root, encoder, root / ".idx")
    assert report.files_unchanged == 4 and report.files_new == 0


def test_empty_folder_and_wrong_model_are_clear_errors(tmp_path, encoder, tokenizer):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "blob.bin").write_bytes(b"\x00\x01")
    with pytest.raises(RagtuneError, match="no text files to index.*1 binary"):
        build_index(tmp_path / "empty", encoder, tmp_path / "idx")

    root = make_sample_folder(tmp_path / "repo")
    build_index(root, encoder, tmp_path / "idx")  # records the encoder's own base_model folder
    from tests.conftest import make_tiny_encoder

    other = tmp_path / "other-model"
    make_tiny_encoder(tokenizer, seed=1).save(other)
    with pytest.raises(RagtuneError, match="is not the one that built"):
        search(tmp_path / "idx", "status line", model=str(other))
    with pytest.raises(RagtuneError, match="not a ragtune index"):
        search(tmp_path / "repo", "status line")


@pytest.mark.slow
def test_minilm_finds_the_right_file_and_lines(tmp_path, minilm_path):
    root = make_sample_folder(tmp_path / "repo")
    model = "sentence-transformers/all-MiniLM-L6-v2"
    encoder = Encoder.load(model, device="cpu")
    # 60 tokens per chunk: http.py's sections become separate chunks (see the test above)
    build_index(root, encoder, tmp_path / "idx", IndexConfig(max_tokens=60), model_ref=model)

    hits = search(tmp_path / "idx", "where is the HTTP status line parsed?", k=3)
    assert (hits[0].path, hits[0].start_line, hits[0].end_line) == ("src/http.py", 6, 10)
    hits = search(tmp_path / "idx", "how do I install the project?", k=3, hybrid=True)
    assert hits[0].path == "README.md"
    hits = search(tmp_path / "idx", "how long to wait between retry attempts", k=3)
    assert hits[0].location == "notes.txt:1-2"


def test_index_kind_by_flag(tmp_path, encoder):
    root = make_sample_folder(tmp_path / "repo")
    build_index(root, encoder, tmp_path / "idx", IndexConfig(kind="hnsw"))
    with IndexStore.open(tmp_path / "idx") as store:
        assert store.dense.kind == "hnsw" and store.manifest["index"]["kind"] == "hnsw"
    hits = search(tmp_path / "idx", "exponential backoff", k=8, hybrid=True)
    assert hits[0].location == "notes.txt:1-2" and len(hits) == 8
    with pytest.raises(RagtuneError, match="valid kinds: auto, flat, hnsw, ivf"):
        IndexConfig(kind="annoy")  # type: ignore[arg-type]
