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
    """A sentence-transformers model resolved through the registry; loaded once, on first use.

    A folder that is only BERT + mean pooling + normalisation (the bundled all-MiniLM-L6-v2) runs on
    :class:`~videomind.models.bert_embed.BertSentenceEncoder`, which gives the same vectors without importing
    sentence-transformers (~5 s of a new process's first question); any other runs on sentence-transformers.
    """

    def __init__(self, name: str = "all-MiniLM-L6-v2", device: str = "cpu", allow_download: bool = False,
                 batch_size: int = 64):
        self.name = name
        self._resolved = resolve(name, "text-embed", allow_download)  # fail early with a clear error
        self._device = "cpu" if device == "auto" else device
        self._batch_size = batch_size
        self._encode = None  # texts -> np.ndarray [N, dim]
        self._lock = threading.Lock()
        self._dim: int | None = None

    def _load(self):
        with self._lock:
            if self._encode is None:
                from videomind.models import bert_embed

                path = self._resolved.path
                logger.info("loading text embedder %s from %s", self.name, path)
                if bert_embed.supports(path):
                    model = bert_embed.BertSentenceEncoder(path, self._device)
                    self._dim = model.dim
                    self._encode = lambda texts: model.encode(texts, batch_size=self._batch_size)
                else:
                    model = require("sentence_transformers", "offline").SentenceTransformer(path, device=self._device)
                    get_dim = getattr(model, "get_embedding_dimension", None) or \
                        model.get_sentence_embedding_dimension
                    self._dim = int(get_dim())
                    self._encode = lambda texts: model.encode(texts, batch_size=self._batch_size,
                                                              normalize_embeddings=True, convert_to_numpy=True,
                                                              show_progress_bar=False)
        return self._encode

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._load()
        return self._dim  # type: ignore[return-value]

    def embed(self, texts: Sequence[str]):
        import numpy as np

        encode = self._load()
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(encode(list(texts)), dtype=np.float32)
