"""Knowledge bases as the hosted MemOS API has them: knowledge-base cubes created with the caller
as owner, whose files are read in document mode, each file under the id
`<knowledgebase_id>:<24 hex of its SHA-256>`, so a file id alone names its cube (the hosted API
deletes files by id only). Also the delete by memory ids for a caller that names no user."""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import TYPE_CHECKING

from memcube.domain.commands import DeleteMemories, NewCube
from memcube.domain.errors import InvalidRequest
from memcube.domain.model import Principal
from memcube.ports import UserDirectory

if TYPE_CHECKING:  # the services it is given, built by the container on first use (the API's cold start)
    from memcube.domain.cubes import CubeService
    from memcube.domain.deletion import DeletionService, Receipt

_SLUG = re.compile(r"[^a-z0-9]+")
_FILE_ID = re.compile(r"^(?P<cube>.+):(?P<digest>[0-9a-f]{24})$")


def file_id_for(knowledgebase_id: str, data: bytes) -> str:
    """`<knowledgebase_id>:<24 hex of the SHA-256>`: the same file in the same knowledge base has
    the same id (a repeat upload adds nothing new), and the id names the cube it lives in."""
    return f"{knowledgebase_id}:{hashlib.sha256(data).hexdigest()[:24]}"


def cube_of_file(file_id: str, where: str) -> str:
    match = _FILE_ID.fullmatch(file_id)
    if match is None:
        raise InvalidRequest(f"{where}: {file_id!r} is not a knowledge-base file id (<knowledgebase_id>:<24 hex>)")
    return match.group("cube")


def knowledgebase_id_for(name: str) -> str:
    """A new knowledge base's id: `kb-<name as a slug>-<8 random hex>` (`kb-<16 hex>` for a name
    with no ASCII letters or digits)."""
    slug = _SLUG.sub("-", name.lower()).strip("-")[:40].strip("-")
    return f"kb-{slug}-{secrets.token_hex(4)}" if slug else f"kb-{secrets.token_hex(8)}"


class KnowledgeBaseService:
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
        return self._deleter.delete(DeleteMemories(user_id=principal.user_id, memory_ids=memory_ids), principal)

    def create_knowledgebase(self, name: str, principal: Principal | None) -> str:
        """A new knowledge-base cube named after `name`, owned by `principal`; with keys off (no
        principal) an open cube, of which nothing is recorded but its id."""
        knowledgebase_id = knowledgebase_id_for(name)
        if principal is not None:
            self._cubes.create(NewCube(cube_id=knowledgebase_id, readers=[], writers=[]), principal)
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
