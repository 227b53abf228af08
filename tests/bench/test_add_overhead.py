"""The add-overhead benchmark's contenders (bench/add_overhead.py)."""

from __future__ import annotations

import gc

import pytest
from bench.add_overhead import add_body, forgetting, memcube_handlers, quiet_stdout, timed, v2_event

import memcube.wiring
from tests.doubles.queue import InMemoryQueue


def test_a_timed_add_leaves_nothing_in_the_doubles_for_the_garbage_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployed function sends its task record, queued message and conversation log to DynamoDB
    and SQS; left in the doubles, they grew the heap add by add and set off collections that the
    bare route, keeping nothing, never paid for."""
    monkeypatch.setattr(memcube.wiring, "_container", memcube.wiring._container)  # restored after
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    lambda_handler, _ = memcube_handlers()
    doubles = memcube.wiring.container_from_env()
    add = forgetting(timed(lambda_handler, v2_event(add_body())), doubles)
    with quiet_stdout():
        add()  # the first add builds what every later one reuses
        gc.collect()
        before = len(gc.get_objects())
        for _ in range(20):
            assert add() > 0
        gc.collect()
    grown = len(gc.get_objects()) - before
    assert grown < 20  # was about 75 more per add
    assert isinstance(doubles.queue, InMemoryQueue)
    assert doubles.queue.sent == []
