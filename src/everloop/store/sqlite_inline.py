"""SQLite for the async store without a thread hop per statement.

``aiosqlite`` runs every statement on a helper thread and resolves a future back on the event
loop: queue put, thread wake-up, ``call_soon_threadsafe``, future resolution. Measured on the
2-core machine this hand-off, not SQLite, was most of a turn's CPU (a statement costs tens of
microseconds in SQLite and several times that in the hop). This dialect gives SQLAlchemy's
asyncio extension the standard ``sqlite3`` module instead: statements run synchronously on the
event loop, inside the greenlet SQLAlchemy already uses to drive async drivers, so a whole
transaction runs without a context switch.

What makes running SQLite on the event loop safe here:

- Writers in this process queue on ``Database``'s asyncio write lock, never on SQLite's lock:
  a statement never waits for another transaction of this process (that would block the loop
  the other transaction needs to finish).
- Readers never wait for writers in WAL mode.
- Statements are short (keyed lookups and small appends); the few long reads are paged.
- Another process (``everloop token create``, a migration) can hold the write lock briefly;
  ``busy_timeout`` covers that, blocking this process for at most that long.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator
from types import ModuleType
from typing import Any

from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine.url import URL
from sqlalchemy.util.concurrency import await_, in_greenlet

DRIVER = "everloop_inline"


class _Ready:
    """An awaitable that is complete at once (awaiting it never suspends)."""

    def __await__(self) -> Generator[Any, None, None]:
        yield from ()


_READY = _Ready()


def _checkpoint() -> None:
    # SQLAlchemy's async engine insists that executing a statement awaited something (it
    # guards against sync drivers used by mistake); this driver is synchronous on purpose.
    if in_greenlet():
        await_(_READY)


class _Cursor(sqlite3.Cursor):
    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        _checkpoint()
        return super().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> _Cursor:
        _checkpoint()
        return super().executemany(sql, seq_of_parameters)

    async def _async_soft_close(self) -> None:
        # Called by SQLAlchemy's async results on cursors of async drivers; rows of a sqlite3
        # cursor are read synchronously when the result is consumed, nothing to do here.
        return None


class _Connection(sqlite3.Connection):
    def cursor(self, factory: Any = _Cursor) -> Any:
        return super().cursor(factory)


class _DBAPI(ModuleType):
    """The ``sqlite3`` module, except that connections are ``_Connection``."""

    def __init__(self) -> None:
        super().__init__("everloop_sqlite3")
        self.__dict__.update({k: v for k, v in vars(sqlite3).items() if not k.startswith("__")})
        self.connect = _connect


def _connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    kwargs.setdefault("factory", _Connection)
    connection: sqlite3.Connection = sqlite3.connect(*args, **kwargs)
    return connection


class SQLiteDialectInline(SQLiteDialect_pysqlite):
    """``sqlite+everloop_inline://``: the ``sqlite3`` driver, usable by ``create_async_engine``."""

    driver = DRIVER
    is_async = True
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> Any:
        return _DBAPI()

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        return pool.AsyncAdaptedQueuePool

    def get_driver_connection(self, connection: Any) -> Any:
        return connection


def register() -> None:
    """Make the ``sqlite+everloop_inline`` URL scheme known to SQLAlchemy (idempotent)."""
    registry.register(f"sqlite.{DRIVER}", __name__, "SQLiteDialectInline")


def inline_url(url: str) -> str:
    """The same SQLite database through this driver (``sqlite+aiosqlite:///x`` -> inline)."""
    scheme, _, rest = url.partition("://")
    assert scheme.split("+")[0] == "sqlite", url
    return f"sqlite+{DRIVER}://{rest}"
