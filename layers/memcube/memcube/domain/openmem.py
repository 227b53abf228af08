"""The hosted MemOS API (the "openmem" cloud API that `memos.api.client.MemOSClient` speaks),
mapped onto the same domain as `/product/*`.

Each hosted request is validated here under its own field names, then turned into the request
the `/product` route of the same job takes (an `AddRequest`, a `SearchRequest`, a
`DeleteMemoryRequest`, ...), so both APIs share one set of rules. The mapping:

- `user_id` selects the principal and its personal cube; without it, `agent_id` does (an agent
  has a cube of its own). With both, the user's cube is used and `agent_id` is kept in `info`
  (as is `app_id`), so it filters searches.
- `conversation_id` is the session; `tags` are the custom tags.
- `allow_knowledgebase_ids` (add, feedback) are knowledge-base cubes written as well, and
  `knowledgebase_ids` (search) knowledge-base cubes read as well, each under its permissions.
- Knowledge bases are knowledge-base cubes: created with the caller as owner, their files read in
  document mode, each file under the id `<knowledgebase_id>:<24 hex of its SHA-256>`, so a file
  id alone names its cube (the hosted API deletes files by id only).

With API keys off (the loopback-only embedded default), a request that names no user acts as
MemOS does without authentication: reads and deletes of memories by id act as each memory's
writer, task status is not scoped to a user, and knowledge-base operations act as the user
`anonymous` on knowledge bases that are open (created without keys, nothing is recorded).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import unquote_to_bytes

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from memcube.domain import limits
from memcube.domain.cubes import CreateCubeRequest, CubeService
from memcube.domain.deletion import DeleteMemoryRequest, DeletionService, Receipt
from memcube.domain.errors import InvalidRequest
from memcube.domain.model import MemoryType, Principal, TaskState
from memcube.domain.requests import (
    BINARY_FILE_TYPES,
    DATA_URL,
    MAX_FILE_DATA_CHARS,
    URL_PREFIXES,
    AddRequest,
    ChatMessage,
    FileData,
    FilePart,
    Id,
    MessageEntry,
    MessagesType,
    check_cube_ids,
    check_id,
    check_info,
    check_tags,
    readable,
)
from memcube.domain.search import SearchRequest
from memcube.ports import UserDirectory

PREFIX = "/api/openmem/v1"
"""Where the hosted API lives in the SDK's default base URL; memcube serves it there (and at the root)."""

ANONYMOUS = "anonymous"
"""Who a knowledge-base operation acts as when keys are off and nothing names a user."""

HOSTED_STATUS: dict[TaskState, str] = {
    TaskState.WAITING: "running",
    TaskState.IN_PROGRESS: "running",
    TaskState.COMPLETED: "completed",
    TaskState.FAILED: "failed",
    TaskState.CANCELLED: "cancelled",
}
"""The hosted API's task states: a task is `running` until it is finished."""

FILE_TYPES = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".csv": "text/csv",
    ".xml": "text/xml",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
}
"""File types read in document mode, by extension: text of any `text/*` type, JSON, and PDF."""
SUPPORTED = "text (.txt, .md, .csv, .xml, .html), JSON and PDF"
_SLUG = re.compile(r"[^a-z0-9]+")
_FILE_ID = re.compile(r"^(?P<cube>.+):(?P<digest>[0-9a-f]{24})$")


def _one_subject(value: str | list[str]) -> str:
    """The hosted API lets `user_id`/`agent_id` be a list; memcube acts for one subject per request."""
    values = [value] if isinstance(value, str) else list(dict.fromkeys(value))
    if len(values) != 1:
        raise ValueError(f"one id per request, got {len(values)}")
    return check_id(values[0], "id")


Subject = Annotated[str | list[str], AfterValidator(_one_subject)]
"""One id, or a list holding one id; validated to that one id (a `str`)."""
CubeIds = Annotated[list[str], AfterValidator(check_cube_ids)]
Tags = Annotated[list[str], AfterValidator(check_tags)]


def _info(value: dict[str, Any]) -> dict[str, Any]:
    check_info(value)
    return value


Info = Annotated[dict[str, Any], AfterValidator(_info)]


