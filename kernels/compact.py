"""Block mask -> per-row lists of its set columns, padded to a known capacity (Triton).

The torch way (:func:`.patterns.lists_from_block_mask`) compacts with ``nonzero`` and sizes the lists by the
longest row, and both need the host to read a number back from the GPU.  During prefill the index building runs
beside the dense heads' SDPA, whose kernel keeps every SM busy until it ends: a host read-back there waits for the
whole SDPA (25 ms at 128K tokens on an H100), and the GPU then idles while the host builds the rest.  This kernel
writes the lists in place, one program per row, into a width the caller knows from the pattern's geometry, so no
number ever comes back to the host.  Its plain-torch equivalent is ``lists_from_block_mask(mask, capacity)`` on a
CPU tensor, which the tests compare it with.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .device import launch_device


@triton.jit
def _compact_rows_kernel(mask_ptr, val_ptr, idx_ptr, cnt_ptr, NB, CAP, stride_mr, stride_ir, BLOCK: tl.constexpr,
                         HAS_VALUES: tl.constexpr):
    r = tl.program_id(0).to(tl.int64)
    count = tl.sum(tl.zeros([BLOCK], dtype=tl.int32), 0)
    for c0 in range(0, NB, BLOCK):
        offs = c0 + tl.arange(0, BLOCK)
        x = tl.load(mask_ptr + r * stride_mr + offs, mask=offs < NB, other=0).to(tl.int32)
        slot = count + tl.cumsum(x, 0) - 1                  # where each set column goes, in ascending order
        if HAS_VALUES:
            out = tl.load(val_ptr + offs, mask=offs < NB, other=0)
        else:
            out = offs
        tl.store(idx_ptr + r * stride_ir + slot, out, mask=(x > 0) & (slot < CAP))
        count += tl.sum(x, 0)
    tl.store(cnt_ptr + r, tl.minimum(count, CAP))


def compact_rows(bmask: torch.Tensor, capacity: int, values: torch.Tensor | None = None,
                 block: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """bmask [..., NB] bool -> (idx [..., capacity] int32, zero-padded; cnt [...] int32): the set columns of each
    row in ascending order, or ``values[column]`` (values: [NB] int, e.g. key positions) when given.

    ``capacity`` must bound the number of set columns of every row (rows beyond it would be cut at ``capacity``;
    the builders derive it from the pattern, e.g. all key blocks for grid rows with horizontal lines)."""
    if bmask.dtype != torch.bool:
        raise ValueError(f"bmask must be bool, got {bmask.dtype}")
    if capacity < 1:
        raise ValueError(f"capacity must be >= 1, got {capacity}")
    *lead, nb = bmask.shape
    if values is not None and values.shape != (nb,):
        raise ValueError(f"values must be [{nb}], got {tuple(values.shape)}")
    rows = bmask.reshape(-1, nb).contiguous().view(torch.uint8)
    idx = torch.zeros(rows.shape[0], capacity, dtype=torch.int32, device=bmask.device)
    cnt = torch.empty(rows.shape[0], dtype=torch.int32, device=bmask.device)
    if rows.shape[0]:
        if nb == 0:
            cnt.zero_()
        else:
            vals = idx if values is None else values.to(device=bmask.device, dtype=torch.int32).contiguous()
            with launch_device(rows):
                _compact_rows_kernel[(rows.shape[0],)](rows, vals, idx, cnt, nb, capacity, rows.stride(0),
                                                       idx.stride(0), BLOCK=min(block, triton.next_power_of_2(nb)),
                                                       HAS_VALUES=values is not None)
    return idx.view(*lead, capacity), cnt.view(*lead)
