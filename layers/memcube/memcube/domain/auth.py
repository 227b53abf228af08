"""API keys: who is calling.

A key reads `mck_<key id>_<secret>`. The store keeps the key id, its principal (a user, with the
`user`, `service` or `admin` scope) and a salted SHA-256 digest of the secret, never the secret.
A key is shown once, when it is created. Lookup is by key id and the digest is compared in
constant time. The secret is 256 random bits, so a fast salted hash is enough: slow password
hashes (scrypt, bcrypt) exist for guessable secrets, and would add tens of milliseconds to every
request.

Clients send `Authorization: Token <key>` (what MemOS clients send) or `Bearer <key>`.

On AWS a stack may also put an API Gateway JWT authorizer in front (its own HTTP API): API
Gateway verifies the token's signature, issuer, audience and expiry before the function runs, and
the function takes the principal from the verified claims (`VerifiedToken`), never from a header.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import ConfigDict, Field

from memcube.domain.base import Model
from memcube.domain.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthorized
from memcube.domain.ids import Id, check_id
from memcube.domain.limiting import Limits
from memcube.domain.model import Principal, iso, utcnow
from memcube.ports import KeyStore, UserDirectory

Scope = Literal["user", "service", "admin"]
PREFIX = "mck"
_KEY = re.compile(rf"^{PREFIX}_([0-9a-f]{{16}})_([A-Za-z0-9_-]{{43}})$")
_SCHEMES = ("token", "bearer")


class ApiKey(Model):
    """A stored key: everything but the secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    user_id: Id
    scope: Scope = "user"
    label: str = Field(default="", max_length=200)
    salt: str
    digest: str
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def public(self) -> dict[str, object]:
        """What listing shows: no salt, no digest."""
        return self.model_dump(exclude={"salt", "digest"})


