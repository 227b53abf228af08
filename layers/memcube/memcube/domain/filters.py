"""The search/delete filter language (MemOS's nested and/or dict), validated and compiled once.

A filter is `{"and": [f, ...]}`, `{"or": [f, ...]}`, or leaves `{field: value}` (equality) and
`{field: {op: value}}` with op in eq, ne, gt, gte, lt, lte, in, nin, contains. Fields are item
fields (`memory_type`, `session_id`, `user_id`, `key`, `tags`, `custom_tags`, `created_at`,
`updated_at`, `event_time`) or info keys (`info.<key>`, or a bare key that is not an item field,
as MemOS allows). `event_time` takes gt/gte/lt/lte and a time in any form `chat_time` takes: a
memory matches when its span of event times overlaps the bound (`search.event_span`).

Keys and values are checked here, before any adapter sees them: a key is an identifier, a value
a scalar (or a short list of scalars for in/nin), so no backend query can be injected through a
filter. Adapters translate the compiled tree (`Cond`, `And`, `Or`) into their own query language
with bound parameters; `matches()` evaluates it in Python for the in-memory adapter and tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from memcube.domain.errors import InvalidRequest
from memcube.domain.model import MemoryItem, iso
from memcube.domain.when import parse_time

Scalar = str | int | float | bool
Op = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains"]
OPS: frozenset[str] = frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains"})
ITEM_FIELDS = frozenset(
    {"memory_type", "session_id", "user_id", "key", "tags", "custom_tags", "created_at", "updated_at", "event_time"}
)
LIST_FIELDS = frozenset({"tags", "custom_tags"})
INFO_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
MAX_DEPTH = 4
MAX_CONDITIONS = 32
MAX_LIST = 50
MAX_VALUE_CHARS = 256


@dataclass(frozen=True)
class Cond:
    field: str
    """An item field, or `info.<key>`."""
    op: Op
    value: Scalar | tuple[Scalar, ...]

    @property
    def info_key(self) -> str | None:
        return self.field.removeprefix("info.") if self.field.startswith("info.") else None


@dataclass(frozen=True)
class And:
    parts: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Filter, ...]


Filter = Cond | And | Or


def compile_filter(raw: dict[str, Any] | None, where: str = "filter") -> Filter | None:
    """Validate a raw filter and compile it; raise InvalidRequest naming the bad part."""
    if raw is None or raw == {}:
        return None
    counter = [0]
    return _node(raw, where, 1, counter)


def _node(raw: Any, where: str, depth: int, counter: list[int]) -> Filter:
    if depth > MAX_DEPTH:
        raise InvalidRequest(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if not isinstance(raw, dict) or not raw:
        raise InvalidRequest(f"{where}: must be a non-empty object")
    nodes: list[Filter] = []
    for key, value in raw.items():  # the entries of one object all hold (and)
        if key in {"and", "or"}:
            if not isinstance(value, list) or not value:
                raise InvalidRequest(f"{where}.{key}: must be a non-empty list of filters")
            parts = tuple(_node(p, f"{where}.{key}[{i}]", depth + 1, counter) for i, p in enumerate(value))
            nodes.append(And(parts) if key == "and" else Or(parts))
        else:
            nodes.append(_leaf(key, value, f"{where}.{key}", counter))
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def _leaf(key: Any, value: Any, where: str, counter: list[int]) -> Cond:
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise InvalidRequest(f"{where}: a filter may hold at most {MAX_CONDITIONS} conditions")
    field = _field(key, where)
    if isinstance(value, dict):
        if len(value) != 1:
            raise InvalidRequest(f"{where}: one operator per condition, e.g. {{'gte': 3}}")
        op, operand = next(iter(value.items()))
        if op not in OPS:
            raise InvalidRequest(f"{where}: unknown operator {str(op)[:20]!r} (use {', '.join(sorted(OPS))})")
    else:
        op, operand = "eq", value
    if op in {"in", "nin"}:
        if not isinstance(operand, list) or not operand or len(operand) > MAX_LIST:
            raise InvalidRequest(f"{where}.{op}: must be a list of 1-{MAX_LIST} values")
        return Cond(field, op, tuple(_scalar(v, f"{where}.{op}") for v in operand))
    if field == "event_time":
        return Cond(field, op, _instant(operand, f"{where}.{op}" if op != "eq" else where, op))
    return Cond(field, op, _scalar(operand, f"{where}.{op}" if op != "eq" else where))


def _instant(value: Any, where: str, op: str) -> str:
    """An `event_time` bound in any form `chat_time` takes, as the ISO 8601 instant that event
    times are stored in (so every backend compares them as equals)."""
    if op not in {"gt", "gte", "lt", "lte"}:
        raise InvalidRequest(f"{where}: event_time takes gt, gte, lt or lte (a span is compared by its ends)")
    instant = parse_time(value) if isinstance(value, str) else None
    if instant is None:
        raise InvalidRequest(f"{where}: {str(value)[:40]!r} is not a time with a year (e.g. 2023-05-08T13:56:00Z)")
    return iso(instant)


def _field(key: Any, where: str) -> str:
    if not isinstance(key, str):
        raise InvalidRequest(f"{where}: field names are strings")
    if key in ITEM_FIELDS:
        return key
    info = key.removeprefix("info.")
    if not INFO_KEY.fullmatch(info):
        raise InvalidRequest(f"{where}: {key[:40]!r} is not a valid field or info key (letters, digits, _ and -)")
    return f"info.{info}"


def _scalar(value: Any, where: str) -> Scalar:
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS:
            raise InvalidRequest(f"{where}: values are at most {MAX_VALUE_CHARS} characters")
        return value
    raise InvalidRequest(f"{where}: values must be strings, numbers or booleans")


def field_value(doc: dict[str, Any], field: str) -> Any:
    """A field's value in a flat document {memory_type, ..., info: {...}}."""
    if field.startswith("info."):
        info = doc.get("info") or {}
        return info.get(field.removeprefix("info.")) if isinstance(info, dict) else None
    return doc.get(field)


