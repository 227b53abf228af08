"""Point 1, at-least-once delivery: whatever SQS repeats (every message twice, a late duplicate, a
whole batch after a partial failure or a crash of the function) the cubes and every task's
outcomes come out exactly as with each message delivered once."""

from __future__ import annotations

import json
import random
import threading
from typing import Any, Literal

import pytest

from memcube.domain.ingest import Delivery, Verdict
from memcube.domain.model import MemoryItem, TaskPart, TaskState
from tests.reliability.conftest import Figures, Scale
from tests.reliability.faults import Fault
from tests.reliability.harness import Stack, dumps, holdings, kinds_in, outcomes, workload
from tests.worker.conftest import _Waiting


def submitted(stack: Stack, bodies: list[dict[str, Any]]) -> list[_Waiting]:
    for body in bodies:
        stack.add(body)
    return list(stack.sqs.waiting)


def oracle(bodies: list[dict[str, Any]]) -> tuple[Any, Any]:
    stack = Stack()
    with stack.serving():
        submitted(stack, bodies)
        stack.sqs.drain_all()
        assert stack.sqs.crashes == 0
        return outcomes(stack, [b["task_id"] for b in bodies], "ops"), holdings(stack)


@pytest.fixture(scope="module")
def bodies(scale: Scale) -> list[dict[str, Any]]:
    return workload(scale.workload_adds)


@pytest.fixture(scope="module")
def expected(bodies: list[dict[str, Any]]) -> tuple[Any, Any]:
    result, held = oracle(bodies)
    kinds = kinds_in(result)
    # The workload exercises every outcome the organizer has without an LLM.
    assert {"added", "duplicate", "merged", "updated", "archived"} <= set(kinds), kinds
    assert all(status == "completed" for parts in result.values() for _, status, _ in parts)
    return result, held


def check(stack: Stack, bodies: list[dict[str, Any]], expected: tuple[Any, Any]) -> None:
    result, held = outcomes(stack, [b["task_id"] for b in bodies], "ops"), holdings(stack)
    mismatched = {t: (result[t], expected[0][t]) for t in result if result[t] != expected[0][t]}
    assert not mismatched, dumps(mismatched)
    assert held == expected[1]
    assert stack.differences() == 0
    contents = [(i.metadata.cube_id, i.metadata.content_hash) for i in stack.memory.memories.iter_memories()]
    assert len(contents) == len(set(contents)), "two items with one content in a cube"


def test_every_message_delivered_twice_changes_nothing(
    bodies: list[dict[str, Any]], expected: tuple[Any, Any], figures: Figures
) -> None:
    stack = Stack()
    with stack.serving():
        submitted(stack, bodies)
        stack.sqs.drain_all(twice=True)
        check(stack, bodies, expected)
    figures.record("1 at-least-once", adds=len(bodies), delivered_twice=stack.sqs.deliveries // 2,
                   outcome_kinds=kinds_in(expected[0]), duplicates_stored=0)  # fmt: skip


def test_a_late_duplicate_of_every_message_changes_nothing(
    bodies: list[dict[str, Any]], expected: tuple[Any, Any]
) -> None:
    """A copy that comes back after later messages of its cube were processed (a producer's
    resend past the queue's dedup window): its part is complete, so nothing is redone."""
    stack = Stack()
    with stack.serving():
        sent = submitted(stack, bodies)
        stack.sqs.drain_all()
        stack.sqs.waiting = [_Waiting(w.seq, w.body, w.group, w.dedup) for w in reversed(sent)]
        stack.sqs.drain_all()
        check(stack, bodies, expected)


def test_a_whole_batch_redelivered_after_a_partial_failure_changes_nothing(
    bodies: list[dict[str, Any]], expected: tuple[Any, Any], figures: Figures
) -> None:
    """One cube's index writes fail in each batch's first delivery (powertools reports that
    cube's records as failed and the others succeed); then the whole batch comes back, the
    acknowledged records with it, as after a function error."""
    stack = Stack()
    rng = random.Random(3)
    batches = 0
    with stack.serving():
        submitted(stack, bodies)
        while stack.sqs.waiting:
            batch = list(stack.sqs.waiting[: stack.sqs.batch_size])
            broken = rng.choice([w.group for w in batch])

            def refuse(method: str, args: tuple[Any, ...], cube: str = broken) -> bool:
                items: list[MemoryItem] = list(args[0]) if method == "upsert" and args else []
                return any(i.metadata.cube_id == cube for i in items)

            stack.index.down(refuse)
            first = stack.sqs.deliver_batch(batch)
            stack.index.up()
            assert first is not None
            stack.sqs.waiting = [w for w in stack.sqs.waiting if w not in batch] + [
                w for w in batch if w.receives < stack.sqs.max_receive_count
            ]
            stack.sqs.waiting.sort(key=lambda w: w.seq)
            stack.sqs.deliver_batch(batch)  # the whole batch again, index back
            batches += 1
        check(stack, bodies, expected)
    figures.record("1 at-least-once", whole_batches_redelivered_after_partial_failure=batches)


def test_a_function_crash_mid_batch_returns_the_batch_and_changes_nothing(
    bodies: list[dict[str, Any]], expected: tuple[Any, Any], figures: Figures
) -> None:
    """The function dies at a random store write of every other batch (nothing is deleted from
    the queue), then the batch is delivered again. (A message that kills the worker on every
    attempt is given up with that reason: test_poison.)"""
    stack = Stack()
    rng = random.Random(11)
    with stack.serving():
        submitted(stack, bodies)
        n = 0
        while stack.sqs.waiting:
            n += 1
            if n % 2:
                whens: list[Literal["before", "after"]] = ["before", "after"]
                when = rng.choice(whens)
                stack.faults["memories"].arm(Fault("put_memory", when, nth=rng.randint(1, 6)))
            stack.sqs.deliver()
        check(stack, bodies, expected)
    assert stack.sqs.crashes > 0
    figures.record("1 at-least-once", function_crashes_mid_batch=stack.sqs.crashes)


def test_the_same_message_processed_by_two_workers_at_once_changes_nothing(
    bodies: list[dict[str, Any]], expected: tuple[Any, Any], figures: Figures
) -> None:
    """A visibility timeout that runs out mid-work hands a message to a second worker while the
    first is still at it: both start the part, then both place its memories at the same time."""
    stack = Stack()
    lined_up = threading.Barrier(2, timeout=5)
    started = threading.local()

    def line_up(method: str, args: tuple[Any, ...]) -> None:
        part = args[1] if method == "put_task_part" and len(args) > 1 else None
        if isinstance(part, TaskPart) and part.status is TaskState.IN_PROGRESS and not getattr(started, "done", False):
            started.done = True
            stack.memory.tasks.put_task_part(*args)  # written before both go on together
            lined_up.wait()

    with stack.serving():
        sent = submitted(stack, bodies)
        stack.faults["tasks"].hook = line_up
        for w in sent:
            verdicts: list[Verdict] = []

            def work(attempt: int, body: str = w.body, group: str = w.group, out: list[Verdict] = verdicts) -> None:
                started.done = False
                out.append(stack.container.ingest.handle(Delivery(body, f"m{attempt}", attempt, 5, group)))

            threads = [threading.Thread(target=work, args=(n,)) for n in (1, 2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            lined_up.reset()
            task = stack.memory.tasks.get_task(json.loads(w.body)["task_id"])
            assert verdicts == [Verdict.DONE, Verdict.DONE], (verdicts, task)
        stack.sqs.waiting.clear()
        check(stack, bodies, expected)
    figures.record("1 at-least-once", messages_processed_by_two_workers_at_once=len(sent))
