"""The local VLM engine on a tiny Qwen2.5-VL with RANDOM weights (built from a real config; nothing downloaded).

Logits and replies are meaningless; what is checked is that the engine's own path -- frames streamed through the
vision tower, compressed, spliced into the prompt with multimodal RoPE positions, prefilled through inputs_embeds
and decoded over the KV cache -- computes what transformers' stock forward / generate compute on the same video.
"""
import re

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("transformers")

from tests.tiny_qwen_vl import IM_END, VEND, VIDEO_TOKEN, tiny_model, tiny_qwen2_model, tiny_tokenizer  # noqa: E402
from videomind.backends.hf_vlm import TransformersVLM, mrope_positions  # noqa: E402
from videomind.backends.vision_input import PatchSpec, patchify  # noqa: E402
from videomind.config import VLMConfig  # noqa: E402
from videomind.errors import InputError  # noqa: E402

KEEP_ALL = dict(token_budget=100_000, redundancy=2.0)
QUESTION = [{"role": "user", "content": "w5 w6 w7 w8"}]


def _frames(n, seed=0, hw=(84, 112)):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for _ in range(n)]


def _vlm(model=None, **settings):
    model = model if model is not None else tiny_model()
    return TransformersVLM(model, tiny_tokenizer(), "tiny-random-qwen2.5-vl",
                           VLMConfig(frame_pixels=84 * 112, **settings))


def _stock_inputs(vlm, frames, fps=1.0):
    """What transformers' processor would give the stock model for the same prompt and video."""
    ids = torch.tensor(vlm._prompt_ids(QUESTION, with_video=True))
    pixels, grid = patchify(np.stack(frames), PatchSpec())
    n_vid = int(np.prod(grid)) // 4
    k = int((ids == VIDEO_TOKEN).nonzero())
    ids = torch.cat([ids[:k], torch.full((n_vid,), VIDEO_TOKEN), ids[k + 1:]])[None]
    return dict(input_ids=ids, pixel_values_videos=pixels, video_grid_thw=torch.tensor([grid]),
                mm_token_type_ids=(ids == VIDEO_TOKEN).int() * 2, second_per_grid_ts=torch.tensor([2 / fps]))


@torch.no_grad()
def test_one_temporal_patch_equals_stock_forward_and_generate(monkeypatch):
    """Two frames (one temporal patch): the engine's prefill logits and its logits at every decode step equal
    the stock model's forward and generate on the processor-style inputs."""
    import videomind.backends.hf_vlm as hf_vlm

    seen, pick = [], hf_vlm._pick
    monkeypatch.setattr(hf_vlm, "_pick", lambda logits, t: seen.append(logits.clone()) or pick(logits, t))
    vlm = _vlm(**KEEP_ALL)
    frames = _frames(2)
    visual, _ = vlm.encode_frames(iter(frames))
    prompt = vlm.build_prompt(QUESTION, visual)
    ours = vlm.model(inputs_embeds=prompt.embeds[None], position_ids=prompt.positions[:, None]).logits
    inp = _stock_inputs(vlm, frames)
    stock = vlm.model(**inp).logits
    assert ours.shape == stock.shape
    assert torch.allclose(ours, stock, atol=1e-5)
    vlm.model.model.rope_deltas = None
    want = vlm.model.generate(**inp, max_new_tokens=8, do_sample=False, output_logits=True,
                              return_dict_in_generate=True)
    assert vlm.generate(prompt, max_new_tokens=8) == want.sequences[0, inp["input_ids"].shape[1]:].tolist()
    assert len(seen) == len(want.logits) == 8
    for got, ref in zip(seen, want.logits):
        assert torch.allclose(got, ref[0], atol=1e-5)


@torch.no_grad()
def test_a_long_video_streams_in_pieces_like_the_stock_tower():
    """Eleven frames, two temporal patches per vision call: the streamed tokens equal the stock tower's tokens for
    the whole video at once, and the logits agree up to the end of the video. After it the engine starts text at
    the largest vision position + 1 (Qwen's reference rule); transformers 5.x starts it at max(h, w)."""
    vlm = _vlm(patches_per_call=2, **KEEP_ALL)
    frames = _frames(11, seed=1)
    visual, _ = vlm.encode_frames(iter(frames))
    inp = _stock_inputs(vlm, frames)
    whole = vlm.model.model.get_video_features(inp["pixel_values_videos"], inp["video_grid_thw"]).pooler_output[0]
    assert torch.allclose(visual.embeds, whole, atol=1e-5)
    prompt = vlm.build_prompt(QUESTION, visual)
    stock_pos, _ = vlm.model.model.get_rope_index(inp["input_ids"], inp["mm_token_type_ids"],
                                                  video_grid_thw=inp["video_grid_thw"],
                                                  second_per_grid_ts=inp["second_per_grid_ts"])
    end = int((inp["input_ids"][0] == VEND).nonzero())
    assert torch.equal(prompt.positions[:, :end], stock_pos[:, 0, :end])
    ours = vlm.model(inputs_embeds=prompt.embeds[None], position_ids=prompt.positions[:, None]).logits
    stock = vlm.model(**inp).logits
    assert torch.allclose(ours[:, :end], stock[:, :end], atol=1e-5)


