"""The README's Python API example runs as written, on a tiny random model and a tiny BEIR folder.

The example is read from README.md itself; only the model name and the two data paths are
replaced, so a change to the README that breaks the example breaks this test.
"""

from __future__ import annotations

import re
from pathlib import Path

from ragtune.data.beir import write_beir_folder
from ragtune.data.schema import Document
from ragtune.model import Encoder, EncoderConfig
from tests.conftest import REPO, tiny_bert
from tests.train.conftest import synthetic_pairs


def readme_python_example() -> str:
    """The ```python block of README.md's "Python API" section."""
    section = (REPO / "README.md").read_text(encoding="utf-8").split("\n## Python API\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.DOTALL)
    assert match, "README.md's Python API section has no ```python block"
    return match.group(1)


def tiny_beir(root: Path) -> Path:
    """32 topic-word queries, each with its document: 24 judged for train, 4 dev, 4 test."""
    pairs = synthetic_pairs(32)
    docs = [Document(f"d{i}", p["positive"]) for i, p in enumerate(pairs)]
    queries = {f"q{i}": p["query"] for i, p in enumerate(pairs)}
    splits = {"train": range(24), "dev": range(24, 28), "test": range(28, 32)}
    qrels = {name: {f"q{i}": {f"d{i}": 1} for i in ids} for name, ids in splits.items()}
    return write_beir_folder(root, docs, queries, qrels)


def test_the_python_api_example_runs_and_prints_scores(tmp_path, tokenizer, capsys, monkeypatch):
    # Four layers, so that the example's encoder.truncate(4) keeps every layer of this model.
    backbone = tiny_bert(tokenizer.vocab_size, num_hidden_layers=4, max_position_embeddings=128)
    config = EncoderConfig(max_seq_length=64)
    model = Encoder.from_backbone(backbone, tokenizer, config).save(tmp_path / "tiny")
    beir = tiny_beir(tmp_path / "beir")
    train_config = tmp_path / "tiny.yaml"
    train_config.write_text(
        f"model: {model}\n"
        f"data: {beir}\n"
        f"eval_data: {beir}\n"
        "eval_split: dev\n"
        f"output: {tmp_path / 'tuned'}\n"
        "batch_size: 8\n"
        "epochs: 1\n"
        "warmup_ratio: 0.0\n",
        encoding="utf-8",
    )
    code = readme_python_example()
    for name, value in {
        '"sentence-transformers/all-MiniLM-L6-v2"': model,
        '"configs/scifact.yaml"': train_config,
        '"../shared/data/scifact"': beir,
    }.items():
        assert name in code, f"the README example no longer uses {name}"
        code = code.replace(name, repr(str(value)))
    monkeypatch.chdir(tmp_path)  # anything the example writes stays in the test's folder

    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})

    base, best, improved, test_ndcg = capsys.readouterr().out.split()
    assert 0.0 <= float(base) <= float(best) <= 1.0  # dev nDCG@10: the base model is a candidate
    # improved is the significance gate's decision (train/gate.py): only a best above the base
    assert improved == "False" or float(best) > float(base)
    assert 0.0 <= float(test_ndcg) <= 1.0
    assert (tmp_path / "tuned" / "modules.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beir", "tiny", "tiny.yaml", "tuned"]
