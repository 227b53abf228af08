"""Point 6, bad input against every route of the OpenAPI schema, in-process through the ASGI app:
a corpus of malformed requests (broken JSON, bad encodings, wrong types, huge fields, deep
nesting, unknown fields, wrong content types, hostile strings) and property-based fuzzing
(hypothesis, with instances drawn from each route's JSON schema by `instances` below, then the same
with a field given any JSON value, an unknown field, or any JSON at all). The routes are read from the
schema, so routes added later are covered too. Every answer is below 500; every rejection is a
4xx in the MemOS envelope; a rejected request stores and queues nothing."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from memcube.settings import Settings
from memcube.wiring import Container
from memcube_api.app import create_app
from memcube_local.embedded import EmbeddedWorker
from memcube_local.wiring import LocalContainer
from tests.doubles import InMemoryIndex, InMemoryQueue, open_stores
from tests.reliability.conftest import FUZZ_SEED, SCALE, Figures

SCHEMA = create_app(lambda: None).openapi()  # type: ignore[arg-type, return-value]
COMPONENTS: dict[str, Any] = SCHEMA.get("components", {}).get("schemas", {})
OPERATIONS = [(method.upper(), path, op) for path, ops in SCHEMA["paths"].items() for method, op in ops.items()]
IDS = [f"{m} {p}" for m, p, _ in OPERATIONS]
COUNTS = {"corpus": 0, "fuzzed": 0, "rejected": 0, "accepted": 0}


class World:
    """The app on in-memory ports (no worker: a sync add answers 202 at once)."""

    def __init__(self) -> None:
        self.stores = open_stores()
        self.queue = InMemoryQueue()
        self.index = InMemoryIndex()
        settings = Settings(backend="memory", sync_timeout_seconds=0.01)
        self.container = Container(settings, stores=self.stores, queue=self.queue, index=self.index)
        self.client = TestClient(create_app(lambda: self.container), raise_server_exceptions=False)

    def state(self) -> Any:
        """Everything a request could have written: store, queue, index."""
        ports = (getattr(self.stores, f.name) for f in dataclasses.fields(self.stores) if f.name != "close")
        store = [{k: copy.deepcopy(v) for k, v in vars(port).items() if k != "_lock"} for port in ports]
        return store, [m.model_dump() for m in self.queue.sent], dict(self.index.docs)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    w = World()
    with w.client:
        yield w


def request(world: World, method: str, path: str, **kwargs: Any) -> None:
    """Send one request; check the answer and, for a rejection, that nothing was written."""
    before = world.state()
    response = world.client.request(method, path, **kwargs)
    assert response.status_code < 500, (method, path, kwargs.get("content", kwargs.get("json")), response.text[:500])
    if response.status_code >= 400:
        COUNTS["rejected"] += 1
        body = response.json()
        assert body["code"] == response.status_code, body
        assert isinstance(body["message"], str) and body["message"].strip(), body
        assert set(body) <= {"code", "message", "data", "detail", "task_id"}, body
        assert world.state() == before, f"a rejected {method} {path} wrote something: {response.text[:300]}"
    else:
        COUNTS["accepted"] += 1
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            # a server-sent event stream (scheduler/wait/stream, chat/stream): every frame is JSON
            frames = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
            assert frames and all(json.loads(f) is not None for f in frames), response.text[:300]
            return
        hosted = not path.startswith(("/product/", "/health"))  # the hosted MemOS API answers code 0
        assert response.json()["code"] in ({0} if hosted else {200, 202}), response.text[:300]


# --- the schema, resolved -------------------------------------------------------------------


def resolve(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = COMPONENTS[node["$ref"].rsplit("/", 1)[1]]
    return node


def body_schema(op: dict[str, Any]) -> dict[str, Any] | None:
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    return {**resolve(content["schema"]), "components": {"schemas": COMPONENTS}}


def minimal(node: Any) -> Any:
    """A small instance of `node` (its required fields only), as a base for the corpus."""
    node = resolve(node)
    if "anyOf" in node or "oneOf" in node:
        options = [o for o in node.get("anyOf", node.get("oneOf", [])) if resolve(o).get("type") != "null"]
        return minimal(options[0]) if options else None
    if "default" in node:
        return node["default"]
    if "enum" in node:
        return node["enum"][0]
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        props = node.get("properties", {})
        return {k: minimal(props[k]) for k in node.get("required", []) if k in props}
    if kind == "array":
        return []
    if kind == "integer":
        return max(1, int(node.get("minimum", 1)))
    if kind == "number":
        return 0.5
    if kind == "boolean":
        return False
    return "alice"


def fill_path(path: str, value: str | dict[str, str]) -> str:
    """The path with each `{name}` replaced by `value` (or `value[name]`), percent-encoded."""

    def one(match: re.Match[str]) -> str:
        given = value if isinstance(value, str) else value.get(match.group(1)) or "m-1"
        return quote(given, safe="")

    return re.sub(r"\{([^}]+)\}", one, path)


def params(op: dict[str, Any], where: str) -> list[dict[str, Any]]:
    return [p for p in op.get("parameters", []) if p["in"] == where]


# --- the corpus -------------------------------------------------------------------------------

HOSTILE = [
    "'; DROP TABLE items; --", '" OR 1=1 --', "../../../../etc/passwd", "..%2f..%2fetc%2fpasswd", "C:\\Win\\x.ini",
    "<script>alert(1)</script>", "{{7*7}}${7*7}", '{"$gt": ""}', "\u0000", "a\u0000b", "\u202etxt.exe", "\ufeff",
    "\u200b\u200c\u200d", "𝕳𝖊𝖑𝖑𝖔 🧠🔥", "\u0301\u0301\u0301", "\r\n\r\nHTTP/1.1 200 OK", "%00%0d%0a", " ", "",
    "x" * 10_000, "null", "true", "-1", "1e309", "NaN", "ＡＬＩＣＥ", "alice\n", "alice\t", "ALICE", "al ice",
    "PIN\u0000", '"PIN\u0000', "\u0001\u001f\u007f", "a\u001bb", 'x" OR "y', "NEAR(a b)", "a*", "^a", "-a", "a:b",
]  # fmt: skip
CONTROL = ["PIN\u0000", "\u0000", "a\u0000b", '"PIN\u0000', "\u0001\u001f\u007f", "a\u001bb", "tab\there", "\r\n"]
"""Control characters (a NUL ended the full-text query early on the embedded index: a 500)."""
WRONG_TYPES: list[Any] = [None, True, 0, -1, 10**30, 1.5, "x", [], [1, "a"], {}, {"a": [{}]}, "x" * 900_000]
RAW_BODIES: list[tuple[str, bytes, str]] = [
    ("broken JSON", b'{"user_id": "alice", ', "application/json"),
    ("trailing garbage", b'{"user_id": "alice"} x', "application/json"),
    ("invalid UTF-8", b'{"user_id": "caf\xe9"}', "application/json"),
    ("overlong UTF-8", b'{"user_id": "\xc0\xaf"}', "application/json"),
    ("UTF-16", '{"user_id": "alice"}'.encode("utf-16"), "application/json"),
    ("BOM", b'\xef\xbb\xbf{"user_id": "alice"}', "application/json"),
    ("lone surrogate", b'{"user_id": "alice", "x": "\\ud800"}', "application/json"),
    ("NUL byte", b'{"user_id": "al\x00ice"}', "application/json"),
    ("top-level array", b"[1, 2, 3]", "application/json"),
    ("top-level null", b"null", "application/json"),
    ("top-level string", b'"alice"', "application/json"),
    ("top-level number", b"12345678901234567890123456789", "application/json"),
    ("nested arrays 100k deep", b"[" * 100_000 + b"]" * 100_000, "application/json"),
    ("nested objects 50k deep", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "application/json"),
    ("huge exponent", b'{"user_id": "alice", "page": 1e999}', "application/json"),
    ("5000-digit integer", b'{"user_id": "alice", "page": ' + b"9" * 5000 + b"}", "application/json"),
    ("duplicate keys", b'{"user_id": "alice", "user_id": "bob/../x"}', "application/json"),
    ("empty", b"", "application/json"),
    ("whitespace", b" \n\t ", "application/json"),
    ("over 1 MiB", b'{"user_id": "alice", "x": "' + b"a" * 1_100_000 + b'"}', "application/json"),
    ("text/plain", b'{"user_id": "alice"}', "text/plain"),
    ("form", b"user_id=alice", "application/x-www-form-urlencoded"),
    ("multipart", b"--b\r\n\r\n--b--", "multipart/form-data; boundary=b"),
    ("latin-1 charset", b'{"user_id": "alice"}', "application/json; charset=latin-1"),
    ("utf-16 charset", b'{"user_id": "alice"}', "application/json; charset=utf-16"),
    ("json-seq", b'\x1e{"user_id": "alice"}', "application/json-seq"),
    ("no content type", b'{"user_id": "alice"}', ""),
]  # fmt: skip


def corpus(method: str, path: str, op: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(what, request kwargs) of every malformed request the corpus sends to this operation."""
    schema = body_schema(op)
    path_params = params(op, "path")
    target = fill_path(path, "m-1") if path_params else path
    if schema is not None:
        base = minimal(schema)
        for what, raw, ctype in RAW_BODIES:
            yield what, {"content": raw, "headers": {"content-type": ctype} if ctype else {}}
        for name, prop in schema.get("properties", {}).items():
            for value in WRONG_TYPES:
                yield f"{name}={str(value)[:20]}", {"json": base | {name: value}}
            if resolve(prop).get("type") in {"string", None} or "anyOf" in resolve(prop):
                for value in HOSTILE:
                    yield f"{name}={value[:20]!r}", {"json": base | {name: value}}
        deep: Any = "x"
        for _ in range(200):
            deep = {"a": deep}
        if isinstance(base, dict):
            yield "unknown field", {"json": base | {"surprise": 1}}
            yield "deep unknown field", {"json": base | {"surprise": deep}}
        else:  # a body that is a JSON list (get_memory_by_ids): wrong and deep entries
            yield "an object entry", {"json": [*base, {"surprise": 1}]}
            yield "a deep entry", {"json": [*base, deep]}
        for name in schema.get("properties", {}):
            yield f"{name} deeply nested", {"json": base | {name: deep}}
        yield "base", {"json": base}
    query = params(op, "query")
    if method == "GET":
        required = {p["name"]: "alice" for p in query if p.get("required")}
        yield "no query", {}
        for p in query:
            for value in [*HOSTILE, "%ZZ", "a" * 5000]:
                yield f"{p['name']}={value[:20]!r}", {"params": required | {p["name"]: value}}
            yield f"{p['name']} twice", {"params": [(p["name"], "alice"), (p["name"], "bob")]}
        for value in ["../../etc/passwd", "%2e%2e%2f", "a" * 5000, "\u0000", "%00", "🧠", " "]:
            if path_params:
                yield f"path={value[:20]!r}", {"target": fill_path(path, value), "params": required}
    for p in params(op, "header"):
        for value in ["k" * 500, "\u00e9t\u00e9", " "]:
            headers = {p["name"]: value.encode("utf-8")}  # raw bytes on the wire, as a client may send
            yield f"{p['name']}={value[:10]!r}", {"json": minimal(schema) if schema else None, "headers": headers}
    del target


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=IDS)
def test_the_malformed_request_corpus_is_answered_4xx_without_a_write(
    world: World, method: str, path: str, op: dict[str, Any], figures: Figures
) -> None:
    target_default = fill_path(path, "m-1")
    sent = 0
    for _what, kwargs in corpus(method, path, op):
        target = kwargs.pop("target", target_default)
        request(world, method, target, **kwargs)
        sent += 1
    COUNTS["corpus"] += sent
    figures.record("6 bad input", operations=len(OPERATIONS), corpus_requests=COUNTS["corpus"],
                   fuzzed_requests=COUNTS["fuzzed"], server_errors=0)  # fmt: skip