def test_text_after_a_video_starts_past_its_largest_position():
    """The worked example of Qwen2.5-VL's get_rope_index docstring: 3 temporal patches of 2x2 at interval 50."""
    t, h, w = torch.meshgrid(torch.arange(3), torch.arange(2), torch.arange(2), indexing="ij")
    pos = mrope_positions(0, torch.stack([t, h, w], -1).reshape(-1, 3), 5, 50.0)
    assert pos[0, :12].tolist() == [0] * 4 + [50] * 4 + [100] * 4
    assert pos[1, :12].tolist() == [0, 0, 1, 1] * 3 and pos[2, :12].tolist() == [0, 1, 0, 1] * 3
    assert pos[:, 12:].tolist() == [[101, 102, 103, 104, 105]] * 3


def test_prefill_length_is_constant_however_many_frames():
    vlm = _vlm(token_budget=40, redundancy=2.0)
    short = vlm.chat(QUESTION, images=_frames(6), max_new_tokens=2)
    long = vlm.chat(QUESTION, images=iter(_frames(120, seed=2)), max_new_tokens=2)
    assert short.meta["visual_tokens"] == short.meta["visual_tokens_seen"] == 3 * 12  # under budget: all kept
    assert long.meta["visual_tokens_seen"] == 60 * 12 and long.meta["visual_tokens"] <= 40
    assert long.prompt_tokens - long.meta["visual_tokens"] == short.prompt_tokens - short.meta["visual_tokens"]
    assert long.prompt_tokens <= short.prompt_tokens


def test_a_static_span_costs_one_temporal_patch():
    vlm = _vlm()
    frame = _frames(1)[0]
    visual, size = vlm.encode_frames([frame] * 40)
    assert size == (84, 112) and len(visual) == 12 and visual.seen == 20 * 12


def test_text_only_chat_and_stop_token():
    vlm = _vlm(model=tiny_model(eos=IM_END))
    vlm.model.lm_head.bias = torch.nn.Parameter(torch.zeros(300))
    vlm.model.lm_head.bias.data[IM_END] = 1e4  # the model "wants" to stop at once
    c = vlm.chat(QUESTION, max_new_tokens=5)
    assert c.completion_tokens == 0 and c.text == "" and "visual_tokens" not in c.meta


def test_bad_requests_are_clear_errors():
    vlm = _vlm()
    with pytest.raises(InputError, match="no frames"):
        vlm.chat(QUESTION, images=iter([]))
    with pytest.raises(InputError, match="RGB"):
        vlm.chat(QUESTION, images=[np.zeros((8, 8))])
    with pytest.raises(InputError, match="user message"):
        vlm.chat([{"role": "system", "content": "w1"}])
    with pytest.raises(InputError, match="window"):
        vlm.chat(QUESTION, max_new_tokens=10_000)


@torch.no_grad()
def test_sparse_prefill_with_dense_patterns_changes_nothing(tmp_path):
    """vlm.sparse_config routes long prefills through the sparse attention (here: every head dense, and a
    threshold of 1 token so the tiny prompt counts as long); the logits are the stock ones."""
    from videomind.kernels.search import dense_config, save_config

    path = tmp_path / "sparse.json"
    save_config(dense_config(2, 4), path)
    frames = _frames(6)
    base = _vlm(**KEEP_ALL)
    visual, _ = base.encode_frames(frames)
    prompt = base.build_prompt(QUESTION, visual)
    want = base.model(inputs_embeds=prompt.embeds[None], position_ids=prompt.positions[:, None]).logits[0, -1]
    sparse = _vlm(model=base.model, sparse_config=str(path), sparse_min_tokens=1, **KEEP_ALL)
    assert sparse.generate(prompt, max_new_tokens=1) == [int(want.argmax())]
    assert sparse.sparse.calls["sparse"] == 2  # both layers' prefill went through the sparse path
    sparse.sparse.disable()


