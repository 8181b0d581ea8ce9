"""A sandboxed SQLite database held as bytes: the engine under the ``sql_database`` capability.

Each call opens the bytes in memory (``deserialize``), runs the agent's SQL under an
authorizer, a time limit and size limits, and (after a write) hands back the new bytes
(``serialize``). Nothing touches a file, so any worker can serve any session. Synchronous and
CPU-bound: everloop runs an agent's SQL only inside a worker process (``everloop.sql_worker``),
never in the server, because one C call of SQLite (``printf('%.*c', 2000000000, 'x')``) can
run for seconds without reaching the progress handler; the server kills the worker instead.

The authorizer refuses ATTACH/DETACH, ``load_extension``, virtual tables and PRAGMAs outside a
short read-only allow-list; in read-only mode it refuses every write as well. A progress handler
interrupts a statement past its deadline (the cheap path: the worker survives);
``max_page_count`` caps the database size. A query's rows are read one at a time and reading
stops as soon as the row or byte cap is reached, so a huge result is never built.
"""

from __future__ import annotations

import base64
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

PAGE_SIZE = 4096
ALLOWED_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
    }
)
_READ_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
_DENIED_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"})
_NEVER = frozenset(
    {
        sqlite3.SQLITE_ATTACH,
        sqlite3.SQLITE_DETACH,
        sqlite3.SQLITE_CREATE_VTABLE,
        sqlite3.SQLITE_DROP_VTABLE,
    }
)

SqlValue = str | int | float | bool | None


class SandboxError(Exception):
    """The SQL failed or was refused; ``str()`` is a message for the agent or API caller."""


@dataclass(frozen=True, slots=True)
class Limits:
    timeout_seconds: float = 5.0
    max_rows: int = 1000
    max_result_bytes: int = 1024 * 1024
    max_database_bytes: int = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool


@dataclass(frozen=True, slots=True)
class ExecuteResult:
    rows_affected: int
    last_insert_rowid: int | None
    content: bytes
    changed: bool  # whether ``content`` differs from the bytes the statement ran on