class _Body(BaseModel):
    """Unknown fields are refused, as on every memcube route (a typo is an error)."""

    model_config = ConfigDict(extra="forbid")


class AddMessageBody(_Body):
    """`POST /add/message`: the hosted add."""

    messages: MessagesType
    user_id: Subject | None = None
    conversation_id: Id | None = None
    info: Info | None = None
    source: str | None = Field(default=None, max_length=256)
    app_id: Id | None = None
    agent_id: Subject | None = None
    async_mode: bool = True
    tags: Tags | None = None
    allow_public: bool = False
    allow_knowledgebase_ids: CubeIds | None = None
    allow_memory_view: list[str] | None = None

    @model_validator(mode="after")
    def _subject(self) -> AddMessageBody:
        if not self.user_id and not self.agent_id:
            raise ValueError("user_id (or agent_id) is required: it selects the memory cube")
        return self


class StatusBody(_Body):
    """`POST /get/status`."""

    task_id: str = Field(min_length=1, max_length=200)


class SearchMemoryBody(_Body):
    """`POST /search/memory`."""

    query: str = Field(min_length=1, max_length=4096)
    user_id: Id | None = None
    agent_id: Id | None = None
    conversation_id: Id | None = None
    memory_limit_number: int = Field(default=6, ge=1, le=100)
    include_preference: bool = True
    knowledgebase_ids: CubeIds | None = None
    filter: dict[str, Any] | None = None
    source: str | None = Field(default=None, max_length=256)
    include_tool_memory: bool = False
    preference_limit_number: int = Field(default=6, ge=0, le=100)
    tool_memory_limit_number: int = Field(default=6, ge=0, le=100)
    relativity: float | None = Field(default=None, ge=0.0, le=1.0)
    include_skill: bool = False
    skill_limit_number: int = Field(default=6, ge=0, le=100)
    include_memory_view: list[str] | None = None
    context_format: str = Field(default="memory", max_length=32)

    @model_validator(mode="after")
    def _subject(self) -> SearchMemoryBody:
        _exactly_one_subject(self.user_id, self.agent_id)
        return self


class GetMemoryBody(_Body):
    """`POST /get/memory`: one page of the subject's cube."""

    user_id: Id | None = None
    agent_id: Id | None = None
    include_preference: bool = True
    include_tool_memory: bool = True
    include_memory_view: list[str] | None = None
    filter: dict[str, Any] | None = None
    page: int = Field(default=1, ge=1, le=100_000)
    size: int = Field(default=10, ge=1, le=50)

    @model_validator(mode="after")
    def _subject(self) -> GetMemoryBody:
        _exactly_one_subject(self.user_id, self.agent_id)
        if self.filter:
            raise ValueError("filter: get/memory lists a cube page by page; to filter, use search/memory with filter")
        return self