class _CudaFrame:
    """What np.asarray says of a CUDA tensor, a TypeError (frames decoded on a GPU)."""

    def __array__(self, dtype=None, copy=None):
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor to "
                        "host memory first.")


@pytest.mark.parametrize("frames, match", [
    ([np.zeros((84, 112), np.uint8)], "frame 0.*RGB"),
    (_frames(1) + [_CudaFrame()], "frame 1.*Tensor.cpu"),
    (_frames(1) + [np.zeros((84, 112), np.uint8)], "frame 1.*RGB"),  # only the first frame was checked
    ([np.zeros((84, 112, 4), np.uint8)], "RGB"),
    ([np.zeros((3, 84, 112), np.uint8)], "RGB"),
    ([np.full((84, 112, 3), 0.5)], "uint8"),  # came out black
    (_frames(1) + [np.full((84, 112, 3), np.nan)], "frame 1.*uint8"),  # NaN tokens
    ([np.zeros((0, 5, 3), np.uint8)], "0x5"),
    (_frames(1) + [np.zeros((0, 5, 3), np.uint8)], "frame 1.*0x5"),  # only the first was checked: shown as black
    ([np.zeros((5, 5000, 3), np.uint8)], "aspect ratio"),
])
def test_frames_users_pass_are_checked_one_by_one(frames, match):
    with pytest.raises(InputError, match=match):
        _vlm().chat(QUESTION, images=iter(frames), max_new_tokens=1)


def test_odd_but_valid_frames_work():
    # a 1x1 frame is scaled up to the video floor (here vlm.frame_pixels, below Qwen's 128-token floor)
    visual, size = _vlm().encode_frames([np.zeros((1, 1, 3), np.uint8)])
    assert size == (84, 84) and visual.seen == 9
    visual, size = _vlm(**KEEP_ALL).encode_frames(iter(_frames(1) + _frames(2, hw=(200, 90))))
    assert size == (84, 112) and visual.seen == 2 * 12  # later frames take the first one's size


@torch.no_grad()
def test_frames_get_at_least_the_tokens_qwen_showed_video_frames_with():
    """The video processors scale frames up to 128 merged tokens (size["shortest_edge"] = 128 * 28 * 28): ingest's
    384x216 frames are 252x448 to the processor, not 224x392 (112 tokens, a size the model never saw video at)."""
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import smart_resize

    vlm = TransformersVLM(tiny_model(), tiny_tokenizer(), "tiny-random-qwen2.5-vl",
                          VLMConfig(frame_pixels=448 * 252, token_budget=100_000, redundancy=2.0))
    assert vlm.spec.min_pixels == 128 * 28 * 28
    visual, size = vlm.encode_frames(_frames(2, hw=(216, 384)))
    assert size == smart_resize(216, 384, factor=28, min_pixels=128 * 28 * 28, max_pixels=448 * 252) == (252, 448)
    assert visual.seen == 9 * 16


def test_the_frame_floor_comes_from_the_video_processor_config(tmp_path):
    from videomind.backends.vision_input import PatchSpec

    cfg = tiny_model().config.vision_config
    (tmp_path / "preprocessor_config.json").write_text('{"min_pixels": 3136}')   # the image processor's floor
    assert PatchSpec.from_model(cfg, tmp_path).min_pixels == 128 * 28 * 28
    (tmp_path / "video_preprocessor_config.json").write_text('{"size": {"shortest_edge": 50176}}')
    assert PatchSpec.from_model(cfg, tmp_path).min_pixels == 50176
    (tmp_path / "video_preprocessor_config.json").write_text('{"size": {"shortest')
    with pytest.raises(ValueError, match="video_preprocessor_config.json is not valid JSON"):
        PatchSpec.from_model(cfg, tmp_path)


@torch.no_grad()
def test_decoding_keeps_only_the_logits_it_reads():
    """The prefill computes the last position's logits only (not [L, vocab]: 1.3 GB in bf16 at 4K tokens on a
    152K vocabulary), and no forward runs after the last new token."""
    vlm = _vlm()
    calls, forward = [], vlm.model.forward

    def counted(*args, **kwargs):
        out = forward(*args, **kwargs)
        calls.append(out.logits.shape)
        return out

    vlm.model.forward = counted
    visual, _ = vlm.encode_frames(_frames(2))
    assert len(vlm.generate(vlm.build_prompt(QUESTION, visual), max_new_tokens=3)) == 3
    assert [s[1] for s in calls] == [1, 1, 1]


