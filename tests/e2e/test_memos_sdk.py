"""The official MemOS Python SDK (PyPI `MemoryOS`, `memos.api.client.MemOSClient`), unmodified, in
its own venv, against a real `memcube serve` with API keys on: every call is made by the SDK, its
answer validated against the SDK's own response models, in exactly one HTTP request (see
tests/sdk/driver.py)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from memcube_local.cli import main
from tests.e2e.conftest import Server
from tests.fakes import memory_llm, running_fake_openai
from tests.pdfs import pdf_with_pages
from tests.sdk.bridge import SdkBridge

PREFIX = "/api/openmem/v1"


def create_key(data: Path, user: str, scope: str = "user") -> str:
    env = {"MEMCUBE_DATA_DIR": str(data), "MEMCUBE_EMBEDDER": "hash"}
    done = CliRunner().invoke(
        main, ["keys", "create", "--user", user, "--scope", scope], env=env, catch_exceptions=False
    )
    assert done.exit_code == 0, done.output
    return done.stdout.strip()


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SdkBridge]:
    bridge = SdkBridge(tmp_path_factory.mktemp("memos-sdk"))
    assert bridge.versions["memoryos"] == "2.0.33"
    yield bridge
    bridge.close()


class Deployment:
    """One keys-on `memcube serve` and a key per user."""

    def __init__(self, root: Path, env: dict[str, str] | None = None) -> None:
        data = root / "data"
        self.keys = {user: create_key(data, user) for user in ("alice", "bob", "carol")}
        self.server = Server(data, 2, root / "serve.log", {"MEMCUBE_AUTH": "keys"} | (env or {})).wait_healthy()
        self.base = self.server.url + PREFIX


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployed = Deployment(tmp_path_factory.mktemp("memcube-keys"))
    yield deployed
    deployed.server.stop(grace=5.0)


def wait_task(sdk: SdkBridge, base: str, key: str, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll get_task_status (through the SDK) until the task is finished."""
    deadline = time.monotonic() + timeout
    while True:
        data: dict[str, Any] = sdk.ok(base, key, "get_task_status", task_id=task_id)["data"]
        assert data["task_id"] == task_id
        if data["status"] != "running":
            return data
        assert time.monotonic() < deadline, f"task {task_id} still running after {timeout:g}s"
        time.sleep(0.05)


def test_add_poll_search_get_and_delete_through_the_sdk(sdk: SdkBridge, deployment: Deployment) -> None:
    base, key = deployment.base, deployment.keys["alice"]
    messages = [
        {"role": "user", "content": "I adopted a greyhound called Pixel.", "chat_time": "2026-05-01T10:00:00Z"},
        {"role": "assistant", "content": "Pixel is a lovely name for a greyhound!"},
    ]
    added = sdk.ok(
        base, key, "add_message", messages=messages, user_id="alice", conversation_id="c-pets",
        tags=["pets"], info={"channel": "chat"}, app_id="demo-app",
    )  # fmt: skip
    assert added["code"] == 0 and added["data"]["success"] is True
    assert added["data"]["status"] == "running"
    task = wait_task(sdk, base, key, added["data"]["task_id"])
    assert task["status"] == "completed"
    [memory_id] = task["memory_views"]["added"]

    found = sdk.ok(base, key, "search_memory", query="greyhound Pixel", user_id="alice", relativity=0.1)
    [hit] = [m for m in found["data"]["memory_detail_list"] if m["id"] == memory_id]
    assert "greyhound called Pixel" in hit["memory_value"]
    assert hit["conversation_id"] == "c-pets" and "pets" in hit["tags"]
    assert hit["info"] == {"channel": "chat", "app_id": "demo-app"} and 0 < hit["relativity"] <= 1

    page = sdk.ok(base, key, "get_memory", user_id="alice", page=1, size=10)["data"]
    assert [m["id"] for m in page["memory_detail_list"]] == [memory_id]
    assert (page["total"], page["current"], page["size"], page["pages"]) == (1, 1, 10, 1)
    one = sdk.ok(base, key, "get_memory_by_id", memid=memory_id)
    assert one["code"] == 0 and one["data"]["memory_value"] == hit["memory_value"]

    deleted = sdk.ok(base, key, "delete_memory", memory_ids=[memory_id])
    assert deleted["data"]["success"] is True
    assert sdk.ok(base, key, "get_memory", user_id="alice")["data"]["total"] == 0
    gone = sdk.call(base, key, "get_memory_by_id", memid=memory_id)
    assert not gone["ok"] and {r["status"] for r in gone["requests"]} == {404}