def matches(flt: Filter | None, doc: dict[str, Any]) -> bool:
    """Evaluate a compiled filter against a flat document."""
    if flt is None:
        return True
    if isinstance(flt, And):
        return all(matches(p, doc) for p in flt.parts)
    if isinstance(flt, Or):
        return any(matches(p, doc) for p in flt.parts)
    return _compare(field_value(doc, flt.field), flt.op, flt.value)


def _compare(actual: Any, op: Op, value: Scalar | tuple[Scalar, ...]) -> bool:
    values = actual if isinstance(actual, list) else [actual]
    if op == "ne":
        return all(v != value for v in values)
    if op == "nin":
        return all(v not in value for v in values)  # type: ignore[operator]
    return any(_one(v, op, value) for v in values)


def _one(actual: Any, op: Op, value: Scalar | tuple[Scalar, ...]) -> bool:
    if actual is None:
        return False
    if op == "eq":
        return bool(actual == value)
    if op == "in":
        return actual in value  # type: ignore[operator]
    if op == "contains":
        return isinstance(actual, str) and str(value) in actual
    try:
        if op == "gt":
            return bool(actual > value)
        if op == "gte":
            return bool(actual >= value)
        if op == "lt":
            return bool(actual < value)
        return bool(actual <= value)
    except TypeError:
        return False


def filter_doc(item: MemoryItem) -> dict[str, Any]:
    """The flat document filters are evaluated against (and that indexes store)."""
    meta = item.metadata
    return {
        "memory_type": meta.memory_type,
        "session_id": meta.session_id,
        "user_id": meta.user_id,
        "key": meta.key,
        "tags": meta.tags,
        "custom_tags": meta.custom_tags,
        "created_at": meta.created_at,
        "updated_at": meta.updated_at,
        "event_time": event_span(item),
        "info": meta.info,
        "expires_at": meta.expires_at,
    }


def event_span(item: MemoryItem) -> list[str]:
    """The memory's event time as the filter sees it, its first and last instant: a condition
    holds if either end satisfies it, so `gt`/`gte` test the span's end and `lt`/`lte` its start
    (a memory whose span overlaps the asked period matches). Empty without an event time."""
    meta = item.metadata
    return list(dict.fromkeys(t for t in (meta.event_time, meta.event_time_end) if t))
