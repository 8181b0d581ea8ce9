"""The one exception hierarchy of everloop.

Every error a user can cause or see has a stable snake_case ``code``. Nothing here knows about
HTTP: ``api/errors.py`` maps each class to a status code, in one place.

    EverloopError
    ├── InvalidInput            code "validation_error" (or a more specific code)
    │   ├── MalformedInput      code "malformed_input" (a bad file path or pattern)
    │   └── EgressDenied        code "egress_denied" (an outbound request the guard refused)
    ├── Unauthenticated         code "unauthorized"
    ├── TooManyRequests         code "too_many_requests" (with ``retry_after`` seconds)
    ├── Forbidden               code "forbidden"
    ├── NotFound                code "not_found"
    ├── Conflict                code "conflict"
    ├── PayloadTooLarge         code "payload_too_large"
    └── EngineUnavailable       code "engine_unavailable"
"""

from __future__ import annotations


class EverloopError(Exception):
    """Base class: a failure with a stable code and a message a person understands."""

    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class InvalidInput(EverloopError):
    """The request is well-formed but a value is not acceptable."""

    code = "validation_error"


class MalformedInput(InvalidInput):
    """A value that cannot be used at all: a file path with ``..`` or NUL, a bad regex."""

    code = "malformed_input"


class EgressDenied(InvalidInput):
    """An outbound request refused by the egress guard (network access, SSRF rules, a bad URL)
    or that could not be made; inside a tool it becomes a tool error for the model."""

    code = "egress_denied"


class Unauthenticated(EverloopError):
    """No credentials, or credentials we do not recognise."""

    code = "unauthorized"


class TooManyRequests(EverloopError):
    """Refused for now (too many failed authentications); try again in ``retry_after`` s."""

    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Forbidden(EverloopError):
    """Authenticated, but the caller's role does not allow this."""

    code = "forbidden"


class NotFound(EverloopError):
    """The object does not exist, or belongs to another organization."""

    code = "not_found"

    @classmethod
    def of(cls, kind: str, ident: str) -> NotFound:
        return cls(f"{kind} '{ident}' not found")


class Conflict(EverloopError):
    """The request clashes with the current state (a duplicate name, a read-only object)."""

    code = "conflict"


class PayloadTooLarge(EverloopError):
    """The request body or a value in it is over a size limit."""

    code = "payload_too_large"


class EngineUnavailable(EverloopError):
    """The durable engine could not accept the work right now."""

    code = "engine_unavailable"
