import json
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
    (root / "snapshots" / "abc" / "model.safetensors").write_bytes(b"")
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("abc")
    r = resolve("org/tiny", "llm")
    assert r.kind == "hf-cache" and r.path.endswith("snapshots/abc")
    assert resolve("org/other", "llm", allow_download=True).kind == "hf-download"


def test_local_path_and_wrong_capability(tmp_path):
    with pytest.raises(ModelNotFoundError, match="holds no weights"):
        resolve(str(tmp_path), "llm")                     # an empty folder is not a model
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match=r"holds no weights: none of \*\.safetensors"):
        resolve(str(tmp_path), "llm")                     # nor is a config without weights
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert resolve(str(tmp_path), "llm").kind == "path"
    with pytest.raises(ModelNotFoundError, match="is a asr model"):
        resolve("whisper-tiny.en", "llm")


def test_describe_reports_every_capability_with_reasons():
    rows = {r.capability: r for r in describe(ModelsConfig())}
    assert set(rows) == {"asr", "ocr", "text-embed", "visual-embed", "llm", "vlm"}
    assert all(rows[c].available for c in ("asr", "ocr", "text-embed", "visual-embed", "llm"))
    assert not rows["vlm"].available and "models.vlm" in rows["vlm"].detail


def test_describe_reports_what_runs_on_a_device_this_machine_lacks_as_unavailable(monkeypatch, capsys):
    """`videomind models --set models.device=cuda` said "ok" on every row on a machine without a GPU, and
    `videomind ingest` with the same setting was then refused: what runs on models.device says why it cannot."""
    import torch

    from videomind import cli
    from videomind.config import AgentConfig

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:1"):
        rows = {r.capability: r for r in describe(ModelsConfig(device=device))}
        for cap in ("asr", "text-embed", "llm"):
            assert not rows[cap].available
            assert rows[cap].detail == (f"models.device='{device}', but torch sees no CUDA GPU on this machine: set "
                                        f"models.device=auto (or cpu)"), cap
        assert rows["ocr"].available and rows["visual-embed"].available  # ONNX Runtime; built in: on the CPU
    rows = {r.capability: r for r in describe(ModelsConfig(device="cuda", llm="served"), AgentConfig(backend="openai"))}
    assert rows["llm"].detail.startswith("served by the OpenAI-compatible endpoint")  # not on this machine at all
    assert cli.main(["models", "--set", "models.device=cuda"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("--")] == ["asr", "text-embed", "llm",
                                                                                        "vlm"], out
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    rows = {r.capability: r for r in describe(ModelsConfig(device="cuda:1"))}
    assert not rows["asr"].available and "torch sees 1 CUDA GPU(s) on this machine" in rows["asr"].detail
    rows = {r.capability: r for r in describe(ModelsConfig(device="cuda:0"))}
    assert all(rows[c].available for c in ("asr", "ocr", "text-embed", "visual-embed", "llm"))


def test_describe_never_reports_a_vlm_nothing_here_can_run(tmp_path, monkeypatch):
    """A local vlm is available only as a folder of a model type the local engine runs (checked in its
    config.json, so an LLM folder or a bare config is not "ok"); with the openai backend the llm/vlm are the
    endpoint's, reported as such."""
    from tests.tiny_qwen_vl import save_tiny_vlm
    from videomind.config import AgentConfig

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    (tmp_path / "llm").mkdir()
    (tmp_path / "llm" / "config.json").write_text('{"model_type": "qwen2"}')
    (tmp_path / "llm" / "model.safetensors").write_bytes(b"")
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


def _snapshot(hub: Path, repo: str, files: dict[str, str]) -> Path:
    root = hub / ("models--" + repo.replace("/", "--"))
    snap = root / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    for name, text in files.items():
        (snap / name).write_text(text)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("abc123")
    return snap


SHARDS = {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}


def test_an_interrupted_download_is_not_a_model(tmp_path, monkeypatch):
    """A snapshot with the config, tokenizer and shard index but not the shards (an interrupted huggingface-cli
    download) was 'ok llm ... hf-cache', and loading it failed."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    index = json.dumps({"metadata": {}, "weight_map": SHARDS})
    snap = _snapshot(tmp_path, "org/big", {"config.json": "{}", "tokenizer.json": "{}",
                                           "model.safetensors.index.json": index, SHARDS["a"]: ""})
    with pytest.raises(ModelNotFoundError, match=r"(?s)1 shard\(s\).*missing: model-00002-of-00002\.safetensors.*"
                                                 r"interrupted download.*huggingface-cli download org/big again"):
        resolve("org/big", "llm")
    rows = {r.capability: r for r in describe(ModelsConfig(llm="org/big"))}
    assert not rows["llm"].available and "model-00002-of-00002.safetensors" in rows["llm"].detail
    assert resolve("org/big", "llm", allow_download=True).kind == "hf-download"  # the hub completes it
    (snap / SHARDS["b"]).write_text("")
    assert resolve("org/big", "llm").kind == "hf-cache"


def test_one_complete_weight_set_is_enough(tmp_path):
    """A repo with safetensors and a .bin index, downloaded with --include '*.safetensors', loads."""
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": {"x": "pytorch_model-1.bin"}}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert resolve(str(tmp_path), "llm").kind == "path"
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="pytorch_model-1.bin"):
        resolve(str(tmp_path), "llm")
    (tmp_path / "pytorch_model.bin.index.json").write_text("{not json")
    with pytest.raises(ModelNotFoundError, match="shard index pytorch_model.bin.index.json is unreadable"):
        resolve(str(tmp_path), "llm")


def test_each_capability_needs_the_weights_it_loads(tmp_path):
    whisper = tmp_path / "whisper"
    whisper.mkdir()
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (whisper / name).write_text("{}")
    with pytest.raises(ModelNotFoundError, match="none of model.bin"):
        resolve(str(whisper), "asr")                         # a CTranslate2 folder without its model.bin
    (whisper / "model.bin").write_bytes(b"")
    assert resolve(str(whisper), "asr").kind == "path"
    with pytest.raises(ModelNotFoundError, match="none of"):
        resolve(str(whisper), "llm")                         # CTranslate2's model.bin is no transformers weight
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve(str(gguf), "llm").kind == "path"
    with pytest.raises(ModelNotFoundError, match="is a file, not the model's folder"):
        resolve(str(gguf), "text-embed")
    with pytest.raises(ModelNotFoundError, match=r"a llm model is a folder or a \.gguf file"):
        resolve(str(whisper / "config.json"), "llm")


def test_an_ocr_folder_needs_a_detection_and_a_recognition_model(tmp_path):
    """A folder holding any .onnx was 'ok ocr' (and then not used at all)."""
    (tmp_path / "en_PP-OCRv4_rec_infer.onnx").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match=r"has no detection model \(\*_det_\*\.onnx\)"):
        resolve(str(tmp_path), "ocr")
    rows = {r.capability: r for r in describe(ModelsConfig(ocr=str(tmp_path)))}
    assert not rows["ocr"].available and "detection model" in rows["ocr"].detail
    (tmp_path / "en_PP-OCRv4_det_infer.onnx").write_bytes(b"x")
    assert resolve(str(tmp_path), "ocr").kind == "path"
    (tmp_path / "ch_PP-OCRv4_det_infer.onnx").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="2 detection models.*keep one"):
        resolve(str(tmp_path), "ocr")
    (tmp_path / "ch_PP-OCRv4_det_infer.onnx").unlink()
    (tmp_path / "en_dict.txt").write_text("a\nb\n")
    (tmp_path / "README.txt").write_text("not a dictionary")
    from videomind.models.registry import ocr_models

    assert ocr_models(tmp_path) == ({"det": tmp_path / "en_PP-OCRv4_det_infer.onnx",
                                     "rec": tmp_path / "en_PP-OCRv4_rec_infer.onnx",
                                     "keys": tmp_path / "en_dict.txt"}, "")


def test_check_device_treats_cuda_n_as_cuda_and_knows_the_gpus(monkeypatch):
    """Without a GPU cuda:N is refused as cuda is; with two, cuda:2 is refused by its key before any model loads
    (torch would fail at the first load with 'invalid device ordinal')."""
    import torch

    from videomind.errors import ConfigError
    from videomind.models.registry import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:0", "cuda:1"):
        with pytest.raises(ConfigError, match=f"models.device='{device}', but torch sees no CUDA GPU"):
            check_device(device)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    for device in ("auto", "cpu", "cuda", "cuda:0", "cuda:1"):
        check_device(device)
    with pytest.raises(ConfigError, match=r"models\.device='cuda:2', but torch sees 2 CUDA GPU.*cuda:0 to cuda:1"):
        check_device("cuda:2")
