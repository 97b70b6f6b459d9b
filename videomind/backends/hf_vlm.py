"""A local VLM engine: Qwen2.5-VL / Qwen2-VL through transformers, for spans of any length.

``TransformersVLM.chat(messages, images=frames)`` answers about a stream of frames without ever holding them all:

1. frames are resized to one size (:mod:`videomind.backends.vision_input`) and go through the vision tower a few
   temporal patches at a time (its tokens attend only within their own temporal patch, so this is exact);
2. each patch's merged tokens go into a :class:`~videomind.backends.token_compression.StreamingTokenCompressor`,
   so at most ``vlm.token_budget`` visual tokens remain however many frames came in (memory and prefill constant);
3. the prompt is the model's chat template with one video placeholder expanded to the kept tokens; their
   multimodal RoPE positions are built from each kept token's (t, h, w), with the temporal axis spaced by the
   frames' real rate (``tokens_per_second``, as Qwen2.5-VL was trained), and text after the video starting at the
   largest vision position + 1 (the rule of Qwen's reference ``get_rope_index``);
4. prefill runs through ``inputs_embeds`` (with the modality-aware sparse attention of
   :mod:`videomind.backends.sparse_attention` when ``vlm.sparse_config`` is set and the prompt is long), then a
   plain decode loop over the KV cache with explicit positions.

No VLM weights ship in a wheel, so this engine runs only when ``models.vlm`` points at a downloaded model folder
or a cached Hugging Face id. Tests build tiny randomly initialised models from a real ``Qwen2_5_VLConfig`` to run
these code paths; they are never presented as a model.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import numbers
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from videomind.backends.base import Completion
from videomind.backends.token_compression import CompressedTokens, StreamingTokenCompressor
from videomind.backends.vision_input import PatchSpec, check_frame, fit_size, patchify, resize_frame
from videomind.config import Config, VLMConfig
from videomind.errors import CapabilityUnavailable, InputError, require
from videomind.models.registry import VLM_MODEL_TYPES, ResolvedModel, check_device, resolve, vlm_problem

logger = logging.getLogger(__name__)
_LOAD_LOCK = threading.Lock()

MODEL_CLASSES = {"qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration", "qwen2_vl": "Qwen2VLForConditionalGeneration"}
assert set(MODEL_CLASSES) == set(VLM_MODEL_TYPES)
VIDEO_MODALITY = 2  # the processors' mm_token_type_ids: 0 text, 1 image, 2 video


@dataclass
class VisualPrompt:
    """One prefill: ``embeds`` [L, D], ``positions`` [3, L] (t, h, w), ``modality`` [L] (0 text, 2 video)."""

    embeds: Any
    positions: Any
    modality: Any
    visual: CompressedTokens | None


def mrope_positions(n_before: int, coords, n_after: int, t_interval: float):
    """[3, n_before + M + n_after] positions: text, then the M visual tokens at ``coords`` [M, 3] (t, h, w),
    then text again from the largest vision position + 1.

    ``t_interval``: RoPE steps per temporal patch (``tokens_per_second * seconds per temporal patch`` for
    Qwen2.5-VL, 1 for Qwen2-VL), a float or a 0-d float32 tensor; positions are quantised after a float32
    multiplication, as in the reference.
    Built on the CPU whatever device ``coords`` is on (the compressor keeps them on the model's GPU), like the
    text-only positions; ``generate`` moves them.
    """
    import torch

    coords = coords.cpu()
    before = torch.arange(n_before).expand(3, -1)
    vis = torch.stack([(coords[:, 0] * t_interval).long(), coords[:, 1], coords[:, 2]]) + n_before
    start = int(vis.max()) + 1 if vis.numel() else n_before
    after = torch.arange(start, start + n_after).expand(3, -1)
    return torch.cat([before, vis, after], dim=1)


class TransformersVLM:
    """A Qwen2-VL-family model as a ChatBackend that looks at streams of frames (see the module doc).

    Args:
        model: a loaded ``Qwen2_5_VLForConditionalGeneration`` (or Qwen2-VL), in eval mode.
        tokenizer: its tokenizer, with the model's chat template.
        name: the model as configured.
        settings: the ``vlm`` config section (token budget, redundancy, frame size, sparse prefill).
        folder: where the model was loaded from (for the processor's normalisation statistics).
    """

    supports_images = True
    streams_frames = True  # ``images`` may be any iterable of frames, of any length
    weak = False

    def __init__(self, model, tokenizer, name: str, settings: VLMConfig | None = None, folder: str | None = None):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.settings = settings or VLMConfig()
        cfg = model.config
        self.spec = PatchSpec.from_model(cfg.vision_config, folder)
        self.context_window = int(getattr(cfg.get_text_config(), "max_position_embeddings", 32768))
        self._tokens = {k: int(getattr(cfg, k)) for k in ("video_token_id", "vision_start_token_id",
                                                          "vision_end_token_id")}
        self._stop = self._stop_ids()
        self._lock = threading.Lock()  # one request at a time: the app serves several users with one model
        self.sparse = None
        if self.settings.sparse_config:
            from videomind.backends.sparse_attention import enable_sparse_prefill

            self.sparse = enable_sparse_prefill(model, self.settings.sparse_config,
                                                min_q_len=self.settings.sparse_min_tokens)
            if model.device.type != "cuda":
                logger.warning("vlm.sparse_config on %s: without CUDA the sparse prefill runs the plain-PyTorch "
                               "reference, which builds N x N masks and is slower than stock attention (4.6x at 8K "
                               "tokens, bench/RESULTS.md); leave vlm.sparse_config empty unless checking the path",
                               model.device.type)

    @property
    def max_frames(self) -> int:
        """The most frames one request reads (``vlm.max_frames``): callers sample long spans below it."""
        return self.settings.max_frames

    # -- loading ---------------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: Config) -> TransformersVLM:
        """Load ``models.vlm`` (a local folder or a cached Hugging Face id) on ``models.device``."""
        r = resolve(config.models.vlm, "vlm", config.models.allow_download)
        return cls.load(r, config.models.device, config.vlm)

    @classmethod
    def load(cls, resolved: ResolvedModel, device: str, settings: VLMConfig) -> TransformersVLM:
        transformers = require("transformers", "vlm")
        import torch

        check_device(device)
        dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        on_gpu = dev.startswith("cuda")  # "cuda:1" too
        path = resolved.path
        if problem := vlm_problem(resolved):
            raise CapabilityUnavailable(f"vlm {resolved.name!r}: {problem}")
        with _LOAD_LOCK:
            try:
                mcfg = transformers.AutoConfig.from_pretrained(path)
                if mcfg.model_type not in MODEL_CLASSES:  # a download, unchecked until now
                    raise CapabilityUnavailable(f"vlm {resolved.name!r} is a {mcfg.model_type!r} model; the local "
                                                f"VLM engine runs {', '.join(MODEL_CLASSES)}")
                model_cls = getattr(transformers, MODEL_CLASSES[mcfg.model_type])
                model = model_cls.from_pretrained(path, dtype=torch.bfloat16 if on_gpu else torch.float32)
                tokenizer = transformers.AutoTokenizer.from_pretrained(path)
                if not getattr(tokenizer, "chat_template", None):
                    tokenizer.chat_template = _processor_template(path)
            except (OSError, ValueError, KeyError) as e:
                raise CapabilityUnavailable(
                    f"cannot load the vlm {resolved.name!r} from {path}: {e}. Point models.vlm at a Qwen2.5-VL "
                    f"model folder (config.json, tokenizer and weights) or a downloaded model id") from e
        if not getattr(tokenizer, "chat_template", None):
            raise CapabilityUnavailable(f"vlm {resolved.name!r} has no chat template: use an instruct model")
        try:
            return cls(model.to(dev).eval(), tokenizer, resolved.name, settings, folder=path)
        except ValueError as e:  # the folder's processor config is unreadable
            raise CapabilityUnavailable(f"cannot load the vlm {resolved.name!r} from {path}: {e}") from e

    def _stop_ids(self) -> set[int]:
        ids = set()
        for src in (getattr(self.model, "generation_config", None), self.model.config, self.tokenizer):
            eos = getattr(src, "eos_token_id", None)
            ids.update([eos] if isinstance(eos, int) else (eos or []))
        return ids

    # -- frames -> compressed visual tokens ------------------------------------------------------------------
    def encode_frames(self, frames: Iterable[np.ndarray]) -> tuple[CompressedTokens, tuple[int, int]]:
        """Stream frames through the vision tower into the compressor.

        Returns:
            the kept tokens and the (H, W) every frame was resized to.
        Raises:
            InputError: no frames, or a frame that is not an RGB uint8 array [H, W, 3] of a usable size.
        """
        s, spec = self.settings, self.spec
        comp = StreamingTokenCompressor(s.token_budget, s.redundancy)
        per_call = spec.temporal_patch_size * s.patches_per_call
        size, batch, t = None, [], 0
        for i, frame in enumerate(itertools.islice(frames, s.max_frames)):  # never waits for one more frame
            try:
                frame = check_frame(np.asarray(frame))
                size = size or fit_size(frame.shape[0], frame.shape[1], spec.factor, s.frame_pixels,
                                        min(spec.min_pixels, s.frame_pixels))
                batch.append(resize_frame(frame, size))
            except (ValueError, TypeError) as e:  # TypeError: what numpy cannot read (a CUDA tensor, an object)
                raise InputError(f"frame {i}: {e}") from e
            if len(batch) == per_call:
                t = self._encode_batch(batch, t, comp)
                batch = []
        if batch:
            self._encode_batch(batch, t, comp)
        if size is None:
            raise InputError("no frames to look at: the span holds no video frames")
        return comp.result(), size

    def _encode_batch(self, frames: list[np.ndarray], t0: int, comp: StreamingTokenCompressor) -> int:
        import torch

        pixels, (gt, gh, gw) = patchify(np.stack(frames), self.spec)
        visual = self.model.model.visual
        grid = torch.tensor([[gt, gh, gw]], device=self.model.device)
        h, w = gh // self.spec.merge_size, gw // self.spec.merge_size
        with torch.inference_mode():
            out = visual(pixels.to(self.model.device, visual.dtype), grid_thw=grid)
            tokens = getattr(out, "pooler_output", out)  # [gt * h * w, D] merged tokens
            for k in range(gt):
                comp.add(tokens[k * h * w:(k + 1) * h * w], t0 + k, (h, w))
        return t0 + gt

    # -- the prompt --------------------------------------------------------------------------------------------
    def _prompt_ids(self, messages: list[dict[str, str]], with_video: bool) -> list[int]:
        msgs = [dict(m) for m in messages]
        if with_video:
            last = max(i for i, m in enumerate(msgs) if m["role"] == "user")
            tok = self.tokenizer.convert_ids_to_tokens
            pad = tok(self._tokens["video_token_id"])
            if any(pad in str(m.get("content", "")) for m in msgs):  # it would be a second video placeholder
                raise InputError(f"a message contains the text {pad!r}, {self.name!r}'s video placeholder: remove it "
                                 f"from the messages")
            marker = "".join(tok(self._tokens[k]) for k in ("vision_start_token_id", "video_token_id",
                                                             "vision_end_token_id"))
            msgs[last]["content"] = marker + msgs[last]["content"]
        text = self.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def build_prompt(self, messages: list[dict[str, str]], visual: CompressedTokens | None,
                     fps: float = 1.0) -> VisualPrompt:
        """Token embeddings with the video placeholder replaced by ``visual``'s tokens, and their positions.

        Raises:
            InputError: a message holds the video placeholder's text, or at ``fps`` the video's time axis alone
                reaches past the model's window.
        """
        import torch

        ids = self._prompt_ids(messages, visual is not None)
        embed = self.model.get_input_embeddings()
        dev = self.model.device
        if visual is None:
            ids_t = torch.tensor(ids, device=dev)
            with torch.inference_mode():
                emb = embed(ids_t)
            return VisualPrompt(emb, torch.arange(len(ids)).expand(3, -1), torch.zeros(len(ids), dtype=torch.long),
                                None)
        where = [i for i, x in enumerate(ids) if x == self._tokens["video_token_id"]]
        if len(where) != 1:
            raise CapabilityUnavailable(f"the chat template of {self.name!r} kept {len(where)} video placeholders "
                                        f"(expected 1): is it a Qwen2-VL-family tokenizer?")
        k = where[0]
        before, after = torch.tensor(ids[:k], device=dev), torch.tensor(ids[k + 1:], device=dev)
        with torch.inference_mode():
            emb = torch.cat([embed(before), visual.embeds.to(dev, embed.weight.dtype), embed(after)])
        tps_rate = getattr(self.model.config.vision_config, "tokens_per_second", None)
        seconds, last = self.spec.temporal_patch_size / fps, int(visual.coords[:, 0].max())
        span = last * (1.0 if tps_rate is None else tps_rate * seconds)
        if not span < self.context_window:  # checked before the int64 cast, which wraps huge values to negative
            raise InputError(f"at fps={fps:g} the video's time axis spans {span:.3g} positions, past {self.name!r}'s "
                             f"window of {self.context_window}: give the frames' real rate, or fewer frames")
        # The processors pass ``second_per_grid_ts`` as a float32 tensor, so the model was trained on positions
        # rounded in float32 (float64 puts some patches one position off). One patch has no time axis (and at a
        # tiny fps the float32 interval would be inf, times t=0 NaN).
        t_interval = (1.0 if tps_rate is None or last == 0
                      else tps_rate * torch.tensor(seconds, dtype=torch.float32))
        pos = mrope_positions(k, visual.coords, len(ids) - k - 1, t_interval)
        mod = torch.zeros(emb.shape[0], dtype=torch.long)
        mod[k:k + len(visual)] = VIDEO_MODALITY
        return VisualPrompt(emb, pos, mod, visual)

    # -- generation --------------------------------------------------------------------------------------------
    def generate(self, prompt: VisualPrompt, max_new_tokens: int = 256, temperature: float = 0.0) -> list[int]:
        """Prefill ``prompt`` once, then decode token by token over the KV cache (greedy at temperature 0)."""
        import torch

        if self.sparse is not None:
            from videomind.kernels.mminference import MultimodalContext

            self.sparse.settings.default_context = MultimodalContext.from_modality(
                prompt.modality, video_id=VIDEO_MODALITY)
        dev = self.model.device
        pos = prompt.positions.to(dev)
        out_ids: list[int] = []
        with torch.inference_mode():
            # logits_to_keep=1: the prefill's [L, vocab] logits would cost 1.3 GB in bf16 at 4K tokens (152K vocab)
            out = self.model(inputs_embeds=prompt.embeds[None], position_ids=pos[:, None, :], use_cache=True,
                             logits_to_keep=1)
            nxt = int(pos.max()) + 1
            for _ in range(max_new_tokens):
                token = _pick(out.logits[0, -1], temperature)
                if token in self._stop:
                    break
                out_ids.append(token)
                if len(out_ids) == max_new_tokens:
                    break
                step = torch.full((3, 1, 1), nxt, device=dev, dtype=torch.long)
                out = self.model(input_ids=torch.tensor([[token]], device=dev), position_ids=step,
                                 past_key_values=out.past_key_values, use_cache=True)
                nxt += 1
        return out_ids

    def calibrate_sparse(self, frames: Iterable[np.ndarray], messages: list[dict[str, str]], fps: float = 1.0,
                         threshold: float = 0.95) -> dict:
        """A sparse-prefill pattern config searched on this engine's own prompt for ``frames`` (compressed at
        the configured budget, so the layouts match what ``vlm.sparse_config`` will see). Save it with
        ``videomind.kernels.search.save_config`` and point ``vlm.sparse_config`` at the file."""
        from videomind.backends.sparse_attention import calibrate
        from videomind.kernels.mminference import MultimodalContext

        _check_request(messages, frames, 1, 0.0, fps)
        with self._lock:
            visual, _ = self.encode_frames(frames)
            prompt = self.build_prompt(messages, visual, fps)
            inputs = {"inputs_embeds": prompt.embeds[None],
                      "position_ids": prompt.positions[:, None, :].to(self.model.device)}
            ctx = MultimodalContext.from_modality(prompt.modality, video_id=VIDEO_MODALITY)
            return calibrate(self.model, inputs, context=ctx, threshold=threshold)

    def chat(self, messages: list[dict[str, str]], *, max_new_tokens: int = 256, temperature: float = 0.0,
             images: Iterable[Any] | None = None, fps: float = 1.0) -> Completion:
        """Answer ``messages``; ``images`` (any iterable of RGB frames, sampled at ``fps`` per second) are shown
        to the model as one video before the last user message, compressed to ``vlm.token_budget`` tokens."""
        _check_request(messages, images, max_new_tokens, temperature, fps)
        t0 = time.perf_counter()
        with self._lock:
            visual, size = self.encode_frames(images) if images is not None else (None, None)
            prompt = self.build_prompt(messages, visual, fps)
            n = int(prompt.embeds.shape[0])
            # positions, not only tokens: Qwen2.5-VL spaces the video by time, so text after it can start far out
            reach = max(n, int(prompt.positions.max()) + 1)
            if reach + max_new_tokens > self.context_window:
                raise InputError(f"prompt of {n} tokens (reaching position {reach}) + {max_new_tokens} new exceeds "
                                 f"{self.name!r}'s window of {self.context_window}: lower vlm.token_budget, shorten "
                                 f"the messages or show fewer frames")
            ids = self.generate(prompt, max_new_tokens, temperature)
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        meta = {} if visual is None else {"visual_tokens": len(visual), "visual_tokens_seen": visual.seen,
                                          "frame_size": list(size)}
        return Completion(text, n, len(ids), time.perf_counter() - t0, meta)


def _check_request(messages, images, max_new_tokens, temperature, fps) -> None:
    """InputError for what would otherwise fail deep inside (a KeyError, a TypeError) or, for max_new_tokens < 1,
    encode every frame and prefill only to answer nothing."""
    if not messages or not all(isinstance(m, dict) and isinstance(m.get("role"), str)
                               and isinstance(m.get("content"), str) for m in messages):
        raise InputError("messages must be a non-empty list of {'role': str, 'content': str} dicts")
    if not any(m["role"] == "user" for m in messages):
        raise InputError("the VLM needs at least one user message")
    if images is not None and (getattr(images, "ndim", None) == 3 or isinstance(images, (str, bytes, os.PathLike))
                               or hasattr(images, "getbands")):  # an array or tensor, a path, a PIL image
        # iterating one frame would give its rows (refused as "frames"), or characters, or nothing iterable at all
        what = f"of shape {tuple(images.shape)}" if hasattr(images, "shape") else f"({type(images).__name__})"
        raise InputError(f"images is one frame {what}: give a list (or any iterable) of RGB uint8 arrays [H, W, 3], "
                         f"e.g. [frame], or one array [T, H, W, 3]")
    if images is not None and not isinstance(images, Iterable):
        raise InputError(f"images must be an iterable of RGB frames [H, W, 3], not {type(images).__name__}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral) or max_new_tokens < 1:
        raise InputError(f"max_new_tokens={max_new_tokens!r}: give a whole number of tokens >= 1")
    if not isinstance(fps, numbers.Real) or not 0 < fps < math.inf:
        raise InputError(f"fps={fps!r}: give the frames' sampling rate in frames per second (> 0)")
    if not isinstance(temperature, numbers.Real) or not math.isfinite(temperature):
        raise InputError(f"temperature={temperature!r}: give a finite temperature (0 decodes greedily)")


def _processor_template(folder: str) -> str | None:
    """The chat template a VLM folder keeps for its processor only (``chat_template.json``, as the Qwen2.5-VL
    releases do), which the tokenizer does not read."""
    p = Path(folder) / "chat_template.json"
    try:
        return json.loads(p.read_text(encoding="utf-8")).get("chat_template") if p.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None


def _pick(logits, temperature: float) -> int:
    import torch

    if temperature <= 0:
        return int(logits.argmax())
    # max first: a tiny temperature would otherwise turn the logits into inf and the probabilities into NaN
    probs = torch.softmax((logits.float() - logits.max().float()) / temperature, dim=-1)
    return int(torch.multinomial(probs, 1))
