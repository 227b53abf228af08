"""The hosted MemOS API's requests, mapped onto the /product ones (memcube_api.schemas.hosted)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import ValidationError

from memcube.domain.errors import InvalidRequest
from memcube.domain.knowledgebases import cube_of_file, file_id_for, knowledgebase_id_for
from memcube_api.schemas.hosted import (
    AddFeedbackBody,
    AddMessageBody,
    DeleteMemoryBody,
    GetMemoryBody,
    KnowledgebaseFile,
    SearchMemoryBody,
    add_request,
    delete_request,
    feedback_request,
    search_request,
)
from memcube_api.schemas.messages import ChatMessage
from memcube_api.schemas.product import to_command
from memcube_api.schemas.uploads import Upload, json_upload, upload_request

SAID = [{"role": "user", "content": "I run on Sundays."}]


def sdk_add(**fields: Any) -> dict[str, Any]:
    """A body as MemOSClient.add_message sends it: every key, unset ones null."""
    body: dict[str, Any] = {
        "messages": SAID, "user_id": None, "conversation_id": None, "info": None, "source": None,
        "app_id": None, "agent_id": None, "allow_public": False, "allow_knowledgebase_ids": None,
        "allow_memory_view": None, "tags": None, "async_mode": True,
    }  # fmt: skip
    return body | fields


def test_an_add_maps_conversation_to_session_tags_to_custom_tags_and_knowledge_bases_to_cubes() -> None:
    body = AddMessageBody.model_validate(
        sdk_add(user_id="alice", conversation_id="c1", tags=["run", "run "], app_id="app1",
                allow_knowledgebase_ids=["kb-1", "kb-1"], info={"mood": "good"}, source="web")
    )  # fmt: skip
    cmd = to_command(add_request(body))
    assert (cmd.user_id, cmd.session_id, cmd.cube_ids) == ("alice", "c1", ["alice", "kb-1"])
    assert cmd.custom_tags == ["run"] and cmd.async_mode == "async"
    assert cmd.info == {"mood": "good", "app_id": "app1", "source": "web"}


def test_agent_id_alone_is_the_subject_and_beside_a_user_it_is_kept_in_info() -> None:
    agent = to_command(add_request(AddMessageBody.model_validate(sdk_add(agent_id=["bot-1"]))))
    assert (agent.user_id, agent.cube_ids, agent.info) == ("bot-1", ["bot-1"], {"agent_id": "bot-1"})
    both = to_command(add_request(AddMessageBody.model_validate(sdk_add(user_id="alice", agent_id="bot-1"))))
    assert (both.user_id, both.cube_ids, both.info) == ("alice", ["alice"], {"agent_id": "bot-1"})


def test_async_mode_false_is_a_sync_add() -> None:
    assert (
        to_command(add_request(AddMessageBody.model_validate(sdk_add(user_id="a", async_mode=False)))).async_mode
        == "sync"
    )


@pytest.mark.parametrize(
    ("fields", "where", "problem"),
    [
        ({}, "body", "user_id (or agent_id) is required"),
        ({"user_id": ["a", "b"]}, "user_id", "one id per request, got 2"),
        ({"user_id": "no spaces"}, "user_id", "not a valid id"),
        ({"user_id": "a", "conversation_id": " "}, "conversation_id", "String should match pattern"),
        ({"user_id": "a", "tags": [""]}, "tags", "each tag must be 1-64 characters"),
        ({"user_id": "a", "info": {"status": "x"}}, "info", "clash with memory item fields"),
        ({"user_id": "a", "allow_knowledgebase_ids": ["bad id"]}, "allow_knowledgebase_ids", "not a valid id"),
        ({"user_id": "a", "messages": [{"role": "robot", "content": "x"}]}, "messages", "Input should be"),
        ({"user_id": "a", "typo": 1}, "typo", "Extra inputs are not permitted"),
    ],
)
def test_a_bad_add_names_the_hosted_field(fields: dict[str, Any], where: str, problem: str) -> None:
    with pytest.raises(ValidationError) as raised:
        AddMessageBody.model_validate(sdk_add(**fields))
    [error] = [e for e in raised.value.errors() if problem in e["msg"]]
    assert (error["loc"][0] if error["loc"] else "body") == where


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"allow_public": True}, "allow_public: memcube has no public memory"),
        ({"allow_memory_view": ["profile"]}, "allow_memory_view: memory views are not supported"),
        ({"info": {"app_id": "x"}, "app_id": "y"}, "info.app_id: 'x' differs from app_id 'y'"),
        ({"allow_knowledgebase_ids": [f"kb-{n}" for n in range(16)]}, "allow_knowledgebase_ids: at most 15"),
    ],
)
def test_what_memcube_cannot_honour_is_refused_not_ignored(fields: dict[str, Any], problem: str) -> None:
    body = AddMessageBody.model_validate(sdk_add(user_id="alice", **fields))
    with pytest.raises(InvalidRequest, match=problem):
        add_request(body)


def test_feedback_is_the_users_message_on_the_feedback_path() -> None:
    body = AddFeedbackBody(
        feedback_content="Not Sundays: Saturdays.", user_id="alice", conversation_id="c1",
        feedback_time="2026-06-01", allow_knowledgebase_ids=["kb-1"], agent_id="bot",
    )  # fmt: skip
    req = feedback_request(body)
    assert req.is_feedback and req.writable_cube_ids == ["alice", "kb-1"] and req.session_id == "c1"
    assert req.messages == [ChatMessage(role="user", content="Not Sundays: Saturdays.", chat_time="2026-06-01")]
    assert req.info == {"agent_id": "bot"}


def test_a_search_reads_the_subject_and_its_knowledge_bases_with_the_hosted_limits() -> None:
    body = SearchMemoryBody(query="runs", user_id="alice", conversation_id="c1", memory_limit_number=3,
                            knowledgebase_ids=["kb-1"], filter={"tags": {"contains": "run"}})  # fmt: skip
    req = search_request(body)
    assert (req.user_id, req.to_query().cube_ids, req.session_id, req.top_k) == ("alice", ["alice", "kb-1"], "c1", 3)
    assert req.relativity == 0.45 and req.filter == {"tags": {"contains": "run"}}
    assert search_request(SearchMemoryBody(query="q", agent_id="bot", relativity=0.1)).relativity == 0.1


@pytest.mark.parametrize("model", [SearchMemoryBody, GetMemoryBody])
def test_search_and_get_need_exactly_one_subject(model: type[SearchMemoryBody] | type[GetMemoryBody]) -> None:
    query = {"query": "q"} if model is SearchMemoryBody else {}
    for subjects in ({}, {"user_id": "a", "agent_id": "b"}):
        with pytest.raises(ValidationError, match="exactly one of user_id and agent_id"):
            model.model_validate(query | subjects)


def test_get_memory_takes_a_filter_to_apply() -> None:
    assert GetMemoryBody(user_id="a", filter={"tags": "x"}).filter == {"tags": "x"}


def test_deletes_by_subject_or_filter_map_to_the_subjects_cube() -> None:
    erase = delete_request(DeleteMemoryBody(user_id="alice"), caller=None)
    assert (erase.user_id, erase.writable_cube_ids, erase.filter, erase.memory_ids) == ("alice", ["alice"], None, None)
    typed = delete_request(DeleteMemoryBody(agent_id="bot", memory_type="UserMemory"), caller=None)
    assert (typed.writable_cube_ids, typed.filter) == (["bot"], {"memory_type": "UserMemory"})
    both = delete_request(DeleteMemoryBody(filter={"tags": "x"}, memory_type="UserMemory"), caller="alice")
    assert (both.writable_cube_ids, both.filter) == (["alice"], {"and": [{"tags": "x"}, {"memory_type": "UserMemory"}]})
    with pytest.raises(InvalidRequest, match="a delete by filter alone names no user"):
        delete_request(DeleteMemoryBody(filter={"tags": "x"}), caller=None)


@pytest.mark.parametrize(
    "fields",
    [{}, {"user_id": "a", "memory_ids": ["m"]}, {"memory_ids": ["m"], "memory_type": "UserMemory"}],
)
def test_a_delete_gives_exactly_one_mode(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DeleteMemoryBody.model_validate(fields)


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


@pytest.mark.parametrize(
    ("file", "name", "mime", "data"),
    [
        ({"content": "plain words"}, "file-1.txt", "text/plain", b"plain words"),
        ({"content": "# T", "name": "notes.md"}, "notes.md", "text/markdown", b"# T"),
        (
            {"content": f"data:application/octet-stream;base64,{b64('{}')}", "name": "a.json"},
            "a.json",
            "application/json",
            b"{}",
        ),
        ({"content": f"data:text/csv;base64,{b64('a,b')}", "name": "t"}, "t", "text/csv", b"a,b"),
        ({"content": "data:text/plain,caf%C3%A9", "name": "c.txt"}, "c.txt", "text/plain", "café".encode()),
        (
            {"content": f"data:application/pdf;base64,{b64(b'%PDF-1.4')}", "name": "x.pdf"},
            "x.pdf",
            "application/pdf",
            b"%PDF-1.4",
        ),
    ],
)
def test_a_json_upload_is_decoded_and_typed(file: dict[str, str], name: str, mime: str, data: bytes) -> None:
    assert json_upload(KnowledgebaseFile.model_validate(file), 0) == Upload(name, data, mime)


@pytest.mark.parametrize(
    ("file", "problem"),
    [
        ({"content": "https://example.org/a.pdf"}, "file\\[0\\].content: URLs are not fetched"),
        ({"content": "x", "type": "skill"}, "file\\[0\\].type: skill packages are not supported"),
        (
            {"content": f"data:application/msword;base64,{b64('x')}", "name": "a.doc"},
            "type application/msword is not supported",
        ),
        ({"content": f"data:application/octet-stream;base64,{b64('x')}", "name": "a.docx"}, "type unknown"),
        ({"content": "%PDF-1.4 as text", "name": "a.pdf"}, "send a PDF as a data URL"),
        ({"content": "data:text/plain;base64,***", "name": "a.txt"}, "not a valid data URL"),
    ],
)
def test_a_json_upload_memcube_cannot_read_is_refused(file: dict[str, str], problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem):
        json_upload(KnowledgebaseFile.model_validate(file), 0)


def test_an_upload_is_an_add_of_file_parts_into_the_knowledge_base_with_content_ids() -> None:
    uploads = [Upload("a.md", b"# A", "text/markdown"), Upload("b.pdf", b"%PDF-1.4 x", "application/pdf")]
    req, ids = upload_request("kb-1", uploads, "alice")
    assert ids == [file_id_for("kb-1", b"# A"), file_id_for("kb-1", b"%PDF-1.4 x")]
    assert ids[0].startswith("kb-1:") and len(ids[0]) == len("kb-1:") + 24
    assert [cube_of_file(i, "f") for i in ids] == ["kb-1", "kb-1"]
    cmd = to_command(req)
    assert (cmd.user_id, cmd.cube_ids) == ("alice", ["kb-1"])
    [md, pdf] = cmd.messages
    assert (md.content, md.file_id, md.filename, md.data) == ("# A", ids[0], "a.md", None)
    assert (pdf.content, pdf.data) == ("", f"data:application/pdf;base64,{b64(b'%PDF-1.4 x')}")


@pytest.mark.parametrize(
    ("uploads", "problem"),
    [
        ([Upload("a.txt", b"  ", "text/plain")], "file\\[0\\]: 'a.txt' is empty"),
        ([Upload("a.txt", b"\xff\xfe", "text/plain")], "is not UTF-8 text"),
        ([Upload("a.txt", b"x" * 2_097_153, "text/plain")], "at most 2097152 bytes of files per upload"),
        ([Upload(f"{n}.txt", b"x", "text/plain") for n in range(21)], "at most 20 files per upload"),
    ],
)
def test_an_upload_memcube_cannot_take_is_refused(uploads: list[Upload], problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem):
        upload_request("kb-1", uploads, "alice")


def test_a_file_id_names_its_knowledge_base_or_is_refused() -> None:
    assert cube_of_file("team:docs:" + "a" * 24, "f") == "team:docs"
    with pytest.raises(InvalidRequest, match="file_ids\\[3\\]: 'file-1' is not a knowledge-base file id"):
        cube_of_file("file-1", "file_ids[3]")


def test_a_knowledge_base_id_is_a_slug_of_its_name_and_unique() -> None:
    first, second = knowledgebase_id_for("Finance 2026 / Policies!"), knowledgebase_id_for("Finance 2026 / Policies!")
    assert first.startswith("kb-finance-2026-policies-") and first != second
    assert knowledgebase_id_for("财务制度").startswith("kb-") and len(knowledgebase_id_for("财务制度")) == 19
