"""Direct edits and feedback on the real servers, through the Lambda entry points: an
update_memory rewrites the item in DynamoDB Local (its content guard moved) and re-indexes it in
osmem-server; a /product/feedback travels through LocalStack SQS FIFO to the worker, which
corrects and archives, with the plan and outcomes in the task status. The embedded default runs
the same scenarios."""

from __future__ import annotations

from typing import Any

from memcube.adapters.dynamodb.memories import DynamoMemories
from tests.realserver.test_end_to_end import Stack, stack  # noqa: F401 - the tier's deployments

TEXT = "Alice moved to Lisbon in March and works as a nurse at the Santa Maria hospital."
NEW = "Alice moved to Porto in May and works as a surgeon at the Sao Joao hospital."


def add(on: Stack, text: str, user: str = "alice") -> str:
    body = {"user_id": user, "messages": text, "async_mode": "sync", "mode": "fast"}
    code, payload = on.add(body)
    assert code == 200, payload
    return str(payload["data"][0]["memory_id"])


def found(on: Stack, query: str, user: str = "alice") -> set[str]:
    body = {"user_id": user, "query": query, "relativity": 0.0, "dedup": "no"}
    code, payload = on.call("POST", "/product/search", body=body)
    assert code == 200, payload
    return {m["memory"] for c in payload["data"]["text_mem"] for m in c["memories"]}


def guards(on: Stack, cube: str) -> dict[str, str]:
    """The cube's content guards as DynamoDB Local holds them (hash -> memory id); {} embedded."""
    if on.ddb is None:
        return {}
    memories = on.container.memories
    assert isinstance(memories, DynamoMemories)
    items: list[dict[str, Any]] = on.ddb.query(
        TableName=memories._t.name,
        KeyConditionExpression="#pk = :pk AND begins_with(#sk, :h)",
        ExpressionAttributeNames={"#pk": "pk", "#sk": "sk"},
        ExpressionAttributeValues={":pk": {"S": f"CUBE#{cube}"}, ":h": {"S": "HASH#"}},
        ConsistentRead=True,
    )["Items"]
    return {i["sk"]["S"].removeprefix("HASH#"): i["memory_id"]["S"] for i in items}


def test_an_update_rewrites_the_store_and_reindexes_and_undo_puts_both_back(stack: Stack) -> None:  # noqa: F811
    memory_id = add(stack, TEXT)
    before = stack.container.memories.get_memory(memory_id)
    assert before is not None
    body = {"user_id": "alice", "memory_id": memory_id, "memory": NEW, "tags": ["moved"]}
    code, payload = stack.call("POST", "/product/update_memory", body=body)
    assert code == 200, payload
    after = stack.container.memories.get_memory(memory_id)
    assert after is not None and (after.memory, after.metadata.version) == (NEW, 2)
    if stack.ddb is not None:
        assert guards(stack, "alice") == {after.metadata.content_hash: memory_id}
    assert stack.container.index.stamps("alice")[memory_id] == after.metadata.updated_at
    assert NEW in found(stack, "surgeon Porto Sao Joao hospital")
    assert TEXT not in found(stack, "nurse Lisbon Santa Maria hospital")

    code, payload = stack.call("POST", "/product/undo_memory", body={"user_id": "alice", "memory_id": memory_id})
    assert code == 200 and payload["data"]["undone"] == "edited", payload
    undone = stack.container.memories.get_memory(memory_id)
    assert undone is not None and (undone.memory, undone.metadata.version) == (TEXT, 3)
    if stack.ddb is not None:
        assert guards(stack, "alice") == {before.metadata.content_hash: memory_id}
    assert stack.container.index.stamps("alice")[memory_id] == undone.metadata.updated_at
    assert TEXT in found(stack, "nurse Lisbon Santa Maria hospital")


def test_feedback_through_the_queue_corrects_archives_and_reports_its_plan(stack: Stack) -> None:  # noqa: F811
    old = add(stack, "Alice lives in Lisbon near the castle.")
    body = {
        "user_id": "alice",
        "history": [{"role": "user", "content": "Where do I live?"}, {"role": "assistant", "content": "In Lisbon."}],
        "feedback_content": "No, Alice lives in Porto near the castle, not Lisbon.",
        "retrieved_memory_ids": [old],
        "task_id": "fb-real-1",
    }
    code, payload = stack.call("POST", "/product/feedback", body=body)
    assert code == 200 and payload["task_id"] == "fb-real-1", payload
    task = stack.wait("alice", "fb-real-1")
    assert task["status"] == "completed", task
    [part] = task["cubes"]
    outcomes = {o["outcome"]: o for o in part["outcomes"]}
    assert set(outcomes) == {"updated", "archived"} and outcomes["archived"]["memory_id"] == old
    assert any(f"(retrieved_memory_ids): ['{old}']" in n for n in part["notes"])
    assert stack.container.memories.get_memory(old).metadata.status == "archived"  # type: ignore[union-attr]
    hits = found(stack, "Alice lives Porto castle")
    assert "No, Alice lives in Porto near the castle, not Lisbon." in hits
    assert "Alice lives in Lisbon near the castle." not in hits
