"""Connections and transactions for the app database; the dialect differences live here.

``Database.read()`` gives a connection for queries; ``Database.write()`` a transaction that
commits on success and rolls back on any exception, so a failed request leaves nothing behind.
SQLite allows one writer at a time: writes in this process queue on a lock instead of spinning
on ``SQLITE_BUSY``; WAL lets reads proceed beside them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.exc import DataError, DisconnectionError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from everloop.domain.event_log import Event
from everloop.errors import InvalidInput
from everloop.store import audit, sqlite_inline
from everloop.telemetry import metrics

log = logging.getLogger("everloop.db")
_TRANSACTION_TIME = {kind: metrics.DB_TRANSACTION.labels(kind) for kind in ("read", "write")}

# Where ``append_events`` leaves the events of the open transaction (``conn.info``).
APPENDED = "everloop_appended"


def json_dumps(value: Any) -> str:
    """JSON columns: orjson (several times faster than ``json``), with ``json`` for what
    orjson refuses (integers beyond 64 bits, non-string keys), but only when orjson can read
    back what ``json`` wrote and write it again. A string with a lone surrogate (``json``
    escapes it as ``\\ud800``, which orjson refuses to read) or nesting past orjson's ~250
    levels would make every later read of its row fail; it is refused here, inside the
    transaction, which then writes nothing."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        text = json.dumps(value)
    try:
        orjson.dumps(orjson.loads(text))
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        raise InvalidInput(
            "a value cannot be stored: text with a lone surrogate (such as \\ud800), or "
            "nesting too deep",
            code="unstorable_value",
        ) from None
    return text


def json_loads(text: str | bytes) -> Any:
    return orjson.loads(text)


def _note_audit_insert(
    conn: Any, statement: Any, multiparams: Any, params: Any, _options: Any
) -> None:
    audit.note_insert(conn.info, statement, multiparams or params)


def _note_audit_change(
    conn: Any, statement: Any, _multi: Any, _params: Any, _options: Any, result: Any
) -> None:
    audit.note_change(conn.info, statement, result.rowcount)


