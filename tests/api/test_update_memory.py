"""POST /product/update_memory and the hosted update/memory through the Lambda entry on the
embedded default: an edit is a new version of the same memory (re-embedded, re-indexed, in its
history), undone by undo_memory; refusals name the field and write nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from memcube.domain.model import Principal
from memcube.wiring import Container
from tests.lambda_support import call, serving

TEXT = "Alice moved to Lisbon in March and works as a nurse at the Santa Maria hospital."
NEW = "Alice moved to Porto in May and works as a surgeon at the São João hospital."


@pytest.fixture
def api(embedded_container: Container) -> Iterator[Container]:
    with serving(embedded_container) as container:
        yield container


def add(text: str, user: str = "alice", **extra: Any) -> str:
    body = {"user_id": user, "messages": text, "async_mode": "sync", "mode": "fast", **extra}
    code, payload = call("POST", "/product/add", body=body)
    assert code == 200, payload
    return str(payload["data"][0]["memory_id"])


def update(**body: Any) -> tuple[int, dict[str, Any]]:
    return call("POST", "/product/update_memory", body=body)


def hits(query: str, user: str = "alice") -> list[str]:
    code, payload = call("POST", "/product/search", body={"user_id": user, "query": query, "relativity": 0.0})
    assert code == 200, payload
    return [m["memory"] for c in payload["data"]["text_mem"] for m in c["memories"]]


def test_an_edit_of_the_text_is_a_new_version_reembedded_and_searchable_at_once(api: Container) -> None:
    memory_id = add(TEXT)
    before = api.memories.get_memory(memory_id)
    assert before is not None
    code, payload = update(user_id="alice", memory_id=memory_id, memory=NEW, tags=["moved"], info={"app_id": "crm"})
    assert code == 200, payload
    view = payload["data"]
    assert (view["id"], view["memory"], view["metadata"]["version"]) == (memory_id, NEW, 2)
    assert view["metadata"]["tags"] == ["moved"] and view["metadata"]["info"] == {"app_id": "crm"}
    assert before.metadata.key == TEXT[: len(before.metadata.key)]  # keyed by its first words...
    assert view["metadata"]["key"] == NEW[: len(view["metadata"]["key"])]  # ...and so it follows the text
    assert "embedding" not in view["metadata"]
    stored = api.memories.get_memory(memory_id)
    assert stored is not None and stored.metadata.embedding != before.metadata.embedding
    assert stored.metadata.content_hash != before.metadata.content_hash
    assert NEW in hits("surgeon Porto São João")
    assert TEXT not in hits("nurse Lisbon Santa Maria")
    # The content guard moved with the text: the old text can be added again, the new one cannot.
    assert add(TEXT) != memory_id
    code, payload = call("POST", "/product/add", body={"user_id": "alice", "messages": NEW, "async_mode": "sync"})
    assert payload["data"][0]["outcome"] == "duplicate" and payload["data"][0]["memory_id"] == memory_id


def test_the_edit_shows_in_the_history_and_undo_restores_the_previous_version(api: Container) -> None:
    memory_id = add(TEXT, custom_tags=["move"])
    code, _ = update(user_id="alice", memory_id=memory_id, memory=NEW)
    assert code == 200
    code, payload = call("GET", f"/product/get_memory_history/{memory_id}", query="user_id=alice")
    assert code == 200, payload
    [entry] = payload["data"]["history"]
    assert entry["action"] == "edited" and entry["fields"] == ["memory", "key"]
    assert entry["previous"]["memory"] == TEXT

    code, payload = call("POST", "/product/undo_memory", body={"user_id": "alice", "memory_id": memory_id})
    assert code == 200, payload
    assert payload["data"]["undone"] == "edited" and payload["data"]["reverted"] == [memory_id]
    code, payload = call("GET", f"/product/get_memory/{memory_id}", query="user_id=alice")
    assert code == 200 and payload["data"]["memory"] == TEXT
    assert payload["data"]["metadata"]["version"] == 3
    assert TEXT in hits("nurse Lisbon Santa Maria") and NEW not in hits("surgeon Porto São João")


def test_an_edit_that_changes_nothing_writes_no_version(api: Container) -> None:
    memory_id = add(TEXT)
    code, payload = update(user_id="alice", memory_id=memory_id, memory=TEXT)
    assert code == 200 and "unchanged" in payload["message"]
    assert payload["data"]["metadata"]["version"] == 1


def test_an_edit_to_the_text_of_another_memory_of_the_cube_is_a_409_and_writes_nothing(api: Container) -> None:
    first, second = add(TEXT), add("Bob plays the cello on Sundays in the park.")
    code, payload = update(user_id="alice", memory_id=second, memory=TEXT)
    assert code == 409 and first in payload["message"] and "memory" in payload["message"]
    stored = api.memories.get_memory(second)
    assert stored is not None and stored.metadata.version == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "alice", "memory_id": "m"}, "memory, tags, info"),
        ({"user_id": "alice", "memory_id": "m", "memory": "  "}, "memory"),
        ({"user_id": "alice", "memory_id": "m", "tags": "x"}, "tags"),
        ({"user_id": "alice", "memory_id": "m", "info": {"memory_type": "x"}}, "info"),
        ({"user_id": "alice", "memory_id": "m", "memory": "x", "expiration_date": "2020-01-01"}, "expiration_date"),
        ({"memory_id": "m", "memory": "x"}, "user_id"),
    ],
)
def test_a_bad_update_is_a_422_naming_the_field(api: Container, body: dict[str, Any], field: str) -> None:
    code, payload = update(**body)
    assert code == 422, payload
    assert payload["code"] == 422 and field in payload["message"]


def test_an_update_of_a_memory_the_caller_cannot_write_is_refused_and_writes_nothing(api: Container) -> None:
    memory_id = add(TEXT)
    code, payload = update(user_id="bob", memory_id=memory_id, memory=NEW)
    assert code == 404 and "memory_id" in payload["message"]  # bob cannot even read it: no leak
    code, payload = update(user_id="alice", memory_id=memory_id, mem_cube_id="kb", memory=NEW)
    assert code == 404 and "kb" in payload["message"]
    stored = api.memories.get_memory(memory_id)
    assert stored is not None and (stored.memory, stored.metadata.version) == (TEXT, 1)


def test_a_reader_of_a_knowledge_base_gets_a_403_for_an_edit_and_nothing_is_written(api: Container) -> None:
    code, payload = call("POST", "/product/create_cube", body={"user_id": "alice", "cube_id": "kb", "readers": ["bob"]})
    assert code == 200, payload
    memory_id = add(TEXT, writable_cube_ids=["kb"])
    code, payload = update(user_id="bob", memory_id=memory_id, tags=["mine"])
    assert code == 403 and "may read but not write" in payload["message"]
    stored = api.memories.get_memory(memory_id)
    assert stored is not None and stored.metadata.version == 1


def test_a_failed_index_write_keeps_the_stored_version_and_an_identical_resend_indexes_it(
    api: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory_id = add(TEXT)

    def down(*_: Any) -> None:
        raise ConnectionError("index down")

    with monkeypatch.context() as m:
        m.setattr(api.index, "upsert", down)
        code, payload = update(user_id="alice", memory_id=memory_id, memory=NEW)
    assert code == 503 and "is stored" in payload["message"] and "send the same update again" in payload["message"]
    stored = api.memories.get_memory(memory_id)
    assert stored is not None and (stored.memory, stored.metadata.version) == (NEW, 2)  # the system of record
    assert api.index.stamps("alice")[memory_id] != stored.metadata.updated_at  # the index is behind
    code, payload = update(user_id="alice", memory_id=memory_id, memory=NEW)
    assert code == 200 and payload["data"]["metadata"]["version"] == 2
    assert api.index.stamps("alice")[memory_id] == stored.metadata.updated_at


def test_the_hosted_update_maps_content_title_and_status(api: Container) -> None:
    memory_id = add(TEXT)
    body = {"memory_id": memory_id, "content": NEW, "title": "Alice's move", "status": None}
    code, payload = call("POST", "/api/openmem/v1/update/memory", body=body)
    assert code == 200 and payload["code"] == 0, payload
    data = payload["data"]
    assert (data["memory_value"], data["memory_key"], data["status"]) == (NEW, "Alice's move", "activated")
    code, payload = call("POST", "/update/memory", body={"memory_id": memory_id, "status": "archived"})
    assert code == 200 and payload["data"]["status"] == "archived"
    assert NEW not in hits("surgeon Porto São João")
    code, payload = call("POST", "/update/memory", body={"memory_id": memory_id, "status": "deleted"})
    assert code == 422 and "status" in payload["message"]
    code, payload = call("POST", "/update/memory", body={"memory_id": memory_id, "content": None})
    assert code == 422 and "content, title, status" in payload["message"]


def test_the_edit_service_acts_as_the_writer_only_when_no_principal_is_given(api: Container) -> None:
    memory_id = add(TEXT)
    from memcube.domain.commands import MemoryEdit
    from memcube.domain.errors import NotFound

    with pytest.raises(NotFound):
        api.editor.edit(MemoryEdit(memory_id=memory_id, tags=["x"]), Principal(user_id="bob"))
    assert api.editor.edit(MemoryEdit(memory_id=memory_id, tags=["x"]), None).fields == ["tags"]
