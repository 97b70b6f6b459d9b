"""The open_clip path, with a tiny randomly initialised CLIP saved as a local checkpoint (no download)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from videomind.config import Config
from videomind.ingest.pipeline import IngestPipeline
from videomind.ingest.visual import ClipEmbedder


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    open_clip = pytest.importorskip("open_clip")
    torch = pytest.importorskip("torch")
    d = tmp_path_factory.mktemp("clip")
    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": 1, "width": 64, "patch_size": 32},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1}}
    (d / "VMTinyCLIP.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(d / "VMTinyCLIP.json")
    torch.manual_seed(0)
    ckpt = d / "tiny.pt"
    torch.save(open_clip.create_model("VMTinyCLIP").state_dict(), ckpt)
    return f"VMTinyCLIP:{ckpt}"


def test_clip_embedder(tiny_clip):
    emb = ClipEmbedder(tiny_clip, device="cpu")
    imgs = [np.random.default_rng(i).integers(0, 255, (90, 160, 3), dtype=np.uint8) for i in range(3)]
    x = emb.embed_images(imgs)
    assert x.shape == (3, emb.dim) == (3, 32) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    t = emb.embed_text(["a red car", "a speech"])
    assert t.shape == (2, 32) and np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)


def test_pipeline_uses_clip_for_keyframes(tiny_clip, silent_video):
    cfg = Config()
    cfg.ingest.ocr = False
    cfg.models.visual_embed = tiny_clip
    chunks = list(IngestPipeline(cfg).run(silent_video))
    kfs = [k for c in chunks for k in c.keyframes]
    assert kfs and all(k.embedding.shape == (32,) for k in kfs)
    assert not any("unavailable" in n for c in chunks for n in c.notes)


def test_clip_is_loaded_once_and_shared(tiny_clip):
    """Ingestion (keyframes) and the API (queries) ask for the same model: one instance, one load."""
    from videomind.ingest.visual import make_embedder

    a = make_embedder(tiny_clip, "cpu")
    b = make_embedder(tiny_clip, "cpu")
    assert isinstance(a, ClipEmbedder) and a is b


def test_clip_runs_on_the_gpu_cuda_n_names(tiny_clip, monkeypatch):
    """models.device=cuda:1 put CLIP on the CPU (only "cuda" and "auto" meant a GPU)."""
    import open_clip
    import torch

    seen = {}

    def create(arch, pretrained, device):
        seen["device"] = device
        raise RuntimeError("stop: only the device is checked")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(open_clip, "create_model_and_transforms", create)
    with pytest.raises(RuntimeError, match="stop"):
        ClipEmbedder(tiny_clip, device="cuda:1")
    assert seen["device"] == "cuda:1"


def test_clip_device_for_each_models_device():
    from videomind.ingest.visual import torch_device

    assert [torch_device(d, True) for d in ("auto", "cpu", "cuda", "cuda:1")] == ["cuda", "cpu", "cuda", "cuda:1"]
    assert {torch_device(d, False) for d in ("auto", "cpu", "cuda", "cuda:1")} == {"cpu"}  # cuda:N as cuda
