"""`UserDirectory` in a set and a dict: a test double."""

from __future__ import annotations

import threading

from memcube.domain.permissions import CubeAcl


class InMemoryDirectory:
    """Known users and cube grants."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: set[str] = set()
        self._cubes: dict[str, CubeAcl] = {}

    def register_user(self, user_id: str) -> None:
        with self._lock:
            self._users.add(user_id)

    def is_user(self, user_id: str) -> bool:
        with self._lock:
            return user_id in self._users

    def get_cube(self, cube_id: str) -> CubeAcl | None:
        with self._lock:
            return self._cubes.get(cube_id)

    def create_cube(self, acl: CubeAcl) -> bool:
        with self._lock:
            if acl.cube_id in self._cubes:
                return False
            self._cubes[acl.cube_id] = acl
            return True

    def update_cube(self, acl: CubeAcl, expected_version: int) -> bool:
        with self._lock:
            stored = self._cubes.get(acl.cube_id)
            if stored is None or stored.version != expected_version:
                return False
            self._cubes[acl.cube_id] = acl
            return True

    def delete_cube(self, cube_id: str) -> bool:
        with self._lock:
            return self._cubes.pop(cube_id, None) is not None

    def cubes_of(self, user_id: str) -> list[CubeAcl]:
        with self._lock:
            acls = sorted(self._cubes.values(), key=lambda a: a.cube_id)
        return [a for a in acls if user_id == a.owner_id or user_id in a.readers or user_id in a.writers]
