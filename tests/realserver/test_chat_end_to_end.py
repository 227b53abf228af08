"""Chat end to end on the aws deployment's real servers (DynamoDB Local for the message log,
LocalStack SQS for the exchange's add, osmem-server for retrieval) and on the embedded default:
a chat retrieves, cites, adds its exchange through the queue and the worker, keeps its messages;
erasing the user's data leaves none of their words stored anywhere."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memcube.domain.chat import ChatService
from memcube.wiring import Container
from tests.realserver.test_end_to_end import Stack, _raw_storage_holds, aws_stack_of, embedded_stack
from tests.unit.world import ScriptedLLM

SECRET = "quokka5531"


@pytest.fixture(params=["aws", "embedded"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    if request.param == "embedded":
        yield from embedded_stack(tmp_path / "data")
    else:
        yield from aws_stack_of(request)


def answering(container: Container, llm: ScriptedLLM) -> None:
    c = container
    c.__dict__["chat"] = ChatService(c.searcher, c.add, c.messages, c.directory, llm, model_name="m", sync_timeout=30)


def cite_first(system: str, _: str) -> str:
    marker = re.search(r"^\[\d+:[^\]]+\]", system, re.M)
    assert marker, system
    return f"Your locker code is {SECRET}. {marker.group(0)}"


def test_a_chat_is_cited_added_through_the_queue_kept_and_erased_with_the_user(stack: Stack) -> None:
    llm = ScriptedLLM(cite_first)
    answering(stack.container, llm)
    said = [{"role": "user", "content": f"My locker code is {SECRET}."}]
    code, added = stack.add({"user_id": "ivy", "session_id": "s-1", "messages": said})
    assert code == 200 and stack.wait("ivy", added["task_id"])["status"] == "completed"

    ask = {"user_id": "ivy", "query": f"locker code {SECRET}", "session_id": "s-1", "relativity": 0.0, "threshold": 0}
    code, answer = stack.call("POST", "/product/chat/complete", body=ask)
    assert code == 200, answer
    data: dict[str, Any] = answer["data"]
    assert len(data["memory_ids"]) == 1 and data["references"][0]["cube_id"] == "ivy"
    assert stack.wait("ivy", data["task_id"])["status"] == "completed"  # SQS -> worker -> store and index
    code, found = stack.call("POST", "/product/search", body={"user_id": "ivy", "query": SECRET, "relativity": 0.0})
    assert code == 200 and len(found["data"]["text_mem"][0]["memories"]) >= 2, found

    code, got = stack.call("POST", "/product/get_message", body={"user_id": "ivy", "session_id": "s-1"})
    assert code == 200, got
    assert [m["role"] for m in got["data"]["messages"]] == ["user", "user", "assistant"]
    assert _raw_storage_holds(stack, SECRET)

    code, erased = stack.call("POST", "/product/delete_memory", body={"user_id": "ivy"})
    assert code == 200 and erased["data"]["messages_deleted"] == 3, erased
    code, got = stack.call("POST", "/product/get_message", body={"user_id": "ivy", "session_id": "s-1"})
    assert got["data"]["messages"] == []
    assert _raw_storage_holds(stack, SECRET) == []
