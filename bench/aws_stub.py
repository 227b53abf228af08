"""In-process stand-ins for the AWS endpoints a first request calls, for the cold-start bench.

`install()` replaces only the socket: botocore's `URLLib3Session.send` (DynamoDB, SQS, Bedrock
runtime) and, with `opensearch=True`, requests' `HTTPAdapter.send` (opensearch-py's
`RequestsHttpConnection`) answer from here instead of sending. Everything above them runs as
deployed: the boto3 session and its credentials, the clients and their service models, request
serialization, SigV4 signing, retries, response parsing, opensearch-py's transport. No request
leaves the process; a request to any other host raises, so nothing is answered by accident.

The answers are what the services would answer on the first-request path:

- DynamoDB (JSON 1.0): one table kept in memory (wire-format items by `pk`/`sk`), with GetItem,
  BatchGetItem, PutItem, DeleteItem, UpdateItem (`SET`, `if_not_exists`, `REMOVE`, `ADD`),
  BatchWriteItem, TransactWriteItems and Query (key conditions `=`, `begins_with`, `<=`, `<`,
  `>=`, `>`; the `gsi1` index; `Limit`, `ScanIndexForward`). Condition expressions are taken as
  met: on this path (a new task, a new memory) they are. A feature not listed raises.
- SQS (JSON protocol): SendMessage and SendMessageBatch, kept in `sent` (with the body's MD5).
- Bedrock runtime: Titan text embeddings v2 (InvokeModel): a deterministic unit vector of the
  asked dimension per text.
- OpenSearch: the index's mapping (recording `embedding_model`, as an index in use has it),
  `_search` with no hits, and
  `_bulk` / `_doc` writes acknowledged.

`calls` counts each operation, so the bench reports how many round trips the stubs stood in for
(their network time is not in the figures). `dump` / `load` keep the table and the sent messages
in a JSON file, so a seeding process can prepare the state every timed process starts from.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import io
import json
import math
import re
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

Item = dict[str, Any]
INDEX = "memcube-memories"


class StubError(RuntimeError):
    """A request the stubs do not answer (a host, an operation or an expression feature)."""


class Stub:
    """The endpoints' state: the table, the queue's sent messages, what each call was."""

    def __init__(self, embedding_model: str = "", dimension: int = 1024) -> None:
        self.items: dict[tuple[str, str], Item] = {}
        self.sent: list[dict[str, Any]] = []
        self.calls: Counter[str] = Counter()
        self.indexed = 0
        self.embedding_model = embedding_model
        self.dimension = dimension

    # --- routing -------------------------------------------------------------------------------

    def answer(self, method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes, str]:
        """(status, body, content type) for one HTTP request."""
        parts = urlsplit(url)
        host, path = parts.hostname or "", unquote(parts.path)
        target = headers.get("X-Amz-Target") or headers.get("x-amz-target") or ""
        if host.startswith("dynamodb."):
            op = target.rsplit(".", 1)[-1]
            self.calls[f"dynamodb.{op}"] += 1
            return 200, json.dumps(self.dynamodb(op, json.loads(body or b"{}"))).encode(), "application/x-amz-json-1.0"
        if host.startswith("sqs."):
            op = target.rsplit(".", 1)[-1]
            self.calls[f"sqs.{op}"] += 1
            return 200, json.dumps(self.sqs(op, json.loads(body or b"{}"))).encode(), "application/x-amz-json-1.0"
        if host.startswith("bedrock-runtime.") and path.endswith("/invoke"):
            self.calls["bedrock-runtime.InvokeModel"] += 1
            return 200, json.dumps(self.titan(json.loads(body))).encode(), "application/json"
        if host.endswith((".aoss.amazonaws.com", ".es.amazonaws.com")):
            status, answer = self.opensearch(method, path, body)
            return status, json.dumps(answer).encode(), "application/json"
        raise StubError(f"no stub answers {method} {url} (target {target or '-'})")

    # --- DynamoDB ------------------------------------------------------------------------------

    def dynamodb(self, op: str, req: dict[str, Any]) -> dict[str, Any]:
        handlers = {
            "GetItem": self._get_item,
            "BatchGetItem": self._batch_get,
            "PutItem": self._put_item,
            "DeleteItem": self._delete_item,
            "UpdateItem": self._update_item,
            "BatchWriteItem": self._batch_write,
            "TransactWriteItems": self._transact,
            "Query": self._query,
        }
        if op not in handlers:
            raise StubError(f"DynamoDB {op} is not stubbed")
        return handlers[op](req)

    @staticmethod
    def _key(key: Item) -> tuple[str, str]:
        return key["pk"]["S"], key["sk"]["S"]

    def _get_item(self, req: dict[str, Any]) -> dict[str, Any]:
        item = self.items.get(self._key(req["Key"]))
        return {"Item": item} if item is not None else {}

    def _batch_get(self, req: dict[str, Any]) -> dict[str, Any]:
        found = {
            table: [i for k in spec["Keys"] if (i := self.items.get(self._key(k))) is not None]
            for table, spec in req["RequestItems"].items()
        }
        return {"Responses": found, "UnprocessedKeys": {}}

    def _put_item(self, req: dict[str, Any]) -> dict[str, Any]:
        item = req["Item"]
        self.items[self._key(item)] = item
        return {}

    def _delete_item(self, req: dict[str, Any]) -> dict[str, Any]:
        self.items.pop(self._key(req["Key"]), None)
        return {}

    def _update_item(self, req: dict[str, Any]) -> dict[str, Any]:
        key = self._key(req["Key"])
        item = dict(self.items.get(key) or req["Key"])
        names = req.get("ExpressionAttributeNames", {})
        values = req.get("ExpressionAttributeValues", {})
        self.items[key] = update(item, req["UpdateExpression"], names, values)
        return {"Attributes": self.items[key]} if req.get("ReturnValues") == "ALL_NEW" else {}

    def _batch_write(self, req: dict[str, Any]) -> dict[str, Any]:
        for writes in req["RequestItems"].values():
            for w in writes:
                if "PutRequest" in w:
                    self._put_item(w["PutRequest"])
                else:
                    self._delete_item(w["DeleteRequest"])
        return {"UnprocessedItems": {}}

    def _transact(self, req: dict[str, Any]) -> dict[str, Any]:
        for op in req["TransactItems"]:
            (kind, spec), *_ = op.items()
            if kind == "Put":
                self._put_item(spec)
            elif kind == "Delete":
                self._delete_item(spec)
            elif kind == "Update":
                self._update_item(spec)
            elif kind != "ConditionCheck":
                raise StubError(f"TransactWriteItems {kind} is not stubbed")
        return {}

    def _query(self, req: dict[str, Any]) -> dict[str, Any]:
        if "FilterExpression" in req or "ExclusiveStartKey" in req:
            raise StubError("Query with a FilterExpression or ExclusiveStartKey is not stubbed")
        gsi = req.get("IndexName")
        if gsi not in (None, "gsi1"):
            raise StubError(f"Query on index {gsi} is not stubbed")
        pk_name, sk_name = ("gsi1pk", "gsi1sk") if gsi else ("pk", "sk")
        names = req.get("ExpressionAttributeNames", {})
        values = req.get("ExpressionAttributeValues", {})
        match = key_condition(req["KeyConditionExpression"], names, values, pk_name, sk_name)
        found = sorted(
            (
                i
                for i in self.items.values()
                if pk_name in i and match(i[pk_name]["S"], i.get(sk_name, {}).get("S", ""))
            ),
            key=lambda i: i.get(sk_name, {}).get("S", ""),
            reverse=req.get("ScanIndexForward") is False,
        )
        if "Limit" in req:
            found = found[: int(req["Limit"])]
        if req.get("Select") == "COUNT":
            return {"Count": len(found), "ScannedCount": len(found)}
        return {"Items": found, "Count": len(found), "ScannedCount": len(found)}

    # --- SQS, Bedrock, OpenSearch --------------------------------------------------------------

    def sqs(self, op: str, req: dict[str, Any]) -> dict[str, Any]:
        if op == "SendMessage":
            return self._send(req)
        if op == "SendMessageBatch":
            ok = [{"Id": e["Id"], **self._send(e)} for e in req["Entries"]]
            return {"Successful": ok, "Failed": []}
        raise StubError(f"SQS {op} is not stubbed")

    def _send(self, entry: dict[str, Any]) -> dict[str, Any]:
        message_id = str(uuid.uuid4())
        self.sent.append({"MessageId": message_id, **entry})
        return {
            "MessageId": message_id,
            "MD5OfMessageBody": hashlib.md5(entry["MessageBody"].encode()).hexdigest(),
            "SequenceNumber": str(10**19 + len(self.sent)),
        }

    def titan(self, req: dict[str, Any]) -> dict[str, Any]:
        text = str(req["inputText"])
        return {
            "embedding": unit_vector(text, int(req.get("dimensions", 1024))),
            "inputTextTokenCount": len(text.split()),
        }

    def opensearch(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        segments = [s for s in path.split("/") if s]
        last = segments[-1] if segments else ""
        if last == "_mapping" and method == "GET":
            self.calls["opensearch.get_mapping"] += 1
            meta = {"embedding_model": self.embedding_model, "embedding_dimension": self.dimension}
            props = {"embedding": {"type": "knn_vector", "dimension": self.dimension}}
            return 200, {INDEX: {"mappings": {"_meta": meta, "properties": props}}}
        if last == "_search":
            self.calls["opensearch.search"] += 1
            return 200, {"took": 1, "timed_out": False, "hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}}
        if last == "_bulk":
            self.calls["opensearch.bulk"] += 1
            lines = [json.loads(x) for x in body.decode().splitlines() if x.strip()]
            actions = [x for x in lines if len(x) == 1 and next(iter(x)) in {"index", "create", "update", "delete"}]
            self.indexed += len(actions)
            items = [{op: {"_index": INDEX, "_id": a[op].get("_id"), "status": 200, "result": "updated"}}
                     for a in actions for op in a]  # fmt: skip
            return 200, {"took": 1, "errors": False, "items": items}
        if len(segments) >= 2 and segments[-2] == "_doc" and method in {"PUT", "POST"}:
            self.calls["opensearch.index"] += 1
            self.indexed += 1
            return 201, {"_index": INDEX, "_id": last, "result": "created"}
        raise StubError(f"OpenSearch {method} {path} is not stubbed")

    # --- state ---------------------------------------------------------------------------------

    def dump(self, path: Path) -> None:
        items = [{"pk": k[0], "sk": k[1], "item": v} for k, v in self.items.items()]
        index = {"embedding_model": self.embedding_model, "dimension": self.dimension}
        path.write_text(json.dumps({"items": items, "sent": self.sent, "index": index}))

    def load(self, path: Path) -> Stub:
        state = json.loads(path.read_text())
        self.items = {(x["pk"], x["sk"]): x["item"] for x in state["items"]}
        self.sent = list(state["sent"])
        self.embedding_model, self.dimension = state["index"]["embedding_model"], state["index"]["dimension"]
        return self


def unit_vector(text: str, dimension: int) -> list[float]:
    """A deterministic unit vector for `text` (what an embedding model's answer looks like)."""
    seed = hashlib.sha256(text.encode()).digest()
    raw = [((seed[i % 32] ^ (i * 131)) % 251) / 125.0 - 1.0 for i in range(dimension)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]


_KEY_CONDITION = re.compile(
    r"^\s*(?P<pk>[#\w]+)\s*=\s*(?P<pv>:\w+)\s*"
    r"(?:AND\s+(?:begins_with\(\s*(?P<bsk>[#\w]+)\s*,\s*(?P<bv>:\w+)\s*\)"
    r"|(?P<csk>[#\w]+)\s*(?P<op><=|>=|<|>|=)\s*(?P<cv>:\w+)))?\s*$"
)


def key_condition(
    expr: str, names: dict[str, str], values: dict[str, Any], pk_name: str, sk_name: str
) -> Callable[[str, str], bool]:
    """The predicate (pk, sk) -> bool of a KeyConditionExpression of the forms memcube uses."""
    m = _KEY_CONDITION.match(expr)
    if m is None or names.get(m["pk"], m["pk"]) != pk_name:
        raise StubError(f"key condition {expr!r} is not stubbed")
    pk = values[m["pv"]]["S"]
    if m["bsk"]:
        prefix = values[m["bv"]]["S"]
        return lambda p, s: p == pk and s.startswith(prefix)
    if m["csk"]:
        bound, op = values[m["cv"]]["S"], m["op"]
        compare: Callable[[str], bool] = {
            "<=": lambda s: s <= bound,
            ">=": lambda s: s >= bound,
            "<": lambda s: s < bound,
            ">": lambda s: s > bound,
            "=": lambda s: s == bound,
        }[op]
        return lambda p, s: p == pk and compare(s)
    return lambda p, s: p == pk


_CLAUSE = re.compile(r"\b(SET|REMOVE|ADD)\b")


def update(item: Item, expr: str, names: dict[str, str], values: dict[str, Any]) -> Item:
    """Apply an UpdateExpression of the forms memcube uses (`SET a = :v`, `SET a =
    if_not_exists(a, :v)`, `REMOVE a`, `ADD n :v`) to a wire-format item."""
    pieces = _CLAUSE.split(expr)
    for verb, body in zip(pieces[1::2], pieces[2::2], strict=True):
        for action in (a.strip() for a in body.split(",") if a.strip()):
            if verb == "REMOVE":
                item.pop(names.get(action, action), None)
                continue
            if verb == "ADD":
                target, value = action.split()
                name = names.get(target, target)
                now = int(item.get(name, {"N": "0"})["N"]) + int(values[value]["N"])
                item[name] = {"N": str(now)}
                continue
            target, rhs = (x.strip() for x in action.split("=", 1))
            name = names.get(target, target)
            m = re.fullmatch(r"if_not_exists\(\s*([#\w]+)\s*,\s*(:\w+)\s*\)", rhs)
            if m is not None:
                if name not in item:
                    item[name] = values[m[2]]
            elif rhs in values:
                item[name] = values[rhs]
            else:
                raise StubError(f"update {action!r} is not stubbed")
    return item


def _raw(status: int, body: bytes, content_type: str) -> Any:
    """A urllib3 response over `body`: what botocore and requests read from a socket."""
    from urllib3.response import HTTPResponse

    headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
    return HTTPResponse(body=io.BytesIO(body), headers=headers, status=status, preload_content=False)


def install(stub: Stub, *, opensearch: bool = False) -> Stub:
    """Answer this process's AWS (and, `opensearch`, requests') HTTP calls from `stub`. The
    patches are applied when botocore's (requests') HTTP module is first imported, so installing
    imports nothing: each contender imports what it would without the stubs, when it would."""

    def botocore_send(_session: Any, request: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        body = request.body or b""
        data = body.read() if hasattr(body, "read") else body
        data = data.encode() if isinstance(data, str) else data
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        status, answer, ctype = stub.answer(request.method, request.url, headers, data)
        raw = _raw(status, answer, ctype)
        return AWSResponse(request.url, status, dict(raw.headers), raw)

    def requests_send(adapter: Any, request: Any, **_: Any) -> Any:
        data = request.body or b""
        data = data.encode() if isinstance(data, str) else data
        status, answer, ctype = stub.answer(request.method, request.url, dict(request.headers), data)
        return adapter.build_response(request, _raw(status, answer, ctype))

    patches: dict[str, tuple[str, Callable[..., Any]]] = {"botocore.httpsession": ("URLLib3Session", botocore_send)}
    if opensearch:
        patches["requests.adapters"] = ("HTTPAdapter", requests_send)
    for name, (cls, send) in list(patches.items()):
        if name in sys.modules:  # already imported: patch now
            getattr(sys.modules[name], cls).send = send
            del patches[name]
    if patches:
        sys.meta_path.insert(0, _PatchOnImport(patches))
    return stub


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Replaces `send` of a class of a module right after the module is first executed."""

    def __init__(self, patches: dict[str, tuple[str, Any]]) -> None:
        self._patches = patches

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in self._patches:
            return None
        cls, send = self._patches.pop(fullname)
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = getattr(finder, "find_spec", lambda *_: None)(fullname, path, target)
            if spec is not None and spec.loader is not None:
                run = spec.loader.exec_module

                def exec_module(module: Any, run: Any = run) -> None:
                    run(module)
                    getattr(module, cls).send = send

                spec.loader.exec_module = exec_module
                return spec
        return None
