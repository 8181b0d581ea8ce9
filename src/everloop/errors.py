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

from typing import Literal


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


EgressReason = Literal[
    "invalid_url",
    "encoded_dot_segment",
    "encoded_slash",
    "blocked",
    "not_allowed",
    "private_address",
    "private_address_not_named",
    "unresolvable",
    "request_failed",
    "too_many_redirects",
]
"""Why the egress guard refused, for code and tests (the message is for people):

- ``invalid_url``: not an http(s) URL with a host, or with credentials in it;
- ``encoded_dot_segment`` / ``encoded_slash``: a path that could mean another path to the server;
- ``blocked`` / ``not_allowed``: the session's network access (a blocked pattern matches / an
  allowed list exists and nothing in it matches);
- ``private_address``: the host is or resolves to an internal address outside the operator's
  ``EVERLOOP_EGRESS_ALLOWED_PRIVATE_NETWORKS``; nothing a tenant sets can change this;
- ``private_address_not_named``: the operator allows that internal address, but no allowed
  network access pattern of the session names the host;
- ``unresolvable``, ``request_failed``, ``too_many_redirects``: the request could not be made.
"""


class EgressDenied(InvalidInput):
    """An outbound request refused by the egress guard (network access, SSRF rules, a bad URL)
    or that could not be made; inside a tool it becomes a tool error for the model."""

    code = "egress_denied"

    def __init__(self, message: str, *, reason: EgressReason) -> None:
        super().__init__(message)
        self.reason: EgressReason = reason

    @property
    def summary(self) -> str:
        """The message with its reason, as tools report it."""
        return f"egress refused ({self.reason}): {self.message}"


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


class UnsupportedMedia(EverloopError):
    """The thing asked for is not of a media type the operation serves."""

    code = "unsupported_media_type"


class EngineUnavailable(EverloopError):
    """The durable engine could not accept the work right now."""

    code = "engine_unavailable"
