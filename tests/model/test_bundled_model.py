"""End-to-end checks on the bundled all-MiniLM-L6-v2: meaning, and sentence-transformers parity."""

import numpy as np
import pytest

from ragtune.model import Encoder

pytestmark = pytest.mark.slow

SENTENCES = [
    "A man is playing a guitar on stage.",
    "Someone performs music with a guitar in front of an audience.",
    "The quarterly tax report is due next Friday.",
    "def parse_status_line(line): return line.split()[1]",
]


def test_paraphrases_are_close_and_unrelated_texts_are_not(minilm):
    emb = minilm.encode(SENTENCES)
    assert emb.shape == (4, 384)
    assert float(emb[0] @ emb[1]) > 0.5
    assert float(emb[0] @ emb[2]) < 0.2


def test_default_model_describes_itself(minilm):
    info = minilm.describe()
    assert (info["layers"], info["dim"], info["pooling"], info["normalize"]) == (
        6,
        384,
        "mean",
        True,
    )
    assert info["max_seq_length"] == 256


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_sentence_transformers_loads_our_folder_with_equal_embeddings(tmp_path, minilm, pooling):
    st = pytest.importorskip("sentence_transformers")
    minilm.config.pooling = pooling
    try:
        ours = minilm.encode(SENTENCES)
        minilm.save(tmp_path / pooling)
    finally:
        minilm.config.pooling = "mean"
    theirs = st.SentenceTransformer(str(tmp_path / pooling), device="cpu").encode(SENTENCES)
    assert np.abs(ours - theirs).max() < 1e-5


def test_we_load_a_folder_written_by_sentence_transformers(tmp_path, minilm_path):
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(minilm_path), device="cpu")
    model.save(str(tmp_path / "st"))
    theirs = model.encode(SENTENCES)
    ours = Encoder.load(tmp_path / "st", device="cpu")
    assert ours.config.pooling == "mean" and ours.config.normalize
    assert np.abs(ours.encode(SENTENCES) - theirs).max() < 1e-5


def test_truncated_real_model_equals_its_layer_k_embeddings(minilm):
    minilm.config.layer = 3
    try:
        layer3 = minilm.encode(SENTENCES)
        small = minilm.truncate(3)
    finally:
        minilm.config.layer = None
    assert small.num_layers == 3
    np.testing.assert_allclose(small.encode(SENTENCES), layer3, atol=1e-5)
