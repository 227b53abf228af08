"""What the API Lambda's import loads: the app with every route, but none of the services only
some routes use (each is imported when its route first builds it), nor the worker's services or
its model clients. Each of these would add its import (and, on Lambda, its compilation) to every
cold start (`bench.coldstart`'s `api` vs `bare_api`, BENCHMARKS.md)."""

from __future__ import annotations

import json
import subprocess
import sys

ROUTE_SPECIFIC = (
    "memcube.domain.search",  # search (and a filtered read or delete)
    "memcube.domain.deletion",
    "memcube.domain.history",
    "memcube.domain.transfer",
    "memcube.domain.reads",
    "memcube.domain.scheduler",
    "memcube.domain.chat",
    "memcube.domain.cubes",  # cube creation and grants
    "memcube.domain.knowledgebases",
    "memcube.domain.cube_list",  # the console's
    "memcube.domain.dead_letter_desk",
    "memcube.domain.edits",
    "memcube.domain.llm_search",
)
WORKER_SIDE = (
    "memcube.domain.ingest",
    "memcube.domain.organizer",
    "memcube.domain.reader",
    "memcube.domain.extraction",
    "memcube.domain.corrections",
    "memcube.domain.maintenance",
    "memcube.adapters.dynamodb",  # built on the first request that needs the store
    "memcube.adapters.sqs_queue",
    "memcube.adapters.opensearch_index",
    "boto3",
    "opensearchpy",
    "openai",
    "pypdf",
)


def _loaded_by(code: str) -> set[str]:
    """The modules of `ROUTE_SPECIFIC` and `WORKER_SIDE` loaded after running `code` in a new process."""
    watched = json.dumps([*ROUTE_SPECIFIC, *WORKER_SIDE])
    script = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {watched} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_api_lambdas_import_loads_no_route_specific_service_and_nothing_of_the_worker() -> None:
    assert _loaded_by("import memcube_api.handler") == set()


def test_every_watched_module_of_memcube_exists() -> None:
    """The check above cannot pass on a misspelt or renamed module."""
    own = [m for m in (*ROUTE_SPECIFIC, *WORKER_SIDE) if m.startswith("memcube")]
    assert _loaded_by(f"import importlib\nfor m in {own!r}: importlib.import_module(m)") >= set(own)


def test_a_route_specific_service_is_loaded_by_its_routes_first_request() -> None:
    code = """
from tests.doubles import doubles_container
from tests.lambda_support import invoke, serving, v2_event
with serving(doubles_container()):
    reply = invoke(v2_event("POST", "/product/search", body={"user_id": "a", "query": "hello"}))
assert reply.status == 200, reply.body
"""
    assert "memcube.domain.search" in _loaded_by(code)
