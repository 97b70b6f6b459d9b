"""Modality-aware permutation sparse attention (MMInference) for long multimodal prefill: Triton kernels with a
plain-PyTorch reference.  Import the submodules (block_sparse_attn, patterns, permute, reference, mminference,
search); this package file imports nothing so that `import videomind.kernels` stays light.  See README.md."""
