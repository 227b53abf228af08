"""`KeyStore` in a dict: a test double."""

from __future__ import annotations

import threading

from memcube.domain.auth import ApiKey


class InMemoryKeys:
    """API keys by key id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._api_keys: dict[str, ApiKey] = {}

    def put_key(self, key: ApiKey) -> bool:
        with self._lock:
            if key.key_id in self._api_keys:
                return False
            self._api_keys[key.key_id] = key
            return True

    def get_key(self, key_id: str) -> ApiKey | None:
        with self._lock:
            return self._api_keys.get(key_id)

    def list_keys(self, user_id: str | None) -> list[ApiKey]:
        with self._lock:
            keys = [k for k in self._api_keys.values() if user_id is None or k.user_id == user_id]
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    def revoke_key(self, key_id: str, at: str) -> bool:
        with self._lock:
            key = self._api_keys.get(key_id)
            if key is None:
                return False
            if key.revoked_at is None:
                self._api_keys[key_id] = key.model_copy(update={"revoked_at": at})
            return True
