"""ONNX export: the graph alone gives the torch vectors; int8 stays close; folders self-describe."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import typer
from typer.testing import CliRunner

from ragtune.errors import RagtuneError
from ragtune.model.export import export_onnx
from ragtune.model.onnx import OnnxEncoder, is_onnx_folder, require_onnx
from tests.conftest import make_tiny_encoder

TEXTS = [
    "x",
    "a much longer text that needs many more tokens than the others do in this batch, "
    "long enough to be cut by a small maximum length",
    "medium length text here",
    "Where is the HTTP status line parsed?",
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# ---------------------------------------------------------------------------------- fp32 parity
@pytest.mark.parametrize(
    ("pooling", "normalize"),
    [
        ("mean", True),
        ("mean", False),
        ("cls", True),
        ("cls", False),
        ("max", True),
        ("max", False),
        ("weighted_mean", True),
        ("last_token", False),
    ],
)
def test_fp32_graph_gives_the_torch_vectors_and_padding_does_not_leak(
    tmp_path, tokenizer, pooling, normalize
):
    torch_encoder = make_tiny_encoder(tokenizer, pooling=pooling, normalize=normalize)
    # Reference: each text alone, so no padding at all on the torch side.
    expected = np.stack([torch_encoder.encode([t])[0] for t in TEXTS])  # (4, 32)

    folder = export_onnx(torch_encoder, tmp_path / "onnx")
    exported = OnnxEncoder.load(folder)
    # One batch: "x" is padded to the length of the longest text.
    got = exported.encode(TEXTS, batch_size=len(TEXTS))
    assert got.dtype == np.float32 and got.shape == (4, 32)
    assert np.abs(got - expected).max() < 1e-4
    if normalize:
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_the_graph_alone_gives_the_final_vector(tmp_path, tiny_encoder):
    folder = export_onnx(tiny_encoder, tmp_path / "onnx")
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == ["input_ids", "attention_mask", "token_type_ids"]
    assert [i.shape for i in session.get_inputs()] == [["batch", "sequence"]] * 3
    assert [o.name for o in session.get_outputs()] == ["sentence_embedding", "token_embeddings"]

    # Any runtime: tokenize, pad with extra zeros on purpose, run, done (no pooling code needed).
    batch = tiny_encoder.tokenizer(TEXTS, padding="max_length", max_length=48, return_tensors="np")
    feeds = {name: batch[name].astype(np.int64) for name in ("input_ids", "attention_mask")}
    feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
    sentence, tokens = session.run(None, feeds)
    assert sentence.shape == (4, 32) and tokens.shape == (4, 48, 32)
    np.testing.assert_allclose(sentence, tiny_encoder.encode(TEXTS), atol=1e-4)


def test_token_output_matches_torch_per_real_token(tmp_path, tiny_encoder):
    exported = OnnxEncoder.load(export_onnx(tiny_encoder, tmp_path / "onnx"))
    got = exported.encode(TEXTS, output="tokens")
    expected = tiny_encoder.encode(TEXTS, output="tokens")
    assert [g.shape for g in got] == [e.shape for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert np.abs(g - e).max() < 1e-4


def test_intermediate_layer_is_exported_truncated(tmp_path, tokenizer):
    torch_encoder = make_tiny_encoder(tokenizer, layer=1)
    folder = export_onnx(torch_encoder, tmp_path / "onnx")
    exported = OnnxEncoder.load(folder)
    assert exported.describe()["layers"] == 1 and exported.config.layer is None
    assert np.abs(exported.encode(TEXTS) - torch_encoder.encode(TEXTS)).max() < 1e-4
    assert torch_encoder.config.layer == 1 and torch_encoder.num_layers == 2  # untouched


# ---------------------------------------------------------------------------------- int8
def test_int8_is_per_channel_smaller_and_close(tmp_path, tiny_encoder):
    fp32 = export_onnx(tiny_encoder, tmp_path / "fp32")
    int8 = export_onnx(tiny_encoder, tmp_path / "int8", quantize="int8")
    assert sorted(p.name for p in int8.glob("*.onnx")) == ["model.onnx"]  # one graph per folder
    # The 30522 x 32 embedding table dominates; stored as int8 it takes about a quarter.
    assert (int8 / "model.onnx").stat().st_size < 0.4 * (fp32 / "model.onnx").stat().st_size

    graph = onnx.load(str(int8 / "model.onnx")).graph
    ops = [node.op_type for node in graph.node]
    # Per layer: query, key, value, attention output and FFN up-projection become int8
    # (5 x 2 layers); the FFN down-projection (64 -> 32) stays fp32 (1 x 2 layers).
    assert ops.count("MatMulInteger") == 10 and "DynamicQuantizeLinear" in ops
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    float_weights = [
        shapes[n.input[1]] for n in graph.node if n.op_type == "MatMul" and n.input[1] in shapes
    ]
    assert float_weights == [(64, 32), (64, 32)]
    # Per channel: each int8 weight has one zero point (and scale) per output column.
    zero_points = [shapes[n.input[3]] for n in graph.node if n.op_type == "MatMulInteger"]
    assert sorted(zero_points) == [(32,)] * 8 + [(64,)] * 2  # q, k, v, out: 32; up: 64

    got = OnnxEncoder.load(int8).encode(TEXTS)
    assert cosines(got, tiny_encoder.encode(TEXTS)).min() > 0.98


def test_int8_all_quantises_the_down_projections_too(tmp_path, tiny_encoder):
    folder = export_onnx(tiny_encoder, tmp_path / "int8-all", quantize="int8-all")
    graph = onnx.load(str(folder / "model.onnx")).graph
    weights = {init.name for init in graph.initializer}
    ops = [node.op_type for node in graph.node]
    assert ops.count("MatMulInteger") == 12  # 6 weight matrices per layer, 2 layers
    assert not [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    exported = OnnxEncoder.load(folder)
    assert exported.quantization == "int8-all"
    assert cosines(exported.encode(TEXTS), tiny_encoder.encode(TEXTS)).min() > 0.98


@pytest.mark.slow
def test_int8_minilm_stays_close_to_torch(tmp_path, minilm):
    """A trained model is the real test: its activations have outliers a random one lacks.

    The tiny random model keeps cosine > 0.9999 under int8; all-MiniLM-L6-v2 keeps 0.986 to 0.997
    here (the one-word text is the hardest: few tokens, and padding shares its activation range).
    """
    texts = [
        *TEXTS,
        "A man is playing a guitar on stage.",
        "Vitamin D supplementation reduces the risk of fractures in elderly women.",
        "def parse_status_line(line): return line.split()[1]",
        "The mitochondrion produces most of the cell's ATP through oxidative phosphorylation.",
    ]
    exported = OnnxEncoder.load(export_onnx(minilm, tmp_path / "int8", quantize="int8"))
    cos = cosines(exported.encode(texts), minilm.encode(texts, precision="fp32"))
    assert cos.min() > 0.98 and cos.mean() > 0.99


# ---------------------------------------------------------------------------------- the recipe
def test_prompts_and_max_length_survive_export(tmp_path, tokenizer):
    torch_encoder = make_tiny_encoder(
        tokenizer, max_seq_length=8, query_prompt="query: ", document_prompt="passage: "
    )
    exported = OnnxEncoder.load(export_onnx(torch_encoder, tmp_path / "onnx"))
    assert exported.config == torch_encoder.config

    # encode_queries prepends the saved prompt: same as prepending it by hand.
    by_hand = torch_encoder.encode(["query: " + t for t in TEXTS])
    assert np.abs(exported.encode_queries(TEXTS) - by_hand).max() < 1e-4
    assert np.abs(exported.encode(TEXTS) - by_hand).max() > 1e-3  # the prompt matters
    by_hand = torch_encoder.encode(["passage: " + t for t in TEXTS])
    assert np.abs(exported.encode_documents(TEXTS) - by_hand).max() < 1e-4

    # At most 8 tokens: [CLS] + 6 word pieces + [SEP] for the long text.
    assert exported.encode([TEXTS[1]], output="tokens")[0].shape == (8, 32)
    shorter = OnnxEncoder.load(tmp_path / "onnx", max_seq_length=5, query_prompt="")
    assert shorter.encode([TEXTS[1]], output="tokens")[0].shape == (5, 32)
    assert np.abs(shorter.encode_queries(TEXTS) - shorter.encode(TEXTS)).max() == 0


def test_folder_describes_itself(tmp_path, tiny_encoder):
    tiny_encoder.config.query_prompt = "query: "
    folder = export_onnx(tiny_encoder, tmp_path / "onnx", quantize="int8")
    saved = json.loads((folder / "ragtune.json").read_text())
    assert saved["format"] == "onnx" and saved["quantization"] == "int8"
    assert saved["pooling"] == "mean" and saved["normalize"] is True
    assert saved["query_prompt"] == "query: " and saved["max_seq_length"] == 64
    assert saved["onnx"]["dim"] == 32 and saved["onnx"]["opset"] == 17
    assert {"model.onnx", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in folder.iterdir()
    }

    assert is_onnx_folder(folder)
    tiny_encoder.save(tmp_path / "torch")
    assert not is_onnx_folder(tmp_path / "torch") and not is_onnx_folder(tmp_path / "missing")

    exported = OnnxEncoder.load(folder)  # no arguments needed
    assert exported.dim == 32 and exported.quantization == "int8"
    info = exported.describe()
    assert (info["format"], info["quantization"], info["pooling"]) == ("onnx", "int8", "mean")


def test_fingerprint_follows_graph_and_config(tmp_path, tiny_encoder):
    fp32 = OnnxEncoder.load(export_onnx(tiny_encoder, tmp_path / "fp32"))
    int8 = OnnxEncoder.load(export_onnx(tiny_encoder, tmp_path / "int8", quantize="int8"))
    again = OnnxEncoder.load(tmp_path / "fp32")
    prompted = OnnxEncoder.load(tmp_path / "fp32", document_prompt="passage: ")
    assert fp32.fingerprint() == again.fingerprint()
    assert len({fp32.fingerprint(), int8.fingerprint(), prompted.fingerprint()}) == 3


def test_baked_choices_cannot_be_changed(tmp_path, tiny_encoder):
    folder = export_onnx(tiny_encoder, tmp_path / "onnx")
    with pytest.raises(RagtuneError, match="baked into an ONNX graph.*pooling='cls'"):
        OnnxEncoder.load(folder, pooling="cls")
    with pytest.raises(RagtuneError, match="normalize=False"):
        OnnxEncoder.load(folder, normalize=False)
    with pytest.raises(RagtuneError, match="layer=1"):
        OnnxEncoder.load(folder, layer=1)
    exported = OnnxEncoder.load(folder, pooling="mean", normalize=True, layer=2)  # same: fine
    with pytest.raises(RagtuneError, match="cannot be honoured"):
        exported.encode(TEXTS, normalize=False)
    with pytest.raises(RagtuneError, match="precision 'bf16'"):
        exported.encode(TEXTS, precision="bf16")
    with pytest.raises(RagtuneError, match="unknown quantize 'int4'; choose one of none, int8"):
        export_onnx(tiny_encoder, tmp_path / "other", quantize="int4")  # type: ignore[arg-type]


def test_normalize_can_be_added_to_a_graph_without_it(tmp_path, tokenizer):
    torch_encoder = make_tiny_encoder(tokenizer, normalize=False)
    exported = OnnxEncoder.load(export_onnx(torch_encoder, tmp_path / "onnx"))
    raw = exported.encode(TEXTS)
    unit = exported.encode(TEXTS, normalize=True)
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6)


def test_order_is_restored_and_empty_input_works(tmp_path, tiny_encoder):
    exported = OnnxEncoder.load(export_onnx(tiny_encoder, tmp_path / "onnx"))
    together = exported.encode(TEXTS, batch_size=2)
    one_by_one = np.stack([exported.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    assert exported.encode([]).shape == (0, 32)
    with pytest.raises(RagtuneError, match="not a single string"):
        exported.encode("one text")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- atomicity
def test_failed_export_leaves_no_folder_behind(tmp_path, tiny_encoder, monkeypatch):
    import ragtune.model.export as export_module

    def explode(*args, **kwargs):
        raise RuntimeError("quantiser crashed")

    monkeypatch.setattr(export_module, "_quantize_int8", explode)
    with pytest.raises(RuntimeError, match="quantiser crashed"):
        export_onnx(tiny_encoder, tmp_path / "int8", quantize="int8")
    assert list(tmp_path.iterdir()) == []

    # Over an existing export, a failure keeps the previous folder intact.
    export_onnx(tiny_encoder, tmp_path / "int8")
    before = sorted(p.name for p in (tmp_path / "int8").iterdir())
    with pytest.raises(RuntimeError):
        export_onnx(tiny_encoder, tmp_path / "int8", quantize="int8")
    assert [p.name for p in tmp_path.iterdir()] == ["int8"]
    assert sorted(p.name for p in (tmp_path / "int8").iterdir()) == before
    assert OnnxEncoder.load(tmp_path / "int8").quantization == "none"


def test_loading_a_folder_that_is_not_onnx_explains(tmp_path, tiny_encoder):
    tiny_encoder.save(tmp_path / "torch")
    with pytest.raises(RagtuneError, match="not an ONNX model folder.*ragtune export"):
        OnnxEncoder.load(tmp_path / "torch")


def test_a_missing_extra_is_named(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RagtuneError, match=r"onnxruntime is not installed.*ragtune\[onnx\]"):
        require_onnx("onnxruntime")


# ---------------------------------------------------------------------------------- CLI
def test_cli_exports_and_reports_parity(tmp_path, tiny_encoder):
    from ragtune.cli.export import register

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command keeps "export" as a subcommand
    tiny_encoder.save(tmp_path / "torch")
    out = tmp_path / "onnx"
    args = ["export", str(tmp_path / "torch"), "--format", "onnx", "--out", str(out), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["parity"]["max_abs_diff"] < 1e-4 and report["quantization"] == "none"
    assert "model.onnx" in {f["name"] for f in report["files"]}

    table = CliRunner().invoke(app, [*args[:-1], "--quantize", "int8"])
    assert table.exit_code == 0, table.output
    assert "model.onnx" in table.stdout and "min cosine" in table.stdout

    bad = CliRunner().invoke(
        app, ["export", str(tmp_path / "torch"), "--format", "tflite", "--out", str(tmp_path / "x")]
    )
    assert isinstance(bad.exception, RagtuneError) and "choose onnx" in str(bad.exception)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("opset", [0, 13, 21, -1])
def test_an_opset_the_exporters_cannot_write_is_refused_before_any_work(tmp_path, opset):
    with pytest.raises(RagtuneError, match=f"--opset must be between 14 and 20, got {opset}"):
        export_onnx(None, tmp_path / "out", opset=opset)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
