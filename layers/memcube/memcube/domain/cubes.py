"""Knowledge-base cubes: created with an owner, shared by read/write grants (see permissions)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from memcube.domain import limits
from memcube.domain.errors import Conflict, InvalidRequest, NotFound
from memcube.domain.model import Principal, iso, utcnow
from memcube.domain.permissions import CubeAcl, UserDirectory, authorize_owner
from memcube.domain.requests import Id

ATTEMPTS = 5


class CreateCubeRequest(BaseModel):
    """`POST /product/create_cube`: a knowledge-base cube owned by `user_id`."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    cube_id: Id
    readers: list[Id] = Field(default_factory=list, max_length=limits.MAX_GRANTS)
    writers: list[Id] = Field(default_factory=list, max_length=limits.MAX_GRANTS)


class GrantRequest(BaseModel):
    """`POST /product/grant_cube` and `/product/revoke_cube`."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    cube_id: Id
    target_user_id: Id
    permission: Literal["read", "write"]


class CubeService:
    def __init__(self, users: UserDirectory, now: Callable[[], str] = lambda: iso(utcnow())) -> None:
        self._users = users
        self._now = now

    def create(self, req: CreateCubeRequest, principal: Principal) -> CubeAcl:
        if req.cube_id == principal.user_id or self._users.is_user(req.cube_id):
            raise Conflict(f"cube_id: {req.cube_id!r} is a user's personal cube; it needs no creating")
        acl = CubeAcl(
            cube_id=req.cube_id,
            owner_id=principal.user_id,
            readers=sorted(set(req.readers) - {principal.user_id}),
            writers=sorted(set(req.writers) - {principal.user_id}),
            created_at=self._now(),
        )
        if not self._users.create_cube(acl):
            raise Conflict(f"cube_id: {req.cube_id!r} already exists")
        self._users.register_user(principal.user_id)  # only once created: a refused request writes nothing
        return acl

    def grant(self, req: GrantRequest, principal: Principal) -> CubeAcl:
        return self._change(req, principal, add=True)

    def revoke(self, req: GrantRequest, principal: Principal) -> CubeAcl:
        return self._change(req, principal, add=False)

    def get(self, cube_id: str, principal: Principal) -> CubeAcl:
        acl = self._users.get_cube(cube_id)
        if acl is None:
            raise NotFound(f"cube_id: {cube_id!r} was not created")
        authorize_owner(principal, cube_id, self._users)
        return acl

    def _change(self, req: GrantRequest, principal: Principal, *, add: bool) -> CubeAcl:
        acl = self.get(req.cube_id, principal)
        if req.target_user_id == acl.owner_id:
            raise InvalidRequest("target_user_id: the owner always has every right")
        for _ in range(ATTEMPTS):
            field = "writers" if req.permission == "write" else "readers"
            members = set(getattr(acl, field))
            members = members | {req.target_user_id} if add else members - {req.target_user_id}
            changes: dict[str, object] = {field: sorted(members), "version": acl.version + 1}
            if not add and req.permission == "read":  # revoking read takes write too: write implies read
                changes["writers"] = sorted(set(acl.writers) - {req.target_user_id})
            updated = acl.model_copy(update=changes)
            if self._users.update_cube(updated, expected_version=acl.version):
                return updated
            acl = self.get(req.cube_id, principal)
        raise Conflict(f"cube_id: {req.cube_id!r} kept changing; retry")
