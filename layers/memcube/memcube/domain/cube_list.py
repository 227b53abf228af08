"""The cubes a user can read, with their counts and grants: what the web console's cube page shows.

The list is the user's personal cube and the knowledge bases the directory says they own or are
granted (`UserDirectory.cubes_of`); each is checked again with `permissions.allowed`, the same
rule every read of the API applies, so a cube appears here exactly when its memories can be read.
Grants (readers and writers) are shown to the cube's owner (and an admin) only: a reader learns
the owner and their own right, not who else was let in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from memcube.domain.model import Principal
from memcube.domain.permissions import CubeAcl, allowed
from memcube.ports import MemoryStore, UserDirectory

Role = Literal["owner", "writer", "reader"]


@dataclass(frozen=True)
class CubeSummary:
    cube_id: str
    kind: Literal["personal", "knowledge_base"]
    owner_id: str
    role: Role
    memories: int
    """Activated memories (archived versions are not counted)."""
    readers: list[str] | None = None
    """None when the caller is not the owner (or an admin): grants are the owner's to see."""
    writers: list[str] | None = None
    created_at: str | None = None


@dataclass(frozen=True)
class CubeList:
    user_id: str
    scopes: list[str]
    cubes: list[CubeSummary] = field(default_factory=list)


class CubeLister:
    def __init__(self, users: UserDirectory, memories: MemoryStore) -> None:
        self._users = users
        self._memories = memories

    def list(self, principal: Principal) -> CubeList:
        """The principal's personal cube (when it is theirs) and every knowledge base they may read."""
        cubes: list[CubeSummary] = []
        me = principal.user_id
        if allowed(principal, me, self._users, "read") and self._users.get_cube(me) is None:
            cubes.append(CubeSummary(me, "personal", me, "owner", self._count(me)))
        for acl in self._users.cubes_of(me):
            if acl.cube_id != me and allowed(principal, acl.cube_id, self._users, "read"):
                cubes.append(self._summary(acl, principal))
        return CubeList(me, sorted(principal.scopes), cubes)

    def _summary(self, acl: CubeAcl, principal: Principal) -> CubeSummary:
        role: Role = "reader"
        if principal.user_id == acl.owner_id:
            role = "owner"
        elif principal.user_id in acl.writers:
            role = "writer"
        sees_grants = role == "owner" or "admin" in principal.scopes
        return CubeSummary(
            acl.cube_id,
            "knowledge_base",
            acl.owner_id,
            role,
            self._count(acl.cube_id),
            readers=list(acl.readers) if sees_grants else None,
            writers=list(acl.writers) if sees_grants else None,
            created_at=acl.created_at,
        )

    def _count(self, cube_id: str) -> int:
        _, total = self._memories.list_memories(cube_id, 0, 0)  # the count alone, no item read
        return total
