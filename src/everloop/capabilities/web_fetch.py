"""Capability ``web_fetch``: fetch a URL through the egress guard and return readable text.

HTML becomes Markdown (``markdownify``; scripts, styles and other non-content elements are
dropped); other text types are returned as they are; binary content is refused. The download
is capped in bytes and the text in characters. The session's network access arrives in
``ToolContext.network_access``; the guard applies it, the SSRF rules and the operator's egress
policy on every hop. A refusal is a tool error naming the guard's reason.

The conversion is pure Python and takes seconds on a page of a few MiB (6 s for 1.7 MiB of
markup), so it runs on the CPU pool (``everloop.offload``), not on the event loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from bs4 import BeautifulSoup
from markdownify import MarkdownConverter

from everloop.capabilities.base import Capability, SideEffect, ToolContext, ToolError
from everloop.domain.messages import JsonObject, JsonValue
from everloop.egress import EgressGuard, FetchResult
from everloop.errors import EgressDenied
from everloop.offload import run_cpu

_DROPPED_TAGS = ("script", "style", "noscript", "template", "iframe", "svg", "canvas", "form")
_TEXT_TYPES = (
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-yaml",
    "application/yaml",
)


def html_to_markdown(html: str) -> tuple[str | None, str]:
    """The page title and its content as Markdown."""
    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(strip=True) if soup.title else None
    for tag in soup(_DROPPED_TAGS):
        tag.decompose()
    body = soup.body or soup
    text = MarkdownConverter(heading_style="ATX", strip=["img"]).convert_soup(body)
    return title or None, re.sub(r"\n{3,}", "\n\n", text).strip()


def readable_text(result: FetchResult) -> tuple[str | None, str]:
    """``(title, text)`` of a response; ``ToolError`` for content that is not text."""
    kind = result.content_type
    is_html = kind in ("text/html", "application/xhtml+xml") or (
        not kind and result.body.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html"))
    )
    if not (is_html or kind.startswith("text/") or kind in _TEXT_TYPES or kind.endswith("+json")):
        raise ToolError(f"the response is {kind or 'of unknown type'}, not text; not returned")
    text = result.body.decode(result.charset or "utf-8", errors="replace")
    if is_html:
        return html_to_markdown(text)
    return None, text


@dataclass(frozen=True, slots=True)
class WebFetch:
    """Tool ``web_fetch``: ``{url, max_chars?} -> {url, status, title, content, truncated}``."""

    guard: EgressGuard = field(repr=False)
    max_bytes: int = 2 * 1024 * 1024
    max_chars: int = 50_000
    name: str = "web_fetch"
    # It only sends GETs: repeating one after a crash mid-fetch is safe.
    side_effect: ClassVar[SideEffect] = SideEffect.IDEMPOTENT
    description: str = (
        "Fetch a web page or text document over HTTP(S) and return its content as readable "
        "text (HTML is converted to Markdown). Only public addresses (and internal ones the "
        "operator allows), and only those the session's network access allows, can be reached."
    )
    parameters: JsonObject = field(
        default_factory=lambda: {
            "type": "object",
            "properties": {
                "url": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 4096,
                    "description": "An http:// or https:// URL. A session secret is written "
                    "as its placeholder '{{secret:NAME}}'.",
                },
                "max_chars": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Return at most this many characters of text.",
                },
            },
            "required": ["url"],
            "additionalProperties": False,
        }
    )

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        # ``{{secret:NAME}}`` placeholders (an API key in a query) become values only here.
        url = context.resolve_secrets(arguments["url"])
        assert isinstance(url, str)  # schema-checked
        wanted = arguments.get("max_chars")
        limit = min(wanted, self.max_chars) if isinstance(wanted, int) else self.max_chars
        try:
            result = await self.guard.fetch(url, context.network_access, max_bytes=self.max_bytes)
        except EgressDenied as exc:
            raise ToolError(exc.summary) from None
        title, text = await run_cpu(readable_text, result)
        truncated = result.truncated or len(text) > limit
        return {
            "url": result.url,
            "status": result.status,
            "content_type": result.content_type or None,
            "title": title,
            "content": text[:limit],
            "truncated": truncated,
        }


def build_web_fetch_capability(
    guard: EgressGuard, *, max_bytes: int = 2 * 1024 * 1024, max_chars: int = 50_000
) -> Capability:
    return Capability(
        id="web_fetch",
        name="Web fetch",
        description=(
            "Fetch a URL and read it as text or Markdown, through the egress guard (the "
            "session's network access and SSRF protection)."
        ),
        category="web",
        risk_level="high",
        system_prompt_addition=(
            "You can read web pages with web_fetch(url). Long pages are cut; ask for less with "
            "max_chars."
        ),
        tools=(WebFetch(guard, max_bytes=max_bytes, max_chars=max_chars),),
    )
