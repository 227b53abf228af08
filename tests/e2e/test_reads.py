"""The other reads against a real `memcube serve` over HTTP, with memcube's clients: the wait's
server-sent events streamed by uvicorn, the task counts, reads by ids, `get_all`, and a page
through a filter."""

from __future__ import annotations

from memcube_client.client import MemcubeClient, MemOSClient
from tests.e2e.conftest import Server


def test_the_reads_round_trip_over_http_with_the_clients(server: Server) -> None:
    memos = MemOSClient(base_url=server.url)
    added = [
        memos.add_message(user_id="lea", messages=text, custom_tags=[tag])
        for text, tag in [("Lea sails on weekends.", "sport"), ("Lea bakes rye bread.", "food")]
    ]
    with MemcubeClient(server.url) as http:
        events = list(http.wait_events("lea", timeout=60, poll=0.2))
        assert events[-1]["status"] == "idle" and events[-1]["active_tasks"] == 0, events
        assert sorted(t["task_id"] for t in events[-1]["tasks"]) == sorted(a.task_id for a in added)
        assert http.wait_idle("lea", timeout=5)["message"] == "idle"
        counts = http.all_status("lea")["all_tasks_summary"]
        assert (counts["completed"], counts["total"]) == (2, 2)
        ids = [m for a in added for m in memos.wait(a.task_id, user_id="lea").memory_ids]
        found = http.get_by_ids([ids[1], "nope"], user_id="lea")
        assert ([m["id"] for m in found["memories"]], found["not_found"]) == ([ids[1]], ["nope"])
        [cube] = http.get_all({"user_id": "lea", "memory_type": "text_mem"})
        assert (cube["total"], {m["id"] for m in cube["memories"]}) == (2, set(ids))
    page = memos.get_memory(user_id="lea", filter={"custom_tags": "food"})
    assert (page.total, [m.id for m in page.memories]) == (1, [ids[1]])
