"""The embedded store file's schema 7 joins two version-6 lines (the expiry index of r16-expiry,
the message log of r16-chat): a file of schema 5, or of either schema 6, opens upgraded to 7 with
every table and index of both, its rows kept, and both features working. Items keep their
embedding in a column of their own: a file whose items hold it in their JSON body is moved over
on open."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from memcube.domain.model import MemoryItem
from memcube_local import sqlite
from tests.contract.support import expiring, memory
from tests.contract.test_message_log_contract import msg

EXPIRY = ("items_by_expiry",)
MESSAGE_LOG = ("conversation_messages",)


def _old_schema(left_out: tuple[str, ...]) -> str:
    """Today's schema script without the statements that name any of `left_out`."""
    statements = [s for s in sqlite.SCHEMA.split(";") if s.strip()]
    return ";".join(s for s in statements if not any(name in s for name in left_out)) + ";"


@pytest.mark.parametrize(
    ("version", "left_out"),
    [(5, EXPIRY + MESSAGE_LOG), (6, EXPIRY), (6, MESSAGE_LOG)],
    ids=["v5", "v6-message-log", "v6-expiry"],
)
def test_an_older_store_file_opens_upgraded_with_both_the_expiry_index_and_the_message_log(
    tmp_path: Path, version: int, left_out: tuple[str, ...]
) -> None:
    path = tmp_path / "store.db"
    old = sqlite3.connect(path)
    old.executescript(_old_schema(left_out))
    old.execute("INSERT INTO users (user_id) VALUES ('alice')")
    old.execute(f"PRAGMA user_version={version}")
    old.commit()
    old.close()

    stores = sqlite.open_stores(path)
    try:
        assert stores.directory.is_user("alice")  # rows of the old file are kept
        stores.memories.put_memory(expiring("m1", "alice likes tea", 1_000))
        stores.memories.put_memory(expiring("m2", "alice likes coffee", None))
        assert [i.id for i in stores.expiring.expired_memories(2_000, 10)] == ["m1"]
        stores.messages.append_messages([msg(0)])
        assert stores.messages.recent_messages("alice", "s1", 5) == [msg(0)]
    finally:
        stores.close()
    check = sqlite3.connect(path)
    names = {r[0] for r in check.execute("SELECT name FROM sqlite_master")}
    (now,) = check.execute("PRAGMA user_version").fetchone()
    check.close()
    assert now == sqlite.VERSION == 7
    assert {"items_by_expiry", "conversation_messages", "conversation_messages_by_session"} <= names


def _with(item: MemoryItem, embedding: list[float] | None) -> MemoryItem:
    return item.model_copy(update={"metadata": item.metadata.model_copy(update={"embedding": embedding})})


EXACT = [0.1, 1 / 3, -2.5e-300, 1e300, 0.0]
"""Floats a float32 column would change: the vector column keeps every bit."""


def test_a_store_file_holding_embeddings_in_item_bodies_opens_with_them_moved_to_the_vector_column(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    old = sqlite3.connect(path)
    old.executescript(sqlite.SCHEMA.replace(", vector BLOB", ""))  # items as memcube wrote them before
    items = [_with(memory("m1", "alice likes tea"), EXACT), _with(memory("m2", "bob likes jazz"), None)]
    for item in items:
        meta = item.metadata
        old.execute(
            "INSERT INTO items (id, cube_id, status, created_at, body) VALUES (?, ?, ?, ?, ?)",
            (item.id, meta.cube_id, meta.status, meta.created_at, item.model_dump_json()),
        )
    old.execute(f"PRAGMA user_version={sqlite.VERSION}")
    old.commit()
    old.close()

    stores = sqlite.open_stores(path)
    try:
        assert stores.memories.get_memories(["m1", "m2"]) == items
    finally:
        stores.close()
    check = sqlite3.connect(path)
    rows = dict(check.execute("SELECT id, vector FROM items").fetchall())
    bodies = [json.loads(b) for (b,) in check.execute("SELECT body FROM items")]
    check.close()
    assert rows["m2"] is None
    assert len(rows["m1"]) == 8 * len(EXACT)  # float64, packed
    assert all("embedding" not in body["metadata"] for body in bodies)


@pytest.mark.parametrize("embedding", [EXACT, [], None], ids=["floats", "empty", "none"])
def test_an_items_embedding_reads_back_exactly_as_written(tmp_path: Path, embedding: list[float] | None) -> None:
    stores = sqlite.open_stores(tmp_path / "store.db")
    try:
        item = _with(memory("m1", "alice likes tea"), embedding)
        stores.memories.put_memory(item)
        assert stores.memories.get_memory("m1") == item
        assert stores.memories.get_memory("m1").metadata.embedding == embedding  # type: ignore[union-attr]
        changed = _with(item, [2.0, -1 / 7]).model_copy(deep=True)
        changed.metadata.version = item.metadata.version + 1
        assert stores.memories.update_memory(changed, item.metadata.version)
        assert stores.memories.get_memory("m1") == changed
    finally:
        stores.close()
