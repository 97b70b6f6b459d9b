"""The files of a memory store directory and its manifest: what a store is, read first and written last.

The manifest is replaced atomically (temp file, fsync, ``os.replace``), so a store on disk is either complete or
visibly incomplete, never half-marked.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from videomind.errors import StoreError
from videomind.memory.schema import SCHEMA_VERSION
from videomind.types import VideoInfo

MANIFEST = "manifest.json"
DB = "memory.db"
DOCS_INDEX = "docs.faiss"
VISUAL_INDEX = "visual.faiss"


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def rebuild_hint(directory: Path, manifest: dict[str, Any] | None = None) -> str:
    video = ((manifest or {}).get("video") or {}).get("path") or "<video>"
    return f"delete {directory} or run `videomind ingest --rebuild {video}`"


def new_manifest(key: str, info: VideoInfo, config, embedder) -> dict[str, Any]:
    """The manifest of a new, empty store (reads ``embedder.dim``, which may load the model)."""
    now = utc_now()
    return {
        "schema_version": SCHEMA_VERSION,
        "key": key,
        "video": info.to_dict(),
        "models": {"text_embed": getattr(embedder, "name", type(embedder).__name__),
                   "text_dim": int(embedder.dim), "visual_embed": config.models.visual_embed},
        "config_hash": config.hash("ingest", "memory", "models"),
        "config": config.to_dict(),
        "complete": False,
        "created": now,
        "updated": now,
    }


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Atomic: write a temp file, fsync, then os.replace."""
    tmp = directory / (MANIFEST + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, directory / MANIFEST)


def update_manifest(directory: Path, **fields: Any) -> dict[str, Any]:
    """Add ``fields`` to the manifest of the store in ``directory`` (replaced atomically); returns the new one.

    Raises:
        StoreError: as :func:`read_manifest`.
    """
    manifest = {**read_manifest(directory), **fields, "updated": utc_now()}
    write_manifest(directory, manifest)
    return manifest


def peek_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of the store in ``directory`` as it is on disk, unchecked; {} when missing or unreadable. For
    deciding what to do with a store without opening it (which loads its indexes) or where an error is no answer."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of the store in ``directory``.

    Raises:
        StoreError: no manifest, an unreadable one, or one of another schema version; the message says the fix.
    """
    mpath = directory / MANIFEST
    if not mpath.is_file():
        raise StoreError(f"{directory} is not a memory store (no {MANIFEST}): {rebuild_hint(directory)}")
    try:
        manifest = json.loads(mpath.read_text())
        if not isinstance(manifest, dict) or "video" not in manifest or "models" not in manifest:
            raise ValueError("missing keys")
    except (OSError, ValueError) as e:
        raise StoreError(f"memory store {directory} has a corrupt manifest ({e}): "
                         f"{rebuild_hint(directory)}") from e
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise StoreError(f"memory store {directory} has schema version {version}, this VideoMind reads "
                         f"version {SCHEMA_VERSION}: {rebuild_hint(directory, manifest)}")
    return manifest