def test_the_sdk_works_with_the_root_as_base_url(sdk: SdkBridge, deployment: Deployment) -> None:
    root, key = deployment.server.url, deployment.keys["bob"]
    added = sdk.ok(root, key, "add_message", messages=[{"role": "user", "content": "I cycle to work."}], user_id="bob")
    assert wait_task(sdk, root, key, added["data"]["task_id"])["status"] == "completed"
    assert sdk.ok(root, key, "get_memory", user_id="bob")["data"]["total"] == 1
    assert sdk.ok(root, key, "delete_memory", user_ids=["bob"])["data"]["success"] is True  # erases bob's data
    assert sdk.ok(root, key, "get_memory", user_id="bob")["data"]["total"] == 0


def test_a_sync_add_answers_completed_and_an_agent_has_its_own_cube(sdk: SdkBridge, deployment: Deployment) -> None:
    base, key = deployment.base, deployment.keys["carol"]
    mine = sdk.ok(base, key, "add_message", messages=[{"role": "user", "content": "My desk is on floor 3."}],
                  user_id="carol", agent_id="helpdesk", async_mode=False)  # fmt: skip
    assert (mine["data"]["status"], mine["data"]["success"]) == ("completed", True)
    hits = sdk.ok(base, key, "search_memory", query="desk floor", user_id="carol", relativity=0.1,
                  filter={"agent_id": "helpdesk"})["data"]["memory_detail_list"]  # fmt: skip
    assert [h["info"]["agent_id"] for h in hits] == ["helpdesk"]

    service = create_key(deployment.server.data_dir, "ops-bot", scope="service")
    agent = sdk.ok(base, service, "add_message", messages=[{"role": "user", "content": "Tickets close at 6 pm."}],
                   agent_id="helpdesk", async_mode=False)  # fmt: skip
    assert agent["data"]["status"] == "completed"
    page = sdk.ok(base, service, "get_memory", agent_id="helpdesk")["data"]
    assert [m["cube_id"] for m in page["memory_detail_list"]] == ["helpdesk"]


def test_feedback_through_the_sdk_is_a_feedback_task(sdk: SdkBridge, deployment: Deployment) -> None:
    base, key = deployment.base, deployment.keys["carol"]
    sent = sdk.ok(base, key, "add_feedback", user_id="carol", conversation_id="c-fb",
                  feedback_content="I moved: my desk is on floor 5 now.", feedback_time="2026-06-01")  # fmt: skip
    task = wait_task(sdk, base, key, sent["data"]["task_id"])
    assert task["status"] == "completed" and task["memory_views"]


def test_refusals_reach_the_sdk_as_http_errors_and_change_nothing(sdk: SdkBridge, deployment: Deployment) -> None:
    base, alice, bob = deployment.base, deployment.keys["alice"], deployment.keys["bob"]
    msg = [{"role": "user", "content": "secret"}]
    cases = [
        (sdk.call(base, "mck_0000000000000000_" + "x" * 43, "get_memory", user_id="alice"), 401),
        (sdk.call(base, alice, "add_message", messages=msg, user_id="bob"), 403),
        (sdk.call(base, alice, "add_message", messages=msg, user_id="alice", allow_knowledgebase_ids=["bob"]), 403),
        (sdk.call(base, alice, "add_message", messages=msg, user_id="alice", allow_public=True), 422),
        (sdk.call(base, bob, "search_memory", query="secret", user_id="bob", knowledgebase_ids=["alice"]), 403),
        (sdk.call(base, alice, "get_task_status", task_id="task-unknown"), 404),
    ]
    for answer, status in cases:
        assert not answer["ok"], answer
        assert {r["status"] for r in answer["requests"]} == {status}, answer["requests"]
        assert answer["requests"][0]["body"]["code"] == status  # the memcube envelope, naming the problem
    assert sdk.ok(base, bob, "get_memory", user_id="bob")["data"]["total"] == 0


