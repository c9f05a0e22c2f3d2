"""load_model opens an ONNX export or a PyTorch folder; Encoder.load opens PyTorch models only."""

import numpy as np
import pytest

from ragtune.errors import RagtuneError
from ragtune.model import EmbeddingModel, Encoder, load_model

pytest.importorskip("onnxruntime")

TEXTS = ["where is the status line parsed", "a longer text about parsing headers of HTTP"]


def test_load_model_runs_an_onnx_folder_through_onnxruntime(tmp_path, tiny_encoder):
    from ragtune.model.export import export_onnx
    from ragtune.model.onnx import OnnxEncoder

    export_onnx(tiny_encoder, tmp_path / "onnx")
    loaded = load_model(tmp_path / "onnx")
    assert type(loaded) is OnnxEncoder
    assert isinstance(loaded, EmbeddingModel)
    np.testing.assert_allclose(loaded.encode(TEXTS), tiny_encoder.encode(TEXTS), atol=1e-4)


def test_load_model_opens_a_pytorch_folder_as_an_encoder(tmp_path, tiny_encoder):
    tiny_encoder.save(tmp_path / "torch")
    loaded = load_model(tmp_path / "torch", device="cpu", query_prompt="query: ")
    assert type(loaded) is Encoder
    assert isinstance(loaded, EmbeddingModel)
    assert loaded.config.query_prompt == "query: "
    assert loaded.fingerprint() != tiny_encoder.fingerprint()  # the prompt is part of the recipe
    np.testing.assert_allclose(loaded.encode(TEXTS), tiny_encoder.encode(TEXTS), atol=1e-6)


def test_encoder_load_refuses_an_onnx_folder_and_names_load_model(tmp_path, tiny_encoder):
    from ragtune.model.export import export_onnx

    export_onnx(tiny_encoder, tmp_path / "onnx")
    with pytest.raises(RagtuneError) as refused:
        Encoder.load(tmp_path / "onnx")
    assert str(refused.value) == (
        f"{tmp_path / 'onnx'} is an ONNX export, not a PyTorch model: it runs inference only "
        "(open it with ragtune.load_model); training and export need the PyTorch model folder "
        "it was exported from"
    )


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
