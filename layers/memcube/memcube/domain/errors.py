"""The small error hierarchy of the domain.

Each class carries the HTTP status it maps to so the API maps errors in one place
(`memcube_api.errors`) without matching message strings. The worker treats
`PermanentError` subclasses as poison (no retry) and everything else as transient.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    http_status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(DomainError):
    """The caller sent something outside the documented contract (a field and its problem)."""

    http_status = 422
    code = "invalid_request"


class Unauthorized(DomainError):
    """No valid credentials: a missing, malformed, unknown or revoked API key."""

    http_status = 401
    code = "unauthorized"


class RateLimited(DomainError):
    """A principal's rate limit or quota is spent; `retry_after` seconds until it refills."""

    http_status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class Forbidden(DomainError):
    """The principal may not touch one of the cubes it named."""

    http_status = 403
    code = "forbidden"


class NotFound(DomainError):
    http_status = 404
    code = "not_found"


class Conflict(DomainError):
    """An idempotency key or task id was reused for a different request."""

    http_status = 409
    code = "conflict"


class Unavailable(DomainError):
    """A dependency (queue, store) is down; the caller may retry the same request safely."""

    http_status = 503
    code = "unavailable"


class LLMUnavailable(Unavailable):
    """The LLM provider did not answer usably after the adapter's retries (timeout, throttling,
    5xx, refused credentials): the worker leaves the message for redelivery."""

    code = "llm_unavailable"


class PermanentError(DomainError):
    """A queued message that can never succeed: it is dead-lettered at once, never retried."""

    http_status = 422
    code = "rejected"


class EmbeddingMismatch(DomainError):
    """Vectors of another embedding model (or dimension) than the index was built with: their
    similarities to the indexed vectors would be meaningless, so the index refuses them (the
    worker retries; `memcube reindex` rebuilds the index with the configured embedder)."""

    http_status = 409
    code = "embedding_mismatch"

    def __init__(self, recorded: tuple[str, int], got: tuple[str, int], *, query: bool = False) -> None:
        """`recorded` and `got` are (model id, dimension): the index's and the offered vectors'
        ("" for vectors without a model id; a query vector carries none: `query=True`)."""

        def label(model: str, dimension: int) -> str:
            return f"{model or 'an unnamed model'} ({dimension}-d)"

        offered = f"a {got[1]}-d query vector" if query else f"embeddings of {label(*got)}"
        super().__init__(
            f"the search index was built with embeddings of {label(*recorded)} and refuses {offered}: "
            "run `memcube reindex` to rebuild it with the configured embedder (MEMCUBE_EMBEDDER)"
        )
        self.recorded = recorded
        self.got = got

    @classmethod
    def check(cls, recorded: tuple[str, int] | None, offered: list[tuple[str, int]]) -> tuple[str, int] | None:
        """The index's (model id, dimension) after accepting `offered` pairs, all of which must
        equal `recorded` (or, when nothing is recorded yet, the first of them); raises otherwise."""
        for pair in offered:
            if recorded is None:
                recorded = pair
            elif pair != recorded:
                raise cls(recorded, pair)
        return recorded


class UnreadableFile(PermanentError):
    """A file whose text cannot be read (not a supported type, encrypted, scanned, corrupt): its
    part is dead-lettered with this reason at once; retrying cannot help."""

    code = "unreadable_file"


class IndexUnavailable(Unavailable):
    """The search index did not answer (connection refused, timeout, throttling, 5xx). Adds are
    still stored (the store is the system of record and guards exact duplicates); their index
    write is retried with the message, and the task status says they are not yet searchable."""

    code = "index_unavailable"


class NotConfigured(DomainError):
    """The request needs a part of the deployment the operator has not configured (chat without
    an LLM): nothing was done, and a setting (named in the message) would enable it."""

    http_status = 409
    code = "not_configured"