def digest_of(secret: str, salt: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def parse_authorization(header: str | None) -> tuple[str, str]:
    """(key id, secret) from an Authorization header, or Unauthorized naming what is wrong."""
    if not header or not header.strip():
        raise Unauthorized("Authorization: missing; send 'Token <api key>' or 'Bearer <api key>'")
    scheme, _, credential = header.strip().partition(" ")
    if scheme.lower() not in _SCHEMES:
        raise Unauthorized(f"Authorization: unsupported scheme {scheme[:20]!r}; use 'Token' or 'Bearer'")
    match = _KEY.fullmatch(credential.strip())
    if match is None:
        raise Unauthorized("Authorization: not a memcube API key (expected mck_<id>_<secret>)")
    return match.group(1), match.group(2)


class KeyService:
    def __init__(
        self, keys: KeyStore, users: UserDirectory | None = None, now: Callable[[], str] = lambda: iso(utcnow())
    ) -> None:
        self._keys = keys
        self._users = users
        self._now = now

    def create(self, user_id: str, scope: Scope = "user", label: str = "") -> tuple[ApiKey, str]:
        """A new key and its plaintext (shown once, never stored). Its user exists from now on
        (registered before the key is stored), so nobody can claim the user's personal cube id
        before the user's first write; a knowledge base's id cannot become a user."""
        if not user_id:
            raise InvalidRequest("user_id: a key needs the user it acts for")
        if self._users is not None:
            if not self._users.is_user(user_id) and self._users.get_cube(user_id) is not None:
                raise Conflict(f"user_id: {user_id!r} is a knowledge base's id; a user cannot have it")
            self._users.register_user(user_id)
        for _ in range(3):  # a 64-bit id collides essentially never; the store refuses a repeat
            key_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_hex(16)
            key = ApiKey(
                key_id=key_id,
                user_id=user_id,
                scope=scope,
                label=label,
                salt=salt,
                digest=digest_of(secret, salt),
                created_at=self._now(),
            )
            if self._keys.put_key(key):
                return key, f"{PREFIX}_{key_id}_{secret}"
        raise RuntimeError("could not allocate a unique key id")  # pragma: no cover

    def authenticate(self, header: str | None) -> Principal:
        """The principal of a valid, unrevoked key; Unauthorized otherwise (one message for an
        unknown, wrong or revoked key, so a caller learns nothing about which)."""
        key_id, secret = parse_authorization(header)
        key = self._keys.get_key(key_id)
        candidate = digest_of(secret, key.salt) if key is not None else digest_of(secret, "00")
        if key is None or not hmac.compare_digest(candidate, key.digest) or not key.active:
            raise Unauthorized("Authorization: invalid or revoked API key")
        return Principal(user_id=key.user_id, scopes=frozenset({key.scope}))

    def revoke(self, key_id: str) -> ApiKey:
        if not self._keys.revoke_key(key_id, self._now()):
            raise NotFound(f"key_id: {key_id!r} not found")
        key = self._keys.get_key(key_id)
        assert key is not None
        return key

    def list(self, user_id: str | None = None) -> Sequence[ApiKey]:
        return self._keys.list_keys(user_id)


@dataclass(frozen=True)
class VerifiedToken:
    """A JWT that API Gateway's authorizer has verified: its claims and OAuth scopes."""

    claims: Mapping[str, str]
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class TokenRules:
    """How a verified JWT maps to a principal: the user is the `user_claim` claim; the token's
    OAuth scopes `service_scope` and `admin_scope` give the service and admin rights an API key
    of that scope has (the defaults are the `jwt_*` settings)."""

    user_claim: str
    service_scope: str
    admin_scope: str

    def principal(self, token: VerifiedToken) -> Principal:
        user = token.claims.get(self.user_claim, "")
        try:
            check_id(user, "user")
        except ValueError as exc:
            raise Unauthorized(f"Authorization: the token's {self.user_claim!r} claim is not a usable user id") from exc
        scopes: set[str] = {"user"}
        if self.service_scope in token.scopes:
            scopes.add("service")
        if self.admin_scope in token.scopes:
            scopes.add("admin")
        return Principal(user_id=user, scopes=frozenset(scopes))


ACT_FOR_OTHERS = frozenset({"service", "admin"})
KNOWN_USERS_KEPT = 100_000
"""Users an Authority remembers as registered (a cache of store reads; cleared when full)."""


class Authority:
    """Turns a request's credentials and its body's `user_id` into the principal it acts as.

    With keys off (the embedded default, on 127.0.0.1), the body's `user_id` is the principal, as
    in MemOS. With keys on, every request authenticates first (before its body is read), and the
    body's `user_id` must be the key's user, unless the key has the `service` or `admin` scope,
    which may act for any user.
    """

    def __init__(
        self,
        keys: KeyService | None,
        limiter: Limits | None = None,
        tokens: TokenRules | None = None,
        users: UserDirectory | None = None,
    ) -> None:
        self._keys = keys
        self._limits = limiter
        self._tokens = tokens
        self._users = users
        self._known: set[str] = set()  # users seen registered: a user never stops being one

    @property
    def enabled(self) -> bool:
        return self._keys is not None

    def caller(self, authorization: str | None, token: VerifiedToken | None = None) -> Principal | None:
        """The caller's principal: from a verified JWT where tokens are accepted, otherwise from
        the API key (None with keys off); Unauthorized without valid credentials."""
        if token is not None and self._tokens is not None:
            return self._tokens.principal(token)
        return None if self._keys is None else self._keys.authenticate(authorization)

    def acting_for(self, caller: Principal | None, user_id: str | None, *, adding: bool = False) -> Principal:
        """The principal a request acts as, after its rate limit (and, for an add, its quota) is
        counted against the key's principal (with keys off, the body's user). A refused
        `user_id` counts too, so probing other users' ids is rate limited like any request.

        With credentials (a key or a verified token), the principal is registered as a user
        before anything else happens: a JWT subject or a user a service key acts for exists from
        its first request, and its personal cube id can no longer be created by anyone. A
        knowledge base's id is never a user: acting as one is 403."""
        if self._limits is not None:
            spender = caller.user_id if caller is not None else (user_id or "")
            self._limits.request(spender)
            if adding:
                self._limits.add(spender)
        principal = self._resolve(caller, user_id)
        if caller is not None:
            self._admit(principal.user_id)
        return principal

    def _admit(self, user_id: str) -> None:
        if self._users is None or user_id in self._known:
            return
        if not self._users.is_user(user_id):
            if self._users.get_cube(user_id) is not None:
                raise Forbidden(
                    f"user_id: {user_id!r} is a knowledge base's id, not a user; "
                    "a knowledge base is read and written through grants"
                )
            self._users.register_user(user_id)
        if len(self._known) >= KNOWN_USERS_KEPT:  # a service key may act for any number of users
            self._known.clear()
        self._known.add(user_id)

    @staticmethod
    def task_owner(caller: Principal | None, principal: Principal) -> str | None:
        """Whose tasks `caller`, acting as `principal` (`acting_for(caller, None)`), may read
        (None: anyone's, for a key that acts for others or with keys off)."""
        return None if caller is None or caller.scopes & ACT_FOR_OTHERS else principal.user_id

    def _resolve(self, caller: Principal | None, user_id: str | None) -> Principal:
        if caller is None:
            return Principal(user_id=user_id or "")
        if not user_id or user_id == caller.user_id:
            return caller
        if caller.scopes & ACT_FOR_OTHERS:
            return Principal(user_id=user_id, scopes=caller.scopes)
        raise Forbidden(
            f"user_id: {user_id!r} is not this API key's user ({caller.user_id!r}); "
            "only a service key may act for other users"
        )