class DeleteMemoryBody(_Body):
    """`POST /delete/memory`: exactly one of `memory_ids`, `user_id`, `agent_id`, `filter`."""

    memory_ids: list[Id] | None = Field(default=None, min_length=1, max_length=1000)
    user_id: Id | None = None
    agent_id: Id | None = None
    filter: dict[str, Any] | None = None
    memory_type: MemoryType | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> DeleteMemoryBody:
        given = [n for n in ("memory_ids", "user_id", "agent_id", "filter") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of memory_ids, user_id, agent_id, filter (got {given or 'none'})")
        if self.memory_ids is not None and self.memory_type is not None:
            raise ValueError("memory_type narrows a delete by user_id, agent_id or filter, not by memory_ids")
        return self


class AddFeedbackBody(_Body):
    """`POST /add/feedback`: a correction in the user's words."""

    feedback_content: str = Field(min_length=1, max_length=limits.MAX_CONTENT_BYTES)
    user_id: Id
    conversation_id: Id | None = None
    agent_id: Id | None = None
    app_id: Id | None = None
    feedback_time: str | None = Field(default=None, max_length=64)
    allow_public: bool = False
    allow_knowledgebase_ids: CubeIds | None = None


class CreateKnowledgebaseBody(_Body):
    knowledgebase_name: str = Field(min_length=1, max_length=200)
    knowledgebase_description: str | None = Field(default=None, max_length=2000)


class DeleteKnowledgebaseBody(_Body):
    knowledgebase_id: Id


class KnowledgebaseFile(_Body):
    """One file of a JSON upload: `content` is a data URL (base64) or the file's text itself."""

    content: str = Field(min_length=1, max_length=MAX_FILE_DATA_CHARS)
    name: str | None = Field(default=None, max_length=255)
    type: Literal["document", "skill"] | None = None


class KnowledgebaseFilesBody(_Body):
    """`POST /add/knowledgebase-file` as JSON."""

    knowledgebase_id: Id
    file: list[KnowledgebaseFile] = Field(min_length=1, max_length=limits.MAX_FILES_PER_REQUEST)


class DeleteKnowledgebaseFilesBody(_Body):
    file_ids: list[Id] = Field(min_length=1, max_length=1000)


def _exactly_one_subject(user_id: str | None, agent_id: str | None) -> None:
    if bool(user_id) == bool(agent_id):
        raise ValueError("give exactly one of user_id and agent_id: it selects the memory cube")


# --- requests of the /product domain ----------------------------------------------------------


def add_request(body: AddMessageBody) -> AddRequest:
    _unsupported(body.allow_public, body.allow_memory_view)
    user, agent = _single(body.user_id), _single(body.agent_id)
    subject = user or agent
    assert subject is not None  # the model requires one
    return AddRequest(
        user_id=subject,
        session_id=body.conversation_id,
        writable_cube_ids=_with_knowledgebases(subject, body.allow_knowledgebase_ids, "allow_knowledgebase_ids"),
        async_mode="async" if body.async_mode else "sync",
        custom_tags=body.tags,
        info=_tagged_info(body.info, app_id=body.app_id, agent_id=agent) or None,
        messages=body.messages,
        source=body.source,
    )


def _single(value: str | list[str] | None) -> str | None:
    """A `Subject` after validation is one id (typed as the union it was sent as)."""
    return value if isinstance(value, str) or value is None else value[0]


def feedback_request(body: AddFeedbackBody) -> AddRequest:
    _unsupported(body.allow_public, None)
    message = ChatMessage(role="user", content=body.feedback_content, chat_time=body.feedback_time)
    return AddRequest(
        user_id=body.user_id,
        session_id=body.conversation_id,
        writable_cube_ids=_with_knowledgebases(body.user_id, body.allow_knowledgebase_ids, "allow_knowledgebase_ids"),
        is_feedback=True,
        messages=[message],
        info=_tagged_info(None, app_id=body.app_id, agent_id=body.agent_id) or None,
    )


def search_request(body: SearchMemoryBody) -> SearchRequest:
    subject = body.user_id or body.agent_id
    assert subject is not None
    fields: dict[str, Any] = {
        "query": body.query,
        "user_id": subject,
        "readable_cube_ids": _with_knowledgebases(subject, body.knowledgebase_ids, "knowledgebase_ids"),
        "session_id": body.conversation_id,
        "top_k": body.memory_limit_number,
        "filter": body.filter,
        "source": body.source,
        "context_format": body.context_format,
        "include_preference": body.include_preference,
    }
    if body.relativity is not None:
        fields["relativity"] = body.relativity
    return SearchRequest.model_validate(fields)


def delete_request(body: DeleteMemoryBody, caller: str | None) -> DeleteMemoryRequest:
    """A delete by user, agent or filter, in that subject's cube (`caller` is the key's user: a
    filter alone names no cube). A subject without a filter or memory type is an erasure of what
    it wrote there."""
    subject = body.user_id or body.agent_id or caller
    if subject is None:
        raise InvalidRequest(
            "filter: a delete by filter alone names no user; with API keys off, delete by user_id "
            "(or run memcube with MEMCUBE_AUTH=keys, so the key names the user)"
        )
    flt = body.filter
    if body.memory_type is not None:
        by_type = {"memory_type": body.memory_type}
        flt = {"and": [flt, by_type]} if flt else by_type
    return DeleteMemoryRequest(user_id=subject, writable_cube_ids=[subject], filter=flt)


def _with_knowledgebases(subject: str, knowledgebases: list[str] | None, field: str) -> list[str]:
    cubes = list(dict.fromkeys([subject, *(knowledgebases or [])]))
    if len(cubes) > limits.MAX_CUBES_PER_REQUEST:
        raise InvalidRequest(
            f"{field}: at most {limits.MAX_CUBES_PER_REQUEST - 1} knowledge bases, got {len(cubes) - 1}"
        )
    return cubes


def _tagged_info(info: dict[str, Any] | None, **ids: str | None) -> dict[str, Any]:
    out = dict(info or {})
    for key, value in ids.items():
        if value is None:
            continue
        if key in out and out[key] != value:
            raise InvalidRequest(f"info.{key}: {out[key]!r} differs from {key} {value!r}; send one of them")
        out[key] = value
    try:
        check_info(out)
    except ValueError as exc:
        raise InvalidRequest(f"info: {exc}") from exc
    return out


def _unsupported(allow_public: bool, memory_views: list[str] | None) -> None:
    if allow_public:
        raise InvalidRequest(
            "allow_public: memcube has no public memory; share a knowledge base instead (create_knowledgebase)"
        )
    if memory_views:
        raise InvalidRequest("allow_memory_view: memory views are not supported by memcube; leave it empty")


# --- knowledge-base files ---------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """One uploaded file, decoded: its name, bytes and type."""

    name: str
    data: bytes
    mime: str

    @property
    def size_mb(self) -> float:
        return round(len(self.data) / 1_048_576, 4)


def file_id_for(knowledgebase_id: str, data: bytes) -> str:
    """`<knowledgebase_id>:<24 hex of the SHA-256>`: the same file in the same knowledge base has
    the same id (a repeat upload adds nothing new), and the id names the cube it lives in."""
    return f"{knowledgebase_id}:{hashlib.sha256(data).hexdigest()[:24]}"


def cube_of_file(file_id: str, where: str) -> str:
    match = _FILE_ID.fullmatch(file_id)
    if match is None:
        raise InvalidRequest(f"{where}: {file_id!r} is not a knowledge-base file id (<knowledgebase_id>:<24 hex>)")
    return match.group("cube")


def mime_for(name: str, declared: str | None = None) -> str:
    """The type to read a file as: a specific declared type, else by its name's extension."""
    declared = (declared or "").split(";")[0].strip().lower()
    if declared and declared not in {"application/octet-stream", "binary/octet-stream"}:
        mime = declared
    else:
        mime = FILE_TYPES.get(_suffix(name), "")
    if not readable(mime):
        shown = mime or f"unknown (name {name!r})"
        raise InvalidRequest(f"file: type {shown} is not supported; upload {SUPPORTED}")
    return mime


def json_upload(file: KnowledgebaseFile, n: int) -> Upload:
    """A JSON upload's file: `content` a data URL (base64 or percent-encoded) or the text itself."""
    where = f"file[{n}]"
    if file.type == "skill":
        raise InvalidRequest(f"{where}.type: skill packages are not supported by memcube; upload documents")
    content = file.content
    if content.startswith(URL_PREFIXES):
        raise InvalidRequest(f"{where}.content: URLs are not fetched; send the file inline as a base64 data URL")
    match = DATA_URL.match(content)
    name = file.name or f"file-{n + 1}.txt"
    if match is None:  # the file's text itself
        mime = FILE_TYPES.get(_suffix(name), "text/plain")
        if mime in BINARY_FILE_TYPES:
            raise InvalidRequest(f"{where}.content: send a PDF as a data URL (data:application/pdf;base64,...)")
        return Upload(name, content.encode(), mime)
    payload = match.group("data")
    try:
        data = base64.b64decode(payload, validate=True) if match.group("b64") else unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"{where}.content: not a valid data URL ({exc})") from exc
    return Upload(name, data, mime_for(name, match.group("mime")))


