"""The user CLI (`memcube add/status/search/get/delete/export/import`) against a real `memcube
serve` process over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from memcube_local.cli import main
from tests.e2e.conftest import ServeFactory, Server

CONVERSATIONS = [
    {
        "session_id": "trip",
        "custom_tags": ["travel"],
        "info": {"app_id": "cli"},
        "messages": [
            {"role": "user", "content": "I am flying to Lisbon on June 3rd.", "chat_time": "2025-05-01T10:00:00Z"},
            {"role": "assistant", "content": "Window or aisle?", "chat_time": "2025-05-01T10:00:04Z"},
            {"role": "user", "content": "Window, always.", "chat_time": "2025-05-01T10:00:09Z"},
        ],
    },
    [{"role": "user", "content": "My sister Ana lives in Porto."}],
    [{"role": "user", "content": "My sister Ana lives in Porto."}],  # the same again: a duplicate
]


def run(server: Server, *args: str, user: str = "alice") -> Result:
    env = {"MEMCUBE_URL": server.url, "MEMCUBE_USER": user}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def ok(server: Server, *args: str, user: str = "alice") -> str:
    result = run(server, *args, user=user)
    assert result.exit_code == 0, result.output
    return result.stdout


def added_from(server: Server, tmp_path: Path) -> Path:
    path = tmp_path / "conversations.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in CONVERSATIONS))
    summary = ok(server, "add", "--file", str(path))
    assert "3 tasks: 3 completed" in summary
    assert "memories: 2 added, 1 duplicate" in summary
    return path


def test_add_a_conversation_file_then_search_get_and_status(server: Server, tmp_path: Path) -> None:
    added_from(server, tmp_path)
    blocks = json.loads(ok(server, "search", "Lisbon", "--relativity", "0", "--filter", '{"custom_tags": "travel"}'))
    [memory] = blocks[0]["memories"]
    assert "Window, always." in memory["memory"]
    assert memory["metadata"]["session_id"] == "trip" and memory["metadata"]["info"] == {"app_id": "cli"}
    fetched = json.loads(ok(server, "get", memory["id"]))
    assert fetched["id"] == memory["id"] and "embedding" not in fetched["metadata"]
    tasks = json.loads(ok(server, "status"))
    assert len(tasks) == 3 and {t["status"] for t in tasks} == {"completed"}
    [one] = json.loads(ok(server, "status", tasks[0]["task_id"]))
    assert one["task_id"] == tasks[0]["task_id"]


def test_export_erase_import_round_trip_is_exact(server: Server, tmp_path: Path) -> None:
    added_from(server, tmp_path)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    ok(server, "export", "alice", "-o", str(first))
    lines = first.read_text().splitlines()
    assert len(lines) == 2 and all("embedding" not in json.loads(line)["metadata"] for line in lines)

    receipt = json.loads(ok(server, "delete", "--erase-my-data"))
    assert receipt["deleted"] == 2 and receipt["cubes"][0]["erased"] is True
    assert json.loads(ok(server, "search", "Lisbon Porto", "--relativity", "0"))[0]["memories"] == []

    assert ok(server, "import", str(first), "--cube", "alice").strip() == "2 imported, 0 already there, 0 duplicates"
    ok(server, "export", "alice", "-o", str(second))
    assert second.read_bytes() == first.read_bytes()
    assert ok(server, "import", str(first), "--cube", "alice").strip() == "0 imported, 2 already there, 0 duplicates"
    blocks = json.loads(ok(server, "search", "Lisbon", "--relativity", "0"))
    assert len(blocks[0]["memories"]) >= 1  # searchable again at once


def test_import_into_another_cube_gives_the_items_new_ids_there(server: Server, tmp_path: Path) -> None:
    added_from(server, tmp_path)
    exported = tmp_path / "alice.jsonl"
    ok(server, "export", "alice", "-o", str(exported))
    assert "2 imported" in ok(server, "import", str(exported), "--cube", "alice-archive")
    moved = tmp_path / "moved.jsonl"
    ok(server, "export", "alice-archive", "-o", str(moved))
    originals: list[dict[str, Any]] = [json.loads(line) for line in exported.read_text().splitlines()]
    copies: list[dict[str, Any]] = [json.loads(line) for line in moved.read_text().splitlines()]
    assert {c["metadata"]["cube_id"] for c in copies} == {"alice-archive"}
    assert not {c["id"] for c in copies} & {o["id"] for o in originals}
    assert sorted(c["memory"] for c in copies) == sorted(o["memory"] for o in originals)


def test_delete_by_id_prints_a_receipt_and_the_memory_is_gone(server: Server, tmp_path: Path) -> None:
    added_from(server, tmp_path)
    [block] = json.loads(
        ok(server, "search", "Porto", "--relativity", "0", "--filter", '{"session_id": "default_session"}')
    )
    [porto] = block["memories"]
    receipt = json.loads(ok(server, "delete", "--id", porto["id"]))
    assert receipt["deleted"] == 1 and receipt["cubes"][0]["index"] == 1
    result = run(server, "get", porto["id"])
    assert result.exit_code == 1 and "server answered 404" in result.output


def test_a_refused_request_is_a_clean_error_naming_the_problem(server: Server) -> None:
    result = run(server, "search", "x", "--filter", '{"custom_tags": {"$where": "1"}}')
    assert result.exit_code == 1
    assert "server answered 422" in result.output and "filter" in result.output
    result = run(server, "delete")
    assert result.exit_code == 2 and "--erase-my-data" in result.output
    result = run(server, "export", "bob", user="alice")
    assert result.exit_code == 0  # a cube id no user owns yet is open (until cube grants exist)


TRIP = [
    {"role": "user", "content": "I moved to Lisbon in March and I work as a nurse at the Santa Maria hospital.",
     "chat_time": "2026-03-10T09:00:00Z"},
    {"role": "assistant", "content": "Congratulations! How is the new job going?", "chat_time": "2026-03-10T09:00:05Z"},
    {"role": "user", "content": "Great, the team is kind and my commute along the river is short.",
     "chat_time": "2026-03-10T09:01:00Z"},
]  # fmt: skip


def test_edited_repeat_merges_feedback_corrects_and_undo_restores_with_the_local_embedder(
    serve: ServeFactory, tmp_path: Path
) -> None:
    """The walk-through on the embedded default as a user runs it: the local MiniLM embedder, no LLM."""
    server = serve(env={"MEMCUBE_EMBEDDER": "minilm"})
    edited = [dict(m, chat_time="2026-03-11T08:00:00Z") for m in TRIP]
    edited[2]["content"] = edited[2]["content"].replace("kind", "very kind")
    path = tmp_path / "trip.jsonl"
    path.write_text(json.dumps(TRIP) + "\n" + json.dumps(edited) + "\n")
    summary = ok(server, "add", "--file", str(path))
    assert "memories: 1 added, 1 merged" in summary, summary
    outcomes = [o for task in json.loads(ok(server, "status")) for o in task["cubes"][0]["outcomes"]]
    [merged] = [o for o in outcomes if o["outcome"] == "merged"]
    survivor = merged["memory_id"]
    assert survivor in {o["memory_id"] for o in outcomes if o["outcome"] == "added"}
    history = json.loads(ok(server, "history", survivor))
    assert history["version"] == 2 and history["history"][0]["action"] == "merged"

    correction = [{"role": "user", "content": "No, I moved to Porto in March, not Lisbon. I am still a nurse."}]
    (tmp_path / "fix.json").write_text(json.dumps({"messages": correction, "is_feedback": True}))
    ok(server, "add", "--file", str(tmp_path / "fix.json"))
    [found] = json.loads(ok(server, "search", "Where does the user live?", "--relativity", "0"))[0]["memories"]
    assert "Porto" in found["memory"]  # the corrected fact, and only it: the old one is archived
    archived = json.loads(ok(server, "history", survivor))
    assert archived["status"] == "archived" and archived["history"][0]["action"] == "archived"

    receipt = json.loads(ok(server, "undo", survivor))
    assert receipt["restored"] == [survivor]
    assert json.loads(ok(server, "get", survivor))["metadata"]["status"] == "activated"


def test_edit_writes_a_new_version_that_search_finds_and_undo_reverts(server: Server, tmp_path: Path) -> None:
    added_from(server, tmp_path)
    [memory] = json.loads(ok(server, "search", "sister Ana", "--relativity", "0"))[0]["memories"][:1]
    edited = json.loads(ok(server, "edit", memory["id"], "--text", "My sister Ana moved to Braga.", "--tag", "family"))
    assert (edited["id"], edited["memory"], edited["metadata"]["tags"]) == (
        memory["id"], "My sister Ana moved to Braga.", ["family"]
    )  # fmt: skip
    assert edited["metadata"]["version"] == memory["metadata"]["version"] + 1
    history = json.loads(ok(server, "history", memory["id"]))
    assert history["history"][0]["action"] == "edited"
    assert json.loads(ok(server, "undo", memory["id"]))["undone"] == "edited"
    assert json.loads(ok(server, "get", memory["id"]))["memory"] == memory["memory"]
    refused = run(server, "edit", memory["id"])
    assert refused.exit_code != 0 and "--text" in refused.output
