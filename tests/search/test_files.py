"""Walking a folder: .gitignore rules (nested, negated, directory-only), links, sizes."""

from __future__ import annotations

import hashlib
import os

from ragtune.search.files import walk_text_files


def test_gitignore_rules_apply_like_git(tmp_path):
    (tmp_path / ".gitignore").write_text("*.log\n!keep.log\nout/\n")
    (tmp_path / "a.log").write_text("x\n")
    (tmp_path / "keep.log").write_text("kept\n")
    (tmp_path / "pkg" / "out").mkdir(parents=True)  # "out/" matches at any depth
    (tmp_path / "pkg" / "out" / "gen.txt").write_text("generated\n")
    (tmp_path / "pkg" / "out.txt").write_text("a file named out.txt is not the folder out/\n")
    (tmp_path / "pkg" / ".gitignore").write_text("/local.txt\n")  # anchored to pkg/
    (tmp_path / "pkg" / "local.txt").write_text("ignored in pkg\n")
    (tmp_path / "local.txt").write_text("kept at the root\n")
    (tmp_path / ".venv" / "lib").mkdir(parents=True)  # a default exclude
    (tmp_path / ".venv" / "lib" / "site.py").write_text("x = 1\n")

    walk = walk_text_files(tmp_path, exclude=["*.md"])
    assert [f.path for f in walk.files] == [
        ".gitignore", "keep.log", "local.txt", "pkg/.gitignore", "pkg/out.txt",
    ]  # fmt: skip
    assert walk.skipped == {"ignored": 4}  # a.log, pkg/out/, pkg/local.txt, .venv/
    assert walk_text_files(tmp_path, use_gitignore=False).skipped == {"ignored": 1}  # .venv/


def test_links_large_files_and_hashes(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("must not be indexed through a link\n")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "link.txt")
    (root / "big.txt").write_text("y" * 2000)
    (root / "bom.txt").write_bytes(b"\xef\xbb\xbfhello\n")

    walk = walk_text_files(root, max_file_bytes=1000)
    assert [f.path for f in walk.files] == ["bom.txt"]
    assert walk.files[0].text == "hello\n"  # the byte-order mark is not part of the text
    assert walk.files[0].sha256 == hashlib.sha256(b"\xef\xbb\xbfhello\n").hexdigest()
    assert walk.skipped == {"symlink": 1, "too_large": 1}