def _suffix(name: str) -> str:
    return name[name.rfind(".") :].lower() if "." in name else ""


def upload_request(knowledgebase_id: str, uploads: Sequence[Upload], user_id: str) -> tuple[AddRequest, list[str]]:
    """The add of these files into the knowledge base's cube, and their file ids."""
    if len(uploads) > limits.MAX_FILES_PER_REQUEST:
        raise InvalidRequest(f"file: at most {limits.MAX_FILES_PER_REQUEST} files per upload, got {len(uploads)}")
    total = sum(len(u.data) for u in uploads)
    if total > limits.MAX_FILE_BYTES:
        raise InvalidRequest(f"file: at most {limits.MAX_FILE_BYTES} bytes of files per upload, got {total}")
    parts: list[MessageEntry] = []
    ids: list[str] = []
    for n, upload in enumerate(uploads):
        if not upload.data.strip():
            raise InvalidRequest(f"file[{n}]: {upload.name!r} is empty")
        file_id = file_id_for(knowledgebase_id, upload.data)
        if len(file_id) > limits.MAX_ID_CHARS:
            raise InvalidRequest(
                f"knowledgebase_id: at most {limits.MAX_ID_CHARS - 25} characters for file uploads "
                "(file ids are <knowledgebase_id>:<24 hex>)"
            )
        parts.append(
            FilePart(type="file", file=FileData(file_data=_file_data(upload, n), file_id=file_id, filename=upload.name))
        )
        ids.append(file_id)
    req = AddRequest(user_id=user_id, writable_cube_ids=[knowledgebase_id], messages=parts)
    return req, ids


