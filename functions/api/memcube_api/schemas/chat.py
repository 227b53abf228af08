"""Chat's wire formats: MemOS's `/product/chat/complete` and `/product/chat/stream` requests
(`ChatRequest`: APIChatCompleteRequest and ChatRequest have the same fields), the hosted API's
`POST /chat` (`ChatBody`, what `MemOSClient.chat` sends) and `POST /get/message` (`GetMessageBody`),
the product "last N messages" read (`GetMessageRequest`), their mapping onto `ChatCommand`, and the
answer's views and server-sent events.

Every field does what MemOS documents or is refused naming it. The hosted SDK sends every field
with its default on every call, so a default is accepted and only a value memcube cannot honour
is refused (`internet_search=true`, `force_stop=true`, `use_mem_os_cube=true`, `allow_public=true`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from memcube.domain import limits
from memcube.domain.base import Model
from memcube.domain.conversation import MAX_MESSAGE_LIMIT, MAX_SESSION_LIMIT, ConversationMessage
from memcube.domain.ids import Id, check_cube_ids
from memcube.ports import ChatTurn, Sampling
from memcube_api.schemas.hosted import CubeIds, Info, Tags, _tagged_info, _with_knowledgebases
from memcube_api.schemas.product import SearchRequest

if TYPE_CHECKING:  # the chat service loads on the first chat, not with the app (cold start)
    from memcube.domain.chat import ChatAnswer, ChatCommand, Reference, Session

MAX_QUERY_CHARS = 4096
MAX_SYSTEM_PROMPT_CHARS = 16_384
MAX_ANSWER_TOKENS = 32_768
DEFAULT_SESSION = "default_session"


class HistoryMessage(Model):
    """One earlier turn of the conversation, as text (MemOS's MessageList entry)."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=limits.MAX_CONTENT_BYTES)
    chat_time: str | None = Field(default=None, max_length=64)
    message_id: str | None = Field(default=None, max_length=limits.MAX_ID_CHARS)


class ChatRequest(Model):
    """MemOS's APIChatCompleteRequest / ChatRequest (names, types and defaults as MemOS v2)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {"user_id": "alice", "query": "Where do I live now?", "session_id": "s-1", "threshold": 0.3}
        },
    )

    user_id: Id
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    readable_cube_ids: list[str] | None = None
    writable_cube_ids: list[str] | None = None
    history: list[HistoryMessage] | None = Field(default=None, max_length=limits.MAX_MESSAGES)
    mode: Literal["fast", "fine", "mixture"] = "fast"
    system_prompt: str | None = Field(default=None, max_length=MAX_SYSTEM_PROMPT_CHARS)
    top_k: int = Field(default=10, ge=1, le=100)
    session_id: Id | None = None
    include_preference: bool = True
    pref_top_k: int = Field(default=6, ge=0, le=100)
    model_name_or_path: str | None = Field(default=None, max_length=256)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_ANSWER_TOKENS)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    add_message_on_answer: bool = True
    manager_user_id: Id | None = None
    project_id: Id | None = None
    relativity: float = Field(default=0.45, ge=0.0, le=1.0)
    filter: dict[str, Any] | None = None
    internet_search: bool = False
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    mem_cube_id: Id | None = Field(default=None, json_schema_extra={"deprecated": True})
    moscube: bool = Field(default=False, json_schema_extra={"deprecated": True})

    @field_validator("readable_cube_ids", "writable_cube_ids")
    @classmethod
    def _cubes(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_cube_ids(value)

    @model_validator(mode="after")
    def _refusals(self) -> ChatRequest:
        if self.internet_search:
            raise ValueError("internet_search: memcube answers from memories only, never the internet (send false)")
        if self.moscube:
            raise ValueError("moscube: the legacy MemOSCube pipeline does not exist in memcube (send false)")
        return self

    def to_command(self) -> ChatCommand:
        from memcube.domain.chat import ChatCommand

        fallback = [self.mem_cube_id] if self.mem_cube_id else [self.user_id]
        search = SearchRequest(
            query=self.query,
            user_id=self.user_id,
            readable_cube_ids=self.readable_cube_ids or fallback,
            mode=self.mode,
            session_id=self.session_id,
            top_k=self.top_k,
            relativity=self.relativity,
            filter=self.filter,
            include_preference=self.include_preference,
            pref_top_k=self.pref_top_k,
        )
        return ChatCommand(
            user_id=self.user_id,
            query=self.query,
            search=search.to_query(),
            session_id=self.session_id or DEFAULT_SESSION,
            history=[ChatTurn(m.role, m.content) for m in self.history or []],
            system_prompt=self.system_prompt,
            threshold=self.threshold,
            sampling=Sampling(self.max_tokens, self.temperature, self.top_p),
            model=self.model_name_or_path,
            add_message_on_answer=self.add_message_on_answer,
            writable_cube_ids=self.writable_cube_ids or fallback,
            manager_user_id=self.manager_user_id,
            project_id=self.project_id,
        )


class ChatBody(Model):
    """`POST /chat` of the hosted API: what `MemOSClient.chat` sends (every field, every call)."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    conversation_id: Id | None = None
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    internet_search: bool = False
    force_stop: bool = False
    use_mem_os_cube: bool = False
    source: str | None = Field(default=None, max_length=256)
    system_prompt: str | None = Field(default=None, max_length=MAX_SYSTEM_PROMPT_CHARS)
    model_name: str | None = Field(default=None, max_length=256)
    knowledgebase_ids: CubeIds | None = None
    filter: dict[str, Any] | None = None
    add_message_on_answer: bool = True
    app_id: Id | None = None
    agent_id: Id | None = None
    async_mode: bool = True
    tags: Tags | None = None
    info: Info | None = None
    allow_public: bool = False
    allow_knowledgebase_ids: CubeIds | None = None
    max_tokens: int = Field(default=8192, ge=1, le=MAX_ANSWER_TOKENS)
    temperature: float | None = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float | None = Field(default=0.95, gt=0.0, le=1.0)
    include_preference: bool = True
    preference_limit_number: int = Field(default=6, ge=0, le=100)
    memory_limit_number: int = Field(default=6, ge=1, le=100)
    stream: bool = False
    include_tool_memory: bool = False
    tool_memory_limit_number: int = Field(default=6, ge=0, le=100)
    relativity: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _refusals(self) -> ChatBody:
        refused = {
            "internet_search": "memcube answers from memories only, never the internet",
            "force_stop": "an answer is stopped by closing its stream; there is nothing to stop by request",
            "use_mem_os_cube": "MemOS's public cube does not exist in memcube",
            "allow_public": "memcube keeps no public memory",
        }
        for name, why in refused.items():
            if getattr(self, name):
                raise ValueError(f"{name}: {why} (send false)")
        return self


def chat_command(body: ChatBody) -> ChatCommand:
    """The hosted chat as a `/product` chat in the user's cube (and the knowledge bases named),
    the exchange added as `add/message` would add it (tags, info with app_id and agent_id, source)."""
    fields: dict[str, Any] = {
        "query": body.query,
        "user_id": body.user_id,
        "readable_cube_ids": _with_knowledgebases(body.user_id, body.knowledgebase_ids, "knowledgebase_ids"),
        "session_id": body.conversation_id,
        "top_k": body.memory_limit_number,
        "filter": body.filter,
        "include_preference": body.include_preference,
        "pref_top_k": body.preference_limit_number,
        "search_tool_memory": body.include_tool_memory,
        "tool_mem_top_k": body.tool_memory_limit_number,
    }
    if body.relativity is not None:
        fields["relativity"] = body.relativity
    search = SearchRequest.model_validate(fields)
    info = dict(_tagged_info(body.info, app_id=body.app_id, agent_id=body.agent_id) or {})
    if body.source and "source" not in info:
        info["source"] = body.source
    base = ChatRequest(
        user_id=body.user_id,
        query=body.query,
        session_id=body.conversation_id,
        system_prompt=body.system_prompt,
        add_message_on_answer=body.add_message_on_answer,
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        threshold=0.0,  # the hosted chat hands the model what the search kept (its relativity)
    ).to_command()
    return replace(
        base,
        search=search.to_query(),
        model=body.model_name,
        model_field="model_name",
        writable_cube_ids=_with_knowledgebases(body.user_id, body.allow_knowledgebase_ids, "allow_knowledgebase_ids"),
        async_mode="async" if body.async_mode else "sync",
        custom_tags=body.tags or [],
        info=info,
    )


class GetMessageBody(Model):
    """`POST /get/message` of the hosted API (`MemOSClient.get_message`)."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    conversation_id: Id | None = None
    conversation_limit_number: int | None = Field(default=None, ge=1, le=MAX_SESSION_LIMIT)
    message_limit_number: int | None = Field(default=None, ge=1, le=MAX_MESSAGE_LIMIT)
    source: str | None = Field(default=None, max_length=256)

    @field_validator("source")
    @classmethod
    def _no_source(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError("messages are not kept by source, so they cannot be read by it (send null)")
        return value


class GetMessageRequest(Model):
    """`POST /product/get_message`: the last `limit` messages of a session (MemOS's "last N
    messages" of a conversation), or of each of the user's `session_limit` most recent sessions."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    session_id: Id | None = None
    limit: int = Field(default=20, ge=1, le=MAX_MESSAGE_LIMIT)
    session_limit: int = Field(default=1, ge=1, le=MAX_SESSION_LIMIT)


# --- answers -------------------------------------------------------------------------------------


def reference_view(r: Reference) -> dict[str, Any]:
    return {
        "reference_number": r.number,
        "memory_id": r.memory_id,
        "cube_id": r.cube_id,
        "memory": r.memory,
        "relativity": round(min(r.relativity, 1.0), 4),
    }


def answer_view(a: ChatAnswer, *, session_field: str = "session_id") -> dict[str, Any]:
    """MemOS's `{response, reasoning}`, plus the citations (the memory ids the answer used), every
    memory offered to the model, the add task of the exchange, and what could not be done."""
    return {
        "response": a.response,
        "reasoning": a.reasoning,
        "references": [reference_view(r) for r in a.cited],
        "memory_ids": [r.memory_id for r in a.cited],
        "retrieved": [reference_view(r) for r in a.offered],
        session_field: a.session_id,
        "task_id": a.task_id,
        "task_status": a.task_status,
        "notes": a.notes,
    }


def message_view(m: ConversationMessage) -> dict[str, Any]:
    return {
        "message_id": m.message_id,
        "conversation_id": m.session_id,
        "role": m.role,
        "content": m.content,
        "chat_time": m.chat_time or m.created_at,
        "create_time": m.created_at,
        "source": m.source,
        "references": m.references,
        "task_id": m.task_id,
    }


def session_views(sessions: list[Session]) -> list[dict[str, Any]]:
    return [message_view(m) for s in sessions for m in s.messages]


def sse(event: dict[str, Any]) -> str:
    """One server-sent event: a `data:` line of JSON (what MemOS's stream and the SDK's
    `_iter_sse_data` read), then the blank line that ends it."""
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n"
