"""MemOS's read requests beyond search and a plain page (`/product/get_all`,
`/product/get_memory_by_ids`, `/product/scheduler/{wait,wait/stream,allstatus}`): names, types
and defaults as MemOS v2 has them, with memcube's bounds (pages, poll intervals)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, RootModel, field_validator, model_validator

from memcube.domain import limits
from memcube.domain.base import Model
from memcube.domain.ids import Id, check_cube_ids
from memcube.domain.limits import MAX_POLL_SECONDS, MIN_POLL_SECONDS
from memcube.domain.limits import MAX_READ_CUBES as MAX_CUBES
from memcube.domain.limits import MAX_READ_IDS as MAX_IDS
from memcube.domain.memories import MAX_PAGE_SIZE
from memcube_api.params import Params
from memcube_api.schemas.product import SHOW_EXPIRED

MemoryKind = Literal["text_mem", "act_mem", "param_mem", "para_mem"]
NO_SUCH_KIND: dict[str, str] = {
    "act_mem": "activation memories (KV caches)",
    "param_mem": "parametric memories (model adapters)",
    "para_mem": "parametric memories (model adapters)",
}
"""The kinds MemOS names that memcube never holds: `get_all` answers them empty, as MemOS does."""


class GetAllRequest(Model):
    """MemOS's GetMemoryPlaygroundRequest, paged: `page`/`page_size` (memcube's; MemOS returns
    up to 200 nodes of one cube) page each cube of `mem_cube_ids` (default: the user's own).
    With `search_query`, each cube's `page_size` memories most related to it instead, ranked by
    text relevance (`search_type` fulltext, MemOS's default) or vector similarity (embedding)."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    memory_type: MemoryKind
    mem_cube_ids: list[str] | None = Field(default=None, min_length=1, max_length=MAX_CUBES)
    search_query: str | None = Field(default=None, min_length=1, max_length=4096)
    search_type: Literal["embedding", "fulltext"] = "fulltext"
    page: int = Field(default=1, ge=1, le=100_000)
    page_size: int = Field(default=MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    show_expired: bool = Field(default=False, description=SHOW_EXPIRED)

    @field_validator("mem_cube_ids")
    @classmethod
    def _cubes(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_cube_ids(value)

    @model_validator(mode="after")
    def _ranked_once(self) -> GetAllRequest:
        if self.search_query is not None and self.page != 1:
            raise ValueError(
                "page: the memories related to search_query come as one ranked list of page_size; "
                "page through a cube without search_query"
            )
        return self

    @property
    def cube_ids(self) -> list[str]:
        return self.mem_cube_ids or [self.user_id]


class MemoryIds(RootModel[list[str]]):
    """`POST /product/get_memory_by_ids`: MemOS's body, a JSON list of memory ids."""

    root: list[str] = Field(min_length=1, max_length=MAX_IDS)

    @field_validator("root")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        for n, memory_id in enumerate(value):
            if not memory_id or len(memory_id) > 200:
                raise ValueError(f"memory_ids[{n}]: an id of 1-200 characters")
        return value


class ReaderParams(Params):
    """The reader of `get_memory_by_ids` (as of `GET /product/get_memory/{id}`): with keys off and
    no user named, each memory is read as its writer (as MemOS reads it)."""

    user_id: str | None = Field(default=None, max_length=limits.MAX_ID_CHARS)
    show_expired: bool = Field(default=False, description=SHOW_EXPIRED)


class WaitParams(Params):
    """`POST /product/scheduler/wait` and `GET /product/scheduler/wait/stream` (query parameters,
    as MemOS takes them). `user_name` is MemOS's name of the user; `user_id` is accepted too
    (one of them, or both equal). `task_id` (memcube's) waits for that task only."""

    user_name: Id | None = None
    user_id: Id | None = None
    task_id: str | None = Field(default=None, min_length=1, max_length=200)
    timeout_seconds: float = Field(default=120.0, ge=0, le=3600)
    poll_interval: float = Field(default=0.5, ge=MIN_POLL_SECONDS, le=MAX_POLL_SECONDS)

    @model_validator(mode="after")
    def _one_user(self) -> WaitParams:
        if self.user_name and self.user_id and self.user_name != self.user_id:
            raise ValueError("user_name: names the same user as user_id (send one of them)")
        return self

    @property
    def user(self) -> str | None:
        return self.user_name or self.user_id


class AllStatusParams(Params):
    """`GET /product/scheduler/allstatus`: the counts of one user's tasks (MemOS counts every
    user's; memcube never shows one user another's). With keys, the caller's own by default."""

    user_id: Id | None = None
