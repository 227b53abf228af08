"""The console's routes on both deployments with keys on (aws: DynamoDB Local + LocalStack SQS +
osmem-server; embedded: SQLite), through the Lambda entry: `/product/list_cubes` lists exactly the
cubes each user may read (the knowledge bases from the directory's `cubes_of`: a Query of the
`gsi1` partition on DynamoDB), and an admin redrives a real dead letter back through the real
queue, where it fails again for the same reason; users may not see or redrive dead letters."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memcube.domain.model import DeadLetter
from tests.lambda_support import call
from tests.realserver.test_end_to_end import Stack, aws_stack_of, embedded_stack


@pytest.fixture(params=["aws", "embedded"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    if request.param == "embedded":
        yield from embedded_stack(tmp_path / "data", auth="keys")
        return
    yield from aws_stack_of(request)


def headers(stack: Stack, user: str, scope: str = "user") -> dict[str, str]:
    _, plaintext = stack.container.keys.create(user, scope)  # type: ignore[arg-type]
    return {"authorization": f"Token {plaintext}"}


def ok(reply: tuple[int, dict[str, Any]]) -> Any:
    code, payload = reply
    assert code == 200, payload
    return payload["data"]


def test_each_user_lists_exactly_the_cubes_they_may_read(stack: Stack) -> None:
    alice, bob, carol, mallory = (headers(stack, u) for u in ("alice", "bob", "carol", "mallory"))
    kb = {"user_id": "alice", "cube_id": "kb-team", "readers": ["bob"], "writers": ["carol"]}
    ok(call("POST", "/product/create_cube", body=kb, headers=alice))
    ok(call("POST", "/product/create_cube", body={"user_id": "carol", "cube_id": "kb-carol"}, headers=carol))
    add = {"user_id": "alice", "messages": "The team meets on Mondays.", "async_mode": "sync", "mode": "fast"}
    ok(call("POST", "/product/add", body={**add, "writable_cube_ids": ["kb-team"]}, headers=alice))

    def listed(who: dict[str, str]) -> list[tuple[str, str, int]]:
        cubes = ok(call("GET", "/product/list_cubes", headers=who))["cubes"]
        return [(c["cube_id"], c["role"], c["memories"]) for c in cubes]

    assert listed(alice) == [("alice", "owner", 0), ("kb-team", "owner", 1)]
    assert listed(bob) == [("bob", "owner", 0), ("kb-team", "reader", 1)]
    assert listed(carol) == [("carol", "owner", 0), ("kb-carol", "owner", 0), ("kb-team", "writer", 1)]
    assert listed(mallory) == [("mallory", "owner", 0)]
    code, payload = call("GET", "/product/list_cubes", query="user_id=alice", headers=mallory)
    assert code == 403, payload
    revoke = {"user_id": "alice", "cube_id": "kb-team", "target_user_id": "bob", "permission": "read"}
    ok(call("POST", "/product/revoke_cube", body=revoke, headers=alice))
    assert listed(bob) == [("bob", "owner", 0)]


def letters_when(stack: Stack, count: int) -> list[DeadLetter]:
    deadline = time.monotonic() + 120  # generous: the shared machine may be busy
    while len(found := stack.container.dead_letters.list_dead_letters()) != count:
        assert time.monotonic() < deadline, found
        time.sleep(0.2)
    return found


@pytest.mark.timeout(300)
def test_an_admin_redrives_a_real_dead_letter_through_the_queue_and_users_may_not(stack: Stack) -> None:
    alice, root = headers(stack, "alice"), headers(stack, "root", "admin")
    pdf = base64.b64encode(b"%PDF-1.4 not really a PDF").decode()
    part = {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{pdf}", "filename": "notes.pdf"}}
    body = {"user_id": "alice", "messages": [{"role": "user", "content": [part]}]}
    ok(call("POST", "/product/add", body=body, headers=alice))
    [letter] = letters_when(stack, 1)
    assert "notes.pdf" in letter.reason

    assert call("GET", "/product/dead_letters", headers=alice)[0] == 403
    assert call("POST", "/product/redrive_dead_letters", body={}, headers=alice)[0] == 403
    [shown] = ok(call("GET", "/product/dead_letters", headers=root))
    assert shown["message_id"] == letter.message_id and "body" not in shown

    redriven = ok(call("POST", "/product/redrive_dead_letters", body={}, headers=root))
    assert redriven == {"sent": [letter.message_id], "invalid": [], "not_found": []}
    [again] = letters_when(stack, 1)  # it ran again on the real queue and failed the same way
    assert again.task_id == letter.task_id and again.failed_at > letter.failed_at
    assert "notes.pdf" in again.reason
