"""The hosted MemOS API's routes through the real Lambda entry (Mangum, API Gateway v2 events):
served under /api/openmem/v1 and at the root, `code: 0` on success, every bad input a 4xx in the
memcube envelope naming the field with nothing written, multipart uploads as API Gateway sends
them (base64 bodies), and task status scoped to the key's user."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from memcube.domain import limits
from memcube.domain.ingest import Delivery
from memcube.domain.model import TaskState
from memcube.wiring import Container
from memcube_api.app import create_app
from memcube_api.schemas.hosted import PREFIX
from tests.api.conftest import assert_nothing_written, memory_container_with, serve
from tests.lambda_support import call, invoke, queue_of, v2_event
from tests.pdfs import pdf_with_pages

ROUTES = {
    ("POST", "/add/message"),
    ("POST", "/add/feedback"),
    ("POST", "/get/status"),
    ("POST", "/search/memory"),
    ("POST", "/get/memory"),
    ("GET", "/get/memory/{memory_id}"),
    ("POST", "/delete/memory"),
    ("POST", "/create/knowledgebase"),
    ("POST", "/delete/knowledgebase"),
    ("POST", "/add/knowledgebase-file"),
    ("POST", "/delete/knowledgebase-file"),
}


@pytest.mark.parametrize("base", [PREFIX, ""])
def test_every_hosted_route_is_served_under_the_sdk_base_path_and_at_the_root(api: Container, base: str) -> None:
    for method, path in sorted(ROUTES):
        if method == "GET":
            code, answer = call("GET", base + path.replace("{memory_id}", "m-unknown"))
            assert (code, answer["message"]) == (404, "memory_id: 'm-unknown' not found")
        else:
            code, answer = call("POST", base + path, body={"unknown_field": 1})
            assert code == 422 and "unknown_field: unknown field" in answer["message"], (path, answer)
    assert call("POST", base + "/add/nothing", body={})[0] == 404


def test_the_hosted_routes_are_documented_under_both_base_paths(memory_container: Container) -> None:
    paths = create_app(lambda: memory_container).openapi()["paths"]
    for method, path in ROUTES:
        assert method.lower() in paths[PREFIX + path] and method.lower() in paths[path]


@pytest.mark.parametrize("base", [PREFIX, ""])
def test_an_accepted_add_answers_code_0_with_the_hosted_task_shape(api: Container, base: str) -> None:
    code, body = call(
        "POST", base + "/add/message", body={"messages": "I swim.", "user_id": "alice", "tags": ["sport"]}
    )
    assert code == 200, body
    assert body["code"] == 0 and body["data"]["success"] is True and body["data"]["status"] == "running"
    [queued] = queue_of(api).sent
    assert (queued.task_id, queued.cube_id, queued.custom_tags) == (body["data"]["task_id"], "alice", ["sport"])


def test_a_failed_hosted_add_resent_with_its_idempotency_key_runs_again(api: Container) -> None:
    body, key = {"messages": "I swim.", "user_id": "alice"}, {"Idempotency-Key": "sdk-add-1"}
    code, first = call("POST", PREFIX + "/add/message", body=body, headers=key)
    assert code == 200, first
    task_id = first["data"]["task_id"]
    record = api.tasks.get_task(task_id)
    assert record is not None
    api.tasks.put_task_part(task_id, record.parts[0].finished(TaskState.FAILED, "2026-12-04T00:00:00Z", error="died"))

    code, again = call("POST", PREFIX + "/add/message", body=body, headers=key)
    assert code == 200, again
    assert (again["data"]["task_id"], again["data"]["status"]) == (task_id, "running")
    assert [(m.task_id, m.run) for m in queue_of(api).sent] == [(task_id, 0), (task_id, 1)]
    code, status = call("POST", PREFIX + "/get/status", body={"task_id": task_id})
    [part] = status["data"]["cubes"]
    assert (part["status"], [(r["status"], r["error"]) for r in part["runs"]]) == ("waiting", [("failed", "died")])


BAD = [
    ("/add/message", {"messages": "x"}, 422, "user_id (or agent_id) is required"),
    ("/add/message", {"messages": "x", "user_id": "alice", "typo": 1}, 422, "typo: unknown field"),
    ("/add/message", {"messages": "x", "user_id": "alice", "allow_public": True}, 422, "allow_public:"),
    ("/add/message", {"messages": [{"role": "bot", "content": "x"}], "user_id": "alice"}, 422, "messages[0].role"),
    ("/add/message", {"messages": "  ", "user_id": "alice"}, 422, "messages: nothing to remember"),
    ("/add/feedback", {"user_id": "alice"}, 422, "feedback_content: required"),
    ("/search/memory", {"query": "q", "user_id": "alice", "agent_id": "b"}, 422, "exactly one of user_id and agent_id"),
    ("/search/memory", {"query": "q", "user_id": "alice", "memory_limit_number": 0}, 422, "memory_limit_number"),
    ("/get/memory", {"user_id": "alice", "size": 51}, 422, "size:"),
    ("/delete/memory", {"user_id": "alice", "agent_id": "b"}, 422, "give exactly one of memory_ids, user_id"),
    ("/delete/memory", {"filter": {"tags": "x"}}, 422, "a delete by filter alone names no user"),
    ("/get/status", {}, 422, "task_id: required"),
    ("/create/knowledgebase", {"knowledgebase_name": ""}, 422, "knowledgebase_name"),
    ("/delete/knowledgebase", {"knowledgebase_id": "alice"}, 422, "is a user's personal cube"),
    ("/add/knowledgebase-file", {"knowledgebase_id": "kb-1", "file": []}, 422, "file:"),
    ("/add/knowledgebase-file", {"knowledgebase_id": "kb-1", "file": [{"content": "https://x.org/a"}]}, 422, "URLs"),
    ("/delete/knowledgebase-file", {"file_ids": ["file-1"]}, 422, "not a knowledge-base file id"),
]


@pytest.mark.parametrize(("path", "body", "status", "problem"), BAD, ids=[f"{p}:{m}" for p, _, _, m in BAD])
def test_bad_input_is_a_4xx_naming_the_field_and_writes_nothing(
    api: Container, path: str, body: dict[str, Any], status: int, problem: str
) -> None:
    if path == "/delete/knowledgebase":
        api.directory.register_user("alice")
    code, answer = call("POST", PREFIX + path, body=body)
    assert (code, answer["code"]) == (status, status), answer
    assert problem in answer["message"] and answer["data"] is None
    queued = queue_of(api).sent
    assert queued == []
    if path != "/delete/knowledgebase":
        assert_nothing_written(api)


def test_broken_json_and_wrong_content_types_are_refused_as_on_product_routes(api: Container) -> None:
    event = v2_event("POST", PREFIX + "/add/message", body='{"messages": ')
    assert invoke(event).status == 400
    event = v2_event("POST", PREFIX + "/search/memory", body="query=x", headers={"content-type": "text/plain"})
    reply = invoke(event)
    assert reply.status == 415 and "content-type" in reply.message
    assert_nothing_written(api)


def multipart(files: list[tuple[str, str, bytes]], fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    boundary = "memcube-test-boundary"
    out = b""
    for name, value in (fields or {}).items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for filename, ctype, data in files:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        out += f"{head}Content-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def upload(body: bytes, ctype: str, query: str = "knowledgebase_id=kb-team") -> Any:
    event = v2_event("POST", PREFIX + "/add/knowledgebase-file", raw_body=body, query=query)
    event["headers"]["content-type"] = ctype
    return invoke(event)


def test_a_multipart_upload_arrives_base64_encoded_and_queues_each_file_for_document_mode(api: Container) -> None:
    pdf = pdf_with_pages([["Rules."]])
    body, ctype = multipart([("a.md", "text/markdown", b"# A\n\nBody."), ("b.pdf", "application/octet-stream", pdf)])
    reply = upload(body, ctype)
    assert reply.status == 200 and reply.body["code"] == 0, reply.body
    entries = reply.data
    assert [(e["name"], e["type"], e["status"], e["knowledgebase_id"]) for e in entries] == [
        ("a.md", "document", "running", "kb-team"),
        ("b.pdf", "document", "running", "kb-team"),
    ]
    [queued] = queue_of(api).sent
    assert queued.cube_id == "kb-team" and queued.user_id == "anonymous"  # keys off: knowledge bases are open
    md, sent_pdf = queued.messages
    assert (md.type, md.content, md.file_id, md.filename) == ("file", "# A\n\nBody.", entries[0]["id"], "a.md")
    assert sent_pdf.data == "data:application/pdf;base64," + base64.b64encode(pdf).decode() and sent_pdf.content == ""


@pytest.mark.parametrize(
    ("files", "fields", "query", "status", "problem"),
    [
        ([("a.docx", "application/octet-stream", b"PK")], None, "knowledgebase_id=kb-team", 422, "is not supported"),
        ([("a.txt", "text/plain", b"x")], None, "", 422, "knowledgebase_id: required"),
        ([("a.txt", "text/plain", b"x")], None, "knowledgebase_id=kb%20x", 422, "knowledgebase_id:"),
        ([("a.txt", "text/plain", b"x")], None, "knowledgebase_id=kb-team&type=skill", 422, "type: 'skill'"),
        ([("a.txt", "text/plain", b"x")], {"note": "hi"}, "knowledgebase_id=kb-team", 422, "note: unknown form field"),
        ([("a.txt", "text/plain", b"   ")], None, "knowledgebase_id=kb-team", 422, "is empty"),
        ([], {"file": "not a file"}, "knowledgebase_id=kb-team", 422, "not a file"),
    ],
)
def test_a_multipart_upload_memcube_cannot_take_is_refused(  # noqa: PLR0917 - the parameters of one case
    api: Container,
    files: list[tuple[str, str, bytes]],
    fields: dict[str, str] | None,
    query: str,
    status: int,
    problem: str,
) -> None:
    body, ctype = multipart(files, fields)
    reply = upload(body, ctype, query)
    assert reply.status == status and problem in reply.message, reply.body
    assert_nothing_written(api, users=("anonymous",))


def test_an_upload_is_json_or_multipart(api: Container) -> None:
    reply = upload(b"file=abc", "application/x-www-form-urlencoded")
    assert reply.status == 415 and "expected application/json or multipart/form-data" in reply.message
    reply = upload(b"garbage", "multipart/form-data")
    assert reply.status == 400 and "boundary" in reply.message
    assert_nothing_written(api, users=("anonymous",))


def test_an_upload_over_the_file_body_limit_is_413_before_parsing(api: Container) -> None:
    body, ctype = multipart([("a.txt", "text/plain", b"x" * (limits.MAX_FILE_BODY_BYTES + 1))])
    reply = upload(body, ctype)
    assert reply.status == 413 and f"at most {limits.MAX_FILE_BODY_BYTES} bytes" in reply.message
    big = {"knowledgebase_id": "kb-team", "file": [{"content": "x" * (limits.MAX_FILE_BODY_BYTES + 1)}]}
    assert call("POST", PREFIX + "/add/knowledgebase-file", body=big)[0] == 413
    assert_nothing_written(api, users=("anonymous",))


def test_a_json_upload_may_be_larger_than_other_bodies(api: Container) -> None:
    text = "word " * 300_000  # 1.5 MB: over the 1 MiB of other routes, within the file limits
    body = {"knowledgebase_id": "kb-team", "file": [{"content": text, "name": "big.txt"}]}
    code, answer = call("POST", PREFIX + "/add/knowledgebase-file", body=body)
    assert code == 200, answer["message"]
    assert len(json.dumps(body)) > limits.MAX_BODY_BYTES


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> Container:
    return serve(monkeypatch, memory_container_with(auth="keys"))


def token(container: Container, user: str, scope: str = "user") -> dict[str, str]:
    _, plaintext = container.keys.create(user, scope)  # type: ignore[arg-type]
    return {"authorization": f"Token {plaintext}"}


def test_task_status_is_the_key_users_unless_the_key_acts_for_others(keyed: Container) -> None:
    alice, bob, ops = token(keyed, "alice"), token(keyed, "bob"), token(keyed, "ops", scope="service")
    code, added = call("POST", PREFIX + "/add/message", body={"messages": "x", "user_id": "alice"}, headers=alice)
    assert code == 200, added
    task = {"task_id": added["data"]["task_id"]}
    assert call("POST", PREFIX + "/get/status", body=task, headers=alice)[1]["data"]["status"] == "running"
    code, refused = call("POST", PREFIX + "/get/status", body=task, headers=bob)
    assert code == 404 and "not found" in refused["message"]  # like an unknown id: ids do not leak
    assert call("POST", PREFIX + "/get/status", body=task, headers=ops)[0] == 200
    assert call("POST", PREFIX + "/get/status", body=task)[0] == 401


def test_with_keys_on_a_knowledge_base_is_its_creators(keyed: Container) -> None:
    alice, bob = token(keyed, "alice"), token(keyed, "bob")
    code, made = call("POST", PREFIX + "/create/knowledgebase", body={"knowledgebase_name": "Ops"}, headers=alice)
    assert code == 200, made
    kb = made["data"]["id"]
    acl = keyed.directory.get_cube(kb)
    assert acl is not None and acl.owner_id == "alice"
    file = {"knowledgebase_id": kb, "file": [{"content": "Pager duty rotates weekly.", "name": "ops.txt"}]}
    assert call("POST", PREFIX + "/add/knowledgebase-file", body=file, headers=bob)[0] == 403
    assert call("POST", PREFIX + "/delete/knowledgebase", body={"knowledgebase_id": kb}, headers=bob)[0] == 403
    code, added = call("POST", PREFIX + "/add/knowledgebase-file", body=file, headers=alice)
    assert code == 200 and queue_of(keyed).sent[-1].user_id == "alice", added
    unmade = {"knowledgebase_id": "kb-nobody-made", "file": file["file"]}
    assert call("POST", PREFIX + "/add/knowledgebase-file", body=unmade, headers=alice)[0] == 403


def test_deleting_files_of_two_knowledge_bases_one_forbidden_deletes_nothing(keyed: Container) -> None:
    alice, bob = token(keyed, "alice"), token(keyed, "bob")
    kbs = [
        call("POST", PREFIX + "/create/knowledgebase", body={"knowledgebase_name": name}, headers=who)[1]["data"]["id"]
        for name, who in (("Ops", alice), ("Bobs", bob))
    ]
    file = {"knowledgebase_id": kbs[0], "file": [{"content": "Pager duty rotates weekly.", "name": "ops.txt"}]}
    code, added = call("POST", PREFIX + "/add/knowledgebase-file", body=file, headers=alice)
    assert code == 200, added
    for n, message in enumerate(queue_of(keyed).sent):
        keyed.ingest.handle(Delivery(message.model_dump_json(), f"m{n}", 1, 5, group_id=message.cube_id))
    assert len(list(keyed.memories.iter_memories(kbs[0]))) == 1
    both = {"file_ids": [added["data"][0]["id"], f"{kbs[1]}:{'0' * 24}"]}
    code, refused = call("POST", PREFIX + "/delete/knowledgebase-file", body=both, headers=alice)
    assert code == 403 and kbs[1] in refused["message"], refused
    assert len(list(keyed.memories.iter_memories(kbs[0]))) == 1  # all or nothing
