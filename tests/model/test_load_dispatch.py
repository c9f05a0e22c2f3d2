"""Encoder.load opens an ONNX export too, so search, serve and eval take either folder."""

import numpy as np
import pytest

from ragtune.errors import RagtuneError
from ragtune.model import Encoder

pytest.importorskip("onnxruntime")


def test_encoder_load_runs_an_onnx_folder_through_onnxruntime(tmp_path, tiny_encoder):
    from ragtune.model.export import export_onnx

    texts = ["where is the status line parsed", "a longer text about parsing headers of HTTP"]
    export_onnx(tiny_encoder, tmp_path / "onnx")
    loaded = Encoder.load(tmp_path / "onnx")
    assert type(loaded).__name__ == "OnnxEncoder"
    np.testing.assert_allclose(loaded.encode(texts), tiny_encoder.encode(texts), atol=1e-4)


def test_an_onnx_folder_cannot_be_trained(tmp_path, tiny_encoder):
    from ragtune.config import load_config
    from ragtune.model.export import export_onnx
    from ragtune.train import TrainConfig, train

    export_onnx(tiny_encoder, tmp_path / "onnx")
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"query": "a", "positive": "b"}\n')
    cfg = load_config(
        TrainConfig,
        None,
        (),
        model=str(tmp_path / "onnx"),
        data=str(data),
        output=str(tmp_path / "out"),
    )
    with pytest.raises(RagtuneError, match="ONNX export"):
        train(cfg)
