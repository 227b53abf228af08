"""A small in-memory deployment for pipeline tests: submit adds, deliver them through the
worker's ingest service, and read outcomes; an LLM whose replies are scripted per call."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from memcube.adapters.hash_embedder import HashEmbedder
from memcube.domain.errors import LLMUnavailable
from memcube.domain.history import HistoryService
from memcube.domain.ingest import Delivery, Verdict
from memcube.domain.model import MemoryItem, MemoryOutcome, Principal, TaskPart
from memcube.domain.organizer import Thresholds
from memcube.ports import ChatTurn, DocumentReader, Embedder, Sampling
from memcube_api.schemas.product import AddRequest, to_command
from tests.doubles import InMemoryIndex, InMemoryQueue
from tests.doubles import open_stores as memory_stores
from tests.services import add_service, ingest_service

Reply = str | Callable[[str, str], str] | Exception | list[str | Exception]


class ScriptedLLM:
    """Answers each call with the next scripted reply (a string, a function of the prompts, or
    an exception to raise), and records the prompts it was given."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[str, str]] = []
        self.streamed: list[tuple[list[ChatTurn], Sampling]] = []

    @property
    def model_id(self) -> str:
        return "scripted"

    def complete(self, system: str, user: str, *, json_output: bool = True) -> str:
        self.calls.append((system, user))
        if not self.replies:
            raise AssertionError(f"unscripted LLM call: {user[:200]}")
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, list):
            raise AssertionError("a list of pieces answers a streamed chat, not complete()")
        return reply(system, user) if callable(reply) else reply

    def stream(self, turns: Sequence[ChatTurn], sampling: Sampling) -> Iterator[str]:
        """A chat answer: a string comes word by word, a list piece by piece (an exception in it
        raised there: a failure part-way), a function gets the system prompt and the last turn."""
        self.streamed.append((list(turns), sampling))
        if not self.replies:
            raise AssertionError(f"unscripted LLM stream: {turns[-1].content[:200]}")
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        if callable(reply):
            reply = reply(turns[0].content, turns[-1].content)
        pieces = reply if isinstance(reply, list) else [w + " " for w in reply.split(" ")]
        for piece in pieces:
            if isinstance(piece, Exception):
                raise piece
            yield piece


def extraction(*items: dict[str, Any], summary: str = "a conversation") -> str:
    return json.dumps({"memory_list": list(items), "summary": summary}, ensure_ascii=False)


def fact(value: str, key: str = "", memory_type: str = "UserMemory", tags: list[str] | None = None) -> dict[str, Any]:
    return {"key": key or value[:30], "memory_type": memory_type, "value": value, "tags": tags or []}


def judged(user: str, relation: str, reason: str = "") -> str:
    """A judge reply giving every offered existing item the same relation."""
    offered = json.loads(user)["existing"]
    return json.dumps({"judgements": [{"id": e["id"], "relation": relation, "reason": reason} for e in offered]})


class Clock:
    def __init__(self) -> None:
        self.tick = 0

    def __call__(self) -> str:
        self.tick += 1
        return f"2026-11-25T10:{self.tick // 60:02d}:{self.tick % 60:02d}.000Z"


class World:
    def __init__(
        self,
        llm: ScriptedLLM | None = None,
        embedder: Embedder | None = None,
        thresholds: Thresholds | None = None,
        documents: DocumentReader | None = None,
    ) -> None:
        self.clock = Clock()
        self.llm = llm
        self.stores = memory_stores()
        self.queue = InMemoryQueue()
        self.index = InMemoryIndex()
        self.embedder = embedder or HashEmbedder(256)
        self.add = add_service(self.stores, self.queue, fine_available=llm is not None, now=self.clock)
        self.ingest = ingest_service(
            self.stores,
            self.index,
            self.embedder,
            llm=llm,
            thresholds=thresholds,
            documents=documents,
            now=self.clock,
        )
        self.history = HistoryService(
            self.stores.memories, self.stores.directory, self.index, self.embedder, self.clock
        )

    def submit(self, messages: Any, user: str = "alice", **body: Any) -> str:
        cmd = to_command(AddRequest.model_validate({"user_id": user, "messages": messages, **body}))
        return self.add.submit(cmd, Principal(user_id=user), None).public_id

    def deliver(self, *, times: int = 1) -> list[Verdict]:
        """Hand the queued messages to the worker, each `times` times (a redelivery after a
        lost acknowledgement repeats a message whole)."""
        sent, self.queue.sent = self.queue.sent, []
        verdicts = []
        for _ in range(times):
            verdicts += [self.ingest.handle(Delivery(m.model_dump_json(), f"m{i}", 1, 5)) for i, m in enumerate(sent)]
        return verdicts

    def run(self, messages: Any, user: str = "alice", **body: Any) -> TaskPart:
        task_id = self.submit(messages, user, **body)
        assert self.deliver() == [Verdict.DONE]
        return self.part(task_id)

    def part(self, task_id: str) -> TaskPart:
        record = self.stores.tasks.get_task(task_id)
        assert record is not None
        [part] = record.parts
        return part

    def active(self, cube: str = "alice") -> list[MemoryItem]:
        return self.stores.memories.list_memories(cube, 0, 1000)[0]

    def item(self, memory_id: str) -> MemoryItem:
        item = self.stores.memories.get_memory(memory_id)
        assert item is not None
        return item

    def searchable(self, cube: str = "alice") -> set[str]:
        return {
            d.id for d in self.index.docs.values() if d.metadata.cube_id == cube and d.metadata.status == "activated"
        }


def kinds(part: TaskPart) -> list[str]:
    return [o.outcome for o in part.outcomes]


def only(part: TaskPart, outcome: str) -> MemoryOutcome:
    [found] = [o for o in part.outcomes if o.outcome == outcome]
    return found


__all__ = ["LLMUnavailable", "ScriptedLLM", "World", "extraction", "fact", "judged", "kinds", "only"]
