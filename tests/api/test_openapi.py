"""The OpenAPI document (`/docs`): every JSON body route documents its model, and every `$ref`
resolves (bodies are read by dependencies, `memcube_api.deps`, which carry their documentation)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter

from memcube_api.app import create_app
from memcube_api.deps import Services
from memcube_api.routing import MemcubeRoute


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[1]} if "$ref" in node else set()
        return found.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


QUERY_ONLY_POSTS = frozenset({"/product/scheduler/wait"})
"""POST routes that MemOS declares with query parameters and no body."""


def test_every_post_route_documents_its_body_and_every_ref_resolves() -> None:
    schema = create_app(lambda: None).openapi()  # type: ignore[arg-type, return-value]
    posts = {path: ops["post"] for path, ops in schema["paths"].items() if "post" in ops}
    assert set(posts) >= {"/product/add", "/product/search", "/product/delete_memory", "/product/import_memory"}
    for path, op in posts.items():
        if path in QUERY_ONLY_POSTS:
            assert "requestBody" not in op and op["parameters"], path
            continue
        body = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert body.startswith("#/components/schemas/"), path
    assert refs(schema["paths"]) <= set(schema["components"]["schemas"])


def test_a_route_that_does_not_act_through_deps_acting_is_refused_when_it_is_declared() -> None:
    """Every route takes its principal from `deps.acting`, which counts the caller's rate limit:
    a route that would skip it cannot be declared on the routers."""
    router = APIRouter(route_class=MemcubeRoute)
    with pytest.raises(TypeError, match=r"deps\.acting"):

        @router.post("/product/unlimited")
        async def unlimited(c: Services) -> None:  # pragma: no cover - never served
            return None


def test_a_route_documents_the_input_its_dependencies_read() -> None:
    schema = create_app(lambda: None).openapi()  # type: ignore[arg-type, return-value]
    add = schema["paths"]["/product/add"]["post"]
    assert add["requestBody"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/AddRequest"
    assert [p["name"] for p in add["parameters"]] == ["idempotency-key"]
    by_id = schema["paths"]["/product/get_memory/{memory_id}"]["get"]["parameters"]
    assert [(p["name"], p["in"]) for p in by_id] == [
        ("memory_id", "path"),
        ("user_id", "query"),
        ("show_expired", "query"),
    ]
    upload = schema["paths"]["/api/openmem/v1/add/knowledgebase-file"]["post"]["requestBody"]["content"]
    assert set(upload) == {"application/json", "multipart/form-data"}
