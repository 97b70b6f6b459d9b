"""The bundled text embedder: the plain-PyTorch path gives sentence-transformers' vectors, bit for bit."""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from videomind.models import bert_embed
from videomind.models.registry import resolve
from videomind.models.text_embed import SentenceTransformerEmbedder

REPO = Path(__file__).resolve().parents[2]


def real_sentences(limit: int = 200) -> list[str]:
    """Sentences of the README and of our docstrings (``limit`` of them, up to 40 words), then the awkward cases:
    empty, blank, accents and CJK and an emoji."""
    texts = [(REPO / "README.md").read_text()]
    for path in sorted((REPO / "videomind").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and ast.get_docstring(node):
                texts.append(ast.get_docstring(node))
    sentences = [s.strip() for t in texts for s in re.split(r"(?<=[.!?])\s+|\n\s*\n", t)
                 if s.strip() and len(s.split()) <= 40]
    unique = list(dict.fromkeys(sentences))[:limit]
    assert len(unique) == limit, len(unique)
    return unique + ["", "   ", "Ünïcödé café naïve 東京 🚀"]


@pytest.fixture(scope="module")
def minilm_folder() -> str:
    return resolve("all-MiniLM-L6-v2", "text-embed").path


def test_the_bundled_model_runs_without_sentence_transformers_and_gives_its_vectors(minilm_folder):
    """A new process's first question took ~7 s, ~5 of them importing sentence-transformers (with transformers'
    model code, scikit-learn, pandas) to embed one sentence with all-MiniLM-L6-v2. The model now runs on plain
    PyTorch; stored memories hold the old path's vectors, so the new one must give the same bits, in batches
    (padded to their longest text) and alone (unpadded)."""
    st = pytest.importorskip("sentence_transformers")
    assert bert_embed.supports(minilm_folder)
    texts = real_sentences()
    embedder = SentenceTransformerEmbedder()
    got = embedder.embed(texts)
    reference = st.SentenceTransformer(minilm_folder, device="cpu")
    want = reference.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False)
    assert got.dtype == np.float32 and got.shape == (len(texts), 384) == want.shape and embedder.dim == 384
    assert np.array_equal(got, want), f"max difference {np.abs(got - want).max()}"
    for text in texts[:10] + ["What is said?", "ask not " * 200]:  # the last one is cut at 256 tokens
        assert np.array_equal(embedder.embed([text]), reference.encode([text], normalize_embeddings=True))
    assert embedder.embed([]).shape == (0, 384)


@pytest.mark.parametrize("file, change", [
    ("1_Pooling/config.json", {"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}),
    ("config.json", {"model_type": "roberta"}),
    ("config.json", {"hidden_act": "gelu_new"}),
    ("sentence_bert_config.json", {"do_lower_case": True}),
    ("modules.json", None),  # a Dense layer after the pooling
])
def test_other_model_folders_are_left_to_sentence_transformers(minilm_folder, tmp_path, file, change):
    folder = tmp_path / "model"
    shutil.copytree(minilm_folder, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    (folder / "model.safetensors").symlink_to(Path(minilm_folder) / "model.safetensors")
    assert bert_embed.supports(folder)
    path = folder / file
    data = json.loads(path.read_text())
    if change is None:
        data.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    else:
        data.update(change)
    path.write_text(json.dumps(data))
    assert not bert_embed.supports(folder)