def empty_database() -> bytes:
    """The bytes of a new, empty database (one page, so its page size is fixed)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        conn.execute("VACUUM")
        return conn.serialize()
    finally:
        conn.close()


def query(
    content: bytes, sql: str, params: Sequence[SqlValue] = (), limits: Limits = Limits()
) -> QueryResult:
    """Run one read-only statement. Rows past ``max_rows`` are cut (``truncated``); a result
    over ``max_result_bytes`` is an error."""
    with _Sandbox(content, limits, read_only=True) as box:
        cursor = box.run(lambda conn: conn.execute(sql, tuple(params)))
        columns = [d[0] for d in cursor.description or ()]
        rows, truncated = box.run(lambda _conn: read_rows(cursor, columns, limits))
        return QueryResult(columns, rows, truncated)


def read_rows(
    rows: Iterable[Sequence[Any]], columns: Sequence[str], limits: Limits
) -> tuple[list[list[Any]], bool]:
    """The first ``max_rows`` of ``rows`` as JSON values, and whether more followed. Pulls one
    row at a time and stops at the first row that takes the result (counted as the JSON it
    becomes) over ``max_result_bytes``: 1,001 rows of a 500 kB blob cost two rows of memory,
    not 500 MB."""
    size = len(orjson.dumps(list(columns)))
    found: list[list[Any]] = []
    for row in rows:
        if len(found) >= limits.max_rows:
            return found, True
        values = [_json_value(v) for v in row]
        size += len(orjson.dumps(values)) + 1
        if size > limits.max_result_bytes:
            raise SandboxError(
                f"the result is too large: it passed the limit of {limits.max_result_bytes} "
                f"bytes at row {len(found) + 1}; select fewer rows or columns (LIMIT, substr)"
            )
        found.append(values)
    return found, False


def execute(
    content: bytes, sql: str, params: Sequence[SqlValue] = (), limits: Limits = Limits()
) -> ExecuteResult:
    """Run a write: one statement with ``params``, or a script of statements without."""
    with _Sandbox(content, limits, read_only=False) as box:
        before = box.conn.total_changes
        if params:
            cursor = box.run(lambda conn: conn.execute(sql, tuple(params)))
            last = cursor.lastrowid
        else:
            box.run(lambda conn: conn.executescript(sql))
            last = box.run(lambda conn: conn.execute("SELECT last_insert_rowid()").fetchone()[0])
        if box.conn.in_transaction:
            box.conn.rollback()
            raise SandboxError("the SQL left a transaction open; it was rolled back")
        after = box.conn.serialize()
        changed = after != content
        return ExecuteResult(box.conn.total_changes - before, last or None, after, changed)


def describe(content: bytes, limits: Limits = Limits()) -> list[dict[str, Any]]:
    """Tables and views with their columns and the SQL that created them."""
    with _Sandbox(content, limits, read_only=True) as box:
        objects = box.run(
            lambda conn: conn.execute(
                "SELECT name, type, sql FROM sqlite_schema WHERE type IN ('table', 'view') "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            ).fetchall()
        )
        tables = []
        for name, kind, sql in objects:
            quoted = '"' + name.replace('"', '""') + '"'
            columns = box.run(
                lambda conn, quoted=quoted: conn.execute(f"PRAGMA table_info({quoted})").fetchall()
            )
            tables.append(
                {
                    "name": name,
                    "type": kind,
                    "sql": sql,
                    "columns": [
                        {
                            "name": c[1],
                            "type": c[2],
                            "not_null": bool(c[3]),
                            "default": c[4],
                            "primary_key": bool(c[5]),
                        }
                        for c in columns
                    ],
                }
            )
        return tables


def time_limit_message(limits: Limits) -> str:
    return f"the statement ran over the {limits.timeout_seconds:g} s time limit and was stopped"


class _Sandbox:
    def __init__(self, content: bytes, limits: Limits, *, read_only: bool) -> None:
        self.limits = limits
        self.read_only = read_only
        self.conn = sqlite3.connect(":memory:", isolation_level=None)
        # One deadline for the whole call (statement and reading its rows), from the start.
        self._deadline = time.monotonic() + limits.timeout_seconds
        try:
            if content:
                self.conn.deserialize(content)
            # Settings first: once the authorizer is installed these PRAGMAs are refused.
            max_pages = max(limits.max_database_bytes // PAGE_SIZE, 1)
            self.conn.execute(f"PRAGMA max_page_count = {int(max_pages)}")
            self.conn.execute("PRAGMA trusted_schema = OFF")
            self.conn.execute("PRAGMA foreign_keys = ON")
            self.conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            self.conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limits.max_database_bytes)
            if hasattr(self.conn, "enable_load_extension"):
                self.conn.enable_load_extension(False)
            self.conn.set_authorizer(self._authorize)
            self.conn.set_progress_handler(self._progress, 1000)
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise SandboxError(f"the database cannot be opened: {exc}") from exc

    def __enter__(self) -> _Sandbox:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.conn.close()

    def run(self, operation: Any) -> Any:
        """Call ``operation(conn)`` under the call's time limit, translating sqlite3 errors."""
        try:
            return operation(self.conn)
        except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError) as exc:
            # ValueError/OverflowError: parameters sqlite3 cannot bind.
            raise SandboxError(self._message(str(exc))) from None

    def _message(self, message: str) -> str:
        if message == "interrupted":
            return time_limit_message(self.limits)
        if "database or disk is full" in message:
            return f"the database is over its size limit of {self.limits.max_database_bytes} bytes"
        if "not authorized" in message or "authorization denied" in message:
            return f"refused by the SQL sandbox: {message}{self._hint()}"
        return message

    def _hint(self) -> str:
        if self.read_only:
            return " (sql_query only reads: use sql_execute to change data)"
        return " (ATTACH, extensions, virtual tables and most PRAGMAs are never allowed)"

    def _progress(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0

    def _authorize(
        self, action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None
    ) -> int:
        if action in _NEVER:
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION:
            return sqlite3.SQLITE_DENY if (arg2 or "").lower() in _DENIED_FUNCTIONS else 0
        if action == sqlite3.SQLITE_PRAGMA:
            return (
                sqlite3.SQLITE_OK
                if (arg1 or "").lower() in ALLOWED_PRAGMAS
                else (sqlite3.SQLITE_DENY)
            )
        if self.read_only and action not in _READ_ACTIONS:
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value
