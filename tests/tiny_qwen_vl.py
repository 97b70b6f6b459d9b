"""A tiny Qwen2.5-VL with RANDOM weights, built from a real ``Qwen2_5_VLConfig`` (nothing is downloaded).

Its outputs are meaningless; it exists so tests run the real code paths of the vision tower, multimodal RoPE, the
KV cache and the attention dispatch. ``tiny_tokenizer`` is a word-level tokenizer over the same ids with a
Qwen-style chat template, so the local VLM engine can be driven end to end.
"""
import torch

IMAGE_TOKEN, VIDEO_TOKEN, VSTART, VEND, IM_START, IM_END = 290, 291, 292, 293, 294, 295
SPECIAL = {"<|image_pad|>": IMAGE_TOKEN, "<|video_pad|>": VIDEO_TOKEN, "<|vision_start|>": VSTART,
           "<|vision_end|>": VEND, "<|im_start|>": IM_START, "<|im_end|>": IM_END}
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|> {% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant {% endif %}")


def tiny_model(layers: int = 2, eos: int | None = None, seed: int = 0):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(seed)
    cfg = Qwen2_5_VLConfig(
        text_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=layers, num_attention_heads=4,
                         num_key_value_heads=1, vocab_size=300, max_position_embeddings=8192,
                         bos_token_id=None, eos_token_id=eos, pad_token_id=None,
                         rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1e4}),
        # a window-attention block (2x2 merged tokens per window) and a full-attention one, as in the real tower
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                           fullatt_block_indexes=[1]),
        image_token_id=IMAGE_TOKEN, video_token_id=VIDEO_TOKEN, vision_start_token_id=VSTART,
        vision_end_token_id=VEND, bos_token_id=None, eos_token_id=eos, pad_token_id=None)
    cfg._attn_implementation = "sdpa"
    return Qwen2_5_VLForConditionalGeneration(cfg).eval()


def tiny_qwen2_model(seed: int = 0):
    """The same, as a Qwen2-VL (its tower has no windows, its video positions no time scale)."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    torch.manual_seed(seed)
    cfg = Qwen2VLConfig(
        text_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=1, vocab_size=300, max_position_embeddings=8192,
                         bos_token_id=None, eos_token_id=IM_END, pad_token_id=None,
                         rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1e4}),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2),
        image_token_id=IMAGE_TOKEN, video_token_id=VIDEO_TOKEN, vision_start_token_id=VSTART,
        vision_end_token_id=VEND, bos_token_id=None, eos_token_id=IM_END, pad_token_id=None)
    cfg._attn_implementation = "sdpa"
    return Qwen2VLForConditionalGeneration(cfg).eval()


def tiny_tokenizer():
    """Words w0..w279 plus the Qwen special tokens at their config ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, **{f"w{i}": i for i in range(1, 280)}, **SPECIAL}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="<|im_end|>",
                                   additional_special_tokens=list(SPECIAL))
    fast.chat_template = CHAT_TEMPLATE
    return fast


def save_tiny_vlm(folder) -> str:
    """The tiny random model and its tokenizer as a model folder (config.json, safetensors, tokenizer files)."""
    tiny_model(eos=IM_END).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)
