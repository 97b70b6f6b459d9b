"""Stage cache: the outputs of the expensive model stages of one video, keyed by the settings that produced them.

A memory store is keyed by the video and the whole config, so any config change starts a new store. The stage
cache lets that new store reuse what did not change: Whisper's transcript of each ASR window, the OCR lines of each
keyframe, each keyframe's image-encoder vector (CLIP; the perceptual descriptor is cheaper to recompute than to
look up) and the VLM captions of each chunk. Each lookup key hashes exactly the settings that change that output
(:func:`stage_settings`) plus the call's own geometry (the audio window, the keyframe time), so changing
``memory.clip_seconds`` reuses all of them while changing ``ingest.asr_vad`` re-runs Whisper only.

Decoding and scene detection always re-run: they are cheap and produce the keyframe images the new store needs.

One SQLite file per video (``<library>/.stage-cache/<content hash>.sqlite``, WAL), one row per (stage, key).
Payloads are JSON (texts) or raw little-endian float32 bytes (vectors); never pickle. Every write commits at once,
so an interrupted ingest keeps what it computed. A cache that cannot be read never stops ingestion: it is moved
aside with a warning and rebuilt, or switched off for the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# Bump when a stage's code changes its output for the same settings (e.g. OCR pre-processing), so old rows miss.
VERSION = 1
STAGES = ("asr", "ocr", "visual_embed", "captions")
_SCHEMA = """CREATE TABLE IF NOT EXISTS stage_cache (
    stage TEXT NOT NULL, key TEXT NOT NULL, kind TEXT NOT NULL, dim INTEGER NOT NULL, payload BLOB NOT NULL,
    PRIMARY KEY (stage, key)) WITHOUT ROWID"""


def settings_key(settings: dict[str, Any]) -> str:
    """A stable key for a dict of settings: sha256 of its sorted, compact JSON (64 hex)."""
    blob = json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def stage_settings(config, stage: str) -> dict[str, Any]:
    """The settings of ``config`` that change the output of ``stage`` (one of :data:`STAGES`)."""
    m, i = config.models, config.ingest
    frames = {"fps": i.fps, "frame_size": i.frame_size}  # the sampled pictures OCR, CLIP and the VLM look at
    return {
        "asr": {"model": m.asr, "language": i.asr_language, "vad": i.asr_vad},
        "ocr": {"model": m.ocr, "min_confidence": i.ocr_min_confidence, **frames},
        "visual_embed": {"model": m.visual_embed, **frames},
        "captions": {"model": m.vlm, "clip_seconds": config.memory.clip_seconds, **frames},
    }[stage]


def stage_key(config, stage: str, **call: Any) -> str:
    """The cache key of one call of ``stage``: its settings in ``config`` plus the call's own inputs ``call``
    (JSON-able: the ASR window's offset and length, a keyframe's time, ...)."""
    return settings_key({"stage": stage, "version": VERSION, **stage_settings(config, stage), **call})


class StageCache:
    """``get(stage, key)`` / ``put(stage, key, value)`` over one SQLite file; safe to share between threads.

    Values are JSON-able (lists, dicts, str, numbers, None) or 1-D float32 vectors (``np.ndarray``, returned as
    a writable float32 copy). ``stats[stage]`` counts ``{"hit": n, "miss": m}`` of :meth:`get`.

    Args:
        path: the SQLite file; created (with its directory) when missing.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.stats: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()
        self._db = self._open()

    # ------------------------------------------------------------------------------------------------- public
    def get(self, stage: str, key: str) -> Any | None:
        """The stored value, or None (a miss) when absent, unreadable or the cache is off."""
        row = self._execute("SELECT kind, dim, payload FROM stage_cache WHERE stage = ? AND key = ?", (stage, key))
        value = None
        if row is not None:
            try:
                value = _decode(*row)
            except (ValueError, TypeError) as e:
                logger.warning("stage cache %s: unreadable %s row (%s); recomputing it", self.path, stage, e)
        with self._lock:
            self.stats.setdefault(stage, {"hit": 0, "miss": 0})["miss" if value is None else "hit"] += 1
        return value

    def put(self, stage: str, key: str, value: Any) -> None:
        """Store ``value`` (committed at once); a failure to write is logged and the cache switched off."""
        kind, dim, payload = _encode(value)
        self._execute("INSERT OR REPLACE INTO stage_cache VALUES (?, ?, ?, ?, ?)", (stage, key, kind, dim, payload),
                      fetch=False)

    def __len__(self) -> int:
        row = self._execute("SELECT count(*) FROM stage_cache", ())
        return int(row[0]) if row else 0

    @property
    def enabled(self) -> bool:
        return self._db is not None

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> StageCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------ helpers
    def _open(self) -> sqlite3.Connection | None:
        try:
            return self._connect()
        except (sqlite3.Error, OSError) as e:
            aside = self._move_aside()
            logger.warning("stage cache %s is unreadable (%s); moved it to %s and starting an empty one",
                           self.path, e, aside)
        try:
            return self._connect()
        except (sqlite3.Error, OSError) as e:
            logger.warning("stage cache %s cannot be created (%s); ingesting without it", self.path, e)
            return None

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit, so each put is durable at once; one connection shared under _lock
        # (the speech thread and the main thread both use it).
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            status = db.execute("PRAGMA quick_check").fetchone()
            if not status or status[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {status}")
        except BaseException:
            db.close()
            raise
        return db

    def _move_aside(self) -> Path:
        aside = self.path.with_name(self.path.name + ".corrupt")
        for suffix in ("", "-wal", "-shm"):  # a stale WAL must not be replayed onto the new file
            src = self.path.with_name(self.path.name + suffix)
            try:
                if suffix:
                    src.unlink(missing_ok=True)
                elif src.exists():
                    src.replace(aside)
            except OSError as e:
                logger.warning("could not move %s aside: %s", src, e)
        return aside

    def _execute(self, sql: str, args: tuple, fetch: bool = True):
        with self._lock:
            if self._db is None:
                return None
            try:
                cur = self._db.execute(sql, args)
                return cur.fetchone() if fetch else None
            except sqlite3.Error as e:
                logger.warning("stage cache %s failed (%s); ingesting without it from here", self.path, e)
                self._db.close()
                self._db = None
                return None


def _encode(value: Any) -> tuple[str, int, bytes]:
    if isinstance(value, np.ndarray):
        v = np.ascontiguousarray(value, dtype="<f4")
        if v.ndim != 1:
            raise ValueError(f"stage cache vectors are 1-D, got shape {value.shape}")
        return "f32", int(v.shape[0]), v.tobytes()
    return "json", 0, json.dumps(value, separators=(",", ":"), allow_nan=True).encode()


def _decode(kind: str, dim: int, payload: bytes) -> Any:
    if kind == "f32":
        v = np.frombuffer(payload, dtype="<f4")
        if v.shape != (dim,):
            raise ValueError(f"vector of {v.size} floats, expected {dim}")
        return v.astype(np.float32)  # a writable copy
    if kind == "json":
        return json.loads(payload)
    raise ValueError(f"unknown payload kind {kind!r}")
