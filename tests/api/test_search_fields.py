"""Every field of MemOS's search request either does what MemOS says or is refused by name: a
switch that silently does nothing is a wrong answer that looks right."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from memcube.domain.errors import Unavailable
from memcube.wiring import Container
from memcube_local.wiring import LocalContainer
from tests.lambda_support import call, serving


class ScriptedReranker:
    """Scores each document by a fixed table of words it contains (the query is recorded)."""

    model_id = "scripted-reranker"

    def __init__(self, scores: dict[str, float] | None = None, fail: bool = False) -> None:
        self.scores = scores or {}
        self.fail = fail
        self.queries: list[str] = []

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        self.queries.append(query)
        if self.fail:
            raise Unavailable("the rerank service answered 503")
        return [max((s for w, s in self.scores.items() if w in d), default=0.0) for d in documents]


@pytest.fixture
def api(embedded_container: Container) -> Iterator[Container]:
    with serving(embedded_container) as container:
        yield container


def add(text: str, *, chat_time: str | None = None, role: str = "user") -> str:
    message: dict[str, Any] = {"role": role, "content": text}
    if chat_time:
        message["chat_time"] = chat_time
    body = {"user_id": "alice", "messages": [message], "async_mode": "sync", "mode": "fast"}
    code, payload = call("POST", "/product/add", body=body)
    assert code == 200, payload
    memory_id: str = payload["data"][0]["memory_id"]
    return memory_id


def search(**body: Any) -> tuple[int, dict[str, Any]]:
    return call("POST", "/product/search", body={"user_id": "alice", "relativity": 0.0, **body})


def hits(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for cube in payload["data"]["text_mem"] for m in cube["memories"]]


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("internet_search", True, "internet_search"),
        ("neighbor_discovery", True, "neighbor_discovery"),
        ("chat_history", [{"role": "user", "content": "about my trip"}], "chat_history"),
        ("search_memory_type", "NoSuchMemory", "search_memory_type"),
        ("reference_time", "someday", "reference_time"),
        ("context_format", "markdown", "context_format"),
    ],
)
def test_a_search_switch_memcube_cannot_honour_is_a_422_naming_it(
    api: Container, field: str, value: Any, named: str
) -> None:
    code, payload = search(query="anything", **{field: value})
    assert code == 422, payload
    assert named in payload["message"]


def test_search_memory_type_confines_the_search_to_that_type(api: Container) -> None:
    mine = add("I collect vintage maps of Lisbon.")  # a user's own words: UserMemory
    talk = add("Vintage maps of Lisbon are sold on Rua Augusta.", role="assistant")  # LongTermMemory
    _, everything = search(query="vintage maps Lisbon")
    assert {m["id"] for m in hits(everything)} == {mine, talk}
    _, users = search(query="vintage maps Lisbon", search_memory_type="UserMemory")
    assert [m["id"] for m in hits(users)] == [mine]
    assert all(m["metadata"]["memory_type"] == "UserMemory" for m in hits(users))


def test_threshold_is_the_least_raw_cosine_a_hit_may_have(api: Container) -> None:
    add("I collect vintage maps of Lisbon.")
    _, loose = search(query="vintage maps", threshold=-1.0)
    _, strict = search(query="vintage maps", threshold=0.999)
    assert hits(loose) and not hits(strict)


def test_reference_time_reads_yesterday_in_the_query_against_it(api: Container) -> None:
    earlier = add("We went hiking in the hills.", chat_time="2023-05-01T10:00:00Z")
    later = add("We went swimming in the lake.", chat_time="2023-05-09T10:00:00Z")
    _, on_the_tenth = search(query="what did we do yesterday?", reference_time="10 May 2023")
    _, on_the_second = search(query="what did we do yesterday?", reference_time="2023-05-02")
    assert next(m["id"] for m in hits(on_the_tenth)) == later
    assert next(m["id"] for m in hits(on_the_second)) == earlier


def test_rerank_without_a_rerank_model_or_llm_says_it_was_not_reranked(api: Container) -> None:
    add("I collect vintage maps of Lisbon.")
    _, reranked = search(query="maps")
    assert any(
        ("rerank" in note and "not" in note.lower()) or "no rerank" in note for note in reranked["data"]["notes"]
    )
    _, plain = search(query="maps", rerank=False, include_preference=False, search_tool_memory=False)
    assert plain["data"]["notes"] == []


def test_rerank_orders_by_the_rerank_models_scores_which_become_the_relativity(tmp_path: Any) -> None:
    from memcube.settings import Settings
    from memcube_local.embedded import EmbeddedWorker

    reranker = ScriptedReranker({"Porto": 0.9, "Lisbon": 0.2})
    container = LocalContainer(
        Settings(backend="embedded", embedder="hash", data_dir=tmp_path / "d", sync_timeout_seconds=20),
        reranker=reranker,
    )
    worker = EmbeddedWorker(container)
    worker.start()
    try:
        with serving(container):
            lisbon = add("Maps of Lisbon hang in my hall.")
            porto = add("A map of Porto hangs in the kitchen.")
            _, plain = search(query="maps of Lisbon", rerank=False)
            assert next(m["id"] for m in hits(plain)) == lisbon
            _, reranked = search(query="maps of Lisbon")
            assert [m["id"] for m in hits(reranked)] == [porto, lisbon]
            assert [m["metadata"]["relativity"] for m in hits(reranked)] == [0.9, 0.2]
            assert reranker.queries == ["maps of Lisbon"]
            _, above = search(query="maps of Lisbon", relativity=0.5)
            assert [m["id"] for m in hits(above)] == [porto]
            reranker.fail = True
            _, degraded = search(query="maps of Lisbon")
            assert next(m["id"] for m in hits(degraded)) == lisbon
            assert any("503" in note for note in degraded["data"]["notes"])
    finally:
        worker.stop()
        container.close()


def test_mode_fine_without_an_llm_says_the_query_was_searched_as_given(api: Container) -> None:
    add("I collect vintage maps of Lisbon.")
    code, payload = search(query="maps", mode="fine", rerank=False)
    assert code == 200
    assert any("no LLM" in note for note in payload["data"]["notes"])


def test_event_time_filters_select_memories_whose_span_overlaps_the_bound(api: Container) -> None:
    may = add("We went hiking in the hills.", chat_time="1:56 pm on 8 May, 2023")
    june = add("We went swimming in the lake.", chat_time="2023-06-20")
    add("We went to the cinema.")  # no time: never matched by a time bound
    _, after = search(query="we went", filter={"event_time": {"gte": "1 June 2023"}})
    assert [m["id"] for m in hits(after)] == [june]
    _, before = search(query="we went", filter={"event_time": {"lt": "2023-06-01"}})
    assert [m["id"] for m in hits(before)] == [may]
    [item] = list(hits(before))
    assert item["metadata"]["event_time"] == "2023-05-08T13:56:00.000Z"
    code, payload = search(query="we went", filter={"event_time": {"gte": "june"}})
    assert code == 422 and "event_time" in payload["message"]
