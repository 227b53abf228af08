"""Every class of bad input is answered 4xx in the MemOS envelope, naming the field and the
problem, with nothing stored or queued, and never a 5xx."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from memcube.domain import limits
from memcube.wiring import Container
from tests.api.conftest import Reply, assert_nothing_written, invoke, v2_event
from tests.conftest import load_event

OVER_ONE_MIB = json.dumps({"user_id": "alice", "messages": "x" * limits.MAX_BODY_BYTES})


@dataclass(frozen=True)
class Bad:
    name: str
    status: int
    named: str
    """The field the message names first: it starts with `<named>:`."""
    body: Any = None
    raw_body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop_headers: tuple[str, ...] = ()

    def send(self) -> Reply:
        return invoke(
            v2_event(
                "POST",
                "/product/add",
                body=self.body,
                raw_body=self.raw_body,
                headers=self.headers,
                drop_headers=self.drop_headers,
            )
        )


def ok(**extra: Any) -> dict[str, Any]:
    """A valid add body with `extra` merged in."""
    return {"user_id": "alice", "messages": "I moved to Lisbon."} | extra


def chat(n: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"line {i}"} for i in range(n)]


JSON = {"content-type": "application/json"}
LATIN1 = {"content-type": "application/json; charset=latin-1"}
FORM = {"content-type": "multipart/form-data"}
PNG = {"type": "file", "file": {"file_data": "data:image/png;base64,AAAA"}}
HALF = "x" * (limits.MAX_CONTENT_BYTES // 2 + 1)
PARTS = [{"type": "text", "text": "a"}] * (limits.MAX_PARTS_PER_MESSAGE + 1)
CUBES = [f"kb-{i}" for i in range(limits.MAX_CUBES_PER_REQUEST + 1)]
FULL_INFO = {f"k{i}": i for i in range(limits.MAX_INFO_KEYS)}
_PER_MESSAGE = limits.MAX_PARTS_PER_MESSAGE
MANY_PARTS_HISTORY = [
    {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": f"https://x.test/{i}/{j}.png"}} for j in range(_PER_MESSAGE)
        ],
    }
    for i in range(limits.MAX_MESSAGES * 2 // _PER_MESSAGE + 1)
]  # each message within its limits, the flattened history over the queue's


def said(content: Any = "x", **fields: Any) -> dict[str, Any]:
    """A valid add body whose one message is a user's chat message with `content` and `fields`."""
    return ok(messages=[{"role": "user", "content": content} | fields])


