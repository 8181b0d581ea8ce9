"""User connections: a user's credential for an outside provider (an API key), and the name of
the session secret it becomes.

A connection belongs to one user in one organization. Each session that user creates there gets
every connection as a session secret, named by :func:`secret_name`:

- ``github`` → ``GITHUB_TOKEN`` and ``gitlab`` → ``GITLAB_TOKEN`` (what their CLIs read);
- any other provider → its name in upper case, ``-`` as ``_``, then ``_API_KEY``
  (``daytona`` → ``DAYTONA_API_KEY``, ``open-weather`` → ``OPEN_WEATHER_API_KEY``).

A provider name is a slug (:data:`PROVIDER`): lower-case letters and digits in words joined by
single hyphens, starting with a letter, at most 64 characters. No two providers share a secret
name: underscores are not allowed in a provider name, and only the two named providers end in
``_TOKEN``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PROVIDER = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
MAX_PROVIDER_CHARS = 64
TOKEN_NAMED = {"github": "GITHUB_TOKEN", "gitlab": "GITLAB_TOKEN"}


@dataclass(frozen=True, slots=True)
class Connection:
    """A connection as the API shows it: never its key."""

    provider: str
    created_at: str
    updated_at: str


def is_provider_name(provider: str) -> bool:
    return len(provider) <= MAX_PROVIDER_CHARS and PROVIDER.match(provider) is not None


def secret_name(provider: str) -> str:
    """The name of the session secret a connection to ``provider`` becomes."""
    named = TOKEN_NAMED.get(provider)
    if named is not None:
        return named
    return provider.upper().replace("-", "_") + "_API_KEY"
