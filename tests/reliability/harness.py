"""An in-process deployment for the fault tests: both Lambda entry points (API Gateway v2 events
through Mangum, SQS FIFO events through powertools) on in-memory ports wrapped in `Faulty`, an SQS
FIFO stand-in with at-least-once delivery (a crash of the function returns its whole batch, and
duplicates can be delivered on purpose), a seeded workload, and snapshots to compare runs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from memcube.domain.maintenance import Maintenance
from memcube.domain.tasks import scoped_task_id
from memcube.ports import Stores
from memcube.settings import Settings
from memcube.wiring import Container
from tests.doubles import InMemoryIndex, InMemoryQueue
from tests.doubles import open_stores as memory_stores
from tests.lambda_support import call, serving
from tests.reliability.faults import Crash, Faulty
from tests.services import add_service
from tests.worker.conftest import FifoQueue, _Waiting, failures, sqs_event, sqs_record


class RuleLLM:
    """A deterministic LLM: `rule(system, user)` answers every call (a redelivery asks again)."""

    def __init__(self, rule: Any) -> None:
        self.rule = rule
        self.calls = 0

    @property
    def model_id(self) -> str:
        return "rule-llm"

    def complete(self, system: str, user: str, *, json_output: bool = True) -> str:
        self.calls += 1
        reply: str = self.rule(system, user)
        return reply


class Stack:
    """One deployment: `add()` goes through the API Lambda, `sqs` delivers to the worker Lambda."""

    def __init__(self, *, llm: Any = None, max_receive_count: int = 5) -> None:
        settings: dict[str, Any] = {"backend": "memory", "max_receive_count": max_receive_count}
        if llm is not None:
            settings |= {"llm": "openai", "llm_base_url": "http://127.0.0.1:9/v1", "llm_model": "rule"}
        self.memory = memory_stores()
        """The stores themselves, around the faults (to read what a run left behind)."""
        self.stores, self.faults = faulty(self.memory)
        self.index = Faulty(InMemoryIndex())
        self.queue = InMemoryQueue()
        # Memory ids are derived from a random salt per task; here from the task id, so runs compare.
        add = add_service(self.stores, self.queue, fine_available=llm is not None, salt=_salt_of)
        self.container = Container(
            Settings(**settings), stores=self.stores, index=self.index, queue=self.queue, llm=llm, add=add
        )
        self.sqs = Sqs(4 * max_receive_count)  # the queue's redrive limit sits well above the worker's attempts

    @contextmanager
    def serving(self) -> Iterator[Stack]:
        with serving(self.container):
            yield self

    @property
    def docs(self) -> InMemoryIndex:
        index: InMemoryIndex = self.index.target
        return index

    def add(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /product/add, and the messages it queued handed to SQS."""
        code, answer = call("POST", "/product/add", body=body)
        assert code == 200, answer
        self.sqs.send_queued(self.queue.sent)
        self.queue.sent.clear()
        return answer

    def status(self, user_id: str, task_id: str) -> dict[str, Any]:
        code, answer = call("GET", "/product/scheduler/status", query=f"user_id={user_id}&task_id={task_id}")
        assert code == 200, answer
        task: dict[str, Any] = answer["data"][0]
        return task

    def differences(self) -> int:
        """Store against index over every cube (`memcube reconcile`'s check)."""
        ops = Maintenance(self.memory.memories, self.docs)
        cubes = {i.metadata.cube_id for i in self.memory.memories.iter_memories()} | {
            d.metadata.cube_id for d in self.docs.docs.values()
        }
        return sum(ops.reconcile(c).differences for c in cubes)


def faulty(stores: Stores) -> tuple[Stores, dict[str, Faulty]]:
    """The same stores, each port wrapped in its own `Faulty`, and those wrappers by port name (arm
    a fault on the port whose method it names: `faults["memories"].arm(Fault("put_memory", ...))`)."""
    faults = {f.name: Faulty(getattr(stores, f.name)) for f in dataclasses.fields(stores) if f.name != "close"}
    ports: dict[str, Any] = dict(faults)
    return dataclasses.replace(stores, **ports), faults


class Sqs(FifoQueue):
    """FifoQueue (tests/worker) with the failure modes of at-least-once delivery: a function that
    dies (`Crash`) deletes nothing, so its whole batch comes back; `twice` delivers every batch a
    second time, as SQS may after a lost delete or an expired visibility timeout."""

    def __init__(self, max_receive_count: int, batch_size: int = 10) -> None:
        super().__init__(max_receive_count, batch_size)
        self.crashes = 0
        self.deliveries = 0

    def deliver_batch(self, batch: list[_Waiting]) -> dict[str, Any] | None:
        """Deliver exactly these messages; None when the function died (nothing deleted)."""
        from tests.lambda_support import invoke_worker

        records = []
        for w in batch:
            w.receives += 1
            records.append(sqs_record(w.body, group=w.group, seq=w.seq, receive_count=w.receives, dedup=w.dedup))
        self.deliveries += 1
        try:
            result = invoke_worker(sqs_event(*records))
        except Crash:
            self.crashes += 1
            return None
        failed = set(failures(result))
        for w, record in zip(batch, records, strict=True):
            if record["messageId"] in failed:
                if w.receives >= self.max_receive_count and w in self.waiting:
                    self.waiting.remove(w)
                    self.redriven.append(w.body)
            elif w in self.waiting:
                self.waiting.remove(w)
        return result

    def deliver(self, *, twice: bool = False) -> dict[str, Any]:
        batch = list(self.waiting[: self.batch_size])
        result = self.deliver_batch(batch)
        if twice:
            self.deliver_batch(batch)  # the same records again, the acknowledged ones included
        return result or {"batchItemFailures": [{"itemIdentifier": "crashed"}]}

    def drain_all(self, *, twice: bool = False, max_deliveries: int = 500) -> int:
        if not self.waiting:
            return 0
        for n in range(1, max_deliveries + 1):
            self.deliver(twice=twice)
            if not self.waiting:
                return n
        raise AssertionError(f"queue not empty after {max_deliveries} deliveries")