BAD = [
    # the body as bytes: syntax, encoding, media type, size
    Bad("broken JSON", 400, "body", body='{"user_id": "alice", "messages": '),
    Bad("nested beyond the parser's limit", 400, "body", body="[" * 300 + "]" * 300),
    Bad("invalid UTF-8", 400, "body", raw_body=b'{"user_id": "alice", "messages": "caf\xe9"}'),
    Bad("wrong content type", 415, "content-type", body=ok(), headers={"content-type": "text/plain"}),
    Bad("form content type", 415, "content-type", body="user_id=alice", headers=FORM),
    Bad("no content type", 415, "content-type", body=ok(), drop_headers=("content-type",)),
    Bad("non-UTF-8 charset", 415, "content-type", body=ok(), headers=LATIN1),
    Bad("empty body", 400, "body", body=""),
    Bad("blank body", 400, "body", body="  \n "),
    Bad("no body at all", 400, "body", headers=JSON),
    Bad("body over 1 MiB (declared)", 413, "body", body=OVER_ONE_MIB),
    Bad("body over 1 MiB (not declared)", 413, "body", body=OVER_ONE_MIB, drop_headers=("content-length",)),
    Bad("body declares over 1 MiB", 413, "body", body=ok(), headers={"content-length": str(limits.MAX_BODY_BYTES + 1)}),
    # the JSON: shapes and types
    Bad("not an object", 422, "body", body=[1, 2, 3]),
    Bad("null", 422, "body", body="null"),
    Bad("user_id not a string", 422, "user_id", body=ok(user_id=7)),
    Bad("messages a number", 422, "messages", body=ok(messages=5)),
    Bad("content a number", 422, "messages[0].content", body=said(42)),
    Bad("custom_tags a string", 422, "custom_tags", body=ok(custom_tags="travel")),
    Bad("info a list", 422, "info", body=ok(info=["a"])),
    Bad("is_feedback not a boolean", 422, "is_feedback", body=ok(is_feedback="maybe")),
    Bad("async_mode unknown", 422, "async_mode", body=ok(async_mode="later")),
    Bad("unknown field", 422, "colour", body=ok(colour="red")),
    Bad("unknown field in a message", 422, "messages[0].mood", body=said(mood=1)),
    Bad("missing user_id", 422, "user_id", body={"messages": "x"}),
    Bad("bad role", 422, "messages[0].role", body=said(role="robot")),
    Bad("message without role or type", 422, "messages[0]", body=ok(messages=[{"content": "x"}])),
    Bad("tool message without tool_call_id", 422, "messages[0]", body=said(role="tool")),
    Bad("no text to remember", 422, "messages", body=ok(messages=[])),
    Bad("only whitespace to remember", 422, "messages", body=ok(messages="   ")),
    Bad("audio is not read", 422, "messages[0].type", body=ok(messages=[{"type": "input_audio", "input_audio": {}}])),
    Bad("binary data URL", 422, "messages[0].file.file_data", body=ok(messages=[PNG])),
    Bad("doc_path is never read", 422, "doc_path", body=ok(doc_path="/etc/passwd")),
    Bad("skills are not supported", 422, "is_upload_skill", body=ok(is_upload_skill=True)),
    Bad("fine sync add without an LLM", 422, "mode", body=ok(async_mode="sync", mode="fine")),
    # limits
    Bad("too many messages", 422, "messages", body=ok(messages=chat(limits.MAX_MESSAGES + 1))),
    Bad("too much chat_history", 422, "chat_history", body=ok(chat_history=chat(limits.MAX_MESSAGES + 1))),
    Bad("too many parts", 422, "messages[0]", body=said(PARTS)),
    Bad("message text over the limit", 422, "messages[0].content", body=said("x" * (limits.MAX_CONTENT_BYTES + 1))),
    Bad("total text over the limit", 422, "messages", body=ok(messages=[{"role": "user", "content": HALF}] * 2)),
    Bad("too many tags", 422, "custom_tags", body=ok(custom_tags=[f"t{i}" for i in range(limits.MAX_TAGS + 1)])),
    Bad("tag too long", 422, "custom_tags", body=ok(custom_tags=["x" * (limits.MAX_TAG_CHARS + 1)])),
    Bad("too many cubes", 422, "writable_cube_ids", body=ok(writable_cube_ids=CUBES)),
    Bad("info too deep", 422, "info", body=ok(info={"a": {"b": {"c": {"d": {"e": 1}}}}})),
    Bad("info too large", 422, "info", body=ok(info={"k": "x" * limits.MAX_INFO_BYTES})),
    Bad("info with too many keys", 422, "info", body=ok(info={f"k{i}": i for i in range(limits.MAX_INFO_KEYS + 1)})),
    Bad("info key shadowing an item field", 422, "info", body=ok(info={"memory": "x"})),
    Bad("deprecated source too long", 422, "source", body=ok(source="s" * 257)),
    Bad("info full before source joins it", 422, "info", body=ok(info=FULL_INFO, source="web")),
    Bad("chat_history parts over the limit", 422, "chat_history", body=ok(chat_history=MANY_PARTS_HISTORY)),
    # ids
    Bad("path characters in user_id", 422, "user_id", body=ok(user_id="alice/../bob")),
    Bad("user_id too long", 422, "user_id", body=ok(user_id="a" * (limits.MAX_ID_CHARS + 1))),
    Bad("user_id starting with a symbol", 422, "user_id", body=ok(user_id="-alice")),
    Bad("space in a cube id", 422, "writable_cube_ids", body=ok(writable_cube_ids=["kb one"])),
    Bad("empty cube id", 422, "writable_cube_ids", body=ok(writable_cube_ids=[""])),
    Bad("line break after a cube id", 422, "writable_cube_ids", body=ok(writable_cube_ids=["kb-one\n"])),
    Bad("line break after the user id", 422, "user_id", body=ok(user_id="alice\n")),
    Bad("quote in task_id", 422, "task_id", body=ok(task_id="t'1")),
    Bad("slash in session_id", 422, "session_id", body=ok(session_id="../s")),
    Bad("newline in mem_cube_id", 422, "mem_cube_id", body=ok(mem_cube_id="kb\n1")),
    Bad("space in message_id", 422, "messages[0].message_id", body=said(message_id="m 1")),
    Bad("Idempotency-Key too long", 422, "header.idempotency-key", body=ok(), headers={"idempotency-key": "k" * 129}),
]  # fmt: skip


