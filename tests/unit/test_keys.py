"""API keys are stored only as salted SHA-256 digests: the secret is shown once and never kept."""

from __future__ import annotations

import hashlib

from memcube.domain.auth import KeyService
from tests.doubles.keys import InMemoryKeys


def test_a_key_is_stored_only_as_a_salted_digest_of_its_secret() -> None:
    store = InMemoryKeys()
    keys = KeyService(store)
    first, plaintext = keys.create("alice")
    second, _ = keys.create("alice")
    secret = plaintext.split("_", 2)[2]
    stored = store.get_key(first.key_id)
    assert stored is not None
    assert secret not in stored.model_dump_json()
    assert stored.digest == hashlib.sha256(bytes.fromhex(stored.salt) + secret.encode()).hexdigest()
    assert first.salt != second.salt  # one salt per key: equal secrets would still differ
    assert "salt" not in stored.public() and "digest" not in stored.public()


def test_the_principal_comes_from_the_stored_key_not_from_the_request() -> None:
    keys = KeyService(InMemoryKeys())
    _, plaintext = keys.create("bot", "service")
    principal = keys.authenticate(f"Bearer {plaintext}")
    assert (principal.user_id, principal.scopes) == ("bot", frozenset({"service"}))