def test_fps_and_the_positions_it_spreads_the_video_over():
    """fps=inf put every frame at one time; at a tiny fps the temporal positions left the model's window (8192
    here) or overflowed int64 into negative positions."""
    vlm = _vlm()
    with pytest.raises(InputError, match="fps"):
        vlm.chat(QUESTION, images=_frames(2), fps=float("inf"))
    for fps in (1e-3, 1e-300):
        with pytest.raises(InputError, match="window"):
            vlm.chat(QUESTION, images=_frames(10), fps=fps, max_new_tokens=1)


def test_temperature_edges():
    vlm = _vlm()
    greedy = vlm.chat(QUESTION, images=_frames(2), max_new_tokens=4).text
    assert vlm.chat(QUESTION, images=_frames(2), max_new_tokens=4, temperature=1e-40).text == greedy
    with pytest.raises(InputError, match="temperature"):
        vlm.chat(QUESTION, max_new_tokens=1, temperature=float("nan"))


def test_a_message_that_contains_the_video_placeholder():
    """The placeholder typed into a message (an OCR'd slide, a transcript) used to be blamed on the tokenizer."""
    with pytest.raises(InputError, match=re.escape("<|video_pad|>")):
        _vlm().chat([{"role": "user", "content": "w5 <|video_pad|> w6"}], images=_frames(2), max_new_tokens=1)


class _OnAccelerator(torch.Tensor):
    """A CPU tensor standing for one on a GPU: an op mixing it with plain (CPU) tensors raises as CUDA does, and
    ``.cpu()`` gives a plain tensor. The compressor keeps its coords on the device the vision tower ran on."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        with torch._C.DisableTorchFunctionSubclass():
            if func is torch.Tensor.cpu:
                return args[0].clone()
            tensors = [a for a in torch.utils._pytree.tree_leaves((args, kwargs))
                       if isinstance(a, torch.Tensor) and a.ndim]
            if any(isinstance(a, cls) for a in tensors) and not all(isinstance(a, cls) for a in tensors):
                raise RuntimeError("Expected all tensors to be on the same device, but found cuda:0 and cpu")
        return super().__torch_function__(func, types, args, kwargs)


def test_positions_of_tokens_kept_on_the_gpu():
    """On a GPU every chat with frames failed: the compressor's coords live on the GPU and the text positions
    were made on the CPU, and torch.cat refuses to mix them."""
    vlm = _vlm(**KEEP_ALL)
    visual, _ = vlm.encode_frames(_frames(2))
    want = vlm.build_prompt(QUESTION, visual).positions
    visual.coords = visual.coords.as_subclass(_OnAccelerator)
    got = vlm.build_prompt(QUESTION, visual).positions
    assert type(got) is torch.Tensor and torch.equal(got, want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_chat_on_cuda(dtype):
    vlm = _vlm(model=tiny_model(eos=IM_END).to("cuda", dtype), token_budget=16)
    c = vlm.chat(QUESTION, images=iter(_frames(12)), max_new_tokens=4)
    assert c.meta["visual_tokens"] <= 16 and c.meta["visual_tokens_seen"] == 6 * 12


@pytest.mark.parametrize("fps", [1.0, 0.5, 3 / 59, 20 / 13])
def test_temporal_positions_quantise_as_the_processor_does(fps):
    """Qwen's processors pass second_per_grid_ts as a float32 tensor, so the model was trained on positions
    quantised in float32; in float64 the engine put some temporal patches one position off (at 3/59 fps the
    fourth patch at 471 instead of 472); over an hour's 1800 patches, 24% of 2000 random rates had such a patch."""
    vlm = _vlm(**KEEP_ALL)
    frames = _frames(11, seed=1)
    visual, _ = vlm.encode_frames(frames)
    prompt = vlm.build_prompt(QUESTION, visual, fps=fps)
    inp = _stock_inputs(vlm, frames, fps=fps)
    stock, _ = vlm.model.model.get_rope_index(inp["input_ids"], inp["mm_token_type_ids"],
                                              video_grid_thw=inp["video_grid_thw"],
                                              second_per_grid_ts=inp["second_per_grid_ts"])
    end = int((inp["input_ids"][0] == VEND).nonzero())
    assert torch.equal(prompt.positions[:, :end], stock[:, 0, :end])


