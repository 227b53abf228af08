"""Preference memory on the real servers: a fine add's `PreferenceMemory` is stored in DynamoDB
Local with its type and preference fields, found by search through osmem-server in `pref_mem`
(never among the hits), and a changed preference archives the old one in both places."""

from __future__ import annotations

import json
import uuid
from typing import Any

from memcube.adapters.dynamodb import open_stores
from memcube.adapters.dynamodb.table import DynamoTable, body_text
from memcube.adapters.hash_embedder import HashEmbedder
from memcube.adapters.opensearch_index import OpenSearchIndex
from memcube.domain.commands import SearchQuery
from memcube.domain.ingest import Delivery, Verdict
from memcube.domain.model import Principal
from memcube.domain.organizer import Thresholds
from memcube.domain.search import SearchService
from memcube_api.schemas.product import AddRequest, to_command
from tests.doubles import InMemoryQueue
from tests.routed_llm import RoutedLLM, extraction_reply, preference
from tests.services import add_service, ingest_service

ALICE = Principal(user_id="alice")
BEFORE = (
    "The user takes green tea with breakfast every morning at home before leaving for work, and always without sugar."
)
AFTER = "The user takes green tea with breakfast every morning at home before leaving for work, and always with honey."
"""Worded alike, so the store's LSH keys find the old one (osmem-server has no vector search)."""


def test_a_preference_round_trips_through_dynamodb_and_opensearch_and_a_change_supersedes_it(
    dynamodb: Any, table: str, search_url: str
) -> None:
    stores = open_stores(DynamoTable(table, dynamodb))
    index = OpenSearchIndex(search_url, index=f"memcube-pref-{uuid.uuid4().hex[:8]}", service="es", auth="none",
                            dimension=384, vector_search=False)  # fmt: skip
    index.bootstrap()
    embedder = HashEmbedder(384)
    llm = RoutedLLM(
        [
            extraction_reply(preferences=[preference(BEFORE)]),
            extraction_reply(preferences=[preference(AFTER)]),
        ],
        relation="contradictory",
    )
    queue = InMemoryQueue()
    adds = add_service(stores, queue, fine_available=True)
    ingest = ingest_service(stores, index, embedder, llm=llm, thresholds=Thresholds(related=0.0))
    searcher = SearchService(stores.memories, index, embedder, stores.directory, llm=llm)

    def run(text: str) -> list[Any]:
        cmd = to_command(AddRequest.model_validate({"user_id": "alice", "messages": text}))
        task_id = adds.submit(cmd, ALICE, None).task_id
        sent, queue.sent = queue.sent, []
        assert [ingest.handle(Delivery(m.model_dump_json(), f"m-{task_id}", 1, 5)) for m in sent] == [Verdict.DONE]
        record = stores.tasks.get_task(task_id)
        assert record is not None
        return record.parts[0].outcomes

    [added] = run("Green tea every morning for me.")
    assert (added.outcome, added.memory_type) == ("added", "PreferenceMemory")
    raw = dynamodb.scan(TableName=table)["Items"]
    [body] = [json.loads(body_text(r["body"])) for r in raw if r.get("memory_id", {}).get("S") == added.memory_id
              and "body" in r]  # fmt: skip
    assert body["metadata"]["memory_type"] == "PreferenceMemory"
    assert body["metadata"]["preference_type"] == "explicit_preference"
    assert body["metadata"]["preference"] == BEFORE

    query = SearchQuery(query="green tea", cube_ids=["alice"], relativity=0.0, rerank=False, pref_top_k=6)
    answer = searcher.search(query, ALICE)
    assert [s.item.id for r in answer.preferences for s in r.memories] == [added.memory_id]
    assert all(s.item.id != added.memory_id for r in answer.cubes for s in r.memories)
    by_type = searcher.search(SearchQuery(query="green tea", cube_ids=["alice"], relativity=0.0, rerank=False,
                                          memory_type="PreferenceMemory"), ALICE)  # fmt: skip
    assert [s.item.id for r in by_type.cubes for s in r.memories] == [added.memory_id]

    updated, archived = run("Honey in my tea from now on.")
    assert (updated.outcome, archived.outcome, archived.memory_id) == ("updated", "archived", added.memory_id)
    old = stores.memories.get_memory(added.memory_id)
    assert old is not None and old.metadata.status == "archived"
    assert old.metadata.covered_history == updated.memory_id and old.metadata.history[-1]["action"] == "archived"
    after = searcher.search(SearchQuery(query="green tea", cube_ids=["alice"], relativity=0.0, rerank=False,
                                        pref_top_k=6), ALICE)  # fmt: skip
    assert [s.item.id for r in after.preferences for s in r.memories] == [updated.memory_id]
