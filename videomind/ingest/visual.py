"""Visual embeddings of frames: CLIP/SigLIP through open_clip when configured, else the perceptual descriptor.

The perceptual descriptor (``models.visual_embed = "perceptual"``, no weights) is a 272-d float32 unit vector:

=========================  ====  ==========================================================================
block                      dims  what it captures
=========================  ====  ==========================================================================
HSV colour histogram        128  8 hue x 4 saturation x 4 value bins, square-rooted (Hellinger), weight 1.0
grey layout                  64  8x8 thumbnail of luminance, zero-mean, unit-norm (structure), weight 1.0
colour layout                48  4x4 grid of mean RGB, zero-mean per channel (where colours are), weight 0.7
edge orientation             32  2x2 quadrants x 8 gradient-orientation bins, magnitude-weighted, weight 0.7
=========================  ====  ==========================================================================

Each block is L2-normalised, weighted, and the whole is L2-normalised, so cosine similarity is a dot product.
It separates shots (scene cuts), groups near-duplicates (cosine > ~0.95) and answers query-by-image; it carries no
semantics, so text-to-image search raises :class:`CapabilityUnavailable`.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

import numpy as np

from videomind.config import parse_device
from videomind.errors import CapabilityUnavailable, DependencyMissing, ModelNotFoundError

logger = logging.getLogger(__name__)

PERCEPTUAL_DIM = 272
ENABLE_CLIP = (
    "Text-to-image search needs a CLIP model: pip install 'videomind[clip]', download weights "
    "(huggingface-cli download timm/vit_base_patch32_clip_224.openai) and set models.visual_embed to an open_clip "
    "'MODEL:PRETRAINED' such as 'ViT-B-32:openai' or 'ViT-B-32:/path/to/open_clip_pytorch_model.bin'; then re-ingest."
)


class VisualEmbedder(Protocol):
    name: str
    dim: int

    def embed_images(self, images: list[np.ndarray]) -> np.ndarray: ...  # [N, dim] float32, unit rows

    def embed_text(self, texts: list[str]) -> np.ndarray: ...  # [N, dim]; may raise CapabilityUnavailable


def _unit(x: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(x))
    return x / n if n > 1e-12 else x


def _small(img: np.ndarray, side: int = 64) -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    s = side / max(h, w)
    return np.asarray(Image.fromarray(img).resize((max(8, int(w * s)), max(8, int(h * s))), Image.BILINEAR))


def perceptual_descriptor(img: np.ndarray) -> np.ndarray:
    """The 272-d perceptual descriptor of an RGB uint8 image [H, W, 3] (see the module docstring)."""
    from PIL import Image

    small = _small(img)
    rgb = small.astype(np.float32) / 255.0
    hsv = np.asarray(Image.fromarray(small).convert("HSV")).astype(np.int32)
    hb, sb, vb = hsv[..., 0] * 8 // 256, hsv[..., 1] * 4 // 256, hsv[..., 2] * 4 // 256
    hist = np.bincount((hb * 16 + sb * 4 + vb).ravel(), minlength=128).astype(np.float32)
    hist = np.sqrt(hist / max(hist.sum(), 1.0))

    grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    lay = _grid_mean(grey, 8).ravel()
    lay = lay - lay.mean()
    col = _grid_mean(rgb, 4).reshape(-1, 3)
    col = (col - col.mean(axis=0)).ravel()

    gy, gx = np.gradient(grey)
    mag = np.hypot(gx, gy)
    ori = ((np.arctan2(gy, gx) % np.pi) / np.pi * 8).astype(np.int32).clip(0, 7)
    h, w = grey.shape
    edges = []
    for qy in (slice(0, h // 2), slice(h // 2, h)):
        for qx in (slice(0, w // 2), slice(w // 2, w)):
            edges.append(np.bincount(ori[qy, qx].ravel(), weights=mag[qy, qx].ravel(), minlength=8)[:8])
    edge = np.concatenate(edges).astype(np.float32)
    # A flat frame has no structure: keep the layout blocks at zero instead of amplifying noise.
    edge = _unit(edge) if edge.sum() > 1e-3 * grey.size else np.zeros_like(edge)
    lay = _unit(lay) if lay.std() > 1e-3 else np.zeros_like(lay)
    col = _unit(col) if col.std() > 1e-3 else np.zeros_like(col)
    vec = np.concatenate([_unit(hist), lay, 0.7 * col, 0.7 * edge]).astype(np.float32)
    return _unit(vec).astype(np.float32)


def grey_grid(img: np.ndarray, g: int = 8) -> np.ndarray:
    """Mean luminance (0..1) of a g x g grid over an RGB uint8 image: [g, g] float32, for local-change tests."""
    small = _small(img).astype(np.float32) / 255.0
    return _grid_mean(small @ np.array([0.299, 0.587, 0.114], np.float32), g)


def _grid_mean(a: np.ndarray, g: int) -> np.ndarray:
    h, w = a.shape[:2]
    ys = np.linspace(0, h, g + 1).astype(int)
    xs = np.linspace(0, w, g + 1).astype(int)
    out = np.zeros((g, g) + a.shape[2:], np.float32)
    for i in range(g):
        for j in range(g):
            out[i, j] = a[ys[i]:max(ys[i + 1], ys[i] + 1), xs[j]:max(xs[j + 1], xs[j] + 1)].mean(axis=(0, 1))
    return out


class PerceptualEmbedder:
    """The weight-free descriptor as a :class:`VisualEmbedder`."""

    name = "perceptual"
    dim = PERCEPTUAL_DIM

    def embed_images(self, images: list[np.ndarray]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([perceptual_descriptor(im) for im in images])

    def embed_text(self, texts: list[str]) -> np.ndarray:
        raise CapabilityUnavailable(
            "text-to-image search is unavailable with the 'perceptual' visual descriptor (it has no notion of "
            "words; query-by-image still works). " + ENABLE_CLIP)


def torch_device(device: str, cuda_available: bool) -> str:
    """The torch device CLIP runs on for ``models.device``: the GPU asked for ("cuda", "cuda:N"), the first one
    under "auto", the CPU for "cpu" or when torch sees no GPU (for every cuda form alike)."""
    kind, _ = parse_device(device)
    if kind == "cpu" or not cuda_available:
        return "cpu"
    return "cuda" if kind == "auto" else device


class ClipEmbedder:
    """open_clip image/text embeddings. ``name`` is 'MODEL:PRETRAINED' (a tag, a checkpoint path or hf-hub:id)."""

    def __init__(self, name: str, device: str = "auto", allow_download: bool = False):
        from pathlib import Path

        from videomind.errors import require
        from videomind.models.registry import hf_cache_dir

        arch, _, pretrained = name.partition(":")
        if not allow_download and pretrained and not Path(pretrained).expanduser().exists():
            # Cheap check before importing torch (seconds): is any CLIP/SigLIP repo in the hub cache at all?
            cached = [p.name.lower() for p in hf_cache_dir().glob("models--*")] if hf_cache_dir().is_dir() else []
            if not any("clip" in n or "siglip" in n for n in cached):
                raise ModelNotFoundError(name, "visual-embed", [f"Hugging Face cache {hf_cache_dir()}"], ENABLE_CLIP)
        open_clip = require("open_clip", "clip")
        import torch

        if not pretrained:
            raise ModelNotFoundError(name, "visual-embed", [], "Name the weights: 'MODEL:PRETRAINED'. " + ENABLE_CLIP)
        if not allow_download:
            from videomind.models.registry import hf_cached_snapshot

            if not Path(pretrained).expanduser().exists():
                # open_clip tags map to Hugging Face repos; only use them when already cached.
                cfg = open_clip.get_pretrained_cfg(arch, pretrained) or {}
                hub = cfg.get("hf_hub", "").rstrip("/")
                if not (hub and hf_cached_snapshot(hub)):
                    raise ModelNotFoundError(name, "visual-embed", [f"Hugging Face cache for {hub or pretrained!r}"],
                                             ENABLE_CLIP)
        self.device = torch_device(device, torch.cuda.is_available())
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained,
                                                                               device=self.device)
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.name = name
        self.dim = int(self.model.text_projection.shape[-1]) if hasattr(self.model, "text_projection") else 512

    def embed_images(self, images: list[np.ndarray], batch: int = 32) -> np.ndarray:
        import torch
        from PIL import Image

        out = []
        with torch.no_grad():
            for b in range(0, len(images), batch):
                x = torch.stack([self.preprocess(Image.fromarray(im)) for im in images[b:b + batch]]).to(self.device)
                out.append(torch.nn.functional.normalize(self.model.encode_image(x).float(), dim=-1).cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)

    def embed_text(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.no_grad():
            t = self.tokenizer(texts).to(self.device)
            return torch.nn.functional.normalize(self.model.encode_text(t).float(), dim=-1).cpu().numpy()


_LOADED: dict[tuple[str, str], VisualEmbedder] = {}
_LOADED_LOCK = threading.Lock()


WITHOUT_CLIP = "To ingest without it (no text-to-image search), set models.visual_embed=perceptual."


def make_embedder(name: str, device: str = "auto", allow_download: bool = False) -> VisualEmbedder:
    """The embedder for ``models.visual_embed``.

    A CLIP model is loaded once per process and shared: ingestion embeds keyframes with it while the API embeds
    queries into the same space. A configured CLIP model that cannot be loaded is an error, never a silent
    fallback: the memory store is keyed and marked complete under the configured model, so perceptual vectors
    stored under a CLIP key would be reopened as final once the weights exist, and CLIP query vectors (another
    dimension) would not match them.

    Raises:
        ModelNotFoundError: the weights are not on this machine (or cannot be loaded).
        DependencyMissing: open_clip or torch is not installed.
    """
    if not name or name == "perceptual":
        return PerceptualEmbedder()
    try:
        with _LOADED_LOCK:
            if (name, device) not in _LOADED:
                _LOADED[(name, device)] = ClipEmbedder(name, device, allow_download)
            return _LOADED[(name, device)]
    except ModelNotFoundError as e:
        raise ModelNotFoundError(e.name, e.capability, e.looked, f"{e.hint} {WITHOUT_CLIP}") from e
    except DependencyMissing as e:
        raise DependencyMissing(f"models.visual_embed={name!r}: {e} {WITHOUT_CLIP}") from e
    except Exception as e:  # a corrupt checkpoint, an unknown architecture, ...
        raise ModelNotFoundError(name, "visual-embed", [name], f"It could not be loaded ({e}). {ENABLE_CLIP} "
                                 f"{WITHOUT_CLIP}") from e


def near_duplicate_groups(emb: np.ndarray, threshold: float = 0.95) -> list[list[int]]:
    """Greedy grouping of rows of ``emb`` [N, D] (unit rows) whose cosine to a group's first member >= threshold."""
    groups: list[list[int]] = []
    heads: list[int] = []
    for i in range(len(emb)):
        if heads:
            sims = emb[heads] @ emb[i]
            j = int(np.argmax(sims))
            if sims[j] >= threshold:
                groups[j].append(i)
                continue
        heads.append(i)
        groups.append([i])
    return groups
