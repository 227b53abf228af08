"""The one place that decides whether a principal may read, write or own a cube.

- A **personal cube** (cube id equal to a user id) belongs to that user alone; another user's
  personal cube is never readable or writable. A cube id is personal when a user with that id is
  known, and a user is known from their identity, not their first write: from the moment their
  API key is made, and for a JWT subject or a user a service key acts for, from their first
  request (`auth.Authority`). A knowledge base's id is never a user's (`cubes.CubeService.create`
  refuses a user's id, and acting as a knowledge base's id is refused).
- A **knowledge-base cube** is created with an owner (`cubes.CubeService.create`); the owner
  grants `read` or `write` to other users. Write implies read. Only the owner (or an admin key)
  grants, revokes and deletes the cube.
- A knowledge-base cube nobody created is open only while API keys are off (the loopback-only
  embedded default, where MemOS's open cubes are kept). A principal authenticated by a key (it
  carries the key's scope) is refused such a cube until it is created.

Service and admin keys act *as* the user named in the body, so they get that user's rights.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import ConfigDict, Field

from memcube.domain.base import Model
from memcube.domain.errors import Forbidden
from memcube.domain.model import Principal
from memcube.ports import UserDirectory

KEYED = frozenset({"user", "service", "admin"})
"""The scopes of a principal authenticated by an API key."""
Need = Literal["read", "write", "own"]


class CubeAcl(Model):
    """A knowledge-base cube's owner and grants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cube_id: str
    owner_id: str
    readers: list[str] = Field(default_factory=list)
    writers: list[str] = Field(default_factory=list)
    created_at: str
    version: int = 1
    default_ttl_days: int | None = Field(default=None, ge=1)
    """Memories written into the cube without an expiry of their own expire this many days after
    they were submitted (`domain.expiry`); None: they never expire by default."""


def allowed(principal: Principal, cube_id: str, users: UserDirectory, need: Need) -> bool:
    # A principal named like a knowledge base (a direct producer's message, say) is not its owner:
    # the cube is personal only when its id is a user's, or when no knowledge base has it.
    if cube_id == principal.user_id and (users.is_user(cube_id) or users.get_cube(cube_id) is None):
        return True
    if users.is_user(cube_id):
        return False  # someone else's personal cube
    acl = users.get_cube(cube_id)
    if acl is None:
        return not (principal.scopes & KEYED)
    if principal.user_id == acl.owner_id or (need == "own" and "admin" in principal.scopes):
        return True
    if need == "write":
        return principal.user_id in acl.writers
    if need == "read":
        return principal.user_id in acl.writers or principal.user_id in acl.readers
    return False


def authorize_write(principal: Principal, cube_ids: Iterable[str], users: UserDirectory) -> None:
    """All or nothing: raise naming every cube the principal may not write."""
    denied = [c for c in cube_ids if not allowed(principal, c, users, "write")]
    if denied:
        raise Forbidden(
            f"writable_cube_ids: user {principal.user_id!r} may not write {denied}: a personal cube is writable "
            "only by its user, a knowledge-base cube by its owner and the users it grants write"
        )


def authorize_read(principal: Principal, cube_id: str, users: UserDirectory) -> None:
    if not allowed(principal, cube_id, users, "read"):
        raise Forbidden(f"user {principal.user_id!r} may not read cube {cube_id!r}")


def authorize_owner(principal: Principal, cube_id: str, users: UserDirectory) -> None:
    if not allowed(principal, cube_id, users, "own"):
        raise Forbidden(f"cube_id: only the owner of {cube_id!r} (or an admin key) may do this")
