"""Point 4, poison messages: every kind of message that can never succeed is dead-lettered with
its reason and blocks no cube (not even its own cube's later messages); a message that kills the
worker on every attempt is given up with that reason; redriving the dead letters after the cause
is fixed completes them once, and redriving again changes nothing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from memcube.domain.maintenance import redrive_dead_letters
from memcube.domain.model import MemoryItem
from memcube.domain.tasks import scoped_task_id
from tests.reliability.conftest import Figures
from tests.reliability.faults import Crash
from tests.reliability.harness import Stack
from tests.worker.conftest import _Waiting, producer_body

OPS_TASK = scoped_task_id("ops", "t-kb-3-0")  # the stored id of ops' task "t-kb-3-0"
POISON: dict[str, tuple[str, str, str]] = {
    # kind: (group, body, what the reason says)
    "broken JSON": ("kb-1", '{"v": 1, "task_id": "p1"', "invalid queued message: body: Invalid JSON"),
    "wrong type": ("kb-2", producer_body("p2", "kb-2", "ops", "x").replace('"messages": [', '"messages": 7, "x": ['),
                   "invalid queued message"),
    "unknown version": ("kb-3", json.dumps(json.loads(producer_body("p3", "kb-3", "ops", "x")) | {"v": 9}),
                        "invalid queued message: v"),
    "wrong FIFO group": ("kb-1", producer_body("p4", "kb-2", "ops", "x"), "MessageGroupId 'kb-1' is not the"),
    "another user's personal cube": ("ann", producer_body("p5", "ann", "mallory", "x"), "may not write ['ann']"),
    "joins another user's task": ("kb-3", producer_body(OPS_TASK, "kb-3", "mallory", "x"), "belongs to another user"),
}  # fmt: skip


class Forwarded:
    """Raw bodies put on the queue the way a direct producer (or a bug) would."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def send_raw(self, entries: Sequence[tuple[str, str, str]]) -> None:
        for group, dedup, body in entries:
            self.stack.sqs.send(body, group, dedup)


def test_poison_of_every_kind_is_dead_lettered_with_its_reason_and_blocks_no_cube(figures: Figures) -> None:
    stack = Stack()
    with stack.serving():
        stack.add({"user_id": "ann", "messages": "Ann is a known user.", "task_id": "ann-0"})
        good: list[str] = []
        for n, (kind, (group, body, _)) in enumerate(POISON.items()):
            for cube in ("kb-1", "kb-2", "kb-3"):  # good adds before and after each poison, in every cube
                good.append(stack.add({"user_id": "ops", "writable_cube_ids": [cube], "task_id": f"t-{cube}-{n}",
                                       "messages": f"{cube} fact {n} before the {kind}"})["task_id"])  # fmt: skip
            stack.sqs.send(body, group, f"poison-{n}")
        for cube in ("kb-1", "kb-2", "kb-3"):
            good.append(
                stack.add({"user_id": "ops", "writable_cube_ids": [cube], "messages": f"{cube} after all"})["task_id"]
            )
        deliveries = stack.sqs.drain_all()
        letters = {letter.body: letter for letter in stack.memory.dead_letters.list_dead_letters()}
        for kind, (_, body, says) in POISON.items():
            assert body in letters, kind
            assert says in letters[body].reason, (kind, letters[body].reason)
        assert len(letters) == len(POISON)
        assert all(stack.status("ops", t)["status"] == "completed" for t in good)
        assert stack.sqs.redriven == []  # every poison acknowledged at once: none waits for the redrive policy
        assert all("mallory" not in i.metadata.user_id for i in stack.memory.memories.iter_memories())
        hijacked = stack.memory.tasks.get_task(OPS_TASK)
        assert hijacked is not None and hijacked.status.value == "completed"
    figures.record("4 poison", poison_kinds=len(POISON), dead_lettered_with_reason=len(POISON),
                   good_adds_completed=len(good), deliveries=deliveries)  # fmt: skip


