"""Visual memory: keyframe thumbnails on disk, keyframe embeddings in a FAISS index.

Search by example (an image embedding, or an image when an image encoder is injected) always works when
keyframes carry embeddings; search by text needs a text->image encoder in the same space (CLIP-type), else
:class:`CapabilityUnavailable`.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path
from typing import Any, Callable

import numpy as np

from videomind.errors import CapabilityUnavailable
from videomind.memory.vectors import VectorIndex, from_blob, normalize

logger = logging.getLogger(__name__)

THUMB_DIR = "thumbnails"
THUMB_QUALITY = 80
THUMB_MAX_SIDE = 384
THUMB_FILE = re.compile(r"kf_[0-9]{7,}\.jpg(\.tmp)?")  # the names write_thumbnail gives, its temporary included

ImageEncoder = Callable[[Any], Any]  # RGB uint8 [H, W, 3] -> vector [D]
TextToImage = Callable[[str], Any]  # text -> vector [D] in the keyframe embedding space


def write_thumbnail(root: Path, kf_id: int, image: Any) -> str:
    """Save ``image`` as JPEG under thumbnails/; returns the path relative to the store directory."""
    from PIL import Image

    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"keyframe image must be [H, W, 3] uint8, got shape {arr.shape}")
    img = Image.fromarray(np.ascontiguousarray(arr[..., :3]).astype(np.uint8), "RGB")
    if max(img.size) > THUMB_MAX_SIDE:
        img.thumbnail((THUMB_MAX_SIDE, THUMB_MAX_SIDE))
    rel = f"{THUMB_DIR}/kf_{kf_id:07d}.jpg"
    tmp = root / (rel + ".tmp")
    img.save(tmp, format="JPEG", quality=THUMB_QUALITY)
    tmp.replace(root / rel)
    return rel


def remove_orphan_thumbnails(root: Path, conn: sqlite3.Connection) -> int:
    """Delete the files in thumbnails/ named the way :func:`write_thumbnail` names them that no keyframe row
    refers to; returns how many. Only while nothing can be writing the store: its writer holds the writer lock
    and no chunk of its own is in flight (a chunk's JPEGs are written before its rows commit)."""
    folder = root / THUMB_DIR
    if not folder.is_dir():
        return 0
    used = {(root / t).resolve() for (t,) in conn.execute("SELECT thumbnail FROM keyframes WHERE thumbnail "
                                                           "IS NOT NULL")}
    n = 0
    for p in folder.iterdir():
        if not THUMB_FILE.fullmatch(p.name) or p.is_symlink() or not p.is_file() or p.resolve() in used:
            continue
        try:
            p.unlink()
            n += 1
        except FileNotFoundError:
            pass
        except OSError as e:  # leave it: a stray file costs disk, not correctness
            logger.warning("could not remove orphaned thumbnail %s: %s", p, e)
    return n


class VisualMemory:
    """Keyframe vectors (those that have one) and their ids."""

    def __init__(self):
        self.index: VectorIndex | None = None
        self.ids: list[int] = []

    @property
    def dim(self) -> int | None:
        return self.index.dim if self.index is not None else None

    @classmethod
    def load(cls, conn: sqlite3.Connection, index_path: Path | None) -> VisualMemory:
        vm = cls()
        rows = conn.execute("SELECT id, vec FROM keyframes WHERE vec IS NOT NULL ORDER BY id").fetchall()
        if not rows:
            return vm
        vm.ids = [r[0] for r in rows]
        dim = len(from_blob(rows[0][1]))
        saved = VectorIndex.load(index_path, dim, len(rows)) if index_path else None
        vm.index = saved or VectorIndex(dim)
        if saved is None:
            vm.index.add(np.stack([from_blob(b) for _, b in rows]))
        return vm

    def add(self, kf_id: int, vec: np.ndarray) -> None:
        vec = normalize(np.asarray(vec, dtype=np.float32).ravel())
        if self.index is None:
            self.index = VectorIndex(len(vec))
        if len(vec) != self.index.dim:
            raise ValueError(f"keyframe embedding dim {len(vec)} != {self.index.dim} of earlier keyframes")
        self.index.add(vec)
        self.ids.append(kf_id)

    def query_vector(self, query: Any, image_encoder: ImageEncoder | None,
                     text_to_image: TextToImage | None) -> np.ndarray:
        if isinstance(query, str):
            if text_to_image is None:
                raise CapabilityUnavailable(
                    "visual search by text needs a CLIP-type encoder: set models.visual_embed to an open_clip "
                    "model (e.g. 'ViT-B-32:openai', pip install 'videomind[clip]'), or search by example image")
            return normalize(np.asarray(text_to_image(query), dtype=np.float32).ravel())
        arr = np.asarray(query)
        if arr.ndim == 1 or (arr.ndim == 2 and arr.shape[0] == 1):
            return normalize(arr.astype(np.float32).ravel())
        if arr.ndim == 3:
            if image_encoder is None:
                raise CapabilityUnavailable(
                    "visual search by image needs the keyframe image encoder; pass image_encoder= when opening "
                    "the memory, or pass the image's embedding")
            return normalize(np.asarray(image_encoder(arr), dtype=np.float32).ravel())
        raise ValueError(f"visual query must be text, an embedding [D] or an image [H, W, 3]; got {arr.shape}")

    def search(self, qvec: np.ndarray, k: int, allowed_ids: set[int] | None = None) -> list[tuple[int, float]]:
        if self.index is None or self.index.ntotal == 0:
            return []
        if len(qvec) != self.index.dim:
            raise ValueError(f"query embedding dim {len(qvec)} != keyframe embedding dim {self.index.dim}")
        allowed = None
        if allowed_ids is not None:
            allowed = np.asarray([i for i, kid in enumerate(self.ids) if kid in allowed_ids], dtype=np.int64)
        scores, pos = self.index.search(qvec, k, allowed)
        return [(self.ids[p], float(s)) for s, p in zip(scores.tolist(), pos.tolist())]
