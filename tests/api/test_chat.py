"""Chat on the embedded default: `/product/chat/complete`, `/product/chat/stream` (server-sent
events), the hosted `POST /chat` and the conversation's messages (`/product/get_message`, the
hosted `POST /get/message`). The model is the scripted fake (`ScriptedLLM.stream`); retrieval,
the add of the exchange and the message log are the real embedded ones."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from memcube.domain.chat import ChatService
from memcube.domain.errors import LLMUnavailable
from memcube.wiring import Container
from memcube_api.app import create_app
from tests.api.conftest import memory_container_with, serve
from tests.lambda_support import FakeLambdaContext, call, serving, v2_event
from tests.unit.world import ScriptedLLM

MODEL = "qwen2.5-7b-instruct"


def with_llm(container: Container, llm: ScriptedLLM) -> Container:
    """The container's chat answering with `llm` (the rest of the deployment has no LLM: adds are
    fast mode, searches are not reranked)."""
    c = container
    c.__dict__["chat"] = ChatService(c.searcher, c.add, c.messages, c.directory, llm, model_name=MODEL, sync_timeout=20)
    return c


@pytest.fixture
def llm() -> ScriptedLLM:
    return ScriptedLLM()


@pytest.fixture
def api(embedded_container: Container, llm: ScriptedLLM) -> Iterator[Container]:
    with serving(with_llm(embedded_container, llm)) as container:
        yield container


@pytest.fixture
def client(api: Container) -> TestClient:
    return TestClient(create_app(lambda: api))


def add(text: str, *, user: str = "alice", session: str = "s-old") -> str:
    body = {"user_id": user, "messages": text, "async_mode": "sync", "mode": "fast", "session_id": session}
    code, payload = call("POST", "/product/add", body=body)
    assert code == 200, payload
    memory_id: str = payload["data"][0]["memory_id"]
    return memory_id


def cite_what_mentions(word: str, answer: str) -> Any:
    """A reply that cites the offered memory mentioning `word` with its marker, as the prompt asks."""

    def reply(system: str, _: str) -> str:
        marker = next(m for m in re.findall(r"^(\[\d+:[^\]]+\]) (.*)$", system, re.M) if word in m[1])[0]
        return f"{answer} {marker}"

    return reply


def chat(**body: Any) -> tuple[int, dict[str, Any]]:
    return call("POST", "/product/chat/complete", body={"user_id": "alice", "threshold": 0.0, **body})


def wait_task(api: Container, task_id: str) -> None:
    record = api.add.wait(task_id, 20)
    assert record.status.value == "completed", record


def memories(api: Container, cube: str = "alice") -> list[str]:
    return [i.memory for i in api.memories.iter_memories(cube) if i.metadata.status == "activated"]


def test_complete_answers_from_the_users_memories_cites_the_one_it_used_and_adds_the_exchange(
    api: Container, llm: ScriptedLLM
) -> None:
    lisbon = add("I moved to Lisbon last May.")
    add("My sister is called Ana.")
    llm.replies.append(cite_what_mentions("Lisbon", "You live in Lisbon."))
    code, payload = chat(query="Where do I live now?", session_id="s-1", relativity=0.0)
    assert code == 200, payload
    data = payload["data"]
    assert data["response"] == f"You live in Lisbon. [1:{lisbon}]"
    assert data["memory_ids"] == [lisbon]
    [ref] = data["references"]
    assert (ref["memory_id"], ref["cube_id"], ref["memory"]) == (lisbon, "alice", "I moved to Lisbon last May.")
    assert {r["memory_id"] for r in data["retrieved"]} >= {lisbon}
    assert data["session_id"] == "s-1" and data["task_id"]

    [(turns, _)] = llm.streamed
    assert [t.role for t in turns] == ["system", "user"] and turns[-1].content == "Where do I live now?"
    assert "I moved to Lisbon last May." in turns[0].content and "cite it" in turns[0].content

    wait_task(api, data["task_id"])  # the exchange went through the normal add path
    assert any("You live in Lisbon." in m and "[1:" not in m for m in memories(api))


def test_with_add_message_on_answer_off_no_task_and_no_memory_but_the_messages_are_kept(
    api: Container, llm: ScriptedLLM
) -> None:
    add("I moved to Lisbon last May.")
    before = memories(api)
    llm.replies.append("Lisbon.")
    code, payload = chat(query="Where do I live?", session_id="s-2", add_message_on_answer=False)
    assert code == 200, payload
    assert payload["data"]["task_id"] is None
    assert memories(api) == before
    assert len(api.tasks.list_tasks("alice", 10)) == 1  # the add above, nothing for the chat
    code, got = call("POST", "/product/get_message", body={"user_id": "alice", "session_id": "s-2"})
    assert code == 200, got
    assert [(m["role"], m["content"]) for m in got["data"]["messages"]] == [
        ("user", "Where do I live?"),
        ("assistant", "Lisbon."),
    ]


def test_history_system_prompt_and_sampling_reach_the_model(api: Container, llm: ScriptedLLM) -> None:
    llm.replies.append("Fine.")
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    code, payload = chat(
        query="How are you?", history=history, system_prompt="Be brief. Memories: {memories}",
        max_tokens=64, temperature=0.2, top_p=0.9, add_message_on_answer=False,
    )  # fmt: skip
    assert code == 200, payload
    [(turns, sampling)] = llm.streamed
    assert [(t.role, t.content) for t in turns[1:]] == [
        ("user", "Hi"),
        ("assistant", "Hello!"),
        ("user", "How are you?"),
    ]
    assert turns[0].content.startswith("Be brief. Memories: <memories>")
    assert (sampling.max_tokens, sampling.temperature, sampling.top_p) == (64, 0.2, 0.9)


def test_a_marker_naming_a_memory_that_was_not_offered_cites_nothing(api: Container, llm: ScriptedLLM) -> None:
    add("I moved to Lisbon last May.")
    llm.replies.append("You live in Lisbon [1:mem-invented] [7].")
    code, payload = chat(query="Where do I live?", add_message_on_answer=False)
    assert code == 200, payload
    assert payload["data"]["memory_ids"] == [] and payload["data"]["references"] == []


def test_without_an_llm_every_chat_route_is_refused_naming_the_setting_and_writes_nothing(
    embedded_container: Container, tmp_path: Any
) -> None:
    with serving(embedded_container) as api:
        for path, body in (
            ("/product/chat/complete", {"user_id": "alice", "query": "hi"}),
            ("/product/chat/stream", {"user_id": "alice", "query": "hi"}),
            ("/api/openmem/v1/chat", {"user_id": "alice", "conversation_id": "c1", "query": "hi", "stream": True}),
            ("/chat", {"user_id": "alice", "conversation_id": "c1", "query": "hi"}),
        ):
            code, payload = call("POST", path, body=body)
            assert code == 409, (path, payload)
            assert "chat needs an LLM" in payload["message"] and "MEMCUBE_LLM" in payload["message"]
        assert api.tasks.list_tasks("alice", 10) == []
        assert api.messages.recent_sessions("alice", 10) == []
        assert list(api.memories.iter_memories()) == []


def test_only_readable_cubes_are_retrieved_and_an_unreadable_one_is_refused_before_the_model(
    api: Container, llm: ScriptedLLM
) -> None:
    add("Bob's safe code is 4711.", user="bob")
    add("I moved to Lisbon last May.")
    code, payload = chat(query="What is the safe code?", readable_cube_ids=["alice", "bob"])
    assert code == 403 and "may not read cube 'bob'" in payload["message"]
    llm.replies.append("I do not know.")
    code, payload = chat(query="What is Bob's safe code 4711?", add_message_on_answer=False)
    assert code == 200, payload
    assert all("4711" not in r["memory"] for r in payload["data"]["retrieved"])
    [(turns, _)] = llm.streamed  # the refused chat never reached the model
    assert "4711" not in turns[0].content


def test_writing_the_exchange_into_a_cube_the_caller_may_not_write_is_refused_and_writes_nothing(
    api: Container, llm: ScriptedLLM
) -> None:
    add("Bob's notes.", user="bob")
    code, payload = chat(query="hi", writable_cube_ids=["bob"])
    assert code == 403 and "may not write" in payload["message"]
    assert llm.streamed == []
    assert api.messages.recent_sessions("alice", 10) == []
    assert api.tasks.list_tasks("alice", 10) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"internet_search": True}, "internet_search"),
        ({"moscube": True}, "moscube"),
        ({"model_name_or_path": "gpt-9"}, "model_name_or_path"),
        ({"history": [{"role": "tool", "content": "x"}]}, "history"),
        ({"temperature": 5}, "temperature"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_what_chat_cannot_do_is_refused_naming_the_field(
    api: Container, llm: ScriptedLLM, body: dict[str, Any], field: str
) -> None:
    code, payload = chat(query="hi", **body)
    assert code == 422, payload
    assert field in payload["message"]
    assert llm.streamed == [] and api.messages.recent_sessions("alice", 10) == []


def sse_events(client: TestClient, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with client.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines), lines
    return [json.loads(line.removeprefix("data: ")) for line in lines]


def test_stream_sends_the_references_each_piece_then_the_end_with_citations_and_the_task(
    api: Container, client: TestClient, llm: ScriptedLLM
) -> None:
    lisbon = add("I moved to Lisbon last May.")
    llm.replies.append(["You live ", "in Lisbon. ", f"[1:{lisbon}]"])
    body = {"user_id": "alice", "query": "Where do I live?", "threshold": 0, "relativity": 0}
    events = sse_events(client, "/product/chat/stream", body)
    assert [e["type"] for e in events] == ["reference", "text", "text", "text", "end"]
    assert [r["memory_id"] for r in events[0]["data"]] == [lisbon]
    assert "".join(e["data"] for e in events if e["type"] == "text") == f"You live in Lisbon. [1:{lisbon}]"
    end = events[-1]["data"]
    assert end["memory_ids"] == [lisbon] and end["task_id"]
    wait_task(api, end["task_id"])
    assert any("You live in Lisbon." in m for m in memories(api))


def test_a_provider_failure_mid_stream_ends_with_an_error_event_and_writes_nothing(
    api: Container, client: TestClient, llm: ScriptedLLM
) -> None:
    llm.replies.append(["You live ", LLMUnavailable("OpenAI-compatible LLM: timed out")])
    events = sse_events(client, "/product/chat/stream", {"user_id": "alice", "query": "Where?"})
    assert [e["type"] for e in events] == ["reference", "text", "error"]
    assert events[-1]["code"] == 503 and "timed out" in events[-1]["content"]
    assert api.tasks.list_tasks("alice", 10) == []
    assert api.messages.recent_sessions("alice", 10) == []


def test_a_refused_stream_is_a_json_error_not_an_event_stream(api: Container, client: TestClient) -> None:
    add("Bob's notes.", user="bob")
    response = client.post(
        "/product/chat/stream", json={"user_id": "alice", "query": "hi", "writable_cube_ids": ["bob"]}
    )
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/json"


def test_hosted_chat_answers_in_the_sdks_shape_and_streams_the_same_events(
    api: Container, client: TestClient, llm: ScriptedLLM
) -> None:
    lisbon = add("I moved to Lisbon last May.")
    body = {"user_id": "alice", "conversation_id": "c-9", "query": "Where do I live?", "max_tokens": 8192,
            "temperature": 0.7, "top_p": 0.95, "tags": ["chat"], "app_id": "demo", "relativity": 0.0}  # fmt: skip
    llm.replies.append(cite_what_mentions("Lisbon", "Lisbon."))
    code, payload = call("POST", "/api/openmem/v1/chat", body=body)
    assert (code, payload["code"]) == (200, 0), payload
    assert payload["data"]["memory_ids"] == [lisbon] and payload["data"]["conversation_id"] == "c-9"
    wait_task(api, payload["data"]["task_id"])
    added = [i for i in api.memories.iter_memories("alice") if "Lisbon." in i.memory and i.id != lisbon]
    assert added and "chat" in added[0].metadata.tags and added[0].metadata.info["app_id"] == "demo"

    llm.replies.append(["Still ", "Lisbon."])
    events = sse_events(client, "/chat", body | {"stream": True, "add_message_on_answer": False})
    assert [e["type"] for e in events] == ["reference", "text", "text", "end"]
    assert events[-1]["data"]["conversation_id"] == "c-9"

    code, got = call("POST", "/get/message", body={"user_id": "alice", "conversation_id": "c-9"})
    assert (code, got["code"]) == (200, 0), got
    said = [(m["role"], m["content"]) for m in got["data"]["message_detail_list"]]
    assert said[0] == ("user", "Where do I live?") and said[-1] == ("assistant", "Still Lisbon.")
    assert len(said) == 4


@pytest.mark.parametrize("field", ["internet_search", "force_stop", "use_mem_os_cube", "allow_public"])
def test_the_hosted_chat_refuses_what_memcube_cannot_do_naming_the_field(
    api: Container, llm: ScriptedLLM, field: str
) -> None:
    body = {"user_id": "alice", "conversation_id": "c", "query": "hi", field: True}
    code, payload = call("POST", "/chat", body=body)
    assert code == 422 and field in payload["message"], payload
    assert llm.streamed == []


def test_an_adds_chat_messages_are_kept_per_session_and_read_back_last_n(api: Container) -> None:
    messages = [
        {"role": "user", "content": "I adopted a greyhound.", "chat_time": "2026-05-01T10:00:00Z"},
        {"role": "assistant", "content": "Lovely!"},
        {"role": "user", "content": "Her name is Pixel."},
    ]
    code, payload = call("POST", "/product/add", body={"user_id": "alice", "session_id": "pets", "messages": messages})
    assert code == 200, payload
    for _ in range(2):  # the same task twice: its messages are recorded once
        again = {"user_id": "alice", "session_id": "pets", "messages": messages, "task_id": "t-1"}
        assert call("POST", "/product/add", body=again)[0] == 200
    code, got = call("POST", "/product/get_message", body={"user_id": "alice", "session_id": "pets", "limit": 2})
    assert code == 200, got
    assert [m["content"] for m in got["data"]["messages"]] == ["Lovely!", "Her name is Pixel."]
    code, every = call("POST", "/product/get_message", body={"user_id": "alice", "session_id": "pets", "limit": 50})
    assert len(every["data"]["messages"]) == 6  # two adds (the repeated task_id is recorded once)
    assert every["data"]["messages"][0]["chat_time"] == "2026-05-01T10:00:00Z"
    code, other = call("POST", "/product/get_message", body={"user_id": "bob", "session_id": "pets"})
    assert code == 200 and other["data"]["messages"] == []  # a user reads only their own messages


def test_get_message_without_a_session_reads_the_most_recent_sessions(api: Container) -> None:
    for session, text in (("a", "first"), ("b", "second"), ("c", "third")):
        call("POST", "/product/add", body={"user_id": "alice", "session_id": session, "messages": text + " note",
                                          "async_mode": "async"})  # fmt: skip
        call("POST", "/product/add", body={"user_id": "alice", "session_id": session,
                                          "messages": [{"role": "user", "content": text}]})  # fmt: skip
    code, got = call("POST", "/product/get_message", body={"user_id": "alice", "session_limit": 2})
    assert code == 200, got
    assert got["data"]["sessions"] == ["c", "b"]
    assert [m["content"] for m in got["data"]["messages"]] == ["third", "second"]


def test_deleting_a_session_or_erasing_the_user_erases_their_conversation_messages_too(api: Container) -> None:
    for session in ("s-a", "s-b"):
        body = {"user_id": "alice", "session_id": session, "messages": [{"role": "user", "content": f"hi {session}"}]}
        assert call("POST", "/product/add", body=body)[0] == 200
    bob = {"user_id": "bob", "session_id": "s-a", "messages": [{"role": "user", "content": "bob here"}]}
    assert call("POST", "/product/add", body=bob)[0] == 200
    code, gone = call("POST", "/product/delete_memory", body={"user_id": "alice", "session_id": "s-a"})
    assert code == 200 and gone["data"]["messages_deleted"] == 1, gone
    assert api.messages.recent_sessions("alice", 10) == ["s-b"]
    code, erased = call("POST", "/product/delete_memory", body={"user_id": "alice"})
    assert code == 200 and erased["data"]["messages_deleted"] == 1, erased
    assert api.messages.recent_sessions("alice", 10) == []
    assert api.messages.recent_sessions("bob", 10) == ["s-a"]  # another user's conversation stays


def test_get_message_refuses_a_source_it_cannot_filter_by(api: Container) -> None:
    code, payload = call("POST", "/get/message", body={"user_id": "alice", "conversation_id": "c", "source": "app"})
    assert code == 422 and "source" in payload["message"], payload


def test_a_chat_counts_against_the_daily_add_quota(monkeypatch: pytest.MonkeyPatch, llm: ScriptedLLM) -> None:
    serve(monkeypatch, with_llm(memory_container_with(daily_add_quota=1), llm))
    llm.replies.append("Hello.")
    assert chat(query="hi", add_message_on_answer=False)[0] == 200
    code, payload = chat(query="hi again")
    assert code == 429, payload
    assert len(llm.streamed) == 1  # the refused chat never reached the model


def test_erasing_a_personal_cube_erases_its_users_conversation_messages(api: Container) -> None:
    body = {"user_id": "alice", "session_id": "s", "messages": [{"role": "user", "content": "my pin is 4711"}]}
    assert call("POST", "/product/add", body=body)[0] == 200
    code, erased = call("POST", "/product/delete_cube", body={"user_id": "alice", "cube_id": "alice"})
    assert code == 200 and erased["data"]["messages_deleted"] == 1, erased
    assert api.messages.recent_sessions("alice", 10) == []


def test_on_lambda_the_stream_is_returned_whole_as_event_stream_text(api: Container, llm: ScriptedLLM) -> None:
    """API Gateway's HTTP API buffers a Lambda's answer: Mangum collects the events into one body."""
    from memcube_api.handler import lambda_handler

    llm.replies.append(["Hello ", "there."])
    event = v2_event("POST", "/product/chat/stream", body={"user_id": "alice", "query": "hi"})
    response = lambda_handler(event, FakeLambdaContext())
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"].startswith("text/event-stream")
    lines = [line for line in response["body"].splitlines() if line]
    types = [json.loads(line.removeprefix("data: "))["type"] for line in lines]
    assert types == ["reference", "text", "text", "end"]


def test_a_hosted_chat_with_async_mode_off_waits_for_the_exchanges_add(api: Container, llm: ScriptedLLM) -> None:
    llm.replies.append("Noted.")
    body = {"user_id": "alice", "conversation_id": "c", "query": "I like green tea.", "async_mode": False}
    code, payload = call("POST", "/chat", body=body)
    assert code == 200, payload
    assert payload["data"]["task_status"] == "completed"
    assert any("I like green tea." in m for m in memories(api))


def test_chat_never_offers_the_model_an_expired_memory(api: Container, llm: ScriptedLLM) -> None:
    from tests.api.test_expiry_reads_and_edits import expire

    lisbon = add("I moved to Lisbon last May.")
    porto = add("I lived in Porto before Lisbon.")
    expire(api, porto)
    llm.replies.append(cite_what_mentions("Lisbon", "You live in Lisbon."))
    code, payload = chat(query="Where did I live, Porto or Lisbon?", session_id="s-x", add_message_on_answer=False)
    assert code == 200, payload
    assert {r["memory_id"] for r in payload["data"]["retrieved"]} == {lisbon}
    [(turns, _)] = llm.streamed
    assert "Porto" not in turns[0].content


def plant_preference(api: Container, text: str, user: str = "alice") -> str:
    """A `PreferenceMemory` in the user's cube, as fine mode would store it (this deployment has no LLM)."""
    from memcube.domain.ingest import content_hash
    from memcube.domain.model import MemoryItem, MemoryMetadata

    now = "2026-12-06T10:00:00.000Z"
    item = MemoryItem(
        id=f"pref-{abs(hash(text)) % 10**8}",
        memory=text,
        metadata=MemoryMetadata(
            user_id=user, session_id="s-pref", cube_id=user, memory_type="PreferenceMemory", key="drinks",
            preference_type="explicit_preference", preference=text, embedding=api.embedder.embed([text])[0],
            embedding_model=api.embedder.model_id, created_at=now, updated_at=now,
            content_hash=content_hash(text, "PreferenceMemory"), task_id="t-pref",
        ),
    )  # fmt: skip
    api.memories.put_memory(item)
    api.index.upsert([item])
    return item.id


def test_the_users_preferences_reach_the_model_after_the_facts_and_include_preference_false_leaves_them_out(
    api: Container, llm: ScriptedLLM
) -> None:
    add("I drink tea every morning.")
    preference = plant_preference(api, "The user prefers green tea over black tea.")
    llm.replies = [cite_what_mentions("green tea", "Green tea, then.")]
    code, payload = chat(query="Which tea should I drink?")
    assert code == 200, payload
    system = llm.streamed[-1][0][0].content
    assert "The user prefers green tea over black tea." in system
    assert preference in [r["memory_id"] for r in payload["data"]["references"]]
    llm.replies = ["No preference offered."]
    code, payload = chat(query="Which tea should I drink?", include_preference=False)
    assert code == 200, payload
    assert "prefers green tea" not in llm.streamed[-1][0][0].content