def test_a_message_that_kills_the_worker_every_time_is_given_up_with_that_reason_then_redriven_once(
    figures: Figures,
) -> None:
    stack = Stack(max_receive_count=5)
    crashing = {"on": True}

    def pill(method: str, args: tuple[Any, ...]) -> bool:
        item: MemoryItem | None = args[0] if method == "put_memory" and args else None
        return crashing["on"] and item is not None and item.memory == "a poison pill"

    stack.faults["memories"].down(pill, error=lambda: Crash("out of memory"))  # what the pill does to the worker
    with stack.serving():
        pill_task = stack.add({"user_id": "ops", "writable_cube_ids": ["kb-1"], "messages": "a poison pill"})["task_id"]
        pill_seq = stack.sqs.waiting[-1].seq
        behind = stack.add({"user_id": "ops", "writable_cube_ids": ["kb-1"], "messages": "behind the pill"})["task_id"]
        other = stack.add({"user_id": "ops", "writable_cube_ids": ["kb-2"], "messages": "another cube"})["task_id"]
        deliveries = stack.sqs.drain_all(max_deliveries=20)
        task = stack.status("ops", pill_task)
        [part] = task["cubes"]
        assert task["status"] == "failed", task
        assert part["error"].startswith("gave up after 5 attempts that never finished"), part
        assert stack.sqs.crashes == 5
        assert stack.status("ops", behind)["status"] == "completed"  # the cube moved on in order
        assert stack.status("ops", other)["status"] == "completed"
        [letter] = stack.memory.dead_letters.list_dead_letters()
        assert letter.reason == part["error"]

        # The function died after dead-lettering it, before SQS heard: the same message (same id)
        # comes back, and is neither run nor dead-lettered again.
        stack.sqs.waiting = [_Waiting(pill_seq, letter.body, "kb-1", "again")]
        stack.sqs.drain_all()
        assert len(stack.memory.dead_letters.list_dead_letters()) == 1
        assert stack.status("ops", pill_task)["cubes"][0] == part

        crashing["on"] = False  # the cause is fixed: redrive, twice
        first = redrive_dead_letters(stack.memory.dead_letters, Forwarded(stack))
        stack.sqs.drain_all()
        again = redrive_dead_letters(stack.memory.dead_letters, Forwarded(stack))
        stack.sqs.drain_all()
        assert (first.sent, again.sent) == (1, 0)  # the completed part resolved its dead letter
        task = stack.status("ops", pill_task)
        assert task["status"] == "completed", task
        assert stack.memory.dead_letters.list_dead_letters() == []
        assert [i.memory for i in stack.memory.memories.iter_memories("kb-1")].count("a poison pill") == 1
        assert stack.differences() == 0
    figures.record("4 poison", crash_loop_given_up_after_attempts=5, crash_loop_deliveries=deliveries,
                   redrives=2, redriven_completed_once=True)  # fmt: skip


def test_redriving_messages_that_failed_for_a_dependency_completes_each_once(figures: Figures) -> None:
    """Adds dead-lettered while the index was down for good: redrive twice (and once more
    concurrently with the first's processing) after it is back; one item each, all completed."""
    stack = Stack(max_receive_count=3)
    with stack.serving():
        stack.index.down()
        tasks = [stack.add({"user_id": "ops", "writable_cube_ids": [f"kb-{n % 2}"], "messages": f"fact {n}"})["task_id"]
                 for n in range(6)]  # fmt: skip
        stack.sqs.drain_all()
        assert stack.sqs.redriven == []  # each given up by the worker with its reason, none by the queue
        failed = [t for t in tasks if stack.status("ops", t)["status"] == "failed"]
        assert len(failed) == 6 and len(stack.memory.dead_letters.list_dead_letters()) == 6
        stack.index.up()
        first = redrive_dead_letters(stack.memory.dead_letters, Forwarded(stack))
        second = redrive_dead_letters(stack.memory.dead_letters, Forwarded(stack))  # before the first is processed
        stack.sqs.drain_all()
        third = redrive_dead_letters(stack.memory.dead_letters, Forwarded(stack))
        assert (first.sent, second.sent, third.sent) == (6, 6, 0)
        assert all(stack.status("ops", t)["status"] == "completed" for t in tasks)
        items = [i.memory for i in stack.memory.memories.iter_memories()]
        assert sorted(items) == sorted(f"fact {n}" for n in range(6))
        assert stack.differences() == 0
    figures.record("4 poison", dependency_dead_letters_redriven=6, redrive_rounds=3, items_after=len(items))
