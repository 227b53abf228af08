"""The worker Lambda's scheduled expiry sweep (template.yaml `ExpirySweep`): the schedule's input
runs `domain.expiry`'s sweep instead of the SQS batch processor."""

from __future__ import annotations

import json
import time

from memcube.wiring import Container
from memcube_worker.handler import EXPIRY_SWEEP
from tests.api.test_template_routes import RESOURCES
from tests.contract.support import expiring
from tests.lambda_support import index_of, invoke_worker


def test_the_scheduled_event_erases_expired_memories_and_keeps_the_rest(worker: Container) -> None:
    now = int(time.time())
    items = [expiring("m1", "alice likes tea", now - 10), expiring("m2", "alice likes cocoa", now + 3600)]
    for item in items:
        worker.memories.put_memory(item)
    index_of(worker).upsert(items)
    result = invoke_worker({"memcube": EXPIRY_SWEEP})
    assert result == {"erased": 1, "history": 0, "index": 1}
    assert worker.memories.get_memory("m1").metadata.status == "deleted"  # type: ignore[union-attr]
    assert index_of(worker).ids("cube-a") == {"m2"}
    assert invoke_worker({"memcube": EXPIRY_SWEEP}) == {"erased": 0, "history": 0, "index": 0}


def test_the_template_schedules_the_sweep_with_the_input_the_handler_recognizes() -> None:
    event = RESOURCES["WorkerFunction"]["Properties"]["Events"]["ExpirySweep"]
    assert event["Type"] == "Schedule"
    assert json.loads(event["Properties"]["Input"]) == {"memcube": EXPIRY_SWEEP}
