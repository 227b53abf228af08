"""The embedded store file's schema 7 joins two version-6 lines (the expiry index of r16-expiry,
the message log of r16-chat): a file of schema 5, or of either schema 6, opens upgraded to 7 with
every table and index of both, its rows kept, and both features working."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from memcube_local import sqlite
from tests.contract.support import expiring
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