def _file_data(upload: Upload, n: int) -> str:
    if upload.mime in BINARY_FILE_TYPES:
        return f"data:{upload.mime};base64,{base64.b64encode(upload.data).decode()}"
    try:
        return upload.data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"file[{n}]: {upload.name!r} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from exc


def knowledgebase_id_for(name: str) -> str:
    """A new knowledge base's id: `kb-<name as a slug>-<8 random hex>` (`kb-<16 hex>` for a name
    with no ASCII letters or digits)."""
    slug = _SLUG.sub("-", name.lower()).strip("-")[:40].strip("-")
    return f"kb-{slug}-{secrets.token_hex(4)}" if slug else f"kb-{secrets.token_hex(8)}"


# --- the use cases the hosted API has and /product has not as one call ------------------------


class OpenMemService:
    """Deletes by memory id for a caller that names no user, and knowledge bases."""

    def __init__(
        self,
        users: UserDirectory,
        deleter: DeletionService,
        cubes: CubeService,
    ) -> None:
        self._users = users
        self._deleter = deleter
        self._cubes = cubes

    def delete_memories(self, memory_ids: list[str], principal: Principal | None) -> Receipt:
        """Delete by ids, as `principal`, or (keys off, no user named) each as its writer."""
        if principal is None:
            return self._deleter.delete_as_writers(memory_ids)
        return self._deleter.delete(DeleteMemoryRequest(user_id=principal.user_id, memory_ids=memory_ids), principal)

    def create_knowledgebase(self, body: CreateKnowledgebaseBody, principal: Principal | None) -> str:
        """A new knowledge-base cube owned by `principal`; with keys off (no principal) an open
        cube, of which nothing is recorded but its id."""
        knowledgebase_id = knowledgebase_id_for(body.knowledgebase_name)
        if principal is not None:
            self._cubes.create(CreateCubeRequest(user_id=principal.user_id, cube_id=knowledgebase_id), principal)
        return knowledgebase_id

    def delete_knowledgebase(self, knowledgebase_id: str, principal: Principal) -> Receipt:
        if knowledgebase_id == principal.user_id or self._users.is_user(knowledgebase_id):
            raise InvalidRequest(
                f"knowledgebase_id: {knowledgebase_id!r} is a user's personal cube, not a knowledge base"
            )
        return self._deleter.erase_cube(knowledgebase_id, principal)

    def delete_files(self, file_ids: list[str], principal: Principal) -> Receipt:
        """Delete every memory of these files, in the knowledge bases their ids name."""
        by_cube: dict[str, list[str]] = {}
        for n, file_id in enumerate(dict.fromkeys(file_ids)):
            by_cube.setdefault(cube_of_file(file_id, f"file_ids[{n}]"), []).append(file_id)
        return self._deleter.delete_files(by_cube, principal)


def memory_views(outcomes: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """The memory ids a task touched, by outcome (`added`, `merged`, `duplicate`, `updated`, `archived`)."""
    views: dict[str, list[str]] = {}
    for memory_id, outcome in outcomes:
        ids = views.setdefault(outcome, [])
        if memory_id not in ids:
            ids.append(memory_id)
    return views
