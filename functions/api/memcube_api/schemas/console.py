"""The requests of the routes the web console needs besides MemOS's (`routes.console`): the
caller's cubes, and the operators' dead letters and their redrive."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from memcube.domain.base import Model
from memcube.domain.ids import Id
from memcube_api.params import Params

MAX_REDRIVE_IDS = 1000


class ListCubesParams(Params):
    """`GET /product/list_cubes`: `user_id` is the user whose cubes are listed: the key's own
    without it (a service or admin key may name another user; with keys off it is required)."""

    user_id: Id | None = None


class DeadLettersParams(Params):
    """`GET /product/dead_letters` takes no parameter: it acts as the caller (an admin)."""


class RedriveRequest(Model):
    """`POST /product/redrive_dead_letters`: the letters to send back (all of them without `message_ids`)."""

    model_config = ConfigDict(extra="forbid")

    message_ids: list[str] | None = Field(default=None, min_length=1, max_length=MAX_REDRIVE_IDS)