class Database:
    """The app database of one process (SQLite file or PostgreSQL)."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 20,
        max_overflow: int = 0,
        pool_timeout: float = 300.0,
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine: AsyncEngine
        self._read_engine: AsyncEngine
        if self.is_sqlite:
            # Statements run on the event loop (see store/sqlite_inline.py), so no thread
            # hop per statement; writes still queue on the asyncio lock below.
            sqlite_inline.register()
            self.engine = create_async_engine(
                sqlite_inline.inline_url(url),
                pool_size=pool_size,
                max_overflow=4,
                connect_args={"check_same_thread": False},
                json_serializer=json_dumps,
                json_deserializer=json_loads,
            )
            event.listen(self.engine.sync_engine, "connect", _sqlite_on_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_on_begin)
        else:
            # A busy pool queues transactions (up to pool_timeout) instead of failing them.
            self.engine = create_async_engine(
                url,
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_timeout=pool_timeout,
                json_serializer=json_dumps,
                json_deserializer=json_loads,
            )
            # Ping a connection before use only when it sat idle in the pool (a ping on every
            # checkout was a round trip more per transaction); a dead one is replaced.
            event.listen(self.engine.sync_engine.pool, "checkout", _ping_if_idle)
            event.listen(self.engine.sync_engine.pool, "checkin", _note_checkin)
            # Reads run in autocommit: one round trip per query instead of BEGIN, the query
            # and the ROLLBACK that returns the connection to the pool. Visibility is the
            # same as in a READ COMMITTED transaction, where every statement takes its own
            # snapshot too.
            self._read_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # A management request's audit record names what its transaction created.
        event.listen(self.engine.sync_engine, "before_execute", _note_audit_insert)
        event.listen(self.engine.sync_engine, "after_execute", _note_audit_change)
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None
        # SQLite: connections stay open between transactions (see ``_checkout``).
        self._idle: list[AsyncConnection] = []
        self._keep_idle = pool_size
        self._writer: AsyncConnection | None = None
        self._in_use = 0
        self._commit_listeners: list[Callable[[list[Event]], None]] = []

    def add_commit_listener(self, listener: Callable[[list[Event]], None]) -> None:
        """Call ``listener`` with the events a write transaction appended, once it committed
        (see ``store.event_log.append_events``)."""
        self._commit_listeners.append(listener)

    def _committed(self, appended: list[Event]) -> None:
        if appended:
            for listener in self._commit_listeners:
                try:
                    listener(appended)
                except Exception:  # a listener's bug must not fail the committed request
                    log.exception("commit listener failed")

    @property
    def in_use(self) -> int:
        """Connections in use by a transaction right now (kept-open idle ones not counted)."""
        return self._in_use

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        with _data_errors_as_invalid_input(), self._using("read"):
            if not self.is_sqlite:
                async with self._read_engine.connect() as conn:
                    yield conn
                return
            conn = self._idle.pop() if self._idle else await self.engine.connect()
            async with self._checkout(conn, keep=self._keep_reader):
                yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        with _data_errors_as_invalid_input():
            appended: list[Event] = []
            if not self.is_sqlite:
                with self._using("write"):
                    async with self.engine.connect() as conn:
                        try:
                            async with conn.begin():
                                yield conn
                                await audit.flush(conn)
                        finally:
                            appended = conn.info.pop(APPENDED, appended)
                            conn.info.pop(audit.INSERTED, None)
                            conn.info.pop(audit.CHANGED, None)
            else:
                assert self._write_lock is not None
                async with self._write_lock:
                    conn = self._writer or await self._new_writer()
                    self._writer = None
                    with self._using("write"):
                        async with self._checkout(conn, keep=self._keep_writer):
                            try:
                                async with conn.begin():
                                    yield conn
                                    await audit.flush(conn)
                            finally:
                                appended = conn.info.pop(APPENDED, appended)
                                conn.info.pop(audit.INSERTED, None)
                                conn.info.pop(audit.CHANGED, None)
            # Committed (an exception would not get here), and the connection is back.
            self._committed(appended)

    @contextmanager
    def _using(self, kind: str) -> Iterator[None]:
        self._in_use += 1
        started = time.perf_counter()
        try:
            yield
        finally:
            self._in_use -= 1
            _TRANSACTION_TIME[kind].observe(time.perf_counter() - started)

    async def _new_writer(self) -> AsyncConnection:
        conn = await self.engine.connect()
        await conn.execution_options(everloop_write=True)
        return conn

    @asynccontextmanager
    async def _checkout(
        self, conn: AsyncConnection, keep: Callable[[AsyncConnection], bool]
    ) -> AsyncIterator[None]:
        """Use ``conn`` for one transaction, then keep it open for the next one.

        Checking a connection out of SQLAlchemy's async pool and closing it again costs more
        than a short SQLite transaction (pool bookkeeping, a shielded close task, three event
        loop iterations), so on SQLite the connections stay open. A connection whose
        transaction was interrupted (cancelled) is closed instead of kept."""
        try:
            yield
        except Exception:
            if conn.in_transaction():
                await conn.rollback()
            if not keep(conn):
                await conn.close()
            raise
        except BaseException:
            await conn.close()
            raise
        if conn.in_transaction():
            await conn.rollback()  # a read: nothing to keep
        if not keep(conn):
            await conn.close()

    def _keep_reader(self, conn: AsyncConnection) -> bool:
        if conn.invalidated or len(self._idle) >= self._keep_idle:
            return False
        self._idle.append(conn)
        return True

    def _keep_writer(self, conn: AsyncConnection) -> bool:
        if conn.invalidated:
            return False
        self._writer = conn
        return True

    async def close(self) -> None:
        for conn in [*self._idle, *([self._writer] if self._writer else [])]:
            await conn.close()
        self._idle.clear()
        self._writer = None
        await self.engine.dispose()


@contextmanager
def _data_errors_as_invalid_input() -> Iterator[None]:
    # A value the database refuses to store (PostgreSQL: a NUL character in text, a number out
    # of range) is the caller's bad input, not a server fault; so is one ``json_dumps``
    # refuses, which SQLAlchemy hands on wrapped.
    try:
        yield
    except DataError as exc:
        raise InvalidInput(
            "a value in the request cannot be stored (for example text with a NUL "
            "character, \\u0000)",
            code="unstorable_value",
        ) from exc
    except StatementError as exc:
        if isinstance(exc.orig, InvalidInput):
            raise exc.orig from None
        raise


IDLE_PING_SECONDS = 5.0


def _note_checkin(_dbapi_conn: Any, record: Any) -> None:
    if record is not None:
        record.info["everloop_checked_in"] = time.monotonic()


def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    since = record.info.get("everloop_checked_in")
    if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
        return
    try:
        cursor = dbapi_conn.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
        # The ping opened a transaction (the driver is not in autocommit): end it, or a read
        # could not switch the connection to autocommit ("connection in transaction status
        # INTRANS", a 500 for the first read after a connection sat idle).
        dbapi_conn.rollback()
    except Exception as exc:
        # The pool discards this connection and checks out (or opens) another one.
        raise DisconnectionError() from exc


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, decide when a transaction begins (see _sqlite_on_begin).
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA busy_timeout=10000",
        "PRAGMA foreign_keys=ON",
    ):
        cursor.execute(pragma)
    cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    # A transaction that will write takes the write lock up front (BEGIN IMMEDIATE), waiting
    # through busy_timeout; a deferred one that upgrades later would fail at once with
    # "database is locked" when another writer is active. Writers are our write() and DBOS
    # datasource transactions (isolation SERIALIZABLE).
    options = conn.get_execution_options()
    immediate = options.get("everloop_write") or options.get("isolation_level") == "SERIALIZABLE"
    # Straight to the driver: this runs for every transaction.
    conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
