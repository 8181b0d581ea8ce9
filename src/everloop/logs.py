"""Logging of a server process: one format, and no query string of an outbound URL.

Outbound URLs come from tenants (``web_fetch``, MCP servers, model providers' base URLs) and
often carry credentials in their query (``?api_key=...``, signed links). httpx logs every request
with its full URL at INFO, and errors quote URLs in their messages and tracebacks. A filter on
the handlers therefore cuts the query and fragment off every URL in a record's message and
exception text, whichever library logged it.
"""

from __future__ import annotations

import logging
import re

# A scheme, then the URL up to its query or fragment, then the query/fragment itself; the
# classes are disjoint, so matching is linear.
_URL_QUERY = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#'\"<>]*)[?#][^\s'\"<>]*")


def strip_url_queries(text: str) -> str:
    """``text`` with the query string and fragment of every URL in it removed."""
    return _URL_QUERY.sub(r"\1", text)


class UrlQueryFilter(logging.Filter):
    """Rewrites each record so its message and traceback keep no URL query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = strip_url_queries(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = strip_url_queries(record.exc_text)
        return True


def configure(level: str) -> None:
    """Log to stderr at ``level``, through the URL query filter."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(UrlQueryFilter())
