"""MemOS's chat messages and content parts (the `messages` of `/product/add`), and their
flattening into the domain's source units (`SourceMessage`): one unit per modality of each
message, files read inline (text, or a data URL of it; a PDF passed on as base64 for the worker)."""

from __future__ import annotations

import binascii
import json
from typing import Annotated, Any, Literal, TypedDict

from pydantic import ConfigDict, Discriminator, Field, Tag, model_validator

from memcube.domain import limits
from memcube.domain.base import Model
from memcube.domain.errors import InvalidRequest
from memcube.domain.files import BINARY_FILE_TYPES, DataUrl, base64_data_url, parse_data_url, readable
from memcube.domain.ids import Id
from memcube.domain.model import Role, SourceMessage

MAX_FILE_DATA_CHARS = limits.MAX_FILE_BYTES * 4 // 3 + 256
"""A file's `file_data` as base64 in a data URL."""
URL_PREFIXES = ("http://", "https://", "s3://", "file:")
"""File content that is a URL: never fetched."""


class _Strict(Model):
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
        if self.tool_calls is not None:
            _check_tool_calls(self.role, self.tool_calls)
        return self


MAX_TOOL_CALLS = 32
"""Tool calls in one assistant message."""


def _check_tool_calls(role: str, calls: list[dict[str, Any]]) -> None:
    """OpenAI's shape, `[{id, type: function, function: {name, arguments}}]`: tool memory reads
    the id, name and arguments of each, so a call without them is refused, not stored half-read."""
    if role != "assistant":
        raise ValueError("tool_calls: only an assistant message makes tool calls")
    if len(calls) > MAX_TOOL_CALLS:
        raise ValueError(f"tool_calls: at most {MAX_TOOL_CALLS} calls, got {len(calls)}")
    for i, call in enumerate(calls):
        function = call.get("function")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not 0 < len(call_id) <= 256:
            raise ValueError(f"tool_calls[{i}].id: required, a string of 1 to 256 characters")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise ValueError(f"tool_calls[{i}].function.name: required, the name of the tool called")
        if len(function["name"]) > 256:
            raise ValueError(f"tool_calls[{i}].function.name: at most 256 characters")
        if not isinstance(function.get("arguments", ""), str | dict):
            raise ValueError(f"tool_calls[{i}].function.arguments: a JSON string (or object) of the arguments")


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
    units = _content_units(msg, where)
    if units and (msg.tool_call_id or msg.tool_calls):  # tool memory pairs calls and answers by id
        tool = {"tool_call_id": msg.tool_call_id, "tool_calls": msg.tool_calls}
        units[0] = units[0].model_copy(update=tool)
    return units


def _content_units(msg: ChatMessage, where: str) -> list[SourceMessage]:
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
    url = parse_data_url(data)
    if url is None:
        return data, None
    mime = (url.mime or "text/plain").lower()
    if mime in BINARY_FILE_TYPES:
        return "", _binary_data_url(mime, url, field)
    if not readable(mime):
        raise InvalidRequest(f"{field}: only text and PDF data URLs are read, got {mime}")
    try:
        return url.decoded().decode("utf-8"), None
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"{field}: not valid base64 UTF-8 text ({exc})") from exc


def _binary_data_url(mime: str, url: DataUrl, field: str) -> str:
    if not url.is_base64:
        raise InvalidRequest(f"{field}: a {mime} data URL must be base64 (data:{mime};base64,...)")
    whole = DataUrl(mime, True, "".join(url.payload.split()))
    try:
        head = DataUrl(mime, True, whole.payload[:64]).decoded()
        whole.decoded()
    except binascii.Error as exc:
        raise InvalidRequest(f"{field}: not valid base64 ({exc})") from exc
    if mime == "application/pdf" and not head.startswith(b"%PDF-"):
        raise InvalidRequest(f"{field}: not a PDF (it does not start with %PDF-)")
    return base64_data_url(mime, whole.payload)
