"""The contract of `MessageLog` (a conversation's own messages), run once per backend's adapter
(the in-memory double, SQLite, DynamoDB on moto here; DynamoDB Local in the real-server tier)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from memcube.domain.conversation import ConversationMessage
from memcube.ports import MessageLog, Stores
from memcube_local import sqlite


@pytest.fixture
def messages(stores: Stores) -> MessageLog:
    return stores.messages


def msg(
    n: int, *, user: str = "alice", session: str = "s1", at: str = "2026-12-06T10:00:00.000Z"
) -> ConversationMessage:
    return ConversationMessage(
        message_id=f"m-{user}-{session}-{n}",
        user_id=user,
        session_id=session,
        role="user" if n % 2 == 0 else "assistant",
        content=f"message {n}",
        seq=f"{at}#{n:04d}",
        created_at=at,
        references=["mem-1"] if n % 2 else [],
        task_id="task-1",
    )


def test_a_sessions_last_messages_come_back_oldest_first_and_whole(messages: MessageLog) -> None:
    sent = [msg(n) for n in range(5)]
    messages.append_messages(sent)
    assert messages.recent_messages("alice", "s1", 3) == sent[2:]
    assert messages.recent_messages("alice", "s1", 50) == sent


def test_messages_are_confined_to_their_user_and_session(messages: MessageLog) -> None:
    messages.append_messages([msg(0), msg(1, session="s10"), msg(2, user="bob")])
    assert [m.message_id for m in messages.recent_messages("alice", "s1", 10)] == ["m-alice-s1-0"]
    assert [m.message_id for m in messages.recent_messages("alice", "s10", 10)] == ["m-alice-s10-1"]
    assert messages.recent_messages("bob", "s1", 10)[0].user_id == "bob"
    assert messages.recent_messages("carol", "s1", 10) == []


def test_a_repeated_message_id_overwrites_and_never_doubles(messages: MessageLog) -> None:
    messages.append_messages([msg(0), msg(1)])
    messages.append_messages([msg(0), msg(1)])
    assert len(messages.recent_messages("alice", "s1", 10)) == 2


def test_sessions_are_listed_most_recent_first(messages: MessageLog) -> None:
    messages.append_messages([msg(0, session="old", at="2026-12-06T09:00:00.000Z")])
    messages.append_messages([msg(0, session="new", at="2026-12-06T11:00:00.000Z")])
    messages.append_messages([msg(0, session="mid", at="2026-12-06T10:00:00.000Z")])
    assert messages.recent_sessions("alice", 10) == ["new", "mid", "old"]
    assert messages.recent_sessions("alice", 2) == ["new", "mid"]
    messages.append_messages([msg(1, session="old", at="2026-12-06T12:00:00.000Z")])  # old is active again
    assert messages.recent_sessions("alice", 1) == ["old"]
    assert messages.recent_sessions("bob", 10) == []


def test_delete_erases_one_session_or_all_of_a_users_messages(messages: MessageLog) -> None:
    messages.append_messages([msg(0), msg(1), msg(0, session="s2"), msg(0, user="bob")])
    assert messages.delete_messages("alice", "s1") == 2
    assert messages.recent_messages("alice", "s1", 10) == []
    assert messages.recent_sessions("alice", 10) == ["s2"]
    assert messages.delete_messages("alice", None) == 1
    assert messages.recent_sessions("alice", 10) == []
    assert len(messages.recent_messages("bob", "s1", 10)) == 1


def test_messages_survive_reopening(open_stores: Callable[[], Stores]) -> None:
    open_stores().messages.append_messages([msg(0), msg(1)])
    again = open_stores().messages
    assert [m.content for m in again.recent_messages("alice", "s1", 10)] == ["message 0", "message 1"]


def test_a_store_file_of_the_previous_schema_gains_the_message_log_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    old = sqlite3.connect(path)
    old.executescript(sqlite.SCHEMA.split("CREATE TABLE IF NOT EXISTS conversation_messages")[0])
    old.execute("PRAGMA user_version=5")
    old.close()
    upgraded = sqlite.open_stores(path)
    upgraded.messages.append_messages([msg(0)])
    assert upgraded.messages.recent_messages("alice", "s1", 5) == [msg(0)]
    upgraded.close()
