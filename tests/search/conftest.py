"""Fixtures for the index and search tests: a small folder with known content, a tiny model
saved to disk, and an index of the folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_tiny_encoder

README = """\
# Demo project

A tiny web server used to test ragtune.

## Install

Run pip install demo to get it.

## Usage

Start the server and send it requests.
"""

HTTP_PY = '''\
"""Parse HTTP/1.1 messages."""

import re


# The status line is the first line of a response.
@staticmethod
def parse_status_line(line):
    version, code, reason = line.split(" ", 2)
    return version, int(code), reason


def parse_headers(lines):
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


class Connection:
    def __init__(self, sock):
        self.sock = sock

    def close(self):
        self.sock.close()
'''

NOTES_TXT = "Retries use exponential backoff.\nThe delay doubles after every failed attempt.\n"


def make_sample_folder(root: Path) -> Path:
    """README.md, src/http.py, notes.txt, plus files that must be skipped."""
    (root / "src").mkdir(parents=True)
    (root / "README.md").write_text(README)
    (root / "src" / "http.py").write_text(HTTP_PY)
    (root / "notes.txt").write_text(NOTES_TXT)
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (root / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (root / ".gitignore").write_text("*.log\nbuild/\n")
    (root / "debug.log").write_text("secret token in a log file\n")
    (root / "build").mkdir()
    (root / "build" / "out.txt").write_text("generated\n")
    (root / "node_modules" / "pkg").mkdir(parents=True)
    (root / "node_modules" / "pkg" / "index.js").write_text("module.exports = 1;\n")
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer) -> Path:
    """The tiny random BERT of tests/conftest.py saved as a model folder."""
    path = tmp_path_factory.mktemp("tiny-model") / "model"
    make_tiny_encoder(tokenizer).save(path)
    return path


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory, tiny_model_dir) -> Path:
    """The sample folder indexed with the tiny model (shared; tests must not modify it)."""
    from ragtune.model import Encoder
    from ragtune.search import build_index

    root = make_sample_folder(tmp_path_factory.mktemp("sample") / "repo")
    out = root.parent / "repo.idx"
    encoder = Encoder.load(tiny_model_dir, device="cpu")
    build_index(root, encoder, out, model_ref=str(tiny_model_dir))
    return out
