"""Sentence embeddings for dense retrieval (the bundled all-MiniLM-L6-v2 by default)."""

from __future__ import annotations

import logging
import threading
from typing import Protocol, Sequence

from videomind.errors import require
from videomind.models.registry import resolve

logger = logging.getLogger(__name__)


class TextEmbedder(Protocol):
    """Maps texts to L2-normalised float32 vectors [N, dim]; memory stores depend only on this."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]):  # -> np.ndarray [N, dim] float32
        ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model resolved through the registry; loaded once, on first use."""

    def __init__(self, name: str = "all-MiniLM-L6-v2", device: str = "cpu", allow_download: bool = False,
                 batch_size: int = 64):
        self.name = name
        self._resolved = resolve(name, "text-embed", allow_download)  # fail early with a clear error
        self._device = "cpu" if device == "auto" else device
        self._batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()
        self._dim: int | None = None

    def _load(self):
        with self._lock:
            if self._model is None:
                st = require("sentence_transformers", "offline")
                logger.info("loading text embedder %s from %s", self.name, self._resolved.path)
                self._model = st.SentenceTransformer(self._resolved.path, device=self._device)
                get_dim = getattr(self._model, "get_embedding_dimension", None) or \
                    self._model.get_sentence_embedding_dimension
                self._dim = int(get_dim())
        return self._model

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._load()
        return self._dim  # type: ignore[return-value]

    def embed(self, texts: Sequence[str]):
        import numpy as np

        model = self._load()
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = model.encode(list(texts), batch_size=self._batch_size, normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)
