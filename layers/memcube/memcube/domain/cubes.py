"""Knowledge-base cubes: created with an owner, shared by read/write grants (see permissions)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from memcube.domain.commands import GrantChange, NewCube
from memcube.domain.errors import Conflict, Forbidden, InvalidRequest, NotFound
from memcube.domain.model import MemoryItem, Principal, iso, utcnow
from memcube.domain.permissions import CubeAcl, authorize_owner, authorize_read
from memcube.ports import KeyStore, UserDirectory

ATTEMPTS = 5


TAKEN = "cube_id: {!r} is taken (a user's personal cube or an existing knowledge base); choose another id"


class CubeService:
    def __init__(
        self,
        users: UserDirectory,
        keys: KeyStore | None = None,
        now: Callable[[], str] = lambda: iso(utcnow()),
    ) -> None:
        self._users = users
        self._keys = keys
        self._now = now

    def is_user(self, user_id: str) -> bool:
        """A registered user, or one with an API key (a key made before users were registered
        at key creation still makes its user exist)."""
        return self._users.is_user(user_id) or (self._keys is not None and bool(self._keys.list_keys(user_id)))

    def create(self, req: NewCube, principal: Principal) -> CubeAcl:
        # One answer for a user's id and an existing cube: the 409 tells no user ids apart.
        if req.cube_id == principal.user_id or self.is_user(req.cube_id):
            raise Conflict(TAKEN.format(req.cube_id))
        acl = CubeAcl(
            cube_id=req.cube_id,
            owner_id=principal.user_id,
            readers=sorted(set(req.readers) - {principal.user_id}),
            writers=sorted(set(req.writers) - {principal.user_id}),
            created_at=self._now(),
            default_ttl_days=req.default_ttl_days,
        )
        if not self._users.create_cube(acl):
            raise Conflict(TAKEN.format(req.cube_id))
        self._users.register_user(principal.user_id)  # only once created: a refused request writes nothing
        return acl

    def grant(self, req: GrantChange, principal: Principal) -> CubeAcl:
        return self._change(req, principal, add=True)

    def revoke(self, req: GrantChange, principal: Principal) -> CubeAcl:
        return self._change(req, principal, add=False)

    def get(self, cube_id: str, principal: Principal) -> CubeAcl:
        """The cube's grants, for its owner (or an admin). Anyone else gets the same 403 whether
        the cube exists or not, so grant and revoke are no existence oracle."""
        acl = self._users.get_cube(cube_id)
        if acl is None and "admin" not in principal.scopes:
            raise Forbidden(f"cube_id: only the owner of {cube_id!r} (or an admin key) may do this")
        if acl is None:
            raise NotFound(f"cube_id: {cube_id!r} was not created")
        authorize_owner(principal, cube_id, self._users)
        return acl

    def describe(self, cube_id: str, principal: Principal) -> CubeAcl:
        """A knowledge-base cube's record, for anyone who may read it (its settings, such as
        `default_ttl_days`, decide what their adds do); 404 for a cube that was not created (a
        personal cube has no record), the read refusal (403) for a cube they may not read."""
        authorize_read(principal, cube_id, self._users)
        acl = self._users.get_cube(cube_id)
        if acl is None:
            raise NotFound(f"cube_id: {cube_id!r} is not a knowledge-base cube (none was created with that id)")
        return acl

    def _change(self, req: GrantChange, principal: Principal, *, add: bool) -> CubeAcl:
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


def planted_cubes(users: UserDirectory, keys: KeyStore, items: Iterable[MemoryItem]) -> list[dict[str, object]]:
    """What an operator must look at in data written before ownership came from identity: a
    knowledge-base record (owner and grants) whose id is a user's (someone claimed the user's
    personal cube before the user wrote), and memories in a user's personal cube written by
    another user. A user is one that is registered or has an API key. One finding per cube
    (and writer), in cube order; nothing is changed."""
    key_users = {key.user_id for key in keys.list_keys(None)}

    def is_user(user_id: str) -> bool:
        return user_id in key_users or users.is_user(user_id)

    foreign: dict[tuple[str, str], list[str]] = {}
    cubes: set[str] = set(key_users)
    for item in items:
        cube, writer = item.metadata.cube_id, item.metadata.user_id
        cubes.add(cube)
        if writer != cube and is_user(cube):
            foreign.setdefault((cube, writer), []).append(item.id)
    findings: list[dict[str, object]] = []
    for cube in sorted(cubes):
        acl = users.get_cube(cube)
        if acl is not None and is_user(cube) and acl.owner_id != cube:
            findings.append(
                {
                    "cube_id": cube,
                    "finding": "knowledge_base_with_a_users_id",
                    "owner_id": acl.owner_id,
                    "readers": acl.readers,
                    "writers": acl.writers,
                }
            )
    for (cube, writer), ids in sorted(foreign.items()):
        findings.append(
            {
                "cube_id": cube,
                "finding": "another_users_memories_in_a_personal_cube",
                "writer": writer,
                "count": len(ids),
                "memory_ids": ids[:20],
            }
        )
    return findings