# --- property-based fuzzing -------------------------------------------------------------------


def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    _nested,
    max_leaves=20,
)


def instances(node: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values valid for a JSON schema node, for the subset pydantic emits ($ref, anyOf/oneOf,
    enum/const, objects with required and optional properties, arrays, strings with lengths and
    patterns, bounded numbers, booleans, null). Deep optional structure is cut off at depth 4."""
    node = resolve(node)
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    options = node.get("anyOf") or node.get("oneOf")
    if options:
        return st.one_of([instances(o, depth + 1) for o in options])
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        props = node.get("properties", {})
        required = {k: instances(v, depth + 1) for k, v in props.items() if k in node.get("required", [])}
        optional = {} if depth > 3 else {k: instances(v, depth + 1) for k, v in props.items() if k not in required}
        if not props:  # a free-form object (info, filter)
            return st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=4)
        return st.fixed_dictionaries(required, optional=optional)
    if kind == "array":
        items = instances(node.get("items", {}), depth + 1) if depth <= 3 else JSON_VALUES
        return st.lists(items, min_size=node.get("minItems", 0), max_size=min(node.get("maxItems", 4), 4))
    if kind == "string":
        if "pattern" in node:
            return st.from_regex(node["pattern"], fullmatch=True).filter(
                lambda v: node.get("minLength", 0) <= len(v) <= node.get("maxLength", 10**9)
            )
        return st.text(min_size=node.get("minLength", 0), max_size=min(node.get("maxLength", 40), 40))
    if kind == "integer":
        return st.integers(node.get("minimum", -(10**6)), node.get("maximum", 10**6))
    if kind == "number":
        return st.floats(node.get("minimum", -1e6), node.get("maximum", 1e6), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return JSON_VALUES


def body_strategy(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    valid = instances(schema)
    fields = list(schema.get("properties", {}))

    def mutate(body: Any) -> st.SearchStrategy[Any]:
        """One field of a valid body given any JSON value."""
        if not isinstance(body, dict) or not fields:
            return st.just(body)
        return st.tuples(st.sampled_from(fields), JSON_VALUES).map(lambda fv: body | {fv[0]: fv[1]})

    extra = st.builds(lambda b, k, v: (b | {f"x_{k}": v}) if isinstance(b, dict) else b, valid,
                      st.text(min_size=1, max_size=8), JSON_VALUES)  # fmt: skip
    return st.one_of(valid, valid.flatmap(mutate), extra, JSON_VALUES)


def param_strategy(op: dict[str, Any], where: str) -> st.SearchStrategy[dict[str, str]]:
    fields = {}
    for p in params(op, where):
        schema = resolve(p.get("schema", {}))
        text = st.text(max_size=300).filter(lambda s: "\x00" not in s) if where == "path" else st.text(max_size=300)
        valid = instances(schema).map(str) if schema.get("type") in {"string", "integer"} else text
        fields[p["name"]] = st.one_of(valid, text) if p.get("required") else st.none() | valid | text
    return st.fixed_dictionaries(fields).map(lambda d: {k: v for k, v in d.items() if v is not None})


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=IDS)
def test_fuzzed_requests_from_the_schema_never_get_a_5xx_and_rejections_write_nothing(
    world: World, method: str, path: str, op: dict[str, Any], figures: Figures
) -> None:
    schema = body_schema(op)
    bodies = body_strategy(schema) if schema is not None else st.none()
    queries = param_strategy(op, "query")
    paths = param_strategy(op, "path")

    @seed(FUZZ_SEED)
    @settings(max_examples=SCALE.fuzz_examples, deadline=None, database=None, print_blob=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(body=bodies, query=queries, path_values=paths)
    def fuzz(body: Any, query: dict[str, str], path_values: dict[str, str]) -> None:
        target = fill_path(path, path_values)
        kwargs: dict[str, Any] = {"params": query}
        if schema is not None:
            kwargs["content"] = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
            kwargs["headers"] = {"content-type": "application/json"}
        request(world, method, target, **kwargs)
        COUNTS["fuzzed"] += 1

    fuzz()
    figures.record("6 bad input", operations=len(OPERATIONS), corpus_requests=COUNTS["corpus"],
                   fuzzed_requests=COUNTS["fuzzed"], rejected=COUNTS["rejected"], accepted=COUNTS["accepted"],
                   server_errors=0)  # fmt: skip


SEARCHES = [
    ("/product/search", {"user_id": "alice"}),
    ("/search/memory", {"user_id": "alice"}),
    ("/api/openmem/v1/search/memory", {"user_id": "alice"}),
]


@pytest.mark.parametrize(("path", "base"), SEARCHES, ids=[p for p, _ in SEARCHES])
def test_hostile_and_control_strings_in_a_search_query_never_get_a_5xx_on_the_embedded_index(
    tmp_path: Any, path: str, base: dict[str, Any]
) -> None:
    container = LocalContainer(Settings(backend="embedded", embedder="hash", data_dir=tmp_path / "data"))
    try:
        worker = EmbeddedWorker(container)
        worker.start()
        with TestClient(create_app(lambda: container), raise_server_exceptions=False) as client:
            seeded = client.post(
                "/product/add",
                json={"user_id": "alice", "messages": "My PIN\u0000 is 9931.\u0001", "async_mode": "sync"},
            )
            assert seeded.status_code == 200, seeded.text
            worker.stop()
            for query in [*CONTROL, *HOSTILE]:
                if not query.strip():
                    continue
                answer = client.post(path, json=base | {"query": query})
                assert answer.status_code < 500, (query, answer.text[:300])
                assert set(answer.json()) >= {"code", "message", "data"}, answer.text[:300]
    finally:
        container.close()
