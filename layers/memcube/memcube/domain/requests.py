"""The MemOS `/product/add` request (APIADDRequest) with its names, types and defaults, plus limits.

`AddRequest` accepts exactly what MemOS accepts (unknown fields are refused so typos are not
silently ignored); `AddRequest.to_command()` applies MemOS's conversions (deprecated fields,
cube fallback, session default) and flattens messages into the units the reader consumes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypedDict
from urllib.parse import unquote_to_bytes

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from memcube.domain import limits
from memcube.domain.errors import InvalidRequest
from memcube.domain.model import Role, SourceMessage

MEMORY_FIELD_NAMES = frozenset(
    {
        "id", "memory", "user_id", "session_id", "cube_id", "status", "memory_type", "type", "key",
        "tags", "custom_tags", "sources", "embedding", "embedding_model", "confidence", "background",
        "created_at", "updated_at", "version", "history", "covered_history", "merged_from",
        "content_hash", "task_id", "manager_user_id", "project_id", "info",
    }
)  # fmt: skip
"""`info` keys that would shadow an item field (MemOS drops them; we refuse them, naming the key)."""

BINARY_FILE_TYPES = frozenset({"application/pdf"})
"""File types the API passes on as bytes for the worker to read (document mode); text types are
decoded at once."""
TEXT_FILE_TYPES = frozenset({"application/json", "application/x-ndjson"})
"""Non-`text/*` types that are text."""
MAX_FILE_DATA_CHARS = limits.MAX_FILE_BYTES * 4 // 3 + 256
"""A file's `file_data` as base64 in a data URL."""
URL_PREFIXES = ("http://", "https://", "s3://", "file:")
"""File content that is a URL: never fetched."""

DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<b64>;base64)?,(?P<data>.*)$", re.DOTALL)


def readable(mime: str) -> bool:
    """A file type the reader takes: text, JSON, or a binary type it extracts text from (PDF)."""
    return mime.startswith("text/") or mime in TEXT_FILE_TYPES or mime in BINARY_FILE_TYPES


def check_id(value: str, field: str) -> str:
    if not value:
        raise ValueError(f"{field} must not be empty")
    if len(value) > limits.MAX_ID_CHARS or not limits.ID_PATTERN.fullmatch(value):  # `$` alone allows a final \n
        raise ValueError(f"{field} {value[:40]!r} is not a valid id ({limits.ID_RULE})")
    return value


def check_cube_ids(values: list[str]) -> list[str]:
    """Cube ids of a request: each a valid id, duplicates removed in order, at most the limit."""
    unique = list(dict.fromkeys(check_id(v, "cube id") for v in values))
    if len(unique) > limits.MAX_CUBES_PER_REQUEST:
        raise ValueError(f"at most {limits.MAX_CUBES_PER_REQUEST} cubes per request, got {len(unique)}")
    return unique


Id = Annotated[str, Field(min_length=1, max_length=limits.MAX_ID_CHARS, pattern=limits.ID_PATTERN.pattern)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=limits.MAX_CONTENT_BYTES)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImageURL(_Strict):
    url: str = Field(min_length=1, max_length=limits.MAX_CONTENT_BYTES)
    detail: str | None = None
    image_id: str | None = None


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageURL


class FileData(_Strict):
    file_data: str | None = Field(default=None, max_length=MAX_FILE_DATA_CHARS)
    file_id: str | None = Field(default=None, max_length=limits.MAX_ID_CHARS)
    filename: str | None = Field(default=None, max_length=255)
    path: str | None = None
    """Set only by the deprecated `doc_path` conversion; server-side paths are never read."""


class FilePart(_Strict):
    type: Literal["file"]
    file: FileData


class AudioPart(_Strict):
    type: Literal["input_audio"]
    input_audio: dict[str, Any]


def _part_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        tag = value.get("type")
        return tag if isinstance(tag, str) else None
    return getattr(value, "type", None)


ContentPart = Annotated[
    Annotated[TextPart, Tag("text")]
    | Annotated[ImagePart, Tag("image_url")]
    | Annotated[FilePart, Tag("file")]
    | Annotated[AudioPart, Tag("input_audio")],
    Discriminator(
        _part_tag,
        custom_error_type="part_type",
        custom_error_message="a content part needs type text, image_url, file or input_audio",
    ),
]


def _str_or_list(value: Any) -> str | None:
    if isinstance(value, str):
        return "str"
    return "list" if isinstance(value, list) else None


STR_OR_LIST = Discriminator(
    _str_or_list, custom_error_type="str_or_list", custom_error_message="must be a string or a list"
)
"""`str | list[...]` discriminated by shape, so an error names only the shape that was sent."""

ContentType = Annotated[Annotated[str, Tag("str")] | Annotated[list[ContentPart], Tag("list")], STR_OR_LIST]


