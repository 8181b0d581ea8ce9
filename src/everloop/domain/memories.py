"""Memories: named, org-scoped file stores that agents read (and write) across sessions.

A memory is ``manual`` (written through the API and the ``memory`` tools) or has a git source
(``git``: any http(s) clone URL; ``github``: ``owner/repo`` on github.com) whose files a sync
fetches into it. A memory with a git source is read-only: its content is what the last
successful sync found.

Credentials in a source URL (``https://user:token@host/repo.git``) are split off here: the
public source keeps the URL without them, the service seals them (``crypto.SecretBox``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from everloop.domain.files import normalize_path
from everloop.errors import InvalidInput

MIN_SYNC_INTERVAL_SECONDS = 300
MAX_SYNC_INTERVAL_SECONDS = 604800
MAX_URL_CHARS = 2000
MAX_BRANCH_CHARS = 255

_GITHUB_REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")
_BRANCH = re.compile(r"^[A-Za-z0-9._/-]+$")
_SOURCE_KEYS = {
    "git": {"type", "url", "branch", "root_folder", "sync_interval_secs"},
    "github": {"type", "repository", "branch", "root_folder", "sync_interval_secs"},
}


@dataclass(frozen=True, slots=True)
class Memory:
    id: str
    organization_id: str
    name: str
    description: str | None
    source_type: str  # manual | git | github
    source: Mapping[str, Any] | None  # the public part (no credentials)
    status: str  # active | archived
    sync_status: str  # idle | syncing | succeeded | failed
    last_synced_at: str | None
    last_sync_error: str | None
    synced_commit: str | None
    created_at: str
    updated_at: str
    archived_at: str | None

    @property
    def is_readonly(self) -> bool:
        """A memory with a git source takes its files only from a sync."""
        return self.source_type != "manual"

    @property
    def sync_interval_secs(self) -> int:
        return int((self.source or {}).get("sync_interval_secs") or 0)


@dataclass(frozen=True, slots=True)
class GitSource:
    """A source as the sync uses it: ``url`` without credentials, plus the credentials."""

    url: str
    branch: str | None
    root_folder: str  # normalized, "/" for the whole tree
    username: str | None = None
    password: str | None = None


def parse_source(raw: Mapping[str, Any] | None) -> tuple[str, dict[str, Any] | None, str | None]:
    """``(source_type, public source, credentials)`` of a request's ``source``; credentials is
    the URL's ``user:password`` (percent-decoded pair joined by ':') or None. 422 naming the
    field for anything unusable."""
    if raw is None:
        return "manual", None, None
    kind = raw.get("type")
    if kind is None:  # everruns-sdk's request models drop the discriminator
        kind = "github" if "repository" in raw and "url" not in raw else "git"
    if kind not in _SOURCE_KEYS:
        raise InvalidInput("source.type must be 'git' or 'github'", field="source.type")
    extra = sorted(set(raw) - _SOURCE_KEYS[kind])
    if extra:
        raise InvalidInput(f"unknown source field '{extra[0]}'", field=f"source.{extra[0]}")
    public: dict[str, Any] = {}
    credentials = None
    if kind == "git":
        url, credentials = _split_url(raw.get("url"))
        public["url"] = url
    else:
        repository = raw.get("repository")
        if not isinstance(repository, str) or not _GITHUB_REPOSITORY.match(repository):
            raise InvalidInput("source.repository must be 'owner/repo'", field="source.repository")
        public["repository"] = repository
    branch = raw.get("branch")
    if branch is not None:
        if (
            not isinstance(branch, str)
            or not branch
            or len(branch) > MAX_BRANCH_CHARS
            or not _BRANCH.match(branch)
            or ".." in branch
        ):
            raise InvalidInput("source.branch is not a valid branch name", field="source.branch")
        public["branch"] = branch
    root = raw.get("root_folder")
    if root is not None:
        if not isinstance(root, str):
            raise InvalidInput("source.root_folder must be a string", field="source.root_folder")
        public["root_folder"] = normalize_path(root, field="source.root_folder")
    interval = raw.get("sync_interval_secs")
    if interval is not None:
        if (
            not isinstance(interval, int)
            or isinstance(interval, bool)
            or (
                interval != 0
                and not MIN_SYNC_INTERVAL_SECONDS <= interval <= MAX_SYNC_INTERVAL_SECONDS
            )
        ):
            raise InvalidInput(
                f"source.sync_interval_secs must be 0 (manual only) or "
                f"{MIN_SYNC_INTERVAL_SECONDS} through {MAX_SYNC_INTERVAL_SECONDS}",
                field="source.sync_interval_secs",
            )
        public["sync_interval_secs"] = interval
    return kind, public, credentials


def _split_url(url: Any) -> tuple[str, str | None]:
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        raise InvalidInput("source.url must be an http(s) URL", field="source.url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            "source.url must be an http(s) URL with a host (ssh is not supported)",
            field="source.url",
        )
    if parts.query or parts.fragment:
        raise InvalidInput("source.url cannot have a query or fragment", field="source.url")
    credentials = None
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        credentials = unquote(user) + ":" + unquote(password)
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")), credentials


def git_source(memory: Memory, credentials: str | None) -> GitSource:
    """What a sync fetches for ``memory`` (which has a git or github source)."""
    source = memory.source or {}
    if memory.source_type == "github":
        url = f"https://github.com/{source['repository']}.git"
    else:
        url = str(source["url"])
    username = password = None
    if credentials is not None:
        username, _, password = credentials.partition(":")
    return GitSource(
        url=url,
        branch=source.get("branch"),
        root_folder=str(source.get("root_folder") or "/"),
        username=username or None,
        password=password or None,
    )


def source_response(memory: Memory) -> dict[str, Any]:
    """The wire ``source``: ``{"provider": ...}`` plus the public fields (never credentials)."""
    source = dict(memory.source or {})
    if memory.source_type != "manual":
        source.setdefault("branch", "")
    return {"provider": memory.source_type, **source}


def url_with_credentials(url: str, username: str, password: str) -> str:
    """Test and tooling helper: ``url`` with percent-encoded userinfo."""
    parts = urlsplit(url)
    userinfo = quote(username, safe="") + ":" + quote(password, safe="")
    return urlunsplit((parts.scheme, f"{userinfo}@{parts.netloc}", parts.path, "", ""))
