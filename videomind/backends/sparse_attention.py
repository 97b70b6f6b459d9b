"""Modality-aware sparse prefill attention for Hugging Face VLMs (Qwen2.5-VL), through transformers'
AttentionInterface -- no forward monkey patch, so the model's own multimodal RoPE and KV cache stay in charge.

    from videomind.backends.sparse_attention import enable_sparse_prefill
    handle = enable_sparse_prefill(model, "qwen25vl7b_sparse.json")
    out = model.generate(**inputs)          # prefill of >= 32K tokens runs sparse, decode runs stock sdpa
    handle.disable()

What happens:

* ``register()`` adds the attention function ``"videomind_sparse"`` to ``AttentionInterface`` (and the stock sdpa
  mask builder under the same name to ``AttentionMaskInterface``, so masks are made exactly as for sdpa);
* ``enable_sparse_prefill`` switches only the *text* sub-model to it (the vision tower keeps its implementation) and
  adds a forward pre-hook on the model that reads the processor's token types (``mm_token_type_ids``: 0 text,
  1 image, 2 video; or ``input_ids`` compared with ``config.image_token_id``/``video_token_id``) and
  ``video_grid_thw`` (tokens per frame = h * w / spatial_merge_size^2) for the current forward;
* the attention function runs the per-(layer, head) patterns of the config (see videomind.kernels.search) only when
  the call is a long causal prefill: ``q_len >= min_q_len``, no cached prefix (q_len == kv_len), no padding mask,
  no dropout, no output_attentions.  Everything else (decode, short prompts, padded batches) goes to the stock
  ``sdpa_attention_forward`` unchanged.

Backend "auto" uses the Triton kernels on CUDA and the plain-PyTorch reference on CPU (which materialises N x N
masks: fine for tests and short inputs only).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path

import torch

from videomind.kernels.mminference import MultimodalContext, sparse_prefill_attention
from videomind.kernels.search import check_config, dense_config, load_config

ATTN_NAME = "videomind_sparse"
CALIBRATE_NAME = "videomind_calibrate"
TEXT, IMAGE, VIDEO = 0, 1, 2

_SETTINGS: "weakref.WeakKeyDictionary[torch.nn.Module, SparsePrefillSettings]" = weakref.WeakKeyDictionary()


@dataclass
class SparsePrefillSettings:
    config: dict
    min_q_len: int = 32768
    backend: str = "auto"
    block: int | tuple[int, int] = 64
    launch: dict | None = None
    enabled: bool = True
    contexts: list[MultimodalContext] | None = None
    default_context: MultimodalContext | None = None
    calls: dict = field(default_factory=lambda: {"sparse": 0, "stock": 0})

    def patterns(self, layer_idx: int, n_heads: int) -> list[dict]:
        layers = self.config["layers"]
        if layer_idx >= len(layers):
            return [{"type": "dense"}] * n_heads
        pats = layers[layer_idx]
        if len(pats) != n_heads:
            raise ValueError(f"sparse config has {len(pats)} heads for layer {layer_idx}, the model {n_heads}")
        return pats


def _stock(module, query, key, value, attention_mask, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def sparse_attention_forward(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             attention_mask: torch.Tensor | None, dropout: float = 0.0,
                             scaling: float | None = None, is_causal: bool | None = None, **kwargs):
    """AttentionInterface function: query [B, H, N, D], key/value [B, Hkv, N, D] -> ([B, N, H, D], None)."""
    st = _SETTINGS.get(module)
    q_len, kv_len = query.shape[2], key.shape[2]
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    use_sparse = (st is not None and st.enabled and q_len >= st.min_q_len and q_len == kv_len
                  and attention_mask is None and not dropout and causal and not kwargs.get("output_attentions")
                  and kwargs.get("cu_seq_lens_q") is None and kwargs.get("position_bias") is None)
    if not use_sparse:
        if st is not None:
            st.calls["stock"] += 1
        return _stock(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                      is_causal=is_causal, **kwargs)
    st.calls["sparse"] += 1
    patterns = st.patterns(module.layer_idx, query.shape[1])
    ctx = st.contexts
    if ctx is not None and len(ctx) != query.shape[0]:
        ctx = None
    if ctx is None:
        ctx = st.default_context
    out = sparse_prefill_attention(query, key, value, patterns, ctx, backend=st.backend, sm_scale=scaling,
                                   block=st.block, launch=st.launch)
    return out.transpose(1, 2).contiguous(), None


def calibrate(model, inputs: dict, context: MultimodalContext | None = None, threshold: float = 0.95,
              **search_kw) -> dict:
    """Search every layer's sparse patterns on one real prefill of ``model`` (see videomind.kernels.search).

    ``inputs`` are the forward's keyword arguments for one sequence (processor output, or ``inputs_embeds`` and
    ``position_ids``); modality boundaries come from them as in :func:`enable_sparse_prefill`, or from
    ``context``. Each decoder layer's post-RoPE q and k are searched as the layer runs (then dropped: nothing
    holds every layer's q/k at once) and the layer goes on with the stock attention, so the forward is the stock
    one. Returns the config to save with ``save_config`` and pass to ``enable_sparse_prefill``.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    from videomind.kernels.search import config_from_layers, search_layer

    attn = _text_attention_modules(model)
    ctxs = contexts_from_inputs(model.config, inputs.get("input_ids"), inputs.get("mm_token_type_ids"),
                                inputs.get("video_grid_thw"), inputs.get("image_grid_thw"))
    ctx = ctxs[0] if ctxs else context
    found: dict[int, list[dict]] = {}

    def searching(module, query, key, value, attention_mask, **kwargs):
        if query.shape[0] != 1 or query.shape[2] != key.shape[2]:
            raise ValueError("calibrate on one sequence, in one prefill (batch 1, no cached prefix)")
        found[module.layer_idx] = search_layer(query[0], key[0], ctx, threshold=threshold, **search_kw)
        return _stock(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register(CALIBRATE_NAME, searching)
    AttentionMaskInterface.register(CALIBRATE_NAME, sdpa_mask)
    previous = getattr(model.config, "text_config", model.config)._attn_implementation
    _set_text_impl(model, CALIBRATE_NAME)
    try:
        with torch.no_grad():  # logits of the last position only: [L, vocab] would be ~10 GB in bf16 at 32K tokens
            model(**{"logits_to_keep": 1, **inputs})
    finally:
        _set_text_impl(model, previous or "sdpa")
    if sorted(found) != sorted(m.layer_idx for m in attn):
        raise RuntimeError(f"calibration saw layers {sorted(found)} of {len(attn)}: the forward skipped some")
    return config_from_layers([found[i] for i in sorted(found)], threshold, getattr(model, "name_or_path", ""))


def register() -> None:
    """Register ``"videomind_sparse"`` with transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    AttentionInterface.register(ATTN_NAME, sparse_attention_forward)
    AttentionMaskInterface.register(ATTN_NAME, sdpa_mask)


def modality_from_inputs(config, input_ids: torch.Tensor | None, mm_token_type_ids: torch.Tensor | None):
    """[B, N] modality ids (0 text, 1 image, 2 video) from the processor's token types or the special token ids."""
    if mm_token_type_ids is not None:
        return mm_token_type_ids.long()
    if input_ids is None:
        return None
    mod = torch.zeros_like(input_ids, dtype=torch.long)
    img, vid = getattr(config, "image_token_id", None), getattr(config, "video_token_id", None)
    if img is not None:
        mod[input_ids == img] = IMAGE
    if vid is not None:
        mod[input_ids == vid] = VIDEO
    return mod


def contexts_from_inputs(config, input_ids=None, mm_token_type_ids=None, video_grid_thw=None,
                         image_grid_thw=None) -> list[MultimodalContext] | None:
    mod = modality_from_inputs(config, input_ids, mm_token_type_ids)
    if mod is None:
        return None
    merge = getattr(getattr(config, "vision_config", None), "spatial_merge_size", 2)
    tpf = None
    thw = video_grid_thw if video_grid_thw is not None else image_grid_thw
    if thw is not None and len(thw):
        tpf = int(thw[0, 1] * thw[0, 2]) // (merge * merge)
    out = []
    for row in mod:
        vid = VIDEO if bool((row == VIDEO).any()) else IMAGE
        out.append(MultimodalContext.from_modality(row.cpu(), video_id=vid, tokens_per_frame=tpf))
    return out


class SparsePrefillHandle:
    """Returned by :func:`enable_sparse_prefill`; ``disable()`` restores the previous implementation."""

    def __init__(self, model, settings: SparsePrefillSettings, previous: str | None, hooks: list):
        self.model, self.settings, self._previous, self._hooks = model, settings, previous, hooks

    @property
    def calls(self) -> dict:
        return self.settings.calls

    def disable(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
        self.settings.enabled = False
        _set_text_impl(self.model, self._previous or "sdpa")


def _text_attention_modules(model) -> list[torch.nn.Module]:
    vision = getattr(getattr(model, "model", model), "visual", None)
    skip = set(vision.modules()) if vision is not None else set()
    return [m for m in model.modules() if m not in skip and hasattr(m, "q_proj") and hasattr(m, "layer_idx")]


def _set_text_impl(model, name: str) -> None:
    if hasattr(model.config, "text_config"):
        model.set_attn_implementation({"text_config": name})
    else:                                   # a text-only model (e.g. Qwen2_5_VLTextModel, Qwen2ForCausalLM)
        model.set_attn_implementation(name)


def enable_sparse_prefill(model, config: dict | str | Path | None = None, min_q_len: int = 32768,
                          backend: str = "auto", block: int | tuple[int, int] = 64,
                          context: MultimodalContext | None = None, launch: dict | None = None) -> SparsePrefillHandle:
    """Route long prefills of ``model``'s text decoder through the sparse patterns of ``config`` (a dict or a JSON
    path from videomind.kernels.search; None = all heads dense).  ``context`` is used for forwards whose inputs
    carry no token types (e.g. ``inputs_embeds`` only); ``block`` / ``launch``: the sparse kernel's tile (rows,
    keys) and Triton launch options (num_warps, num_stages).  ``min_q_len``: shorter prefills use the stock kernel;
    on an H100 a 28-layer 7B-shaped decoder's prefill was 1.2x faster at 32K tokens and 2.0x at 128K (attention
    alone 1.7-1.9x and 4.3-4.6x); below 32K the index building is a growing share, see bench/RESULTS.md."""
    register()
    attn = _text_attention_modules(model)
    if not attn:
        raise ValueError(f"{type(model).__name__}: no decoder attention modules (q_proj + layer_idx) found")
    text_cfg = getattr(model.config, "text_config", model.config)
    n_layers = text_cfg.num_hidden_layers
    n_heads = text_cfg.num_attention_heads
    if config is None:
        config = dense_config(n_layers, n_heads)
    elif isinstance(config, dict):
        check_config(config)
    else:
        config = load_config(config)
    # a config made for another model fails here, not at the first long prefill (layers past the config's run dense)
    layers = config["layers"]
    if len(layers) > n_layers or any(len(lay) != n_heads for lay in layers):
        bad = next((i for i, lay in enumerate(layers) if len(lay) != n_heads), None)
        what = f"{len(layers)} layers" if bad is None else f"{len(layers[bad])} patterns in layer {bad}"
        raise ValueError(f"sparse config has {what}; the model has {n_layers} layers of {n_heads} attention heads "
                         f"(a config calibrated for another model?)")
    settings = SparsePrefillSettings(config, min_q_len, backend, block, launch, default_context=context)
    for m in attn:
        _SETTINGS[m] = settings
    previous = text_cfg._attn_implementation
    _set_text_impl(model, ATTN_NAME)

    def pre_hook(_mod, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        settings.contexts = contexts_from_inputs(model.config, ids, kwargs.get("mm_token_type_ids"),
                                                 kwargs.get("video_grid_thw"), kwargs.get("image_grid_thw"))

    def post_hook(_mod, _args, _kwargs, _out):
        settings.contexts = None

    hooks = [model.register_forward_pre_hook(pre_hook, with_kwargs=True),
             model.register_forward_hook(post_hook, with_kwargs=True)]
    return SparsePrefillHandle(model, settings, previous, hooks)
