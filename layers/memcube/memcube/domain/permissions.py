"""The one place that decides whether a principal may write or read a cube.

Until API keys and cube grants exist (the security issue), the rule is: a personal cube (cube id
equal to a user id) belongs to that user alone; any other cube is open. A cube id is personal
when a user with that id is known to the service (every principal is registered on its first add).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from memcube.domain.errors import Forbidden
from memcube.domain.model import Principal


class UserDirectory(Protocol):
    def register_user(self, user_id: str) -> None:
        """Remember that `user_id` exists (idempotent)."""
        ...

    def is_user(self, user_id: str) -> bool: ...


def _allowed(principal: Principal, cube_id: str, users: UserDirectory) -> bool:
    return cube_id == principal.user_id or not users.is_user(cube_id)


def authorize_write(principal: Principal, cube_ids: Iterable[str], users: UserDirectory) -> None:
    """All or nothing: raise naming every cube the principal may not write."""
    denied = [c for c in cube_ids if not _allowed(principal, c, users)]
    if denied:
        raise Forbidden(
            f"writable_cube_ids: user {principal.user_id!r} may not write {denied}: "
            "a personal cube is writable only by its own user"
        )


def authorize_read(principal: Principal, cube_id: str, users: UserDirectory) -> None:
    if not _allowed(principal, cube_id, users):
        raise Forbidden(f"user {principal.user_id!r} may not read cube {cube_id!r}")