KB_FILES = {
    "policy.txt": ("Travel policy. Economy class is required for flights under six hours.", "flights economy class"),
    "handbook.md": ("# Handbook\n\n## Badges\n\nBadges are collected at the front desk on level 1.", "collect badges"),
    "rooms.json": (json.dumps({"rooms": [{"name": "Aurora", "seats": 12, "floor": 4}]}), "Aurora room seats"),
}


@pytest.mark.parametrize("name", sorted(KB_FILES))
def test_a_knowledge_base_file_added_as_json_is_searchable_then_deleted_by_file_id(
    sdk: SdkBridge, deployment: Deployment, name: str
) -> None:
    text, query = KB_FILES[name]
    content = f"data:application/octet-stream;base64,{base64.b64encode(text.encode()).decode()}"
    upload = {"content": content, "name": name}
    kb_round_trip(sdk, deployment, "add_knowledgebase_file_json", query, text.splitlines()[-1], file=[upload])


@pytest.mark.parametrize("name", ["handbook.md", "expenses.pdf"])
def test_a_knowledge_base_file_uploaded_as_a_form_is_searchable_then_deleted_by_file_id(
    sdk: SdkBridge, deployment: Deployment, tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    if name.endswith(".pdf"):
        lines = ["Expense rules.", "The reimbursement limit for software is 600 euros."]
        path.write_bytes(pdf_with_pages([lines, ["Receipts are kept for seven years."]]))
        passage, query = "reimbursement limit for software is 600 euros", "software reimbursement limit"
    else:
        path.write_text(KB_FILES[name][0])
        passage, query = "front desk on level 1", KB_FILES[name][1]
    kb_round_trip(sdk, deployment, "add_knowledgebase_file_form", query, passage, files=[str(path)])


def kb_round_trip(sdk: SdkBridge, deployment: Deployment, method: str, query: str, passage: str, **upload: Any) -> None:
    """Create a knowledge base, add one file, wait for its task, find a passage, delete the file
    by its id, find nothing, erase the knowledge base: all through the SDK."""
    base, alice, bob = deployment.base, deployment.keys["alice"], deployment.keys["bob"]
    kb = sdk.ok(base, alice, "create_knowledgebase", knowledgebase_name="Team Docs")["data"]["id"]
    assert kb.startswith("kb-team-docs-")
    [entry] = sdk.ok(base, alice, method, knowledgebase_id=kb, **upload)["data"]
    assert (entry["type"], entry["status"], entry["knowledgebase_id"]) == ("document", "running", kb)
    task = wait_task(sdk, base, alice, entry["task_id"])
    assert task["status"] == "completed", task

    hits = sdk.ok(base, alice, "search_memory", query=query, user_id="alice", knowledgebase_ids=[kb],
                  relativity=0.05)["data"]["memory_detail_list"]  # fmt: skip
    from_file = [h for h in hits if h["cube_id"] == kb]
    assert from_file and passage in from_file[0]["memory_value"], hits
    [source] = from_file[0]["sources"]
    assert (source["type"], source["file_id"], source["filename"]) == ("file", entry["id"], entry["name"])
    denied = sdk.call(base, bob, "search_memory", query=query, user_id="bob", knowledgebase_ids=[kb])
    assert {r["status"] for r in denied["requests"]} == {403}  # a knowledge base is its owner's until shared

    again = sdk.ok(base, alice, method, knowledgebase_id=kb, **upload)["data"][0]  # the same file: nothing new
    assert again["id"] == entry["id"]
    assert set(wait_task(sdk, base, alice, again["task_id"])["memory_views"]) == {"duplicate"}

    removed = sdk.ok(base, alice, "delete_knowledgebase_file", file_ids=[entry["id"]])
    assert removed["data"]["success"] is True
    hits = sdk.ok(base, alice, "search_memory", query=query, user_id="alice", knowledgebase_ids=[kb],
                  relativity=0.0)["data"]["memory_detail_list"]  # fmt: skip
    assert [h for h in hits if h["cube_id"] == kb] == []
    assert sdk.ok(base, alice, "delete_knowledgebase", knowledgebase_id=kb)["data"]["success"] is True


def test_without_keys_the_sdk_acts_as_memos_does_without_authentication(sdk: SdkBridge, tmp_path: Path) -> None:
    """The embedded default as `make run` starts it (keys off): the key the SDK insists on is not
    checked; routes that name no user act for the memory's writer (or `anonymous`)."""
    server = Server(tmp_path / "data", 2, tmp_path / "serve.log").wait_healthy()
    try:
        base = server.url + PREFIX
        added = sdk.ok(base, "any-key", "add_message", messages=[{"role": "user", "content": "Tea, no sugar."}],
                       user_id="dana", async_mode=False)  # fmt: skip
        task = sdk.ok(base, "any-key", "get_task_status", task_id=added["data"]["task_id"])["data"]
        [memory_id] = task["memory_views"]["added"]
        assert sdk.ok(base, "any-key", "get_memory_by_id", memid=memory_id)["data"]["user_id"] == "dana"
        kb = sdk.ok(base, "any-key", "create_knowledgebase", knowledgebase_name="Open notes")["data"]["id"]
        upload = {"content": "The kitchen is cleaned on Fridays.", "name": "kitchen.txt"}
        [entry] = sdk.ok(base, "any-key", "add_knowledgebase_file_json", knowledgebase_id=kb, file=[upload])["data"]
        assert server.wait("anonymous", entry["task_id"])["status"] == "completed"
        assert sdk.ok(base, "any-key", "delete_memory", memory_ids=[memory_id])["data"]["success"] is True
        assert sdk.last_body["data"]["deleted"] == 1
        assert sdk.ok(base, "any-key", "delete_knowledgebase", knowledgebase_id=kb)["data"]["success"] is True
        assert sdk.last_body["data"]["deleted"] == 1
    finally:
        server.stop(grace=5.0)


@pytest.fixture(scope="module")
def chat_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A keys-on `memcube serve` with an LLM: the OpenAI-compatible fake (tests/fakes.py)."""
    with running_fake_openai() as fake:
        fake.rule = memory_llm("Your greyhound ", "is called Pixel. ")
        llm = {"MEMCUBE_LLM": "openai", "MEMCUBE_LLM_BASE_URL": fake.base_url, "MEMCUBE_LLM_MODEL": "chat-model",
               "MEMCUBE_LLM_MAX_RETRIES": "0"}  # fmt: skip
        deployed = Deployment(tmp_path_factory.mktemp("memcube-chat"), llm)
        yield deployed
        deployed.server.stop(grace=5.0)


def test_chat_streamed_chat_and_get_message_through_the_sdk(sdk: SdkBridge, chat_deployment: Deployment) -> None:
    base, key = chat_deployment.base, chat_deployment.keys["alice"]
    said = [{"role": "user", "content": "I adopted a greyhound called Pixel."}]
    added = sdk.ok(base, key, "add_message", messages=said, user_id="alice", conversation_id="c-chat", async_mode=False)
    [pixel] = wait_task(sdk, base, key, added["data"]["task_id"])["memory_views"]["added"]

    answer = sdk.ok(base, key, "chat", user_id="alice", conversation_id="c-chat", query="What is my dog called?",
                    relativity=0.05)  # fmt: skip
    assert answer["data"]["response"].startswith("Your greyhound is called Pixel.")
    sent = sdk.last_body["data"]
    assert sent["memory_ids"] == [pixel] and sent["conversation_id"] == "c-chat"
    assert wait_task(sdk, base, key, sent["task_id"])["status"] == "completed"  # the exchange, added as memory

    streamed = sdk.ok(base, key, "chat", user_id="alice", conversation_id="c-chat", query="And my dog?",
                      relativity=0.05, stream=True, add_message_on_answer=False)  # fmt: skip
    events = [json.loads(data) for data in streamed]
    assert [e["type"] for e in events][:1] == ["reference"] and events[-1]["type"] == "end"
    text = "".join(e["data"] for e in events if e["type"] == "text")
    assert text.startswith("Your greyhound is called Pixel.")
    assert events[-1]["data"]["task_id"] is None

    got = sdk.ok(base, key, "get_message", user_id="alice", conversation_id="c-chat", message_limit_number=10)
    messages = got["data"]["message_detail_list"]
    assert [m["role"] for m in messages] == ["user", "user", "assistant", "user", "assistant"]
    assert messages[0]["content"] == "I adopted a greyhound called Pixel." and messages[-2]["content"] == "And my dog?"

    refused = sdk.call(
        base, key, "chat", user_id="alice", conversation_id="c-chat", query="news?", internet_search=True
    )
    assert {r["status"] for r in refused["requests"]} == {422}
    assert "internet_search" in refused["requests"][0]["body"]["message"]
    others = sdk.call(base, chat_deployment.keys["bob"], "chat", user_id="alice", conversation_id="c-chat", query="hi")
    assert {r["status"] for r in others["requests"]} == {403}  # bob may not act as alice


def test_update_memory_through_the_sdk_is_a_new_version_and_a_bad_status_is_refused(
    sdk: SdkBridge, deployment: Deployment
) -> None:
    base, carol, bob = deployment.base, deployment.keys["carol"], deployment.keys["bob"]
    added = sdk.ok(base, carol, "add_message", messages=[{"role": "user", "content": "My locker is number 14."}],
                   user_id="carol", conversation_id="c-locker", async_mode=False)  # fmt: skip
    [memory_id] = wait_task(sdk, base, carol, added["data"]["task_id"])["memory_views"]["added"]
    updated = sdk.ok(
        base, carol, "update_memory", memory_id=memory_id, content="My locker is number 41.", title="Locker"
    )
    assert updated["code"] == 0
    assert (updated["data"]["memory_value"], updated["data"]["memory_key"]) == ("My locker is number 41.", "Locker")
    assert sdk.ok(base, carol, "get_memory_by_id", memid=memory_id)["data"]["memory_value"] == "My locker is number 41."
    hits = sdk.ok(base, carol, "search_memory", query="locker number 41", user_id="carol", relativity=0.0)
    assert memory_id in [h["id"] for h in hits["data"]["memory_detail_list"]]

    archived = sdk.ok(base, carol, "update_memory", memory_id=memory_id, status="archived")
    assert archived["data"]["status"] == "archived"
    hits = sdk.ok(base, carol, "search_memory", query="locker number 41", user_id="carol", relativity=0.0)
    assert memory_id not in [h["id"] for h in hits["data"]["memory_detail_list"]]
    refusals = [
        (sdk.call(base, carol, "update_memory", memory_id=memory_id, status="deleted"), 422),
        (sdk.call(base, bob, "update_memory", memory_id=memory_id, content="Bob's locker now."), 404),
    ]
    for answer, status in refusals:
        assert not answer["ok"] and {r["status"] for r in answer["requests"]} == {status}, answer["requests"]
    one = sdk.ok(base, carol, "get_memory_by_id", memid=memory_id)["data"]
    assert (one["memory_value"], one["status"]) == ("My locker is number 41.", "archived")
