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


TRACED = """
import json, sys
import memcube_worker.handler
from aws_xray_sdk.core.patcher import _PATCHED_MODULES
print(json.dumps({"patched": sorted(_PATCHED_MODULES), "httpx": "httpx" in sys.modules}))
"""


def _traced_in_lambda(**settings: str) -> dict[str, object]:
    """The worker's entry imported as the Lambda runtime would (tracing on), in a fresh interpreter."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMCUBE_", "POWERTOOLS_"))}
    env |= {"AWS_LAMBDA_FUNCTION_NAME": "memcube-test", "LAMBDA_TASK_ROOT": str(ROOT), "AWS_REGION": "us-east-1"}
    env |= {"AWS_DEFAULT_REGION": "us-east-1"}
    env |= {"MEMCUBE_BACKEND": "memory"} | settings
    done = subprocess.run(
        [sys.executable, "-c", TRACED], cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_worker_traces_the_aws_sdk_and_requests_and_imports_no_httpx_without_a_model_client_using_it() -> None:
    assert _traced_in_lambda() == {"patched": ["botocore", "requests"], "httpx": False}


def test_the_worker_traces_httpx_when_an_openai_compatible_llm_is_configured() -> None:
    traced = _traced_in_lambda(
        MEMCUBE_LLM="openai", MEMCUBE_LLM_BASE_URL="http://127.0.0.1:9/v1", MEMCUBE_LLM_MODEL="m"
    )
    assert traced == {"patched": ["botocore", "httpx", "requests"], "httpx": True}
