#!/usr/bin/env bash
# One GPU session for the kernels issue: versions, the kernel tests and the VLM engine's GPU tests on CUDA (real
# Triton compile, no interpreter), then bench_prefill.py.  Meant for a bare GPU machine with torch + triton +
# transformers but without this package installed: it links the kernels/memory/agents folders into videomind/ of
# this (throwaway) copy of the tree, which is what the pyproject package-dir mapping does at install time.
#   bash bench/kernels/gpu_session.sh [tests|bench|all|budget] [bench_prefill args...]
# budget: for a lease of ~15 minutes of device time in all (one command of at most 10): the unmet 512K target
# and 128K first, then the tests, each step under its own timeout so what finished comes back under $OUT.
set -uo pipefail
what=${1:-all}; shift || true
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
for p in kernels memory agents; do [[ -e videomind/$p ]] || ln -s "../$p" "videomind/$p"; done
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, triton, transformers; print('torch', torch.__version__, 'triton', triton.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
if [[ $what == budget ]]; then
  timeout 330 python3 bench/kernels/bench_prefill.py --out "$OUT/results.md" --lengths 131072 524288 \
    --methods sdpa mminf --reps 3 --breakdown "$@" 2>&1 | tee "$OUT/bench.log"
  timeout 200 python3 -m pytest tests/kernels tests/backends/test_vlm_engine_gpu.py -q -x -p no:cacheprovider 2>&1 \
    | tee "$OUT/tests.log" | tail -25
  exit 0
fi
if [[ $what == tests || $what == all ]]; then
  timeout 300 python3 -m pytest tests/kernels tests/backends/test_vlm_engine_gpu.py -q -p no:cacheprovider 2>&1 \
    | tee "$OUT/tests.log" | tail -25
fi
if [[ $what == bench || $what == all ]]; then
  python3 bench/kernels/bench_prefill.py --out "$OUT/results.md" "$@" 2>&1 | tee "$OUT/bench.log"
fi
