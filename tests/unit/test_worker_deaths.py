"""Which worker deaths count against a message (issue 19): a death the queue does not blame on
the message (an outside kill, a stop, a process that died with other messages in flight) never
uses up its attempts; deaths while it ran alone, every time, give it up with that reason."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from memcube.domain.ingest import Delivery, Verdict
from memcube.domain.model import TaskState
from tests.unit.world import World


class Died(BaseException):
    """The worker's process dying mid-attempt: none of its own failure handling runs."""


@pytest.fixture
def world() -> World:
    return World()


def deliveries(world: World) -> Iterator[str]:
    """The one queued message's body, as often as asked (it stays on the queue until it ends)."""
    [msg] = world.queue.sent
    while True:
        yield msg.model_dump_json()


def dies(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every attempt from now on kills the worker while it embeds (undo with monkeypatch.undo)."""

    def embed(msg: object, drafts: object) -> list[object]:
        raise Died

    monkeypatch.setattr(world.ingest, "_embedded", embed)


def killed_from_outside(world: World, body: str, times: int) -> None:
    """`times` receipts, each ended by a death the queue does not blame on the message."""
    for receipt in range(1, times + 1):
        with pytest.raises(Died):
            world.ingest.handle(Delivery(body, "m1", receipt, 5, blamed=None if receipt == 1 else False))


def test_deaths_not_blamed_on_the_message_never_use_up_its_attempts(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = world.submit("I keep my bike in the hallway.")
    body = next(deliveries(world))
    dies(world, monkeypatch)
    killed_from_outside(world, body, 8)  # far more than the attempt limit
    monkeypatch.undo()
    assert world.ingest.handle(Delivery(body, "m1", 9, 5, blamed=False)) is Verdict.DONE
    part = world.part(task_id)
    assert (part.status, part.attempts, part.interrupted, part.crashes) == (TaskState.COMPLETED, 9, 8, 0)
    assert world.stores.dead_letters.list_dead_letters() == []


def test_a_message_whose_worker_dies_running_it_alone_every_time_is_given_up_with_that_reason(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = world.submit("a poison pill")
    behind = world.submit("the add behind it")
    [pill, after] = world.queue.sent
    body = pill.model_dump_json()
    dies(world, monkeypatch)
    with pytest.raises(Died):  # first receipt: the death is not known yet
        world.ingest.handle(Delivery(body, "m1", 1, 5))
    with pytest.raises(Died):  # that process died with other messages in flight: not blamed; it runs alone
        world.ingest.handle(Delivery(body, "m1", 2, 5, blamed=False))
    for receipt in range(3, 7):  # it died running alone: blamed, and each lone run kills it again
        with pytest.raises(Died):
            world.ingest.handle(Delivery(body, "m1", receipt, 5, blamed=True))
    assert world.part(task_id).crashes == 4
    assert world.ingest.handle(Delivery(body, "m1", 7, 5, blamed=True)) is Verdict.DONE
    part = world.part(task_id)
    assert part.status is TaskState.FAILED
    assert part.error is not None
    assert part.error.startswith("gave up after 5 attempts that never finished (each time the worker died")
    [letter] = world.stores.dead_letters.list_dead_letters()
    assert letter.reason == part.error
    monkeypatch.undo()
    assert world.ingest.handle(Delivery(after.model_dump_json(), "m2", 1, 5)) is Verdict.DONE
    assert world.part(behind).status is TaskState.COMPLETED


def test_an_ordinary_failure_after_unblamed_deaths_is_retried_not_given_up(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = world.submit("I water the plants on Sundays.")
    body = next(deliveries(world))
    dies(world, monkeypatch)
    killed_from_outside(world, body, 5)
    monkeypatch.undo()

    def index_down(items: object) -> None:
        raise ConnectionError("index down")

    monkeypatch.setattr(world.index, "upsert", index_down)
    assert world.ingest.handle(Delivery(body, "m1", 6, 5, blamed=False)) is Verdict.RETRY
    part = world.part(task_id)
    assert (part.status, part.attempts, part.charged_attempts(), part.interrupted) == (TaskState.IN_PROGRESS, 6, 1, 5)
    assert part.error is not None and part.error.startswith("retrying: index write failed")