@pytest.mark.parametrize("bad", BAD, ids=[b.name for b in BAD])
def test_bad_add_is_4xx_naming_the_field_and_writes_nothing(api: Container, bad: Bad) -> None:
    reply = bad.send()
    assert reply.status == bad.status, reply.body
    assert 400 <= reply.status < 500
    assert reply.body["code"] == reply.status
    assert reply.message.startswith(f"{bad.named}:"), reply.message
    assert reply.data is None
    assert set(reply.body) <= {"code", "message", "data", "detail"}
    if "detail" in reply.body:  # a validation error lists each field and its problem
        assert reply.body["detail"][0]["field"] == bad.named
        assert reply.body["detail"][0]["problem"]
    assert_nothing_written(api)


def test_sample_invalid_event_is_422_naming_the_field(api: Container) -> None:
    reply = invoke(load_event("api_add_invalid.json"))
    assert reply.status == 422
    assert reply.message == "messages[0].content: must be a string or a list"
    assert reply.body["detail"] == [{"field": "messages[0].content", "problem": "must be a string or a list"}]
    assert_nothing_written(api)


def test_several_problems_are_all_named(api: Container) -> None:
    reply = invoke(v2_event("POST", "/product/add", body={"user_id": 1, "custom_tags": "t", "colour": "red"}))
    assert reply.status == 422
    assert [d["field"] for d in reply.body["detail"]] == ["user_id", "custom_tags", "colour"]
    assert reply.message == "; ".join(f"{d['field']}: {d['problem']}" for d in reply.body["detail"])
    assert_nothing_written(api)


@pytest.mark.parametrize("name", ["messages", "memory_content"])
def test_plain_text_over_the_limit_is_422_naming_its_field(api: Container, name: str) -> None:
    body = {"user_id": "alice", name: "x" * (limits.MAX_CONTENT_BYTES + 1)}
    reply = invoke(v2_event("POST", "/product/add", body=body))
    assert reply.status == 422
    assert_nothing_written(api)
    assert reply.message.startswith(f"{name}:"), reply.message


@dataclass(frozen=True)
class BadRead:
    name: str
    method: str
    path: str
    status: int
    named: str
    query: str = ""
    body: Any = None


STATUS, PAGE = "/product/scheduler/status", "/product/get_memory"
READS = [
    BadRead("status without user_id", "GET", STATUS, 422, "query.user_id", query="task_id=t-1"),
    BadRead("status with an empty user_id", "GET", STATUS, 422, "query.user_id", query="user_id="),
    BadRead("status task_id too long", "GET", STATUS, 422, "query.task_id", query="user_id=a&task_id=" + "t" * 201),
    BadRead("memory id too long", "GET", f"{PAGE}/{'m' * 201}", 422, "path.memory_id", query="user_id=alice"),
    BadRead("page below 1", "POST", PAGE, 422, "page", body={"mem_cube_id": "alice", "page": 0}),
    BadRead("page size over the cap", "POST", PAGE, 422, "page_size", body={"mem_cube_id": "alice", "page_size": 101}),
    BadRead("bad cube id", "POST", PAGE, 422, "mem_cube_id", body={"mem_cube_id": "../alice"}),
    BadRead("unknown field", "POST", PAGE, 422, "cube", body={"mem_cube_id": "alice", "cube": 1}),
    BadRead("broken JSON", "POST", PAGE, 400, "body", body='{"mem_cube_id": '),
]


@pytest.mark.parametrize("bad", READS, ids=[r.name for r in READS])
def test_bad_read_is_4xx_naming_the_field(api: Container, bad: BadRead) -> None:
    reply = invoke(v2_event(bad.method, bad.path, query=bad.query, body=bad.body))
    assert (reply.status, reply.body["code"]) == (bad.status, bad.status), reply.body
    assert reply.message.startswith(f"{bad.named}:"), reply.message
    assert reply.data is None
    assert_nothing_written(api)


def test_read_with_the_wrong_content_type_is_415(api: Container) -> None:
    event = v2_event("POST", "/product/get_memory", body="mem_cube_id=alice", headers={"content-type": "text/plain"})
    assert invoke(event).status == 415


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/product/nothing-here", 404), ("GET", "/product/add", 405), ("DELETE", "/product/scheduler/status", 405)],
)
def test_unknown_route_or_method_is_answered_in_the_envelope(
    api: Container, method: str, path: str, status: int
) -> None:
    reply = invoke(v2_event(method, path))
    assert (reply.status, reply.body["code"]) == (status, status)
    assert reply.message
    assert_nothing_written(api)
