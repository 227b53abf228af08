"""Ownership from identity, not from first write (issue 17, findings 1, 2 and the cube oracles of 8),
on the embedded default with API keys on, through the Lambda entry: a user exists from the
moment their key is made (a JWT subject or a user a service key acts for: from their first
request), so nobody can create, write or grant a cube whose id is theirs; a knowledge base's id
is never a user."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memcube.domain.auth import Authority, TokenRules, VerifiedToken
from memcube.domain.errors import Conflict, Forbidden
from memcube.domain.model import Principal
from memcube.settings import Settings
from memcube.wiring import Container
from memcube_local.embedded import EmbeddedWorker
from memcube_local.wiring import LocalContainer
from tests.api.conftest import serve
from tests.lambda_support import call


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Container]:
    """The embedded default (SQLite files, worker running) with API keys on."""
    container = LocalContainer(
        Settings(backend="embedded", embedder="hash", auth="keys", data_dir=tmp_path / "data", sync_timeout_seconds=20)
    )
    worker = EmbeddedWorker(container)
    worker.start()
    yield serve(monkeypatch, container)
    worker.stop()
    container.close()


class As:
    def __init__(self, container: Container, user: str, scope: Any = "user") -> None:
        _, plaintext = container.keys.create(user, scope)
        self.user = user
        self.headers = {"authorization": f"Token {plaintext}"}

    def post(self, path: str, **body: Any) -> tuple[int, dict[str, Any]]:
        return call("POST", path, body={"user_id": self.user, **body}, headers=self.headers)

    def add(self, cubes: list[str], text: str, **body: Any) -> tuple[int, dict[str, Any]]:
        return self.post("/product/add", writable_cube_ids=cubes, messages=text, async_mode="sync", **body)

    def search(self, query: str, cubes: list[str] | None = None, **body: Any) -> list[str]:
        code, payload = self.post("/product/search", query=query, readable_cube_ids=cubes or [self.user], **body)
        assert code == 200, payload
        return [m["memory"] for bucket in payload["data"]["text_mem"] for m in bucket["memories"]]


def test_a_users_personal_cube_cannot_be_claimed_before_the_user_writes(keyed: Container) -> None:
    # Given carol has a key and has written nothing
    alice, carol = As(keyed, "alice"), As(keyed, "carol")
    # When alice tries to create a cube with carol's id, write into it, or grant it
    code, payload = alice.post("/product/create_cube", cube_id="carol")
    assert code == 409, payload
    code, _ = alice.add(["carol"], "Carol salary account is DE00 ATTACKER")
    assert code == 403
    code, _ = alice.post("/product/grant_cube", cube_id="carol", target_user_id="bob", permission="write")
    assert code == 403
    # Then nothing was planted: carol's cube is hers alone
    assert keyed.directory.get_cube("carol") is None
    assert carol.search("salary account") == []
    assert carol.add(["carol"], "My salary account is at the credit union.")[0] == 200


def test_the_create_cube_conflict_does_not_tell_a_user_from_an_existing_cube(keyed: Container) -> None:
    alice, _ = As(keyed, "alice"), As(keyed, "carol")
    assert alice.post("/product/create_cube", cube_id="kb-team")[0] == 200
    mallory = As(keyed, "mallory")
    (c1, for_user), (c2, for_cube) = (mallory.post("/product/create_cube", cube_id=c) for c in ("carol", "kb-team"))
    assert (c1, c2) == (409, 409)
    assert for_user["message"].replace("carol", "X") == for_cube["message"].replace("kb-team", "X")


def test_a_grant_by_a_non_owner_is_the_same_403_for_a_missing_and_an_existing_cube(keyed: Container) -> None:
    alice, mallory = As(keyed, "alice"), As(keyed, "mallory")
    assert alice.post("/product/create_cube", cube_id="kb-team")[0] == 200
    answers = [
        mallory.post("/product/grant_cube", cube_id=c, target_user_id="mallory", permission="read")
        for c in ("kb-team", "kb-missing")
    ]
    assert [code for code, _ in answers] == [403, 403]
    assert answers[0][1]["message"].replace("kb-team", "X") == answers[1][1]["message"].replace("kb-missing", "X")


def test_a_jwt_subject_exists_from_its_first_request_before_it_writes(keyed: Container) -> None:
    # Given a token user whose only request was a read (the Authority registers a verified subject)
    rules = TokenRules("sub", "memcube/service", "memcube/admin")
    caller = rules.principal(VerifiedToken(claims={"sub": "dora"}, scopes=()))
    Authority(keyed.keys, None, rules, keyed.directory).acting_for(caller, None)
    # Then nobody can create a cube with the subject's id
    code, _ = As(keyed, "alice").post("/product/create_cube", cube_id="dora")
    assert code == 409


def test_a_service_key_cannot_act_as_a_knowledge_bases_id(keyed: Container) -> None:
    # Given kb-alice owned by alice, holding a memory
    alice, service = As(keyed, "alice"), As(keyed, "ingest-bot", "service")
    assert alice.post("/product/create_cube", cube_id="kb-alice")[0] == 200
    assert alice.add(["kb-alice"], "The vault code rotates every Monday.")[0] == 200
    # When a service key acts as user_id=kb-alice: refused, for reads and writes
    as_kb = {"user_id": "kb-alice"}
    code, payload = call("POST", "/product/search", body={**as_kb, "query": "vault code"}, headers=service.headers)
    assert code == 403 and "knowledge base" in payload["message"]
    code, _ = call(
        "POST", "/product/add", body={**as_kb, "messages": "planted", "async_mode": "sync"}, headers=service.headers
    )
    assert code == 403
    # Then the base is still alice's: she reads and deletes it
    assert alice.search("vault code", ["kb-alice"]) == ["The vault code rotates every Monday."]
    code, _ = alice.post("/product/delete_cube", cube_id="kb-alice")
    assert code == 200


def test_a_key_cannot_be_made_for_a_knowledge_bases_id(keyed: Container) -> None:
    alice = As(keyed, "alice")
    assert alice.post("/product/create_cube", cube_id="kb-alice")[0] == 200
    with pytest.raises(Conflict):
        keyed.keys.create("kb-alice")


def test_a_user_erasure_takes_everything_in_the_personal_cube_whoever_wrote_it(keyed: Container) -> None:
    # Given an item in carol's personal cube written by someone else (as data planted before the
    # fix would be; written here through the store, which no endpoint allows any more)
    carol = As(keyed, "carol")
    assert carol.add(["carol"], "My own note about the garden.")[0] == 200
    planted = next(iter(keyed.memories.iter_memories("carol")))
    foreign = planted.model_copy(
        update={
            "id": "planted-1",
            "memory": "planted",
            "metadata": planted.metadata.model_copy(update={"user_id": "alice", "content_hash": "x"}),
        }
    )
    keyed.memories.put_memory(foreign)
    # When carol erases her data
    code, payload = carol.post("/product/delete_memory")
    assert code == 200, payload
    # Then her personal cube holds nothing
    assert list(keyed.memories.iter_memories("carol")) == []


def test_the_principal_check_happens_before_registration() -> None:
    """A user key acting for another user is refused and registers nobody."""
    from tests.doubles.directory import InMemoryDirectory

    store = InMemoryDirectory()
    authority = Authority(None, None, None, store)
    caller = Principal(user_id="alice", scopes=frozenset({"user"}))
    with pytest.raises(Forbidden):
        authority.acting_for(caller, "bob")
    assert not store.is_user("bob")


def test_audit_cubes_reports_a_cube_planted_in_a_users_id_before_the_fix(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from memcube.domain.permissions import CubeAcl
    from memcube_local.cli import main

    # Given data from before: alice claimed carol's id (carol had a key, no write) and wrote into it
    data = tmp_path / "data"
    container = LocalContainer(Settings(backend="embedded", embedder="hash", auth="keys", data_dir=data))
    try:
        container.keys.create("carol")
        container.directory.create_cube(CubeAcl(cube_id="carol", owner_id="alice", created_at="2026-01-01T00:00:00Z"))
        container.keys.create("dave")
        container.directory.create_cube(CubeAcl(cube_id="kb-fine", owner_id="dave", created_at="2026-01-01T00:00:00Z"))
    finally:
        container.close()
    # When the operator audits
    result = CliRunner().invoke(main, ["audit-cubes", "--data-dir", str(data)], env={"MEMCUBE_BACKEND": "embedded"})
    # Then the planted cube is reported, the real knowledge base is not
    assert result.exit_code == 1, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == [
        {
            "cube_id": "carol",
            "finding": "knowledge_base_with_a_users_id",
            "owner_id": "alice",
            "readers": [],
            "writers": [],
        }
    ]


def test_audit_cubes_reports_another_users_memories_in_a_personal_cube(keyed: Container) -> None:
    from memcube.domain.cubes import planted_cubes

    carol = As(keyed, "carol")
    assert carol.add(["carol"], "My own note about the garden.")[0] == 200
    assert planted_cubes(keyed.directory, keyed.api_keys, keyed.memories.iter_memories(None)) == []
    mine = next(iter(keyed.memories.iter_memories("carol")))
    metadata = mine.metadata.model_copy(update={"user_id": "alice", "content_hash": "x"})
    keyed.memories.put_memory(mine.model_copy(update={"id": "planted-1", "memory": "planted", "metadata": metadata}))
    findings = planted_cubes(keyed.directory, keyed.api_keys, keyed.memories.iter_memories(None))
    assert findings == [
        {
            "cube_id": "carol",
            "finding": "another_users_memories_in_a_personal_cube",
            "writer": "alice",
            "count": 1,
            "memory_ids": ["planted-1"],
        }
    ]


# --- task ids are per user (finding 3) --------------------------------------------------------


def test_the_same_business_task_id_from_two_users_is_two_tasks(keyed: Container) -> None:
    alice, bob = As(keyed, "alice"), As(keyed, "bob")
    # Given bob takes the task id alice will use (he learned it somewhere)
    code, payload = bob.add(["bob"], "Bob waters the plants on Fridays.", task_id="alice-task-1")
    assert code == 200, payload
    # When alice adds with it: no 409, no oracle, not pre-empted
    code, payload = alice.add(["alice"], "Alice's locker code is 4512.", task_id="alice-task-1")
    assert code == 200, payload
    assert payload["task_id"] == "alice-task-1"
    # Then each sees their own task under the same business id
    for user, text in ((alice, "locker"), (bob, "plants")):
        code, status = call(
            "GET", "/product/scheduler/status", query=f"user_id={user.user}&task_id=alice-task-1", headers=user.headers
        )
        assert code == 200, status
        [task] = status["data"]
        assert (task["task_id"], task["user_id"], task["status"]) == ("alice-task-1", user.user, "completed")
        assert any(text in m for m in user.search(text))


def test_a_users_conflicting_reuse_of_their_own_task_id_is_409(keyed: Container) -> None:
    alice = As(keyed, "alice")
    assert alice.add(["alice"], "Alice likes green tea.", task_id="t-1")[0] == 200
    assert alice.add(["alice"], "Alice likes green tea.", task_id="t-1")[0] == 200  # the same add: a replay
    code, payload = alice.add(["alice"], "Something else entirely.", task_id="t-1")
    assert code == 409 and "task_id: 't-1'" in payload["message"]


def test_memory_ids_cannot_be_computed_from_a_known_task_id(keyed: Container) -> None:
    import uuid

    from memcube.domain.ingest import ITEM_NAMESPACE
    from memcube.domain.tasks import scoped_task_id

    alice = As(keyed, "alice")
    code, payload = alice.add(["alice"], "Alice's bank PIN is 9931.", task_id="known-task")
    assert code == 200, payload
    [memory] = payload["data"]
    guesses = {
        str(uuid.uuid5(ITEM_NAMESPACE, f"{task}/alice/0"))
        for task in ("known-task", scoped_task_id("alice", "known-task"))
    }
    assert memory["memory_id"] not in guesses
