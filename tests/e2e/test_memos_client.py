"""memcube's own `memcube_client.client.MemOSClient` against a real `memcube serve`: the MemOS
documentation's `add_message` call shape, polling, search, paging, and a knowledge-base file round
trip (add file, task completed, a passage found, delete by file id, gone)."""

from __future__ import annotations

from pathlib import Path

import pytest

from memcube_client.client import ApiError, MemOSClient
from tests.e2e.conftest import ServeFactory
from tests.e2e.test_memos_sdk import create_key
from tests.pdfs import pdf_with_pages


def test_the_documented_add_message_calls_run_on_the_embedded_default(serve: ServeFactory) -> None:
    server = serve()  # as `make run` starts it: keys off
    client = MemOSClient(api_key="unused-without-keys", base_url=server.url)
    first = client.add_message(
        user_id="dev_7",
        writable_cube_ids=["dev_7_private"],
        messages=[{"role": "user", "content": "I'm learning Rust's borrow checker."}],
        async_mode="async",
        custom_tags=["Programming", "Rust"],
    )
    second = client.add_message(
        user_id="ops_2",
        writable_cube_ids=["kb_ops_2026"],
        messages="The on-call rota now changes on Mondays.",
        is_feedback=True,
        info={"source": "Wiki"},
    )
    assert [t.cube_id for t in first.tasks] == ["dev_7_private"] and first.tasks[0].status == "waiting"
    done = client.wait(first.task_id, user_id="dev_7")
    assert done.status == "completed" and len(done.memory_ids) == 1
    assert client.wait(second.task_id, user_id="ops_2").status == "completed"
    res = client.get_task_status(user_id="ops_2", task_id=second.task_id)
    assert res.data[0]["status"] == "completed" and res.data[0].cubes[0].cube_id == "kb_ops_2026"

    [hit] = client.search(
        "Rust borrow checker", user_id="dev_7", readable_cube_ids=["dev_7_private"], relativity=0.1
    ).memories
    assert hit.id == done.memory_ids[0] and hit.custom_tags == ["Programming", "Rust"] and hit.relativity
    page = client.get_memory(user_id="ops_2", mem_cube_id="kb_ops_2026")
    assert page.total == 1 and page.memories[0].info == {"source": "Wiki"}
    assert client.get_memory_by_id(hit.id, user_id="dev_7").memory == hit.memory


def test_a_knowledge_base_file_round_trip_with_the_memcube_client(serve: ServeFactory, tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = create_key(data, "alice")
    server = serve(data_dir=data, env={"MEMCUBE_AUTH": "keys"})
    client = MemOSClient(api_key=key, base_url=server.url)
    created = server.http.post(
        "/product/create_cube",
        json={"user_id": "alice", "cube_id": "kb-alice-docs"},
        headers={"Authorization": f"Token {key}"},
    )
    assert created.status_code == 200, created.text
    guide = tmp_path / "guide.md"
    guide.write_text("# Guide\n\nThe build server restarts every night at 2 am.\n\nLogs are kept for 30 days.")
    rules = tmp_path / "rules.pdf"
    rules.write_bytes(pdf_with_pages([["Security rules.", "Laptops are locked with a cable in the office."]]))

    added = [client.add_file(p, user_id="alice", cube_id="kb-alice-docs") for p in (guide, rules)]
    for res in added:
        assert client.wait(res.task_id, user_id="alice").status == "completed"
    found = client.search("laptops locked cable", user_id="alice", readable_cube_ids=["kb-alice-docs"], relativity=0.05)
    best = found.memories[0]
    assert "Laptops are locked with a cable" in best.memory
    assert [(s["filename"], s["type"]) for s in best.sources] == [("rules.pdf", "file")]
    file_id = best.sources[0]["file_id"]
    assert file_id.startswith("kb-alice-docs:")

    deleted = client.delete_memory(user_id="alice", writable_cube_ids=["kb-alice-docs"], file_ids=[file_id])
    assert deleted.deleted == 1
    left = client.get_memory(user_id="alice", mem_cube_id="kb-alice-docs")
    assert [m.sources[0]["filename"] for m in left.memories] == ["guide.md"]
    with pytest.raises(ApiError) as refused:
        MemOSClient(api_key="mck_0000000000000000_" + "x" * 43, base_url=server.url).get_memory(user_id="alice")
    assert refused.value.status == 401