@pytest.mark.parametrize("kwargs, match", [
    (dict(max_new_tokens=0), "max_new_tokens=0"),  # prefilled every frame, then answered "" without a word
    (dict(max_new_tokens=-3), "max_new_tokens=-3"),
    (dict(max_new_tokens=2.5), "max_new_tokens=2.5"),  # TypeError from range()
    (dict(fps="1"), "fps='1'"),  # TypeError from the comparison
    (dict(fps=None), "fps=None"),
    (dict(images=_frames(1)[0]), r"one frame of shape \(84, 112, 3\).*list"),  # read row by row: "got shape (112, 3)"
    (dict(images=torch.from_numpy(_frames(1)[0])), r"one frame of shape \(84, 112, 3\)"),  # the same, as a tensor
    (dict(images=Image.fromarray(_frames(1)[0])), r"one frame \(Image\)"),  # TypeError: not iterable
    (dict(images="clip.mp4"), r"one frame \(str\)"),  # read character by character
    (dict(images=7), r"iterable of RGB frames \[H, W, 3\], not int"),
    (dict(messages=[{"content": "w1"}, *QUESTION]), "role"),  # KeyError
    (dict(messages=[{"role": "user", "content": None}]), "content"),  # TypeError
])
def test_requests_the_engine_cannot_serve_are_input_errors(kwargs, match):
    kwargs = {"messages": QUESTION, "images": _frames(2), **kwargs}
    with pytest.raises(InputError, match=match):
        _vlm().chat(kwargs.pop("messages"), **kwargs)


def test_numpy_numbers_are_fine():
    c = _vlm().chat(QUESTION, images=_frames(2), max_new_tokens=np.int64(2), fps=np.float32(2.0))
    assert c.completion_tokens == 2


@torch.no_grad()
def test_qwen2_vl_streams_like_its_stock_model():
    """The engine's other model type: streamed tokens, positions (no time scale at any fps) and logits up to the
    end of the video equal Qwen2-VL's own, and a reply decodes."""
    vlm = _vlm(model=tiny_qwen2_model(), patches_per_call=2, **KEEP_ALL)
    frames = _frames(7, seed=1)
    visual, _ = vlm.encode_frames(frames)
    inp = _stock_inputs(vlm, frames)
    del inp["second_per_grid_ts"]
    whole = vlm.model.model.get_video_features(inp["pixel_values_videos"], inp["video_grid_thw"]).pooler_output[0]
    assert torch.allclose(visual.embeds, whole, atol=1e-5)
    prompt = vlm.build_prompt(QUESTION, visual, fps=0.5)
    stock, _ = vlm.model.model.get_rope_index(inp["input_ids"], inp["mm_token_type_ids"],
                                              video_grid_thw=inp["video_grid_thw"])
    end = int((inp["input_ids"][0] == VEND).nonzero())
    assert torch.equal(prompt.positions[:, :end], stock[:, 0, :end])
    ours = vlm.model(inputs_embeds=prompt.embeds[None], position_ids=prompt.positions[:, None]).logits
    assert torch.allclose(ours[:, :end], vlm.model(**inp).logits[:, :end], atol=1e-5)
    assert vlm.chat(QUESTION, images=frames, fps=0.5, max_new_tokens=3).completion_tokens <= 3


def test_a_gpu_index_loads_the_vlm_on_that_gpu_in_bfloat16(monkeypatch):
    """models.device=cuda:1 loaded the VLM in float32 (only "cuda" got bfloat16): twice the GPU memory."""
    from types import SimpleNamespace

    from videomind.backends import hf_vlm
    from videomind.models.registry import ResolvedModel

    seen = {}

    class FakeModel:
        def to(self, device):
            seen["to"] = device
            return self

        def eval(self):
            return self

    fake = SimpleNamespace(
        AutoConfig=SimpleNamespace(from_pretrained=lambda path: SimpleNamespace(model_type="qwen2_5_vl")),
        Qwen2_5_VLForConditionalGeneration=SimpleNamespace(
            from_pretrained=lambda path, dtype: seen.update(dtype=dtype) or FakeModel()),
        AutoTokenizer=SimpleNamespace(from_pretrained=lambda path: SimpleNamespace(chat_template="{{ x }}")))
    monkeypatch.setattr(hf_vlm, "require", lambda *a: fake)
    monkeypatch.setattr(hf_vlm, "vlm_problem", lambda resolved: "")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # two GPUs, as check_device sees them
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(TransformersVLM, "__init__", lambda self, model, *a, **kw: None)
    TransformersVLM.load(ResolvedModel("v", "vlm", "path", "/nowhere"), "cuda:1", VLMConfig())
    assert seen == {"dtype": torch.bfloat16, "to": "cuda:1"}