class ChatMessage(_Strict):
    role: Role
    content: ContentType | None = None
    chat_time: str | None = Field(default=None, max_length=64)
    message_id: Id | None = None
    name: str | None = Field(default=None, max_length=256)
    tool_call_id: str | None = Field(default=None, max_length=256)
    tool_calls: list[dict[str, Any]] | None = None
    refusal: str | None = None

    @model_validator(mode="after")
    def _check_role_fields(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        if self.content is None and not self.tool_calls:
            raise ValueError("content is required (only an assistant message with tool_calls may omit it)")
        if isinstance(self.content, list) and len(self.content) > limits.MAX_PARTS_PER_MESSAGE:
            raise ValueError(f"content has more than {limits.MAX_PARTS_PER_MESSAGE} parts")
        return self


def _message_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        return "chat" if "role" in value else _part_tag(value)
    return "chat" if isinstance(value, ChatMessage) else _part_tag(value)


MessageEntry = Annotated[
    Annotated[ChatMessage, Tag("chat")]
    | Annotated[TextPart, Tag("text")]
    | Annotated[ImagePart, Tag("image_url")]
    | Annotated[FilePart, Tag("file")]
    | Annotated[AudioPart, Tag("input_audio")],
    Discriminator(
        _message_tag,
        custom_error_type="message_type",
        custom_error_message="a message needs a role (system, user, assistant, tool) or a part type "
        "(text, image_url, file)",
    ),
]
UNION_TAGS = frozenset({"chat", "text", "image_url", "file", "input_audio", "str", "list"})
"""Loc segments pydantic adds for union members; the API leaves them out of field paths."""

MessagesType = Annotated[Annotated[str, Tag("str")] | Annotated[list[MessageEntry], Tag("list")], STR_OR_LIST]


_DEPRECATED: dict[str, Any] = {"deprecated": True}


class AddRequest(BaseModel):
    """MemOS's APIADDRequest. Field order, names, types and defaults follow MemOS v2."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "user_id": "alice",
                "writable_cube_ids": ["alice"],
                "messages": [
                    {"role": "user", "content": "I moved to Lisbon last May.", "chat_time": "2025-06-01"},
                    {"role": "assistant", "content": "Noted: you live in Lisbon now."},
                ],
                "custom_tags": ["travel"],
                "info": {"app_id": "demo"},
            }
        },
    )

    user_id: str | None = None
    session_id: str | None = None
    task_id: str | None = None
    writable_cube_ids: list[str] | None = None
    async_mode: Literal["async", "sync"] = "async"
    mode: Literal["fast", "fine"] | None = None
    custom_tags: list[str] | None = None
    info: dict[str, Any] | None = None
    messages: MessagesType | None = None
    chat_history: list[MessageEntry] | None = None
    is_feedback: bool = False
    is_upload_skill: bool = False
    manager_user_id: str | None = None
    project_id: str | None = None
    # Deprecated in MemOS, still accepted and converted (marked deprecated in the OpenAPI schema;
    # not via Field(deprecated=...), which would warn on every read inside the conversion).
    mem_cube_id: str | None = Field(default=None, json_schema_extra=_DEPRECATED)
    memory_content: str | None = Field(default=None, json_schema_extra=_DEPRECATED)
    doc_path: str | None = Field(default=None, json_schema_extra=_DEPRECATED)
    source: str | None = Field(default=None, max_length=256, json_schema_extra=_DEPRECATED)
    operation: list[dict[str, Any]] | None = Field(default=None, json_schema_extra=_DEPRECATED)

    @field_validator("user_id", "session_id", "task_id", "manager_user_id", "project_id", "mem_cube_id")
    @classmethod
    def _ids(cls, value: str | None, info: Any) -> str | None:
        return None if value is None else check_id(value, info.field_name)

    @field_validator("writable_cube_ids")
    @classmethod
    def _cubes(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_cube_ids(value)

    @field_validator("custom_tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_tags(value)

    @field_validator("info")
    @classmethod
    def _info(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        check_info(value)
        return value

    @field_validator("messages", "chat_history")
    @classmethod
    def _message_count(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > limits.MAX_MESSAGES:
            raise ValueError(f"at most {limits.MAX_MESSAGES} entries, got {len(value)}")
        return value


def check_tags(value: list[str]) -> list[str]:
    """Custom tags: trimmed, repeats dropped (order kept), within the count and length limits."""
    tags = list(dict.fromkeys(t.strip() for t in value))
    if len(tags) > limits.MAX_TAGS:
        raise ValueError(f"at most {limits.MAX_TAGS} tags, got {len(tags)}")
    for tag in tags:
        if not tag or len(tag) > limits.MAX_TAG_CHARS:
            raise ValueError(f"each tag must be 1-{limits.MAX_TAG_CHARS} characters, got {tag[:80]!r}")
    return tags


def file_bytes(unit: SourceMessage) -> int:
    """A file unit's size: its text's UTF-8 bytes, or its binary data's decoded bytes."""
    if unit.data is None:
        return len(unit.content.encode())
    payload = unit.data.partition(",")[2]
    return len(payload) * 3 // 4 - payload[-2:].count("=")


def size_problem(units: Sequence[SourceMessage]) -> str | None:
    """Why these units are too large, or None. Conversation text and files have separate budgets:
    a knowledge-base file may be larger than any conversation."""
    text = sum(len(u.content.encode()) for u in units if u.type != "file")
    if text > limits.MAX_CONTENT_BYTES:
        return f"at most {limits.MAX_CONTENT_BYTES} bytes of text, got {text}"
    files = sum(file_bytes(u) for u in units if u.type == "file")
    if files > limits.MAX_FILE_BYTES:
        return f"at most {limits.MAX_FILE_BYTES} bytes of files, got {files}"
    return None


def check_info(info: dict[str, Any]) -> None:
    clashing = sorted(k for k in info if k in MEMORY_FIELD_NAMES and k != "source_doc_id")
    if clashing:
        raise ValueError(f"keys {clashing} clash with memory item fields; rename them")
    if len(info) > limits.MAX_INFO_KEYS:
        raise ValueError(f"at most {limits.MAX_INFO_KEYS} keys, got {len(info)}")
    try:
        size = len(json.dumps(info, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
    except (TypeError, ValueError) as exc:  # NaN and Infinity are not JSON, whatever parsers allow
        raise ValueError(f"must hold JSON values only (no NaN or Infinity): {exc}") from exc
    if size > limits.MAX_INFO_BYTES:
        raise ValueError(f"at most {limits.MAX_INFO_BYTES} bytes as JSON, got {size}")
    depth = _depth(info)
    if depth > limits.MAX_INFO_DEPTH:
        raise ValueError(f"nesting depth at most {limits.MAX_INFO_DEPTH}, got {depth}")


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


class AddCommand(BaseModel):
    """A validated, normalized add: what the domain works with after MemOS's conversions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: str
    session_id: str
    task_id: str | None
    cube_ids: list[str]
    async_mode: Literal["async", "sync"]
    mode: Literal["fast", "fine"] | None
    custom_tags: list[str]
    info: dict[str, Any]
    messages: list[SourceMessage]
    chat_history: list[SourceMessage] | None
    is_feedback: bool
    manager_user_id: str | None
    project_id: str | None


def to_command(req: AddRequest) -> AddCommand:
    """Apply MemOS's conversions and flatten messages; raise InvalidRequest naming the field."""
    if not req.user_id:
        raise InvalidRequest("user_id: required (it selects the principal and the default cube)")
    if req.is_upload_skill:
        raise InvalidRequest("is_upload_skill: skill packages are not supported by memcube")
    if req.doc_path:
        raise InvalidRequest(
            "doc_path: server-side file paths are never read; send the file's text inline as messages[].file.file_data"
        )
    cubes = req.writable_cube_ids or ([req.mem_cube_id] if req.mem_cube_id else [req.user_id])
    info = dict(req.info or {})
    if req.source and "source" not in info:
        info["source"] = req.source
        try:  # the request's info was checked before `source` joined it
            check_info(info)
        except ValueError as exc:
            raise InvalidRequest(f"info: {exc} (with `source` added to it)") from exc
    raw = req.messages
    for field, text in (("messages", raw), ("memory_content", req.memory_content)):
        if isinstance(text, str) and len(text.encode()) > limits.MAX_CONTENT_BYTES:
            raise InvalidRequest(f"{field}: at most {limits.MAX_CONTENT_BYTES} bytes of text, got {len(text.encode())}")
    entries: list[Any] = [TextPart(type="text", text=raw)] if isinstance(raw, str) else list(raw or [])
    if req.memory_content:
        entries.append(TextPart(type="text", text=req.memory_content))
    units = flatten(entries, "messages")
    if not any(u.content.strip() or u.data for u in units):
        raise InvalidRequest(
            "messages: nothing to remember (no text in messages or memory_content); an add must carry text"
        )
    history = flatten(list(req.chat_history), "chat_history") if req.chat_history is not None else None
    if history is not None and len(history) > limits.MAX_MESSAGES * 2:
        raise InvalidRequest(f"chat_history: at most {limits.MAX_MESSAGES * 2} message parts, got {len(history)}")
    problem = size_problem(units)
    if problem is not None:
        raise InvalidRequest(f"messages: {problem}")
    if len(units) > limits.MAX_MESSAGES * 2:
        raise InvalidRequest(f"messages: at most {limits.MAX_MESSAGES * 2} message parts, got {len(units)}")
    return AddCommand(
        user_id=req.user_id,
        session_id=req.session_id or "default_session",
        task_id=req.task_id,
        cube_ids=cubes,
        async_mode=req.async_mode,
        mode=req.mode,
        custom_tags=req.custom_tags or [],
        info=info,
        messages=units,
        chat_history=history,
        is_feedback=req.is_feedback,
        manager_user_id=req.manager_user_id,
        project_id=req.project_id,
    )


def flatten(entries: list[Any], field: str) -> list[SourceMessage]:
    """One unit per modality of each message; a message's text parts are joined back into one."""
    units: list[SourceMessage] = []
    for i, entry in enumerate(entries):
        where = f"{field}[{i}]"
        if isinstance(entry, ChatMessage):
            units.extend(_chat_units(entry, where))
        else:
            unit = _part_unit(entry, where, role=None, chat_time=None, message_id=None)
            if unit is not None:
                units.append(unit)
    return units


def _chat_units(msg: ChatMessage, where: str) -> list[SourceMessage]:
    base = _Origin(role=msg.role, chat_time=msg.chat_time, message_id=msg.message_id)
    if msg.content is None:
        calls = json.dumps(msg.tool_calls, ensure_ascii=False, separators=(",", ":"))
        return [SourceMessage(type="chat", content=f"[tool_calls] {calls}", **base)]
    if isinstance(msg.content, str):
        return [SourceMessage(type="chat", content=msg.content, **base)]
    texts: list[str] = []
    others: list[SourceMessage] = []
    for j, part in enumerate(msg.content):
        if isinstance(part, TextPart):
            texts.append(part.text)
            continue
        unit = _part_unit(part, f"{where}.content[{j}]", **base)
        if unit is not None:
            others.append(unit)
    head = [SourceMessage(type="chat", content="\n".join(texts), **base)] if texts else []
    return head + others


class _Origin(TypedDict):
    role: Role | None
    chat_time: str | None
    message_id: str | None


def _part_unit(
    part: Any, where: str, *, role: Role | None, chat_time: str | None, message_id: str | None
) -> SourceMessage | None:
    base = _Origin(role=role, chat_time=chat_time, message_id=message_id)
    if isinstance(part, TextPart):
        return SourceMessage(type="text", content=part.text, **base)
    if isinstance(part, ImagePart):
        url = part.image_url.url
        shown = "inline image data (not kept)" if url.startswith("data:") else url
        kept = None if url.startswith("data:") else url
        label = part.image_url.image_id or shown
        return SourceMessage(type="image", content=f"[image: {label}]", url=kept, **base)
    if isinstance(part, FilePart):
        content, data = _file_body(part.file, where)
        return SourceMessage(
            type="file",
            content=content,
            data=data,
            file_id=part.file.file_id,
            filename=part.file.filename,
            **base,
        )
    raise InvalidRequest(f"{where}.type: input_audio is not supported (send a transcript as text)")


def _file_body(file: FileData, where: str) -> tuple[str, str | None]:
    """(text, None) for a text file; ("", data URL) for a binary one (PDF), whose text the worker reads."""
    data = file.file_data
    field = f"{where}.file.file_data"
    if data is None:
        raise InvalidRequest(f"{field}: required (the file's text, or a data URL of it, inline)")
    if data.startswith(URL_PREFIXES):
        raise InvalidRequest(f"{field}: URLs are not fetched; send the file inline (its text, or a data URL)")
    match = DATA_URL.match(data)
    if not match:
        return data, None
    mime = (match.group("mime") or "text/plain").lower()
    if mime in BINARY_FILE_TYPES:
        return "", _binary_data_url(mime, match, field)
    if not readable(mime):
        raise InvalidRequest(f"{field}: only text and PDF data URLs are read, got {mime}")
    try:
        raw = (
            base64.b64decode(match.group("data"), validate=True)
            if match.group("b64")
            else (unquote_to_bytes(match.group("data")))
        )
        return raw.decode("utf-8"), None
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"{field}: not valid base64 UTF-8 text ({exc})") from exc


def _binary_data_url(mime: str, match: re.Match[str], field: str) -> str:
    if not match.group("b64"):
        raise InvalidRequest(f"{field}: a {mime} data URL must be base64 (data:{mime};base64,...)")
    payload = "".join(match.group("data").split())
    try:
        head = base64.b64decode(payload[:64], validate=True)
        base64.b64decode(payload, validate=True)
    except binascii.Error as exc:
        raise InvalidRequest(f"{field}: not valid base64 ({exc})") from exc
    if mime == "application/pdf" and not head.startswith(b"%PDF-"):
        raise InvalidRequest(f"{field}: not a PDF (it does not start with %PDF-)")
    return f"data:{mime};base64,{payload}"
