"""The hosted MemOS API's requests (the "openmem" cloud API that `memos.api.client.MemOSClient`
speaks), mapped onto the same domain as `/product/*`.

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

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from memcube.domain import limits
from memcube.domain.base import Model
from memcube.domain.errors import InvalidRequest
from memcube.domain.ids import Id, check_cube_ids, check_id, check_info, check_tags
from memcube.domain.model import MemoryItem, MemoryType, TaskState
from memcube_api.schemas.kinds import kind_fields
from memcube_api.schemas.messages import MAX_FILE_DATA_CHARS, ChatMessage, MessagesType
from memcube_api.schemas.product import AddRequest, DeleteMemoryRequest, SearchRequest

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


class _Body(Model):
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
    """`POST /get/memory`: one page of the subject's cube (of its memories that pass `filter`,
    the search's filter language, when one is given)."""

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
        "pref_top_k": body.preference_limit_number,
        "search_tool_memory": body.include_tool_memory,
        "tool_mem_top_k": body.tool_memory_limit_number,
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


def memory_views(outcomes: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """The memory ids a task touched, by outcome (`added`, `merged`, `duplicate`, `updated`, `archived`)."""
    views: dict[str, list[str]] = {}
    for memory_id, outcome in outcomes:
        ids = views.setdefault(outcome, [])
        if memory_id not in ids:
            ids.append(memory_id)
    return views


def detail(item: MemoryItem, relativity: float | None = None) -> dict[str, Any]:
    """A memory as the hosted API lists it (`memory_detail_list` entries), plus memcube's fields
    that say where it lives and came from."""
    meta = item.metadata
    view: dict[str, Any] = {
        "id": item.id,
        "memory_key": meta.key,
        "memory_value": item.memory,
        "memory_type": meta.memory_type,
        "create_time": meta.created_at,
        "update_time": meta.updated_at,
        "conversation_id": meta.session_id,
        "status": meta.status,
        "confidence": meta.confidence,
        "tags": meta.tags,
        "custom_tags": meta.custom_tags,
        "info": meta.info,
        "sources": [s.model_dump(mode="json", exclude_none=True, exclude={"data"}) for s in meta.sources],
        "user_id": meta.user_id,
        "cube_id": meta.cube_id,
    }
    view |= kind_fields(item)
    if relativity is not None:
        view["relativity"] = relativity
    return view
