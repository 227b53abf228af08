"""The small error hierarchy of the domain.

Each class carries the HTTP status it maps to so the API maps errors in one place
(`memcube_api.app`) without matching message strings. The worker treats
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


class PermanentError(DomainError):
    """A queued message that can never succeed: it is dead-lettered at once, never retried."""

    http_status = 422
    code = "rejected"
