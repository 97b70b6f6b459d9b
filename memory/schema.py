"""The SQLite schema of one memory store and how to open it (WAL, FTS5).

SQLite is the source of truth: every record *and every vector* (as a float32 blob) is written in the one
transaction of the chunk it came from. The FAISS index files next to it are caches that are rebuilt from the
blobs whenever they are missing, stale or unreadable.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Iterator

SCHEMA_VERSION = 1

DDL = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS chunks(idx INTEGER PRIMARY KEY, start REAL, end REAL, notes TEXT);
CREATE TABLE IF NOT EXISTS shots(chunk INTEGER, idx INTEGER, start REAL, end REAL, PRIMARY KEY(chunk, idx));
CREATE TABLE IF NOT EXISTS texts(
    id INTEGER PRIMARY KEY, start REAL, end REAL, source TEXT, text TEXT, confidence REAL, meta TEXT,
    chunk INTEGER, clip INTEGER, vec BLOB);
CREATE INDEX IF NOT EXISTS texts_time ON texts(start);
CREATE INDEX IF NOT EXISTS texts_clip ON texts(clip);
CREATE INDEX IF NOT EXISTS texts_chunk ON texts(chunk);
CREATE TABLE IF NOT EXISTS keyframes(
    id INTEGER PRIMARY KEY, t REAL, shot INTEGER, thumbnail TEXT, chunk INTEGER, clip INTEGER, vec BLOB);
CREATE INDEX IF NOT EXISTS keyframes_time ON keyframes(t);
CREATE INDEX IF NOT EXISTS keyframes_clip ON keyframes(clip);
CREATE TABLE IF NOT EXISTS events(
    id INTEGER PRIMARY KEY, scale TEXT, start REAL, end REAL, parent INTEGER, transcript TEXT, onscreen TEXT,
    captions TEXT, summary TEXT, keyframes TEXT, n_children INTEGER);
CREATE INDEX IF NOT EXISTS events_scale ON events(scale, start);
CREATE INDEX IF NOT EXISTS events_parent ON events(parent);
CREATE TABLE IF NOT EXISTS docs(
    id INTEGER PRIMARY KEY, event INTEGER, scale TEXT, source TEXT, start REAL, end REAL, text TEXT);
CREATE VIRTUAL TABLE IF NOT EXISTS docs_fts USING fts5(body, tokenize='porter unicode61');
CREATE INDEX IF NOT EXISTS docs_event ON docs(event);
CREATE TABLE IF NOT EXISTS vecs(pos INTEGER PRIMARY KEY, doc INTEGER, vec BLOB);
CREATE INDEX IF NOT EXISTS vecs_doc ON vecs(doc);
CREATE TABLE IF NOT EXISTS entities(
    id INTEGER PRIMARY KEY, name TEXT, key TEXT UNIQUE, aliases TEXT, kind TEXT, count INTEGER, first REAL,
    last REAL, vec BLOB);
CREATE TABLE IF NOT EXISTS mentions(entity INTEGER, text INTEGER, start REAL, end REAL);
CREATE INDEX IF NOT EXISTS mentions_entity ON mentions(entity, start);
CREATE TABLE IF NOT EXISTS relations(
    a INTEGER, b INTEGER, count INTEGER, first REAL, last REAL, text INTEGER, PRIMARY KEY(a, b));
"""


def connect(path: Path, create: bool = False) -> sqlite3.Connection:
    """Open the store's database (WAL mode, autocommit off: callers wrap writes in ``with conn:``)."""
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level="DEFERRED")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=OFF")
    if create:
        with conn:
            conn.executescript(DDL)
            conn.execute("INSERT OR REPLACE INTO meta VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))
    return conn


@contextlib.contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """Run the block's queries on one snapshot of the database: one read transaction.

    Without it each SELECT is a transaction of its own (the connection begins one implicitly only before a
    write), so a reader that loads docs, then the vector -> doc map, then the vectors could get a writer's chunk
    in between: vectors of docs it does not know, and searches that index past its arrays. In WAL mode the
    writer commits meanwhile and the reader keeps its snapshot. The transaction ends with the block, so an idle
    reader does not hold the WAL back from checkpoints. Inside a transaction already (a writer's), the block
    reads that one."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.rollback()  # nothing was written: ending the read transaction is all that is left
