"""What the worker loads for a fast add: its Lambda entry, its readiness and one fast add load no
module that only other messages or the API need (each one costs the cold start its compile and
import; a fast add is what most first batches carry)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FAST_ADD = """
import json, sys
import memcube_worker.handler
from memcube.domain.ingest import Delivery, Verdict
from tests.doubles import doubles_container

container = doubles_container()
container.warm_worker()
assert container.ingest.handle(Delivery(sys.argv[1], "m1", 1, 5)) is Verdict.DONE
print(json.dumps(sorted(sys.modules)))
"""

NOT_FOR_A_FAST_ADD = {
    "memcube.domain.extraction": "fine mode (an LLM reads the windows)",
    "memcube.domain.feedback": "feedback messages",
    "memcube.domain.deletion": "the API's deletes (the expiry sweep builds it when it runs)",
    "memcube.domain.transfer": "the API's import and export",
    "memcube.domain.tasks": "the API's add and status",
    "memcube.domain.cubes": "the API's knowledge-base cubes",
}


def test_a_fast_add_loads_no_module_of_fine_mode_feedback_or_the_api() -> None:
    # Given a producer's add (fast: no LLM is configured), handled in a fresh interpreter by the
    # worker's entry module and services
    body = (ROOT / "events" / "direct_producer_message.json").read_text()
    done = subprocess.run(
        [sys.executable, "-c", FAST_ADD, body], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # Then none of the modules only other messages or the API need was imported
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert {m: why for m, why in NOT_FOR_A_FAST_ADD.items() if m in loaded} == {}
