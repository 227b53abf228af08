"""Tenant isolation on both deployments with API keys on (aws: DynamoDB Local + LocalStack SQS +
osmem-server; embedded: SQLite with its worker), through the Lambda entry: a user tries every
endpoint against another user's personal cube and knowledge-base cube, with forged ids, by
deduplicating against them and by a message put on the queue directly. Every attempt is refused
(or finds nothing) and the victim's memories are exactly as they were."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memcube.adapters.sqs_queue import SqsQueue
from memcube.domain.messages import QueuedAdd
from memcube.domain.model import SourceMessage
from memcube_local.wiring import LocalContainer
from tests.lambda_support import call
from tests.realserver.test_end_to_end import Stack, aws_stack_of, embedded_stack

SECRET = "Alice's locker code is 4512 and her bank PIN is 9931."


class User:
    def __init__(self, stack: Stack, user_id: str) -> None:
        _, plaintext = stack.container.keys.create(user_id)
        self.id = user_id
        self.headers = {"authorization": f"Token {plaintext}"}

    def call(self, method: str, path: str, *, body: Any = None, query: str = "") -> tuple[int, dict[str, Any]]:
        return call(method, path, body=body, query=query, headers=self.headers)

    def post(self, path: str, **body: Any) -> tuple[int, dict[str, Any]]:
        return self.call("POST", path, body={"user_id": self.id, **body})

    def sync_add(self, text: str, cubes: list[str] | None = None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"messages": text, "async_mode": "sync", "mode": "fast"}
        code, payload = self.post("/product/add", **body, **({"writable_cube_ids": cubes} if cubes else {}))
        assert code == 200, payload
        outcomes: list[dict[str, Any]] = payload["data"]
        return outcomes

    def wait(self, task_id: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            code, payload = self.call("GET", "/product/scheduler/status", query=f"user_id={self.id}&task_id={task_id}")
            assert code == 200, payload
            status: str = payload["data"][0]["status"]
            if status in {"completed", "failed"} or time.monotonic() > deadline:
                return status
            time.sleep(0.1)

    def search(self, cubes: list[str] | None, query: str) -> tuple[int, dict[str, Any]]:
        extra = {"readable_cube_ids": cubes} if cubes else {}
        return self.post("/product/search", query=query, relativity=0.0, **extra)


@pytest.fixture(params=["aws", "embedded"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    if request.param == "embedded":
        yield from embedded_stack(tmp_path / "data", auth="keys")
        return
    yield from aws_stack_of(request)


def snapshot(stack: Stack, cube_id: str) -> list[str]:
    """Every stored item of the cube (any status), as JSON: what an intruder must not change."""
    return sorted(i.model_dump_json() for i in stack.container.memories.iter_memories(cube_id))


def test_no_endpoint_reads_writes_or_deletes_another_users_cubes(stack: Stack) -> None:
    alice, mallory = User(stack, "alice"), User(stack, "mallory")
    assert alice.post("/product/create_cube", cube_id="kb-alice")[0] == 200
    [mine] = alice.sync_add(SECRET)
    [kb_item] = alice.sync_add("The kb-alice runbook: restart the pump first.", ["kb-alice"])
    _, accepted = alice.post("/product/add", messages="Alice likes green tea.")
    alice_task = accepted["task_id"]
    assert alice.wait(alice_task) == "completed"
    before = {c: snapshot(stack, c) for c in ("alice", "kb-alice")}
    memory_id = mine["memory_id"]

    forbidden: list[tuple[str, tuple[int, dict[str, Any]]]] = [
        ("add to alice", mallory.post("/product/add", writable_cube_ids=["alice"], messages="pwned")),
        ("add to kb", mallory.post("/product/add", writable_cube_ids=["mallory", "kb-alice"], messages="pwned")),
        ("search alice", mallory.search(["alice"], "locker code")),
        ("search kb", mallory.search(["kb-alice"], "runbook pump")),
        ("page alice", mallory.post("/product/get_memory", mem_cube_id="alice")),
        ("page kb", mallory.post("/product/get_memory", mem_cube_id="kb-alice")),
        ("act as alice", mallory.call("GET", f"/product/get_memory/{memory_id}", query="user_id=alice")),
        (
            "delete in alice",
            mallory.post("/product/delete_memory", writable_cube_ids=["alice"], memory_ids=[memory_id]),
        ),
        (
            "filter delete kb",
            mallory.post("/product/delete_memory", writable_cube_ids=["kb-alice"], filter={"user_id": "alice"}),
        ),
        ("erase alice", mallory.post("/product/delete_memory", writable_cube_ids=["alice"])),
        ("delete cube alice", mallory.post("/product/delete_cube", cube_id="alice")),
        ("delete cube kb", mallory.post("/product/delete_cube", cube_id="kb-alice")),
        ("export alice", mallory.post("/product/export_memory", cube_id="alice")),
        ("export kb", mallory.post("/product/export_memory", cube_id="kb-alice")),
        (
            "import alice",
            mallory.post(
                "/product/import_memory", cube_id="alice", items=[{"id": "x", "memory": "pwned", "metadata": {}}]
            ),
        ),
        (
            "grant self",
            mallory.post("/product/grant_cube", cube_id="kb-alice", target_user_id="mallory", permission="write"),
        ),
        ("revoke", mallory.post("/product/revoke_cube", cube_id="kb-alice", target_user_id="alice", permission="read")),
        ("feedback into alice", mallory.post("/product/feedback", writable_cube_ids=["alice"], feedback_content="no")),
    ]
    for what, (code, payload) in forbidden:
        assert code == 403 and payload["code"] == 403, (what, payload)

    not_found = [
        ("get by id", mallory.call("GET", f"/product/get_memory/{memory_id}", query="user_id=mallory")),
        ("history", mallory.call("GET", f"/product/get_memory_history/{memory_id}", query="user_id=mallory")),
        ("undo", mallory.post("/product/undo_memory", memory_id=memory_id)),
        ("update", mallory.post("/product/update_memory", memory_id=memory_id, memory="pwned")),
        ("update kb item", mallory.post("/product/update_memory", memory_id=kb_item["memory_id"], tags=["pwned"])),
        (
            "feedback on alice's",
            mallory.post("/product/feedback", feedback_content="no", retrieved_memory_ids=[memory_id]),
        ),
        ("status", mallory.call("GET", "/product/scheduler/status", query=f"user_id=mallory&task_id={alice_task}")),
    ]
    for what, (code, payload) in not_found:
        assert code == 404 and payload["code"] == 404, (what, payload)  # a foreign id looks like an unknown one
    code, payload = mallory.post("/product/delete_memory", memory_ids=[memory_id, kb_item["memory_id"]])
    assert code == 200 and payload["data"]["deleted"] == 0, payload
    assert sorted(payload["data"]["not_found"]) == sorted([memory_id, kb_item["memory_id"]])
    for cube in ("kb-alice", "alice"):  # a cube that exists cannot be claimed, a personal one never
        assert mallory.post("/product/create_cube", cube_id=cube)[0] == 409
    code, listing = mallory.call("GET", "/product/scheduler/status", query="user_id=mallory")
    assert code == 200 and alice_task not in {t["task_id"] for t in listing["data"]}

    # The other reads: a filtered page, get_all, reads by ids, waits and counts see nothing of alice's.
    reads = [
        ("filtered page alice", mallory.post("/product/get_memory", mem_cube_id="alice", filter={"user_id": "alice"})),
        ("get_all alice", mallory.post("/product/get_all", memory_type="text_mem", mem_cube_ids=["alice"])),
        (
            "get_all kb query",
            mallory.post("/product/get_all", memory_type="text_mem", mem_cube_ids=["kb-alice"], search_query="pump"),
        ),
        ("get_all act_mem alice", mallory.post("/product/get_all", memory_type="act_mem", mem_cube_ids=["alice"])),
    ]
    for what, (code, payload) in reads:
        assert code == 403 and payload["data"] is None, (what, payload)
    code, payload = mallory.call("POST", "/product/get_memory_by_ids", body=[memory_id, kb_item["memory_id"]])
    assert code == 200 and payload["data"] == {"memories": [], "not_found": [memory_id, kb_item["memory_id"]]}, payload
    code, payload = mallory.call("POST", "/product/scheduler/wait", query=f"user_name=mallory&task_id={alice_task}")
    assert code == 404, payload
    code, payload = mallory.call("GET", "/product/scheduler/allstatus")
    assert code == 200 and alice_task not in json.dumps(payload), payload
    assert payload["data"]["user_id"] == "mallory"

    # Same text in mallory's own cube: an independent item, never a duplicate of (or merge into) alice's.
    [copy] = mallory.sync_add(SECRET)
    [near] = mallory.sync_add(SECRET.replace("9931", "9932"))
    assert copy["outcome"] == "added" and copy["cube_id"] == "mallory" and copy["memory_id"] != memory_id
    assert near["cube_id"] == "mallory"  # merged, if at all, into mallory's own copy
    assert near["memory_id"] == copy["memory_id"] if near["outcome"] == "merged" else near["outcome"] == "added"
    code, found = mallory.search(None, "locker code PIN")
    assert code == 200
    assert {m["metadata"]["cube_id"] for cube in found["data"]["text_mem"] for m in cube["memories"]} == {"mallory"}

    # A producer puts a message for alice's cube on the queue directly, claiming to be mallory.
    forged = QueuedAdd(
        task_id="task-forged",
        cube_id="alice",
        user_id="mallory",
        messages=[SourceMessage(type="text", content="pwned")],
    )
    queue = stack.container.queue
    raw = [("alice", "forged-1", forged.model_dump_json())]
    if isinstance(queue, SqsQueue):
        queue.send_raw(raw)
    else:
        assert isinstance(stack.container, LocalContainer)
        stack.container.local_queue.send_raw(raw)
    deadline = time.monotonic() + 30
    while not stack.container.dead_letters.list_dead_letters() and time.monotonic() < deadline:
        time.sleep(0.1)
    [letter] = stack.container.dead_letters.list_dead_letters()
    assert letter.task_id == "task-forged" and "may not write ['alice']" in letter.reason

    assert {c: snapshot(stack, c) for c in ("alice", "kb-alice")} == before
    code, own = alice.search(["alice"], "locker code")
    hits = own["data"]["text_mem"][0]["memories"]
    assert code == 200 and memory_id in [m["id"] for m in hits]
    assert {m["metadata"]["cube_id"] for m in hits} == {"alice"}


HOSTED = "/api/openmem/v1"


def test_the_hosted_memos_routes_hold_another_user_to_the_same_rules(stack: Stack) -> None:
    alice, mallory = User(stack, "alice"), User(stack, "mallory")
    code, made = alice.call("POST", f"{HOSTED}/create/knowledgebase", body={"knowledgebase_name": "handbook"})
    assert code == 200, made
    kb = made["data"]["id"]
    file = {"name": "rules.md", "content": "# Expenses\n\nThe software budget is 600 euros per year."}
    code, uploaded = alice.call(
        "POST", f"{HOSTED}/add/knowledgebase-file", body={"knowledgebase_id": kb, "file": [file]}
    )
    assert code == 200, uploaded
    [upload] = uploaded["data"]
    code, added = alice.call("POST", f"{HOSTED}/add/message", body={"user_id": "alice", "messages": SECRET})
    assert code == 200, added
    assert alice.wait(upload["task_id"]) == "completed" and alice.wait(added["data"]["task_id"]) == "completed"
    [memory_id] = [i.id for i in stack.container.memories.iter_memories("alice")]
    before = {c: snapshot(stack, c) for c in ("alice", kb)}

    def hosted(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return mallory.call("POST", f"{HOSTED}{path}", body=body)

    forbidden = [
        ("add as alice", hosted("/add/message", {"user_id": "alice", "messages": "pwned"})),
        (
            "add into kb",
            hosted("/add/message", {"user_id": "mallory", "messages": "x", "allow_knowledgebase_ids": [kb]}),
        ),
        ("feedback as alice", hosted("/add/feedback", {"user_id": "alice", "feedback_content": "forget it all"})),
        ("search as alice", hosted("/search/memory", {"user_id": "alice", "query": "locker code"})),
        ("search kb", hosted("/search/memory", {"user_id": "mallory", "query": "budget", "knowledgebase_ids": [kb]})),
        ("page as alice", hosted("/get/memory", {"user_id": "alice"})),
        ("delete as alice", hosted("/delete/memory", {"user_id": "alice"})),
        ("drop kb", hosted("/delete/knowledgebase", {"knowledgebase_id": kb})),
        ("file into kb", hosted("/add/knowledgebase-file", {"knowledgebase_id": kb, "file": [file]})),
        ("delete kb file", hosted("/delete/knowledgebase-file", {"file_ids": [upload["id"]]})),
    ]
    for what, (code, payload) in forbidden:
        assert code == 403, (what, payload)
    by_id = mallory.call("GET", f"{HOSTED}/get/memory/{memory_id}")
    status = hosted("/get/status", {"task_id": added["data"]["task_id"]})
    assert (by_id[0], status[0]) == (404, 404), (by_id, status)
    edit = hosted("/update/memory", {"memory_id": memory_id, "content": "pwned", "title": None, "status": None})
    assert edit[0] == 404, edit
    code, deleted = hosted("/delete/memory", {"memory_ids": [memory_id]})
    assert code == 200 and deleted["message"] == "Deleted 0 memories", deleted

    assert {c: snapshot(stack, c) for c in ("alice", kb)} == before


def test_a_users_cube_is_theirs_from_their_key_and_a_service_key_cannot_act_as_a_knowledge_base(
    stack: Stack,
) -> None:
    # Given carol has a key and has written nothing; alice owns kb-alice
    alice, carol = User(stack, "alice"), User(stack, "carol")
    _, service_key = stack.container.keys.create("ingest-bot", "service")
    assert alice.post("/product/create_cube", cube_id="kb-alice")[0] == 200
    alice.sync_add("The kb-alice vault code rotates every Monday.", ["kb-alice"])
    # When alice claims carol's id and a service key acts as the knowledge base's id
    assert alice.post("/product/create_cube", cube_id="carol")[0] == 409
    code, _ = alice.post("/product/add", writable_cube_ids=["carol"], messages="Carol's account is DE00 ATTACKER")
    assert code == 403
    as_kb = {"authorization": f"Token {service_key}"}
    code, _ = call("POST", "/product/search", body={"user_id": "kb-alice", "query": "vault"}, headers=as_kb)
    assert code == 403
    # Then carol's cube holds nothing of alice's and kb-alice stays alice's
    assert stack.container.directory.get_cube("carol") is None
    assert snapshot(stack, "carol") == []
    code, payload = alice.search(["kb-alice"], "vault code")
    assert code == 200 and "vault code" in str(payload["data"])
    assert carol.search(None, "account")[0] == 200
    assert alice.post("/product/delete_cube", cube_id="kb-alice")[0] == 200


def test_task_ids_are_per_user_and_their_memory_ids_are_not_derivable(stack: Stack) -> None:
    import uuid

    from memcube.domain.ingest import ITEM_NAMESPACE

    alice, bob = User(stack, "alice"), User(stack, "bob")
    # Given bob adds first with the task id alice will use
    code, payload = bob.post("/product/add", messages="Bob waters the plants.", task_id="alice-task-1")
    assert code == 200, payload
    # When alice adds with it: her own task, no 409
    code, payload = alice.post("/product/add", messages="Alice's locker code is 4512.", task_id="alice-task-1")
    assert code == 200 and payload["task_id"] == "alice-task-1", payload
    assert alice.wait("alice-task-1") == "completed" and bob.wait("alice-task-1") == "completed"
    # Then her memory's id is not computable from the task id, and a conflicting reuse of her own is 409
    [item] = list(stack.container.memories.iter_memories("alice"))
    assert item.id != str(uuid.uuid5(ITEM_NAMESPACE, "alice-task-1/alice/0"))
    code, _ = alice.post("/product/add", messages="Something else.", task_id="alice-task-1")
    assert code == 409
    bobs = [i.memory for i in stack.container.memories.iter_memories("bob")]
    assert len(bobs) == 1 and "Bob waters the plants." in bobs[0]


def test_control_characters_in_a_search_query_are_no_5xx_and_an_import_is_the_importers(stack: Stack) -> None:
    """Issue 17, findings 6 and 5, on both deployments: a NUL in a query is a query, not a 500;
    an import is written by the importer, the exported author kept as provenance."""
    alice, bob = User(stack, "alice"), User(stack, "bob")
    alice.sync_add("Alice's bank PIN is 9931.")
    for query in ("PIN\u0000", "\u0000", 'PIN" \u0001\u001f'):
        for path, body in (("/product/search", {"query": query}), ("/search/memory", {"query": query})):
            code, payload = alice.post(path, **body)
            assert code < 500, (path, query, payload)
    assert alice.post("/product/create_cube", cube_id="kb-shared", writers=["bob"])[0] == 200
    code, payload = alice.post("/product/export_memory", cube_id="alice")
    assert code == 200, payload
    code, payload = bob.post("/product/import_memory", cube_id="kb-shared", items=payload["data"]["items"])
    assert code == 200, payload
    [imported] = list(stack.container.memories.iter_memories("kb-shared"))
    assert (imported.metadata.user_id, imported.metadata.original_user_id) == ("bob", "alice")
