"""The embedded default's SQLite adapters: the system of record (one adapter per storage port
over one connection to `store.db`), the search index (`index`) and the durable queue (`queue`),
each file behind one shared connection helper (`db`)."""

from __future__ import annotations

from pathlib import Path

from memcube.ports import Stores
from memcube_local.sqlite.counters import SqliteCounter
from memcube_local.sqlite.db import SqliteDb
from memcube_local.sqlite.dead_letters import SqliteDeadLetters
from memcube_local.sqlite.directory import SqliteDirectory
from memcube_local.sqlite.erasures import SqliteErasureMarks
from memcube_local.sqlite.idempotency import SqliteIdempotencyKeys
from memcube_local.sqlite.keys import SqliteKeys
from memcube_local.sqlite.memories import SqliteMemories
from memcube_local.sqlite.messages import SqliteMessages
from memcube_local.sqlite.tasks import SqliteTasks

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, created_at TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_by_user ON tasks (user_id, created_at);
CREATE TABLE IF NOT EXISTS task_parts (
    task_id TEXT NOT NULL REFERENCES tasks (task_id), cube_id TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (task_id, cube_id));
CREATE TABLE IF NOT EXISTS idempotency_keys (key TEXT PRIMARY KEY, task_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY, cube_id TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL,
    body TEXT NOT NULL, vector BLOB);
CREATE INDEX IF NOT EXISTS items_by_cube ON items (cube_id, status, created_at, id);
CREATE TABLE IF NOT EXISTS content_guards (
    cube_id TEXT NOT NULL, content_hash TEXT NOT NULL, memory_id TEXT NOT NULL,
    PRIMARY KEY (cube_id, content_hash));
CREATE TABLE IF NOT EXISTS lsh_bands (
    cube_id TEXT NOT NULL, band_key TEXT NOT NULL, memory_id TEXT NOT NULL,
    PRIMARY KEY (cube_id, band_key, memory_id));
CREATE INDEX IF NOT EXISTS lsh_bands_by_memory ON lsh_bands (memory_id);
CREATE TABLE IF NOT EXISTS users (user_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS rate_windows (
    key TEXT NOT NULL, window_start INTEGER NOT NULL, used INTEGER NOT NULL, ends INTEGER NOT NULL,
    PRIMARY KEY (key, window_start));
CREATE INDEX IF NOT EXISTS rate_windows_by_end ON rate_windows (ends);
CREATE TABLE IF NOT EXISTS cubes (cube_id TEXT PRIMARY KEY, version INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, created_at TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS api_keys_by_user ON api_keys (user_id, created_at);
CREATE TABLE IF NOT EXISTS erasures (
    cube_id TEXT NOT NULL, user_id TEXT NOT NULL, erased_at TEXT NOT NULL, PRIMARY KEY (cube_id, user_id));
CREATE INDEX IF NOT EXISTS items_by_expiry ON items (json_extract(body, '$.metadata.expires_at'))
    WHERE json_extract(body, '$.metadata.expires_at') IS NOT NULL;
CREATE TABLE IF NOT EXISTS conversation_messages (
    message_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, session_id TEXT NOT NULL, seq TEXT NOT NULL,
    body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS conversation_messages_by_session ON conversation_messages (user_id, session_id, seq);
"""
VERSION = 7


def open_stores(path: Path) -> Stores:
    """Every storage port on the store file `path`, sharing one connection (created or upgraded
    to the current schema on open)."""
    db = SqliteDb(path, SCHEMA, version=VERSION)
    memories = SqliteMemories(db)
    if db.upgraded_from is not None and db.upgraded_from < 3:
        memories.backfill_bands()
    return Stores(
        tasks=SqliteTasks(db),
        idempotency=SqliteIdempotencyKeys(db),
        dead_letters=SqliteDeadLetters(db),
        memories=memories,
        erasures=SqliteErasureMarks(db),
        directory=SqliteDirectory(db),
        api_keys=SqliteKeys(db),
        counter=SqliteCounter(db),
        messages=SqliteMessages(db),
        close=db.close,
        expiring=memories,
    )