# --- a seeded workload ------------------------------------------------------------------------

CONVERSATION = [
    {"role": "user", "content": "I moved to Lisbon in March and I work as a nurse at the Santa Maria hospital."},
    {"role": "assistant", "content": "Congratulations on the move! How do you like the hospital so far?"},
    {"role": "user", "content": "I love it, the team is great and my commute along the river is short."},
]


def _edited(conversation: list[dict[str, str]]) -> list[dict[str, str]]:
    out = [dict(m) for m in conversation]
    out[1]["content"] = out[1]["content"].replace("Congratulations on the move!", "Congrats on the move!")
    out[2]["content"] = out[2]["content"].replace("great", "wonderful")
    return out


def _long(tag: str, lines: int = 36, words: int = 30) -> list[dict[str, str]]:
    """A conversation long enough for several windows (several memories)."""
    return [{"role": "user", "content": f"{tag} line {i}: " + " ".join(f"{tag}w{i}x{j}" for j in range(words))}
            for i in range(lines)]  # fmt: skip


def workload(adds: int, seed: int = 7, cubes: int = 4) -> list[dict[str, Any]]:
    """`adds` add bodies (fixed task ids) over `cubes` knowledge-base cubes of one user: new facts,
    exact repeats (duplicates), near copies (merges), clear corrections (feedback that supersedes),
    long conversations (several memories) and fan-outs to two cubes."""
    rng = random.Random(seed)
    names = [f"kb-{n}" for n in range(cubes)]
    facts: dict[str, list[str]] = {c: [] for c in names}
    convos: dict[str, list[list[dict[str, str]]]] = {c: [] for c in names}
    bodies: list[dict[str, Any]] = []
    for n in range(adds):
        cube = rng.choice(names)
        body: dict[str, Any] = {"user_id": "ops", "task_id": f"w-{seed}-{n}", "writable_cube_ids": [cube]}
        roll = rng.random()
        if roll < 0.15 and facts[cube]:
            body["messages"] = rng.choice(facts[cube])  # an exact repeat
        elif roll < 0.25:
            convo = [dict(m, content=f"{cube} {n}: {m['content']}") for m in CONVERSATION]
            convos[cube].append(convo)
            body["messages"] = convo
        elif roll < 0.35 and convos[cube]:
            body["messages"] = _edited(rng.choice(convos[cube]))  # a near copy
        elif roll < 0.45 and facts[cube]:
            old = rng.choice(facts[cube])
            fix = old.replace("Lisbon", "Porto").replace("near", "close to") + " Not Lisbon."
            body |= {"is_feedback": True, "messages": [
                {"role": "user", "content": f"Where does {old.split()[0]} live?"},
                {"role": "assistant", "content": old},
                {"role": "user", "content": fix},
            ]}  # fmt: skip
        elif roll < 0.5:
            body["messages"] = _long(f"{cube}n{n}")
        elif roll < 0.6:
            body["writable_cube_ids"] = [cube, names[(names.index(cube) + 1) % len(names)]]
            body["messages"] = f"Shared notice {n}: the {cube} rota changes on day {n % 28 + 1}."
        else:
            text = f"Person{n} lives in Lisbon near the castle and keeps {n} plants on the balcony."
            facts[cube].append(text)
            body["messages"] = text
        bodies.append(body)
    return bodies


def _salt_of(task_id: str) -> str:
    return hashlib.sha256(task_id.encode()).hexdigest()[:32]


def outcomes(
    stack: Stack, task_ids: list[str], user_id: str
) -> dict[str, list[tuple[str, str, list[tuple[str, str, list[str]]]]]]:
    """Each of the user's tasks' parts: cube, status, and (outcome, memory id, related ids) per memory."""
    out: dict[str, list[tuple[str, str, list[tuple[str, str, list[str]]]]]] = {}
    for task_id in task_ids:
        record = stack.memory.tasks.get_task(scoped_task_id(user_id, task_id))
        assert record is not None, task_id
        out[task_id] = [
            (p.cube_id, p.status.value, [(o.outcome, o.memory_id, sorted(o.related_ids)) for o in p.outcomes])
            for p in record.parts
        ]
    return out


@dataclass(frozen=True)
class Held:
    """What a cube holds, without timestamps (clocks differ between runs)."""

    items: dict[str, tuple[str, str, tuple[str, ...], str | None, int, tuple[str, ...]]]


def holdings(stack: Stack) -> Held:
    return Held(
        {
            i.id: (
                i.memory,
                i.metadata.status,
                tuple(sorted(i.metadata.merged_from)),
                i.metadata.covered_history,
                i.metadata.version,
                tuple(sorted(i.metadata.tags)),
            )
            for i in stack.memory.memories.iter_memories()
        }
    )


def kinds_in(result: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for parts in result.values():
        for _, _, memories in parts:
            for kind, _, _ in memories:
                counts[kind] = counts.get(kind, 0) + 1
    return counts


def dumps(value: Any) -> str:
    return json.dumps(value, indent=1, default=str)[:4000]
