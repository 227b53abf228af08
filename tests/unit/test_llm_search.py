"""What the LLM adds to a search (`domain/llm_search.py`, `SearchService`): fine mode searches the
LLM's rewrites of the query beside it; the LLM reranker scores candidates; unusable replies are
reported in the answer's notes, never acted on."""

from __future__ import annotations

import json

from memcube.adapters.hash_embedder import HashEmbedder
from memcube.domain.llm_search import LLMReranker, rewrite_query
from memcube.domain.model import Principal
from memcube.domain.search import SearchService
from memcube_api.schemas.product import SearchRequest
from tests.contract.support import memory
from tests.doubles import InMemoryIndex
from tests.doubles import open_stores as memory_stores
from tests.unit.world import ScriptedLLM


def service(llm: ScriptedLLM | None = None, rerank_with_llm: bool = False) -> SearchService:
    stores, index, embedder = memory_stores(), InMemoryIndex(), HashEmbedder(64)
    for n, text in enumerate(["Carol adopted a grey cat named Pixel.", "Carol bought a red bicycle in spring."]):
        item = memory(f"m{n}", text, cube="carol")
        item.metadata.embedding = embedder.embed([text])[0]
        item.metadata.embedding_model = embedder.model_id
        stores.memories.put_memory(item)
        index.upsert([item])
    reranker = LLMReranker(llm) if (llm is not None and rerank_with_llm) else None
    return SearchService(stores.memories, index, embedder, stores.directory, reranker=reranker, llm=llm)


def ask(svc: SearchService, **fields: object) -> tuple[list[str], list[str]]:
    req = SearchRequest.model_validate({"user_id": "carol", "relativity": 0, "rerank": False, **fields})
    answer = svc.search(req.to_query(), Principal(user_id="carol", scopes=frozenset({"service"})))
    return [s.item.id for c in answer.cubes for s in c.memories], answer.notes


def test_fine_mode_searches_the_llms_rewrites_beside_the_query() -> None:
    llm = ScriptedLLM(json.dumps({"queries": ["Carol cat Pixel"]}))
    ids, notes = ask(service(llm), query="what is it called?", mode="fine", top_k=1)
    assert (ids, notes) == (["m0"], [])
    [(_, prompt)] = llm.calls
    assert json.loads(prompt)["question"] == "what is it called?"


def test_fine_mode_reads_the_chat_history_to_resolve_references() -> None:
    llm = ScriptedLLM(json.dumps({"queries": ["Carol bicycle"]}))
    history = [{"role": "user", "content": "Carol got a new bike"}]
    ask(service(llm), query="what colour is it?", mode="fine", chat_history=history)
    assert json.loads(llm.calls[0][1])["conversation"] == ["user: Carol got a new bike"]


def test_an_unusable_rewrite_is_noted_and_the_query_searched_as_given() -> None:
    ids, notes = ask(service(ScriptedLLM("no json here at all")), query="Carol cat", mode="fine")
    assert ids and any("could not rewrite" in n for n in notes)


def test_the_llm_reranker_scores_each_candidate_from_0_to_1() -> None:
    llm = ScriptedLLM(json.dumps({"scores": [{"id": 0, "score": 2}, {"id": 1, "score": 9}]}))
    assert LLMReranker(llm).rerank("bike?", ["a cat", "a bicycle"]) == [0.2, 0.9]


def test_rewrites_drop_blanks_repeats_and_the_query_itself() -> None:
    reply = json.dumps({"queries": ["  ", "cat", "cat", "the cat  Pixel", "q"]})
    assert rewrite_query(ScriptedLLM(reply), "q", []) == ["cat", "the cat Pixel"]
