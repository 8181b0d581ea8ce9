"""Logging of a server process: one format (readable text or JSON lines), and no query string
of an outbound URL.

A record may carry ``extra={"fields": {...}}`` (the access line, the turn line): the text
format appends them as ``key=value``, the JSON format as keys of the object.

Outbound URLs come from tenants (``web_fetch``, MCP servers, model providers' base URLs) and
often carry credentials in their query (``?api_key=...``, signed links). httpx logs every request
with its full URL at INFO, and errors quote URLs in their messages and tracebacks. A filter on
the handlers therefore cuts the query and fragment off every URL in a record's message and
exception text, whichever library logged it.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

# A scheme, then the URL up to its query or fragment, then the query/fragment itself; the
# classes are disjoint, so matching is linear.
_URL_QUERY = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#'\"<>]*)[?#][^\s'\"<>]*")


def strip_url_queries(text: str) -> str:
    """``text`` with the query string and fragment of every URL in it removed."""
    return _URL_QUERY.sub(r"\1", text)


class UrlQueryFilter(logging.Filter):
    """Rewrites each record so its message and traceback keep no URL query string."""

    # The access and turn lines name route templates and ids, never an outbound URL.
    _OWN = frozenset({"everloop.access", "everloop.turns"})

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name in self._OWN and not record.exc_info:
            return True
        message = record.getMessage()
        cleaned = strip_url_queries(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = strip_url_queries(record.exc_text)
        return True


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """The logging default (``2026-12-02 16:30:00,123``), the seconds written once per
        second rather than once per record (a handler formats one record at a time)."""
        second = int(record.created)
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
            self._second = second
        return f"{self._stamp},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            extra = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
            first, nl, rest = line.partition("\n")
            line = f"{first} {extra}{nl}{rest}" if extra else line
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time``, ``level``, ``logger``, ``message``, the record's
    fields, and ``exception`` (the traceback, URL queries already cut by the filter)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update((k, v) for k, v in fields.items() if k not in out)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = strip_url_queries(record.exc_text)
        return json.dumps(out, default=str)


def configure(level: str, log_format: str = "text") -> None:
    """Log to stderr at ``level`` in ``log_format`` (``text`` or ``json``), through the URL
    query filter. Libraries' own handlers (uvicorn's) are replaced by the root's."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(UrlQueryFilter())
    # No format here names where a record was made, or its thread or process: not worked out
    # for every record (the logging HOWTO's "Optimization"; the access and turn lines are
    # several per turn).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # DBOS gives its logger a console handler of its own format unless it has a handler
    # already: a null one, and its lines reach ours.
    # Its INFO lines (the client's: the system database's URL, pool parameters) say nothing an
    # operator needs.
    dbos = logging.getLogger("dbos")
    dbos.handlers[:] = [logging.NullHandler()]
    dbos.propagate = True
    dbos.setLevel(logging.WARNING)


class MigrationSummary(logging.Filter):
    """Swallows alembic's lines (one or more per migration, in several formats) and keeps what
    a start-up line needs: how many migrations ran, and the revision they ended at."""

    def __init__(self) -> None:
        super().__init__()
        self.applied = 0
        self.head: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Running upgrade"):
            self.applied += 1
            target = message.split("->", 1)[-1].split(",", 1)[0].strip()
            self.head = target or self.head
        return record.levelno >= logging.WARNING

    @property
    def text(self) -> str:
        if not self.applied:
            return "up to date"
        return f"{self.applied} applied, now at {self.head}"


def quiet_migrations() -> MigrationSummary:
    """Start summarising alembic's output (``MigrationSummary``)."""
    summary = MigrationSummary()
    for name in ("alembic", "alembic.runtime.migration", "alembic.runtime.plugins"):
        logging.getLogger(name).addFilter(summary)
    return summary
