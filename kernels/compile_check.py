"""Ahead-of-time lowering of the Triton kernels for a CUDA target, without a GPU.

``python -m videomind.kernels.compile_check [--arch 90 80]`` compiles the block-sparse kernel for every
(arch, dtype, head-dim, mask variant) combination, the list compaction and the column-mass kernels, through
``triton.compile`` (ptxas ships in Triton's wheel) and prints the shared memory use from the compiled metadata.
TRITON_INTERPRET must be unset.
"""
from __future__ import annotations

import argparse
import json


# opt-in shared memory per block (bytes): sm_80 (A100) 163 KiB, sm_90 (H100) 227 KiB
SHARED_LIMIT = {80: 166912, 86: 101376, 89: 101376, 90: 232448}


def signature(fn, dtype: str) -> dict:
    sig = {name: "i32" for name in fn.arg_names}
    for n in ("Q", "K", "V", "O"):
        sig[n] = f"*{dtype}"
    sig["LSE"] = sig["LSE_IN"] = "*fp32"
    for n in ("BLOCK_IDX", "BLOCK_CNT", "COL_IDX", "COL_CNT", "QPOS", "KPOS", "KMIN", "KMAX", "QH", "KVH", "ORDER"):
        sig[n] = "*i32"
    sig["sm_scale_log2"] = "fp32"
    return sig


def compile_kernel(arch: int, dtype: str = "fp16", head_dim: int = 128, block_m: int = 64, block_n: int = 64,
                   mask_mode: int = 2, has_cols: bool = True, num_warps: int | None = None,
                   num_stages: int | None = None, pos_is_index: bool = False, gather: bool = True,
                   accumulate: bool = False) -> dict:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    import torch

    from .block_sparse_attn import _bsa_fwd_kernel as fn
    from .block_sparse_attn import default_num_stages, default_num_warps

    block_d = max(16, triton.next_power_of_2(head_dim))
    const = dict(BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d, CAUSAL=True, MASK_MODE=mask_mode,
                 HAS_COLS=has_cols, RETURN_LSE=True, IEEE=(dtype == "fp32"), POS_IS_INDEX=pos_is_index,
                 GATHER=gather and not pos_is_index, ACCUMULATE=accumulate, TILE_CHECK=True)
    sig = signature(fn, dtype)
    for c in const:
        sig[c] = "constexpr"
    opts = dict(num_warps=num_warps or default_num_warps(block_m, block_d), num_stages=num_stages or default_num_stages(
        {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[dtype], block_d))
    k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=const), target=GPUTarget("cuda", arch, 32),
                       options=opts)
    md = k.metadata
    return {"arch": arch, "dtype": dtype, "head_dim": head_dim, "block_d": block_d, "block_m": block_m,
            "block_n": block_n, "mask_mode": mask_mode, "has_cols": has_cols, "pos_is_index": pos_is_index,
            "gather": const["GATHER"], "accumulate": accumulate, **opts,
            "shared_bytes": int(md.shared), "shared_limit": SHARED_LIMIT.get(arch),
            "has_cubin": "cubin" in k.asm}


def compile_compact(arch: int, block: int = 1024) -> dict:
    """Lower the row compaction kernel of :mod:`.compact` (used by the grid index builder on GPUs)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from .compact import _compact_rows_kernel as fn
    sig = {name: "i32" for name in fn.arg_names}
    sig.update(mask_ptr="*u8", val_ptr="*i32", idx_ptr="*i32", cnt_ptr="*i32", BLOCK="constexpr",
               HAS_VALUES="constexpr")
    k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs={"BLOCK": block, "HAS_VALUES": True}),
                       target=GPUTarget("cuda", arch, 32), options={"num_warps": 4})
    return {"arch": arch, "kernel": "compact_rows", "block": block, "shared_bytes": int(k.metadata.shared),
            "shared_limit": SHARED_LIMIT.get(arch), "has_cubin": "cubin" in k.asm}


def compile_estimate(arch: int, dtype: str = "bf16", head_dim: int = 128, block_n: int = 128,
                     second_pass: bool = True) -> dict:
    """Lower the column-mass kernel of :mod:`.estimate` (the grid estimator on GPUs), 64 query rows."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from .estimate import _column_mass_kernel as fn
    sig = {name: "i32" for name in fn.arg_names}
    sig.update(Q=f"*{dtype}", K=f"*{dtype}", KVH="*i32", TILE_LSE="*fp32", ROW_LSE="*fp32", MASS="*fp32",
               sm_scale_log2="fp32")
    const = dict(BLOCK_L=64, BLOCK_N=block_n, BLOCK_D=max(16, triton.next_power_of_2(head_dim)),
                 SECOND_PASS=second_pass, IEEE=dtype == "fp32")
    sig.update({c: "constexpr" for c in const})
    k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=const), target=GPUTarget("cuda", arch, 32),
                       options={"num_warps": 4})
    return {"arch": arch, "kernel": "column_mass", "dtype": dtype, "head_dim": head_dim, "second_pass": second_pass,
            "shared_bytes": int(k.metadata.shared), "shared_limit": SHARED_LIMIT.get(arch),
            "has_cubin": "cubin" in k.asm}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--arch", type=int, nargs="+", default=[90, 80])
    ap.add_argument("--dtype", nargs="+", default=["fp16", "bf16"])
    ap.add_argument("--head-dim", type=int, nargs="+", default=[64, 80, 128, 256])
    a = ap.parse_args(argv)
    for arch in a.arch:
        for dt in a.dtype:
            for d in a.head_dim:
                print(json.dumps(compile_kernel(arch, dt, d)), flush=True)
        print(json.dumps(compile_compact(arch)), flush=True)
        for second in (False, True):
            print(json.dumps(compile_estimate(arch, a.dtype[0], second_pass=second)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
