"""The console's two domain services on the doubles: `CubeLister` lists a principal's personal
cube and the knowledge bases `permissions.allowed` lets them read, showing grants only to the
owner or an admin; `DeadLetterDesk` answers admins (or nobody at all, keys off) and redrives the
chosen letters, removing those it sent and keeping those that can never succeed."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from memcube.domain.cube_list import CubeLister
from memcube.domain.dead_letter_desk import DeadLetterDesk
from memcube.domain.errors import Forbidden
from memcube.domain.model import DeadLetter, Principal
from memcube.domain.permissions import CubeAcl
from tests.doubles.dead_letters import InMemoryDeadLetters
from tests.doubles.directory import InMemoryDirectory
from tests.doubles.memories import InMemoryMemories

AT = "2026-01-01T00:00:00Z"


def lister() -> tuple[CubeLister, InMemoryDirectory]:
    users = InMemoryDirectory()
    for user in ("alice", "bob", "carol"):
        users.register_user(user)
    users.create_cube(CubeAcl(cube_id="kb-team", owner_id="alice", readers=["bob"], created_at=AT))
    users.create_cube(CubeAcl(cube_id="kb-ops", owner_id="carol", writers=["alice"], created_at=AT))
    return CubeLister(users, InMemoryMemories()), users


def test_a_user_sees_their_personal_cube_and_the_knowledge_bases_they_may_read_with_their_right() -> None:
    cubes, _ = lister()
    listed = cubes.list(Principal(user_id="alice", scopes=frozenset({"user"})))
    assert [(c.cube_id, c.kind, c.role, c.memories) for c in listed.cubes] == [
        ("alice", "personal", "owner", 0),
        ("kb-ops", "knowledge_base", "writer", 0),
        ("kb-team", "knowledge_base", "owner", 0),
    ]
    by_id = {c.cube_id: c for c in listed.cubes}
    assert by_id["kb-team"].readers == ["bob"]  # the owner sees the grants
    assert by_id["kb-ops"].readers is None and by_id["kb-ops"].owner_id == "carol"  # a writer does not


def test_an_admin_acting_for_a_reader_sees_the_grants_and_a_stranger_sees_only_their_own_cube() -> None:
    cubes, _ = lister()
    as_admin = cubes.list(Principal(user_id="bob", scopes=frozenset({"admin"})))
    assert {c.cube_id: c.readers for c in as_admin.cubes} == {"bob": None, "kb-team": ["bob"]}
    assert [c.cube_id for c in cubes.list(Principal(user_id="dave", scopes=frozenset({"user"}))).cubes] == ["dave"]


class SentQueue:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send_raw(self, entries: Sequence[tuple[str, str, str]]) -> None:
        self.sent.extend(entries)


def letter(message_id: str, body: str) -> DeadLetter:
    return DeadLetter(message_id=message_id, body=body, reason="boom", attempts=3, failed_at=AT)


@pytest.mark.parametrize("scope", ["user", "service"])
def test_only_an_admin_may_list_or_redrive_dead_letters(scope: str) -> None:
    store, queue = InMemoryDeadLetters(), SentQueue()
    store.record_dead_letter(letter("m-1", "{}"))
    desk = DeadLetterDesk(store, queue)
    caller = Principal(user_id="eve", scopes=frozenset({scope}))
    with pytest.raises(Forbidden):
        desk.list(caller)
    with pytest.raises(Forbidden):
        desk.redrive(caller, None)
    assert queue.sent == [] and len(store.list_dead_letters()) == 1
    assert [d.message_id for d in desk.list(None)] == ["m-1"]  # keys off: the local operator


def test_a_redrive_of_an_invalid_body_sends_nothing_and_keeps_the_letter() -> None:
    store, queue = InMemoryDeadLetters(), SentQueue()
    store.record_dead_letter(letter("m-bad", '{"v": 1}'))
    desk = DeadLetterDesk(store, queue)
    result = desk.redrive(Principal(user_id="root", scopes=frozenset({"admin"})), ["m-bad", "m-none"])
    assert (result.sent, result.invalid, result.not_found) == ([], ["m-bad"], ["m-none"])
    assert queue.sent == [] and [d.message_id for d in store.list_dead_letters()] == ["m-bad"]
