"""The embedded worker takes messages only once it can work, and a stop hands back what it could
not finish without blaming it (issue 19: a kill or a deploy is not a message that kills)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from memcube.domain.ingest import Delivery, Verdict
from memcube.domain.model import TaskState
from memcube.settings import Settings
from memcube_local.embedded import EmbeddedWorker
from memcube_local.wiring import LocalContainer
from tests.contract.support import queued


@pytest.fixture
def container(tmp_path: Path) -> Iterator[LocalContainer]:
    built = LocalContainer(Settings(backend="embedded", embedder="hash", data_dir=tmp_path / "data", workers=1))
    yield built
    built.close()


def leased(container: LocalContainer) -> int:
    with sqlite3.connect(container.settings.data_dir / "queue.db") as db:
        (count,) = db.execute("SELECT COUNT(*) FROM messages WHERE leased_until IS NOT NULL").fetchone()
    return int(count)


def test_the_worker_leases_nothing_while_it_is_getting_ready(
    container: LocalContainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    loading, loaded = threading.Event(), threading.Event()

    def slow_model() -> None:  # the local model takes seconds to load
        loading.set()
        loaded.wait(30)

    monkeypatch.setattr(container, "warm_worker", slow_model)
    container.local_queue.send([queued("t1", "alice")])
    worker = EmbeddedWorker(container)
    worker.start()
    try:
        assert loading.wait(30)
        assert (worker.ready.is_set(), leased(container)) == (False, 0)  # a kill now costs no message anything
        loaded.set()
        assert worker.ready.wait(30)
        record = None
        for _ in range(600):
            record = container.tasks.get_task("t1")
            if record is not None and record.status is TaskState.COMPLETED:
                break
            threading.Event().wait(0.05)
        assert record is not None and record.status is TaskState.COMPLETED
    finally:
        worker.stop()


def test_a_stop_hands_back_a_message_still_running_without_blaming_it(
    container: LocalContainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, finish = threading.Event(), threading.Event()

    def long_message(delivery: Delivery) -> Verdict:
        running.set()
        finish.wait(30)
        return Verdict.DONE

    monkeypatch.setattr(container.ingest, "handle", long_message)
    container.local_queue.send([queued("t1", "alice")])
    worker = EmbeddedWorker(container)
    worker.start()
    assert running.wait(30)
    worker.stop(timeout=0.1)  # a deploy: the process exits right after
    [again] = container.local_queue.receive(1, 60)
    assert (again.attempts, again.blamed) == (2, False)
    finish.set()
