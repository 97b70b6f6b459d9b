"""A BERT sentence embedder in plain PyTorch, for the sentence-transformers folders that are only BERT + mean
pooling + normalisation (the bundled all-MiniLM-L6-v2).

Why not sentence-transformers: importing it (with transformers' model code, scikit-learn, pandas and torch) took
~7 s on a 2-core machine, most of a new process's `videomind ask`; torch, tokenizers and safetensors alone take
~2 s (BertModel from transformers alone ~6 s). This module computes what
``SentenceTransformer(folder).encode(texts, normalize_embeddings=True)`` computes, with the same torch operations
on the same batches, so the vectors are the same bits (tests/models/test_text_embed.py compares them on real
sentences). Any other folder layout is left to sentence-transformers: :func:`supports` says which.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from videomind.errors import require

logger = logging.getLogger(__name__)

# modules.json of a folder this module runs: the transformer, its pooling, the normalisation, and nothing else.
MODULES = ("sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
           "sentence_transformers.models.Normalize")


def _json(path: Path) -> dict | list | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _weight_dtypes(path: Path) -> set[str]:
    """The tensor dtypes a safetensors file holds, from its header (8 bytes of length, then JSON); empty when
    unreadable (sentence-transformers then reports the problem)."""
    try:
        with open(path, "rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        return {v["dtype"] for k, v in header.items() if k != "__metadata__"}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return set()


def supports(folder: str | Path) -> bool:
    """Whether ``folder`` is a sentence-transformers model this module computes exactly: a BERT (absolute
    positions, exact GELU) with a fast tokenizer, float32 safetensors weights, mean pooling and normalisation, and
    no tokenizer or model options beyond ``max_seq_length``. Reads only JSON files and the weights' header."""
    folder = Path(folder)
    modules, config = _json(folder / "modules.json"), _json(folder / "config.json")
    st_config, pooling = _json(folder / "sentence_bert_config.json"), _json(folder / "1_Pooling" / "config.json")
    if not (isinstance(modules, list) and all(isinstance(m, dict) for m in modules) and isinstance(config, dict)
            and isinstance(st_config, dict) and isinstance(pooling, dict)):
        return False
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    return (tuple(m.get("type") for m in modules) == MODULES and modules[0].get("path") == ""
            and modules[1].get("path") == "1_Pooling"
            and config.get("model_type") == "bert" and config.get("hidden_act") == "gelu"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and set(st_config) <= {"max_seq_length", "do_lower_case"} and not st_config.get("do_lower_case")
            and isinstance(st_config.get("max_seq_length"), int)
            and modes == {"pooling_mode_mean_tokens"}
            and (folder / "tokenizer.json").is_file() and (folder / "model.safetensors").is_file()
            and _weight_dtypes(folder / "model.safetensors") in ({"F32"}, {"F32", "I64"}))  # I64: BERT's position_ids


class BertSentenceEncoder:
    """The model in a folder :func:`supports`; ``encode`` returns L2-normalised float32 vectors [N, dim]."""

    def __init__(self, folder: str | Path, device: str = "cpu"):
        torch = require("torch", "offline")
        load_file = require("safetensors.torch", "offline").load_file
        Tokenizer = require("tokenizers", "offline").Tokenizer

        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        max_len = json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"]
        self.heads, self.layers = config["num_attention_heads"], config["num_hidden_layers"]
        self.eps, self.dim = config["layer_norm_eps"], config["hidden_size"]
        self.device = torch.device(device)
        weights = load_file(str(folder / "model.safetensors"), device=str(self.device))
        self.w = {k.removeprefix("bert."): v for k, v in weights.items()}
        # tokenizer.json carries its own truncation and fixed padding (128 for MiniLM); sentence-transformers
        # truncates at max_seq_length and pads each batch to its longest text, as here.
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(min(max_len, config["max_position_embeddings"]))
        self.tokenizer.enable_padding(pad_id=config.get("pad_token_id", 0))

    def encode(self, texts: Sequence[str], batch_size: int = 64):
        """Embed ``texts`` in batches of ``batch_size``, longest first as sentence-transformers batches them (a
        batch is padded to its longest text, and padding changes the last bits of the others' vectors).

        Returns:
            np.ndarray [N, dim] float32, L2-normalised rows.
        """
        import numpy as np
        import torch

        order = np.argsort([-len(t) for t in texts])
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start:start + batch_size]
            encoded = self.tokenizer.encode_batch([texts[i] for i in rows])
            ids = torch.tensor([e.ids for e in encoded], device=self.device)  # [B, N]
            mask = torch.tensor([e.attention_mask for e in encoded], device=self.device)  # [B, N]
            out[rows] = self.forward(ids, mask).cpu().numpy()
        return out

    def forward(self, ids, mask):
        """ids, mask: int64 [B, N] -> [B, dim]: BertModel's last hidden state, mean-pooled over the mask and
        normalised twice, as the folder's Normalize module and then encode(normalize_embeddings=True) do."""
        import torch
        import torch.nn.functional as F

        w, eps = self.w, self.eps

        def linear(x, name):
            return F.linear(x, w[name + ".weight"], w[name + ".bias"])

        def norm(x, name):
            return F.layer_norm(x, x.shape[-1:], w[name + ".weight"], w[name + ".bias"], eps)

        def embedding(table, ids):
            return F.embedding(ids, w[f"embeddings.{table}_embeddings.weight"])

        with torch.inference_mode():
            B, N = ids.shape
            D = self.dim // self.heads
            positions = torch.arange(N, device=self.device).unsqueeze(0)  # [1, N]
            x = embedding("word", ids) + embedding("token_type", torch.zeros_like(ids))
            x = norm(x + embedding("position", positions), "embeddings.LayerNorm")  # [B, N, dim]
            attend = None if bool(mask.all()) else mask.bool()[:, None, None, :]  # [B, 1, 1, N]
            for i in range(self.layers):
                p = f"encoder.layer.{i}."
                q, k, v = (linear(x, p + "attention.self." + name).view(B, N, -1, D).transpose(1, 2)
                           for name in ("query", "key", "value"))  # [B, H, N, D]
                a = F.scaled_dot_product_attention(q, k, v, attn_mask=attend, scale=D ** -0.5)
                a = a.transpose(1, 2).reshape(B, N, -1)  # [B, N, dim]
                x = norm(linear(a, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
                h = F.gelu(linear(x, p + "intermediate.dense"))  # [B, N, intermediate_size]
                x = norm(linear(h, p + "output.dense") + x, p + "output.LayerNorm")
            m = mask.unsqueeze(-1).to(x.dtype)  # [B, N, 1]
            pooled = (x * m).sum(dim=1) / torch.clamp(m.sum(dim=1), min=1e-9)  # [B, dim]
            return F.normalize(F.normalize(pooled, p=2, dim=-1), p=2, dim=1)
