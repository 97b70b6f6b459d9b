from pathlib import Path

import pytest

from videomind.config import ModelsConfig
from videomind.errors import ModelNotFoundError
from videomind.models.registry import describe, is_weak, resolve


@pytest.mark.parametrize("name, cap, marker", [
    ("whisper-tiny.en", "asr", "model.bin"),
    ("all-MiniLM-L6-v2", "text-embed", "model.safetensors"),
    ("rapidocr", "ocr", None),
])
def test_bundled_models_resolve_to_real_weights(name, cap, marker):
    r = resolve(name, cap)
    assert r.kind == "bundled"
    p = Path(r.path)
    assert p.exists()
    if marker:
        assert (p / marker).stat().st_size > 1_000_000
    else:
        assert any(f.suffix == ".onnx" for f in p.rglob("*"))


def test_bundled_llm_is_a_gguf_and_marked_weak():
    r = resolve("smollm2-135m-instruct", "llm")
    assert r.path.endswith(".gguf") and Path(r.path).stat().st_size > 50_000_000
    assert is_weak("smollm2-135m-instruct") and not is_weak("Qwen/Qwen2.5-7B-Instruct")


def test_missing_model_error_names_model_places_and_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelNotFoundError) as e:
        resolve("Qwen/Qwen2.5-VL-3B-Instruct", "vlm")
    msg = str(e.value)
    assert "Qwen/Qwen2.5-VL-3B-Instruct" in msg and str(tmp_path / "hub") in msg
    assert "huggingface-cli download Qwen/Qwen2.5-VL-3B-Instruct" in msg
    assert e.value.capability == "vlm" and len(e.value.looked) == 2


def test_hf_cache_snapshot_and_download_permission(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    root = tmp_path / "models--org--tiny"
    (root / "snapshots" / "abc").mkdir(parents=True)
    (root / "snapshots" / "abc" / "config.json").write_text("{}")
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("abc")
    r = resolve("org/tiny", "llm")
    assert r.kind == "hf-cache" and r.path.endswith("snapshots/abc")
    assert resolve("org/other", "llm", allow_download=True).kind == "hf-download"


def test_local_path_and_wrong_capability(tmp_path):
    with pytest.raises(ModelNotFoundError, match="holds no config.json or weight files"):
        resolve(str(tmp_path), "llm")                     # an empty folder is not a model
    (tmp_path / "config.json").write_text("{}")
    assert resolve(str(tmp_path), "llm").kind == "path"
    with pytest.raises(ModelNotFoundError, match="is a asr model"):
        resolve("whisper-tiny.en", "llm")


def test_describe_reports_every_capability_with_reasons():
    rows = {r.capability: r for r in describe(ModelsConfig())}
    assert set(rows) == {"asr", "ocr", "text-embed", "visual-embed", "llm", "vlm"}
    assert all(rows[c].available for c in ("asr", "ocr", "text-embed", "visual-embed", "llm"))
    assert not rows["vlm"].available and "models.vlm" in rows["vlm"].detail


def test_describe_never_reports_a_vlm_nothing_here_can_run(tmp_path, monkeypatch):
    """A local vlm is available only as a folder of a model type the local engine runs (checked in its
    config.json, so an LLM folder or a bare config is not "ok"); with the openai backend the llm/vlm are the
    endpoint's, reported as such."""
    from tests.tiny_qwen_vl import save_tiny_vlm
    from videomind.config import AgentConfig

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    (tmp_path / "llm").mkdir()
    (tmp_path / "llm" / "config.json").write_text('{"model_type": "qwen2"}')
    rows = {r.capability: r for r in describe(ModelsConfig(vlm=str(tmp_path / "llm")))}
    assert not rows["vlm"].available and "'qwen2' model" in rows["vlm"].detail
    assert "agent.backend=openai" in rows["vlm"].detail and "Qwen2.5-VL" in rows["vlm"].detail
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "model.safetensors").write_bytes(b"")
    rows = {r.capability: r for r in describe(ModelsConfig(vlm=str(tmp_path / "bare")))}
    assert not rows["vlm"].available and "no readable config.json" in rows["vlm"].detail
    folder = save_tiny_vlm(tmp_path / "tiny")  # random weights: a real model folder of the right type
    rows = {r.capability: r for r in describe(ModelsConfig(vlm=folder))}
    assert rows["vlm"].available and "local VLM engine" in rows["vlm"].detail
    remote = AgentConfig(backend="openai", base_url="http://localhost:8000/v1")
    rows = {r.capability: r for r in describe(ModelsConfig(vlm="Qwen/Qwen2.5-VL-7B-Instruct"), remote)}
    assert rows["vlm"].available and "http://localhost:8000/v1" in rows["vlm"].detail
    rows = {r.capability: r for r in describe(ModelsConfig(vlm="some-vlm"), AgentConfig(backend="openai"))}
    assert not rows["vlm"].available and "agent.base_url is not set" in rows["vlm"].detail


def test_describe_takes_the_endpoint_from_openai_base_url_as_the_backend_does(monkeypatch):
    """The openai backend falls back to OPENAI_BASE_URL (its own error suggests it); `videomind models` said the
    llm was unavailable ('agent.base_url is not set') although the backend reached the endpoint."""
    from videomind.config import AgentConfig

    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8765/v1")
    rows = {r.capability: r for r in describe(ModelsConfig(llm="served"), AgentConfig(backend="openai"))}
    assert rows["llm"].available and "http://127.0.0.1:8765/v1" in rows["llm"].detail
    rows = {r.capability: r for r in describe(ModelsConfig(llm="served"),
                                              AgentConfig(backend="openai", base_url="http://h:1/v1"))}
    assert "http://h:1/v1" in rows["llm"].detail  # the config key comes first, as in the backend
    monkeypatch.delenv("OPENAI_BASE_URL")
    rows = {r.capability: r for r in describe(ModelsConfig(llm="served"), AgentConfig(backend="openai"))}
    assert not rows["llm"].available and "OPENAI_BASE_URL" in rows["llm"].detail
