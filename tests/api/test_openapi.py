"""The OpenAPI document (`/docs`): every JSON body route documents its model, and every `$ref`
resolves (bodies are read by `read_json`, so FastAPI would not list them on its own)."""

from __future__ import annotations

from typing import Any

from memcube_api.app import create_app


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[1]} if "$ref" in node else set()
        return found.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


def test_every_post_route_documents_its_body_and_every_ref_resolves() -> None:
    schema = create_app(lambda: None).openapi()  # type: ignore[arg-type, return-value]
    posts = {path: ops["post"] for path, ops in schema["paths"].items() if "post" in ops}
    assert set(posts) >= {"/product/add", "/product/search", "/product/delete_memory", "/product/import_memory"}
    for path, op in posts.items():
        body = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert body.startswith("#/components/schemas/"), path
    assert refs(schema["paths"]) <= set(schema["components"]["schemas"])
