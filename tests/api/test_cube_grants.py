"""Knowledge-base cubes with API keys on, through the Lambda entry: created with an owner, shared
by read and write grants; every endpoint refuses a cube the caller has no right to, all or nothing,
and the worker refuses a queued message the API would have refused."""

from __future__ import annotations

from typing import Any

import pytest

from memcube.domain.ingest import Delivery, Verdict
from memcube.domain.messages import QueuedAdd
from memcube.domain.model import SourceMessage
from memcube.wiring import Container
from tests.api.conftest import memory_container_with, serve
from tests.lambda_support import call, queue_of


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> Container:
    return serve(monkeypatch, memory_container_with(auth="keys"))


class As:
    def __init__(self, container: Container, user: str) -> None:
        _, plaintext = container.keys.create(user)
        self.user = user
        self.headers = {"authorization": f"Token {plaintext}"}

    def post(self, path: str, **body: Any) -> tuple[int, dict[str, Any]]:
        return call("POST", path, body={"user_id": self.user, **body}, headers=self.headers)

    def add(self, cubes: list[str], text: str = "The runbook says restart the pump first.") -> int:
        return self.post("/product/add", writable_cube_ids=cubes, messages=text)[0]

    def search(self, cubes: list[str]) -> int:
        return self.post("/product/search", readable_cube_ids=cubes, query="pump", relativity=0)[0]


@pytest.fixture
def team(keyed: Container) -> tuple[As, As, As]:
    alice, bob, mallory = As(keyed, "alice"), As(keyed, "bob"), As(keyed, "mallory")
    code, payload = alice.post("/product/create_cube", cube_id="kb-team")
    assert code == 200, payload
    assert (payload["data"]["owner_id"], payload["data"]["readers"], payload["data"]["writers"]) == ("alice", [], [])
    return alice, bob, mallory


def test_with_keys_on_a_cube_nobody_created_is_refused(keyed: Container) -> None:
    alice = As(keyed, "alice")
    assert alice.add(["kb-nowhere"]) == 403
    assert queue_of(keyed).sent == []


def test_the_owner_writes_and_reads_others_need_grants(keyed: Container, team: tuple[As, As, As]) -> None:
    alice, bob, _ = team
    assert alice.add(["kb-team"]) == 200
    assert alice.search(["kb-team"]) == 200
    assert bob.add(["kb-team"]) == 403
    assert bob.search(["kb-team"]) == 403


def test_read_grant_allows_search_but_not_add_and_write_allows_both(keyed: Container, team: tuple[As, As, As]) -> None:
    alice, bob, _ = team
    code, payload = alice.post("/product/grant_cube", cube_id="kb-team", target_user_id="bob", permission="read")
    assert code == 200 and payload["data"]["readers"] == ["bob"]
    assert bob.search(["kb-team"]) == 200
    assert bob.add(["kb-team"]) == 403
    alice.post("/product/grant_cube", cube_id="kb-team", target_user_id="bob", permission="write")
    assert bob.add(["kb-team"]) == 200


def test_revoking_read_takes_write_too(keyed: Container, team: tuple[As, As, As]) -> None:
    alice, bob, _ = team
    alice.post("/product/grant_cube", cube_id="kb-team", target_user_id="bob", permission="write")
    code, payload = alice.post("/product/revoke_cube", cube_id="kb-team", target_user_id="bob", permission="read")
    assert code == 200 and (payload["data"]["readers"], payload["data"]["writers"]) == ([], [])
    assert bob.search(["kb-team"]) == 403 and bob.add(["kb-team"]) == 403


def test_only_the_owner_grants_revokes_or_deletes_the_cube(keyed: Container, team: tuple[As, As, As]) -> None:
    alice, bob, mallory = team
    alice.post("/product/grant_cube", cube_id="kb-team", target_user_id="bob", permission="write")
    for path in ("/product/grant_cube", "/product/revoke_cube"):
        code, payload = bob.post(path, cube_id="kb-team", target_user_id="mallory", permission="write")
        assert code == 403 and "only the owner" in payload["message"]
    code, _ = bob.post("/product/delete_cube", cube_id="kb-team")
    assert code == 403
    assert mallory.add(["kb-team"]) == 403
    code, _ = alice.post("/product/delete_cube", cube_id="kb-team")
    assert code == 200
    assert keyed.directory.get_cube("kb-team") is None


def test_a_request_naming_one_forbidden_cube_writes_nothing(keyed: Container, team: tuple[As, As, As]) -> None:
    _, bob, _ = team
    assert bob.add(["bob", "kb-team"]) == 403
    assert queue_of(keyed).sent == []
    assert keyed.tasks.list_tasks("bob", 10) == []


def test_another_users_personal_cube_is_never_readable_or_writable(keyed: Container, team: tuple[As, As, As]) -> None:
    alice, _, mallory = team
    assert alice.add(["alice"]) == 200
    assert mallory.add(["alice"]) == 403
    assert mallory.search(["alice"]) == 403
    code, _ = mallory.post("/product/export_memory", cube_id="alice")
    assert code == 403
    code, _ = mallory.post("/product/delete_cube", cube_id="alice")
    assert code == 403
    code, _ = mallory.post("/product/create_cube", cube_id="alice")  # a personal cube cannot be claimed
    assert code == 409


def test_a_cube_cannot_be_created_twice(keyed: Container, team: tuple[As, As, As]) -> None:
    _, _, mallory = team
    code, payload = mallory.post("/product/create_cube", cube_id="kb-team")
    assert code == 409 and "is taken" in payload["message"]


@pytest.mark.parametrize("writer", ["mallory", "kb-team"], ids=["another user", "the knowledge base's own id"])
def test_the_worker_refuses_a_queued_message_for_a_cube_its_user_may_not_write(keyed: Container, writer: str) -> None:
    As(keyed, "alice").post("/product/create_cube", cube_id="kb-team")
    forged = QueuedAdd(
        task_id="task-forged", cube_id="kb-team", user_id=writer,
        messages=[SourceMessage(type="text", content="mallory was here")],
    )  # fmt: skip
    verdict = keyed.ingest.handle(Delivery(forged.model_dump_json(), "m1", 1, 5, group_id="kb-team"))
    assert verdict is Verdict.DONE  # dead-lettered, not retried
    [letter] = keyed.dead_letters.list_dead_letters()
    assert "may not write ['kb-team']" in letter.reason
    assert list(keyed.memories.iter_memories("kb-team")) == []
    assert not keyed.directory.is_user("kb-team")


def test_a_create_cube_refused_as_existing_registers_nobody(api: Container) -> None:
    """Found by the reliability suite's corpus: the refused request used to register its caller."""
    assert call("POST", "/product/create_cube", body={"user_id": "owner", "cube_id": "kb-taken"})[0] == 200
    code, body = call("POST", "/product/create_cube", body={"user_id": "latecomer", "cube_id": "kb-taken"})
    assert code == 409 and body["message"].startswith("cube_id: 'kb-taken' is taken")
    assert not api.directory.is_user("latecomer")
