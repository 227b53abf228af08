"""Preference and tool memory through the Lambda entry on the embedded default: fine adds
(a scripted LLM) fill `pref_mem` and `tool_mem` in /product/search and the hosted search,
honouring their switches and top-k; get_memory answers each kind in its list; without an LLM
the task and the search say why none were made."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memcube.domain.preferences import NO_LLM_NOTE
from memcube.domain.search import NO_PREFERENCES_NOTE, NO_TOOL_MEMORY_NOTE
from memcube.domain.tool_memory import NO_LLM_NOTE as NO_TOOL_LLM_NOTE
from memcube.settings import Settings
from memcube.wiring import Container
from memcube_local.embedded import EmbeddedWorker
from memcube_local.wiring import LocalContainer
from tests.api.conftest import assert_nothing_written
from tests.lambda_support import call, serving
from tests.routed_llm import RoutedLLM, extraction_reply, preference, tool_reply

PREFERENCES = [
    preference("The user prefers tea to coffee."),
    preference("The user likes window seats on flights."),
    preference("The user wants short answers.", kind="implicit_preference", reasoning="asked to be brief twice"),
]
FACT = {"key": "flight", "memory_type": "UserMemory", "value": "The user drinks tea on flights.", "tags": []}
TOOL_CALLS = [
    {"role": "user", "content": "Weather in Paris and Atlantis?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Atlantis"}'}},
    ]},
    {"role": "tool", "tool_call_id": "c1", "content": '{"temp_c": 18}'},
    {"role": "tool", "tool_call_id": "c2", "content": '{"error": "unknown city"}'},
]  # fmt: skip


def fine_container(tmp_path: Path, llm: RoutedLLM) -> LocalContainer:
    settings = Settings(
        backend="embedded", embedder="hash", data_dir=tmp_path / "d", sync_timeout_seconds=20,
        llm="openai", llm_model="scripted", llm_base_url="http://127.0.0.1:9", reranker="none",
    )  # fmt: skip
    return LocalContainer(settings, llm=llm)


@pytest.fixture
def fine(tmp_path: Path) -> Iterator[Container]:
    llm = RoutedLLM(
        [extraction_reply(facts=[FACT], preferences=PREFERENCES)],
        tools=[tool_reply(("c1", "success", "get_weather for Paris returned 18°C."),
                          ("c2", "error", "get_weather for Atlantis failed: unknown city."))],
    )  # fmt: skip
    container = fine_container(tmp_path, llm)
    worker = EmbeddedWorker(container)
    worker.start()
    try:
        with serving(container):
            add("Tea please, not coffee. Window seat again. Keep it short.")
            add(TOOL_CALLS)
            yield container
    finally:
        worker.stop()
        container.close()


@pytest.fixture
def fast(embedded_container: Container) -> Iterator[Container]:
    with serving(embedded_container) as container:
        yield container


def add(messages: Any, **body: Any) -> dict[str, Any]:
    code, payload = call(
        "POST", "/product/add", body={"user_id": "alice", "messages": messages, "async_mode": "sync", **body}
    )
    assert code == 200, payload
    return payload


def search(**body: Any) -> dict[str, Any]:
    code, payload = call("POST", "/product/search", body={"user_id": "alice", "relativity": 0.0, **body})
    assert code == 200, payload
    data: dict[str, Any] = payload["data"]
    return data


def memories(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for block in blocks for m in block["memories"]]


def test_search_fills_pref_mem_with_preferences_and_leaves_them_out_of_text_mem(fine: Container) -> None:
    data = search(query="what does the user like to drink?")
    prefs = memories(data["pref_mem"])
    assert {m["memory"] for m in prefs} == {p["preference"] for p in PREFERENCES}
    assert data["pref_mem"][0]["cube_id"] == "alice" and data["pref_mem"][0]["total_nodes"] == 3
    short = next(m for m in prefs if m["memory"] == "The user wants short answers.")
    meta = short["metadata"]
    assert (meta["memory_type"], meta["preference_type"], meta["reasoning"]) == (
        "PreferenceMemory", "implicit_preference", "asked to be brief twice",
    )  # fmt: skip
    assert "embedding" not in meta and 0 <= meta["relativity"] <= 1
    text_types = {m["metadata"]["memory_type"] for m in memories(data["text_mem"])}
    assert text_types and not text_types & {"PreferenceMemory", "ToolTrajectoryMemory"}
    assert (
        "Explicit preferences:\n1. " in data["pref_string"]
        and "Implicit preferences:\n1. The user wants" in (data["pref_string"])
    )
    assert data["pref_note"] and data["pref_string"].endswith(data["pref_note"])
    assert NO_PREFERENCES_NOTE not in data["notes"]


def test_pref_top_k_and_include_preference_are_honoured(fine: Container) -> None:
    assert len(memories(search(query="preferences", pref_top_k=2)["pref_mem"])) == 2
    assert search(query="preferences", pref_top_k=0)["pref_mem"] == []
    off = search(query="preferences", include_preference=False)
    assert off["pref_mem"] == [] and "pref_string" not in off


def test_search_fills_tool_mem_with_each_call_and_honours_its_switch_and_top_k(fine: Container) -> None:
    tools = memories(search(query="weather in Paris")["tool_mem"])
    calls = {m["metadata"]["tool_call"]["call_id"]: m["metadata"]["tool_call"] for m in tools}
    assert calls["c1"] == {"call_id": "c1", "name": "get_weather", "arguments": '{"city":"Paris"}',
                           "result": '{"temp_c": 18}', "status": "success", "error": None}  # fmt: skip
    assert (calls["c2"]["status"], calls["c2"]["error"]) == ("error", "unknown city")
    assert len(memories(search(query="weather", tool_mem_top_k=1)["tool_mem"])) == 1
    assert search(query="weather", search_tool_memory=False)["tool_mem"] == []


def test_search_memory_type_selects_preferences_into_the_hits(fine: Container) -> None:
    data = search(query="tea", search_memory_type="PreferenceMemory", include_preference=False)
    assert {m["metadata"]["memory_type"] for m in memories(data["text_mem"])} == {"PreferenceMemory"}


def test_the_add_status_counts_the_preference_and_tool_outcomes(fine: Container) -> None:
    code, payload = call("GET", "/product/scheduler/status", query="user_id=alice")
    assert code == 200
    outcomes = [o for task in payload["data"] for cube in task["cubes"] for o in cube["outcomes"]]
    types = [o["memory_type"] for o in outcomes if o["outcome"] == "added"]
    assert types.count("PreferenceMemory") == 3 and types.count("ToolTrajectoryMemory") == 2


def test_get_memory_answers_each_kind_in_its_list_and_honours_the_switches(fine: Container) -> None:
    body = {"mem_cube_id": "alice", "user_id": "alice", "page_size": 100}
    code, payload = call("POST", "/product/get_memory", body=body)
    assert code == 200, payload
    data = payload["data"]
    assert len(memories(data["pref_mem"])) == 3 and len(memories(data["tool_mem"])) == 2
    assert all(m["metadata"]["memory_type"] not in {"PreferenceMemory", "ToolTrajectoryMemory"}
               for m in memories(data["text_mem"]))  # fmt: skip
    _, off = call(
        "POST", "/product/get_memory", body=body | {"include_preference": False, "include_tool_memory": False}
    )
    assert (off["data"]["pref_mem"], off["data"]["tool_mem"]) == ([], [])


def test_the_hosted_search_returns_preferences_and_tool_memories_where_memos_cloud_does(fine: Container) -> None:
    body = {"user_id": "alice", "query": "tea or weather", "relativity": 0.0}
    code, payload = call("POST", "/search/memory", body=body)
    assert code == 200, payload
    data = payload["data"]
    assert len(data["preference_detail_list"]) == 3 and data["preference_note"]
    assert data["preference_detail_list"][0]["memory_type"] == "PreferenceMemory"
    assert {d["preference_type"] for d in data["preference_detail_list"]} == {"explicit_preference",
                                                                              "implicit_preference"}  # fmt: skip
    assert data["tool_memory_detail_list"] == []  # include_tool_memory is off by default, as in MemOS's SDK
    _, asked = call("POST", "/search/memory", body=body | {"include_tool_memory": True, "tool_memory_limit_number": 1,
                                                           "preference_limit_number": 2})  # fmt: skip
    assert len(asked["data"]["tool_memory_detail_list"]) == 1 and len(asked["data"]["preference_detail_list"]) == 2
    _, none = call("POST", "/search/memory", body=body | {"include_preference": False})
    assert (none["data"]["preference_detail_list"], none["data"]["preference_note"]) == ([], "")


def test_the_hosted_get_memory_lists_preferences_apart_and_honours_include_preference(fine: Container) -> None:
    code, payload = call("POST", "/get/memory", body={"user_id": "alice", "size": 50})
    assert code == 200, payload
    assert len(payload["data"]["preference_detail_list"]) == 3
    assert len(payload["data"]["tool_memory_detail_list"]) == 2
    _, off = call("POST", "/get/memory", body={"user_id": "alice", "size": 50, "include_preference": False})
    assert off["data"]["preference_detail_list"] == []


def test_without_an_llm_the_add_and_the_search_say_why_no_preferences_or_tool_memories_were_made(
    fast: Container,
) -> None:
    payload = add(TOOL_CALLS, mode="fast")
    _, status = call("GET", "/product/scheduler/status", query=f"user_id=alice&task_id={payload['task_id']}")
    notes = status["data"][0]["cubes"][0]["notes"]
    assert NO_LLM_NOTE in notes and NO_TOOL_LLM_NOTE in notes
    data = search(query="weather")
    assert NO_PREFERENCES_NOTE in data["notes"] and NO_TOOL_MEMORY_NOTE in data["notes"]
    assert memories(data["pref_mem"]) == [] and memories(data["tool_mem"]) == []
    quiet = search(query="weather", include_preference=False, search_tool_memory=False, rerank=False)
    assert quiet["notes"] == []


def test_a_tool_call_without_an_id_is_refused_naming_the_field_and_nothing_is_written(api: Container) -> None:
    bad = [{"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "get_weather"}}]}]
    code, payload = call("POST", "/product/add", body={"user_id": "bob", "messages": bad})
    assert code == 422 and "tool_calls[0].id" in payload["message"], payload
    assert_nothing_written(api)


def test_an_expired_preference_or_tool_memory_leaves_pref_mem_and_tool_mem_unless_show_expired(
    fine: Container,
) -> None:
    from tests.api.test_expiry_reads_and_edits import expire

    stored = [i for i in fine.memories.iter_memories("alice") if i.metadata.status == "activated"]
    pref = next(i for i in stored if i.memory == "The user prefers tea to coffee.")
    tool = next(i for i in stored if i.metadata.memory_type == "ToolTrajectoryMemory")
    expire(fine, pref.id)
    expire(fine, tool.id)
    data = search(query="what does the user drink? weather in Paris", search_tool_memory=True)
    assert len(memories(data["pref_mem"])) == 2 and pref.id not in {m["id"] for m in memories(data["pref_mem"])}
    assert [m["id"] for m in memories(data["tool_mem"])] and tool.id not in {
        m["id"] for m in memories(data["tool_mem"])
    }
    assert "prefers tea to coffee" not in data["pref_string"]
    shown = search(query="what does the user drink? weather in Paris", search_tool_memory=True, show_expired=True)
    assert pref.id in {m["id"] for m in memories(shown["pref_mem"])}
    assert tool.id in {m["id"] for m in memories(shown["tool_mem"])}
