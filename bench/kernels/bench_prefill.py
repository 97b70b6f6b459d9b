#!/usr/bin/env python
"""Prefill benchmark for the modality-aware sparse attention (MMInference) kernels.

Attention only (one layer, Qwen2.5-VL-7B shape: 28 query heads, 4 KV heads, d = 128, bf16) on video-like inputs
and, optionally, end-to-end prefill of a 28-layer random-weight Qwen2.5-VL-7B-shaped text decoder.  Compared:

* ``sdpa``   -- torch SDPA, causal (FlashAttention-2 backend on Ampere/Hopper), GQA without repeating K/V;
* ``fa2``    -- flash_attn.flash_attn_func (causal) when the flash-attn package is installed;
* ``flex``   -- torch FlexAttention with a BlockMask equivalent to the chosen patterns *in the original token
               order* (block lists of the same patterns, 128x128 tiles, causal mask_mod; grid lines are not
               contiguous there, which is what the permutation buys);
* ``mminf``  -- videomind.kernels (per-head patterns, Triton block-sparse kernel); reported with and without the
               online index building (vertical-slash / grid estimation from the last 64 queries).

Per length it prints: time (ms), speed-up vs sdpa, achieved TFLOP/s (tiles actually computed) and dense-equivalent
TFLOP/s (the causal dense FLOPs 2 * N^2 * d * H divided by the time), the attention recall of the chosen masks
(softmax mass inside the mask on sampled query rows) and the density (computed tiles / causal tiles).

    python bench/kernels/bench_prefill.py --lengths 32768 131072 262144 524288 --out bench/kernels/results.md
    python bench/kernels/bench_prefill.py --e2e --lengths 32768 131072

Needs a CUDA GPU (exits with a message otherwise).  ``--cpu-smoke`` runs a tiny configuration on the CPU through
the Triton interpreter and the reference paths, only to check that the script itself works.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", type=int, nargs="+", default=[32768, 131072, 262144, 524288])
    ap.add_argument("--heads", type=int, default=28)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--layers", type=int, default=28, help="decoder layers for --e2e")
    ap.add_argument("--tokens-per-frame", type=int, default=256)
    ap.add_argument("--text-prefix", type=int, default=512)
    ap.add_argument("--text-suffix", type=int, default=256)
    ap.add_argument("--threshold", type=float, default=0.95, help="recall threshold of the pattern search")
    ap.add_argument("--patterns", choices=["search", "grid", "a_shape", "vertical_slash"], default="search")
    ap.add_argument("--methods", nargs="+", default=["sdpa", "fa2", "flex", "mminf"])
    ap.add_argument("--max-density", type=float, default=0.5,
                    help="heads whose cheapest passing pattern is denser than this run dense (search)")
    ap.add_argument("--block", type=int, nargs=2, default=[64, 64], metavar=("ROWS", "KEYS"),
                    help="tile of the sparse kernel: query rows x keys")
    ap.add_argument("--warps", type=int, default=None)
    ap.add_argument("--stages", type=int, default=None)
    ap.add_argument("--sweep", type=int, default=None, metavar="N",
                    help="first time the kernel's tile/warps/stages variants at N tokens and use the fastest")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--ablate-tile-check", action="store_true",
                    help="also time the sparse path masking every tile (kernel tile_check=False), side by side")
    ap.add_argument("--profile", action="store_true",
                    help="print the profiler's table of the sparse path's device and host time per op")
    ap.add_argument("--breakdown", action="store_true",
                    help="time the sparse path's parts alone: index building (host and device), kernels, syncs")
    ap.add_argument("--trace", default=None, metavar="DIR",
                    help="write a Chrome trace (torch profiler, host and device) of one sparse call per length")
    ap.add_argument("--e2e", action="store_true", help="also time end-to-end prefill of the 28-layer decoder")
    ap.add_argument("--e2e-lengths", type=int, nargs="+", default=None, help="lengths for --e2e (default: all)")
    ap.add_argument("--out", default=None, help="append a markdown table here (e.g. bench/kernels/results.md)")
    ap.add_argument("--cpu-smoke", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


ARGS = parse_args()
if ARGS.cpu_smoke:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

if not torch.cuda.is_available() and not ARGS.cpu_smoke:
    print("bench_prefill.py needs a CUDA GPU (torch.cuda.is_available() is False); nothing was measured.\n"
          "Run it on a GPU machine, e.g. `python bench/kernels/bench_prefill.py --lengths 32768 131072`.",
          file=sys.stderr)
    sys.exit(2)

from videomind.kernels.mminference import (head_chunks, plan_head_group, run_passes,  # noqa: E402
                                           sparse_prefill_attention)
from videomind.kernels.patterns import estimate_grid, index_tensor  # noqa: E402
from videomind.kernels.search import search_layer  # noqa: E402
from workload import flex_runner, original_order_block_mask, recall_and_density, video_like_qkv  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"
DTYPE = torch.bfloat16 if DEV == "cuda" else torch.float32


# --------------------------------------------------------------------------------------------------------------
# timing helpers
# --------------------------------------------------------------------------------------------------------------
def timed(fn, reps):
    for _ in range(1):
        fn()
    if DEV == "cuda":
        torch.cuda.synchronize()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(reps):
            fn()
        e.record()
        torch.cuda.synchronize()
        return s.elapsed_time(e) / reps
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) * 1e3 / reps


def kernel_device_ms(fn, name="_bsa_fwd_kernel", table=False):
    """Device time (ms) of one call of ``fn`` spent in kernels whose name contains ``name``, and in all kernels:
    the difference is the online index building, permutations and LSE merges around the sparse kernel."""
    from torch.profiler import ProfilerActivity, profile
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA] + ([ProfilerActivity.CPU] if table else [])) as prof:
        fn()
        torch.cuda.synchronize()
    ours = total = 0.0
    for e in prof.key_averages():
        t = getattr(e, "device_time_total", None)
        t = getattr(e, "cuda_time_total", 0.0) if t is None else t
        if e.device_type is not None and "cuda" not in str(e.device_type).lower():
            continue
        total += t
        if name in e.key:
            ours += t
    if table:
        print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=30), flush=True)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), flush=True)
    return ours / 1e3, total / 1e3


def breakdown(q, k, v, patterns, ctx, args) -> dict:
    """The parts of the sparse path, each alone on an idle GPU: building the plans of all head groups (host time
    until the last one is returned, and until the GPU has finished it), the host synchronisations that takes, and
    the kernels given the plans.  The full call overlaps the plans with the dense heads' SDPA and the kernels; when
    planning takes longer than that, the GPU waits for the host."""
    import warnings
    n, block = q.shape[2], tuple(args.block)
    chunks = head_chunks(patterns, n, block)

    def plan_all():
        return [plan_head_group(q, k, p, hs, ctx, block) for p, hs in chunks]
    sync = torch.cuda.synchronize if DEV == "cuda" else (lambda: None)
    plans = plan_all()
    host, total = [], []
    for _ in range(args.reps):
        sync()
        t0 = time.perf_counter()
        plans = plan_all()
        host.append((time.perf_counter() - t0) * 1e3)
        sync()
        total.append((time.perf_counter() - t0) * 1e3)
    caught = []
    if DEV == "cuda":
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                plan_all()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    heads = [index_tensor(tuple(hs), q.device) for _, hs in chunks]
    out = torch.empty_like(q)
    scale = 1.0 / math.sqrt(q.shape[-1])
    t_kernels = timed(lambda: [run_passes(q, k, v, out, pl, ht, "triton", scale, launch_options(args))
                               for pl, ht in zip(plans, heads)], args.reps)
    res = {"groups": len(chunks), "plan_host_ms": min(host), "plan_ms": min(total),
           "plan_syncs": sum("synchroniz" in str(w.message) for w in caught), "kernels_ms": t_kernels}
    grid = [(p, hs) for p, hs in chunks if p["type"] == "grid"]
    if grid and ctx is not None and ctx.video_start is not None:
        # the grid groups' phase estimation alone, through each backend, side by side
        group = q.shape[1] // k.shape[1]

        def estimate(backend):
            for p, hs in grid:
                last = p.get("last_q", 64)
                q_last = q[0, :, n - last:].index_select(0, index_tensor(tuple(hs), q.device))
                estimate_grid(q_last, k[0], ctx.video_start, ctx.video_end, p.get("n_phases", 4),
                              p.get("stride") or ctx.tokens_per_frame, last, torch.tensor(hs) // group, backend)
        for backend in ("torch", "triton"):
            res[f"estimate_{backend}_ms"] = timed(lambda: estimate(backend), args.reps)
    return res


def launch_options(args):
    return {k: v for k, v in (("num_warps", args.warps), ("num_stages", args.stages)) if v is not None}


def mminf_call(q, k, v, patterns, ctx, args):
    return sparse_prefill_attention(q, k, v, patterns, ctx, backend="triton", block=tuple(args.block),
                                    launch=launch_options(args))


def sweep(n, args):
    """Time the kernel variants (tile rows x keys, warps, stages) on the searched patterns at n tokens; the
    fastest becomes the configuration of the rest of the run."""
    h, hkv, d = args.heads, args.kv_heads, args.head_dim
    q, k, v, ctx = video_like_qkv(n, h, hkv, d, args.tokens_per_frame, args.text_prefix, args.text_suffix,
                                  device=DEV, dtype=DTYPE)
    patterns, _ = choose_patterns(q, k, ctx, args)
    variants = [((64, 64), 4, 3), ((64, 64), 4, 2), ((64, 64), 4, 4), ((64, 64), 8, 3), ((128, 64), 4, 3),
                ((128, 64), 8, 3), ((128, 64), 8, 2), ((128, 128), 8, 2), ((128, 128), 8, 3), ((64, 128), 4, 3)]
    best = None
    for blk, w, st in variants:
        args.block, args.warps, args.stages = list(blk), w, st
        try:
            ms = timed(lambda: mminf_call(q, k, v, patterns, ctx, args), args.reps)
        except Exception as e:  # noqa: BLE001 -- e.g. out of shared memory for a variant: report, go on
            print(json.dumps({"sweep_n": n, "block": blk, "warps": w, "stages": st,
                              "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}))
            continue
        print(json.dumps({"sweep_n": n, "block": blk, "warps": w, "stages": st, "ms": round(ms, 2)}), flush=True)
        if best is None or ms < best[0]:
            best = (ms, blk, w, st)
    _, blk, w, st = best
    args.block, args.warps, args.stages = list(blk), w, st
    print(json.dumps({"sweep_best": {"block": blk, "warps": w, "stages": st, "ms": round(best[0], 2)}}), flush=True)
    q = k = v = None  # free the inputs before emptying the cache
    torch.cuda.empty_cache()


def dense_flops(n, h, d):
    return 2.0 * n * n * d * h          # causal: half of 4 * N^2 * d per head


# --------------------------------------------------------------------------------------------------------------
# patterns (the workload, its recall and FlexAttention's block mask: workload.py)
# --------------------------------------------------------------------------------------------------------------
def choose_patterns(q, k, ctx, args):
    n = q.shape[2]
    w = max(256, min(4096, n // 32))
    fixed = {"grid": {"type": "grid", "n_phases": 4, "sink": 128, "window": w, "horizontal": True},
             "a_shape": {"type": "a_shape", "sink": 128, "window": w},
             "vertical_slash": {"type": "vertical_slash", "n_vertical": max(64, n // 64),
                                "n_slash": max(256, n // 32)}}
    if args.patterns != "search":
        return [fixed[args.patterns]] * q.shape[1], None
    res = search_layer(q[0], k[0], ctx, threshold=args.threshold, n_rows=128, max_density=args.max_density)
    return [r["pattern"] for r in res], res


# --------------------------------------------------------------------------------------------------------------
def bench_attention(n, args, rows):
    h, hkv, d = args.heads, args.kv_heads, args.head_dim
    q, k, v, ctx = video_like_qkv(n, h, hkv, d, args.tokens_per_frame, args.text_prefix, args.text_suffix,
                                  device=DEV, dtype=DTYPE)
    patterns, _ = choose_patterns(q, k, ctx, args)
    recs, dens = recall_and_density(q, k, patterns, ctx)
    kinds, kind_dens = {}, {}
    for p, dn in zip(patterns, dens):
        kinds[p["type"]] = kinds.get(p["type"], 0) + 1
        kind_dens.setdefault(p["type"], []).append(dn)
    fl = dense_flops(n, h, d)
    res = {"n": n, "patterns": kinds, "recall_min": min(recs), "recall_mean": sum(recs) / len(recs),
           "density_mean": sum(dens) / len(dens),
           "density_by_type": {t: round(sum(x) / len(x), 4) for t, x in kind_dens.items()},
           "block": list(args.block), "launch": launch_options(args)}
    t_sdpa = None
    if "sdpa" in args.methods:
        try:
            t_sdpa = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True), args.reps)
            res["sdpa_ms"] = t_sdpa
        except RuntimeError as e:        # OOM
            res["sdpa_error"] = str(e).splitlines()[0]
    if "fa2" in args.methods:
        try:
            from flash_attn import flash_attn_func
            qt, kt, vt = (x.transpose(1, 2).contiguous() for x in (q, k, v))
            res["fa2_ms"] = timed(lambda: flash_attn_func(qt, kt, vt, causal=True), args.reps)
        except ImportError:
            res["fa2_error"] = "flash_attn not installed"
        except RuntimeError as e:
            res["fa2_error"] = str(e).splitlines()[0]
    if "flex" in args.methods:
        try:
            run, tiles = flex_runner(q, k, v, original_order_block_mask(q, k, patterns, ctx))
            res["flex_ms"] = timed(run, args.reps)
            nb = -(-n // 64)
            res["flex_density"] = tiles / (h * nb * (nb + 1) / 2)
        except Exception as e:  # noqa: BLE001 -- report and go on
            res["flex_error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    if "mminf" in args.methods:
        run = (lambda: mminf_call(q, k, v, patterns, ctx, args))
        res["mminf_ms"] = timed(run, args.reps)
        if DEV == "cuda":
            try:
                res["mminf_kernel_ms"], res["mminf_device_ms"] = kernel_device_ms(run, table=args.profile)
            except Exception as e:  # noqa: BLE001 -- the profiler split is extra information
                res["profile_error"] = f"{type(e).__name__}: {e}"
        if args.trace and DEV == "cuda":
            from torch.profiler import ProfilerActivity, profile
            os.makedirs(args.trace, exist_ok=True)
            run()
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                run()
                torch.cuda.synchronize()
            prof.export_chrome_trace(os.path.join(args.trace, f"mminf_{n}.json"))
        if args.breakdown:
            res.update(breakdown(q, k, v, patterns, ctx, args))
        if args.ablate_tile_check:
            opts = dict(launch_options(args), tile_check=False)
            res["mminf_no_tile_check_ms"] = timed(lambda: sparse_prefill_attention(
                q, k, v, patterns, ctx, backend="triton", block=tuple(args.block), launch=opts), args.reps)
            res["mminf_ms_again"] = timed(run, args.reps)
        res["mminf_tflops_achieved"] = fl * res["density_mean"] / (res["mminf_ms"] * 1e9)
        res["mminf_tflops_dense_equiv"] = fl / (res["mminf_ms"] * 1e9)
        if t_sdpa:
            res["speedup_vs_sdpa"] = t_sdpa / res["mminf_ms"]
            # heads the search left dense run at sdpa speed and bound the layer's speed-up; split them off
            dense = [i for i, p in enumerate(patterns) if p["type"] == "dense"]
            if dense and len(dense) < h:
                hd = torch.tensor(dense, device=q.device)
                kvd = hd // (h // hkv)
                t_dense = timed(lambda: F.scaled_dot_product_attention(
                    q.index_select(1, hd), k.index_select(1, kvd), v.index_select(1, kvd), is_causal=True),
                    args.reps)
                res["dense_heads_ms"] = t_dense
                res["sparse_heads_speedup"] = (t_sdpa * (h - len(dense)) / h) / max(res["mminf_ms"] - t_dense, 1e-6)
    if t_sdpa:
        res["sdpa_tflops"] = fl / (t_sdpa * 1e9)
    rows.append(res)
    print(json.dumps(res), flush=True)
    q = k = v = None  # free the inputs before emptying the cache
    if DEV == "cuda":
        torch.cuda.empty_cache()
    return patterns, ctx


def bench_e2e(n, args, patterns, ctx, rows):
    from transformers import Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel

    from videomind.backends.sparse_attention import enable_sparse_prefill
    cfg = Qwen2_5_VLTextConfig(hidden_size=args.heads * args.head_dim, intermediate_size=18944,
                               num_hidden_layers=args.layers, num_attention_heads=args.heads,
                               num_key_value_heads=args.kv_heads, vocab_size=1024, max_position_embeddings=2 * n,
                               rope_parameters={"rope_type": "default",
                                                "mrope_section": [args.head_dim // 8, 3 * args.head_dim // 16,
                                                                  3 * args.head_dim // 16],
                                                "rope_theta": 1e6})
    cfg._attn_implementation = "sdpa"
    with torch.device(DEV):
        model = Qwen2_5_VLTextModel(cfg).to(DTYPE).eval()
    emb = torch.randn(1, n, cfg.hidden_size, device=DEV, dtype=DTYPE)
    res = {"n": n, "e2e": True, "layers": args.layers}

    def run():
        with torch.no_grad():
            model(inputs_embeds=emb, use_cache=False)
    try:
        res["e2e_sdpa_ms"] = timed(run, 1)
    except RuntimeError as e:
        res["e2e_sdpa_error"] = str(e).splitlines()[0]
    cfgd = {"version": 1, "layers": [list(patterns) for _ in range(args.layers)]}
    handle = enable_sparse_prefill(model, cfgd, min_q_len=4096, context=ctx, block=tuple(args.block),
                                   launch=launch_options(args))
    try:
        res["e2e_mminf_ms"] = timed(run, 1)
        if "e2e_sdpa_ms" in res:
            res["e2e_speedup"] = res["e2e_sdpa_ms"] / res["e2e_mminf_ms"]
    except RuntimeError as e:
        res["e2e_mminf_error"] = str(e).splitlines()[0]
    handle.disable()
    rows.append(res)
    print(json.dumps(res), flush=True)
    model = emb = None
    if DEV == "cuda":
        torch.cuda.empty_cache()


def to_markdown(rows, args) -> str:
    dev = torch.cuda.get_device_name() if DEV == "cuda" else "cpu (smoke test, not a measurement)"
    lines = [f"### bench_prefill.py on {dev} ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
             f"heads {args.heads}, kv heads {args.kv_heads}, d {args.head_dim}, {DTYPE}, patterns: {args.patterns}"
             f" (threshold {args.threshold}, max density {args.max_density}), tokens/frame {args.tokens_per_frame},"
             f" sparse tile {args.block[0]}x{args.block[1]}, launch {launch_options(args) or 'default'}", "",
             "| N | sdpa ms | fa2 ms | flex ms (density) | mminf ms (sparse kernel) | speed-up (sparse heads) | "
             "recall min/mean | density | TFLOP/s sdpa | TFLOP/s mminf achieved / dense-equiv | patterns (density) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    f = (lambda r, key, fmt="{:.1f}": fmt.format(r[key]) if key in r else "-")
    for r in rows:
        if r.get("e2e"):
            continue
        lines.append(f"| {r['n']} | {f(r, 'sdpa_ms')} | {f(r, 'fa2_ms')} | {f(r, 'flex_ms')} "
                     f"({f(r, 'flex_density', '{:.3f}')}) | {f(r, 'mminf_ms')} ({f(r, 'mminf_kernel_ms')}) | "
                     f"{f(r, 'speedup_vs_sdpa', '{:.2f}x')} ({f(r, 'sparse_heads_speedup', '{:.2f}x')}) | "
                     f"{r['recall_min']:.3f}/{r['recall_mean']:.3f} | {r['density_mean']:.3f} | "
                     f"{f(r, 'sdpa_tflops')} | {f(r, 'mminf_tflops_achieved')} / {f(r, 'mminf_tflops_dense_equiv')} | "
                     f"{ {t: (c, r['density_by_type'][t]) for t, c in r['patterns'].items()} } |")
    e2e = [r for r in rows if r.get("e2e")]
    if e2e:
        lines += ["", f"| N (end to end, {args.layers} layers) | sdpa ms | mminf ms | speed-up |", "|---|---|---|---|"]
        for r in e2e:
            lines.append(f"| {r['n']} | {f(r, 'e2e_sdpa_ms')} | {f(r, 'e2e_mminf_ms')} | "
                         f"{f(r, 'e2e_speedup', '{:.2f}x')} |")
    return "\n".join(lines) + "\n"


def main():
    args = ARGS
    if args.cpu_smoke:
        args.lengths = [min(x, 1024) for x in args.lengths][:1]
        args.heads, args.kv_heads, args.head_dim, args.layers = 4, 1, 64, 2
        args.tokens_per_frame, args.text_prefix, args.text_suffix = 32, 64, 64
        args.methods = [m for m in args.methods if m != "fa2"]
        args.reps = 1
    rows = []
    if args.sweep and DEV == "cuda":
        sweep(args.sweep, args)
    for n in args.lengths:
        try:
            patterns, ctx = bench_attention(n, args, rows)
        except torch.cuda.OutOfMemoryError as e:
            import traceback
            traceback.print_exc()
            print(json.dumps({"n": n, "error": f"OOM: {str(e).splitlines()[0]}"}), flush=True)
            continue
        if args.e2e and (args.e2e_lengths is None or n in args.e2e_lengths):
            try:
                bench_e2e(n, args, patterns, ctx, rows)
            except torch.cuda.OutOfMemoryError as e:
                print(json.dumps({"n": n, "e2e": True, "error": f"OOM: {str(e).splitlines()[0]}"}), flush=True)
    md = to_markdown(rows, args)
    print(md)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
