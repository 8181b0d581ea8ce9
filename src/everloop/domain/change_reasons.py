"""A change reason: why a person made a change, sent in the ``Everruns-Change-Reason`` header
(UTF-8, percent-encoded) and kept in the changed entity's history.

The rules are the client's (``everruns-sdk``'s ``with_reason``): trimmed; blank means none; at
most ``MAX_CHARS`` characters; no control characters but newline and tab; nothing that looks
like a credential (a history is read by many people, a secret in it would be leaked for good).
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

HEADER = "everruns-change-reason"
MAX_CHARS = 1000

# Shapes of credentials people paste by mistake: provider and platform key prefixes, bearer
# tokens, private key blocks, and "password=..."-style assignments.
_CREDENTIAL = re.compile(
    r"(?:\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}"
    r"|\b(?:evr|elk|ghp|gho|ghu|ghs|ghr|glpat|xox[abprs])[_-][A-Za-z0-9_-]{16,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bAIza[0-9A-Za-z_-]{30,}"
    r"|\bBearer\s+[A-Za-z0-9._~+/-]{16,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|\b(?:password|passwd|secret|api[_-]?key|token)\s*[:=]\s*(?=\S*\d)[A-Za-z0-9_./+-]{8,})",
    re.IGNORECASE,
)


class InvalidChangeReason(ValueError):
    """The header's value breaks a rule; the message says which."""


def parse_change_reason(raw: str) -> str | None:
    """The reason a header value carries, or None when blank; ``InvalidChangeReason`` if it
    breaks a rule."""
    try:
        decoded = unquote(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidChangeReason("the change reason is not percent-encoded UTF-8") from None
    reason = decoded.strip()
    if not reason:
        return None
    if len(reason) > MAX_CHARS:
        raise InvalidChangeReason(
            f"the change reason is {len(reason)} characters; at most {MAX_CHARS} are allowed"
        )
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in reason):
        raise InvalidChangeReason(
            "the change reason holds control characters (only newline and tab are allowed)"
        )
    if _CREDENTIAL.search(reason):
        raise InvalidChangeReason(
            "the change reason looks like it contains a credential; describe the change "
            "without the secret"
        )
    return reason
