"""One live process per executor id, across machines (PostgreSQL).

DBOS recovers, at launch, every pending workflow recorded under its executor id: a second
process launched under the id of a live one would take over (and run twice) the turns that one
is running. Before launching, an executor therefore takes a PostgreSQL advisory lock keyed by its
id on a connection of its own, and keeps that connection for its life. PostgreSQL releases the
lock when the connection ends, which a process that dies (``kill -9`` included) ends with it; a
restart under the same id waits a moment for that, then recovers its own turns as before.

The connection carries the holder's pid and host name as its ``application_name``, so a refused
process can say who holds the id.
"""

from __future__ import annotations

import hashlib
import os
import platform

import psycopg
from psycopg import errors
from sqlalchemy.engine import make_url

# How long a start waits for the id: the lock of a process killed a moment ago is released as
# soon as PostgreSQL sees its connection close.
CLAIM_WAIT_SECONDS = 15

_HOLDER = """
SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid::bigint = %(high)s AND l.objid::bigint = %(low)s
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


class ExecutorIdInUse(RuntimeError):
    """Another live process runs under this executor id."""


def lock_key(executor_id: str) -> int:
    """The advisory-lock key of an executor id: 64 bits of its SHA-256, signed."""
    digest = hashlib.sha256(f"everloop-executor:{executor_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def claim_executor_id(database_url: str, executor_id: str) -> psycopg.Connection[object]:
    """Hold ``executor_id`` on a new connection (close it to let go); ``ExecutorIdInUse`` if a
    live process still holds it after ``CLAIM_WAIT_SECONDS``."""
    conninfo = make_url(database_url).set(drivername="postgresql")
    conn: psycopg.Connection[object] = psycopg.connect(
        conninfo.render_as_string(hide_password=False),
        autocommit=True,
        application_name=f"everloop executor pid {os.getpid()} on {platform.node() or 'host'}"[:63],
    )
    key = lock_key(executor_id)
    try:
        conn.execute(f"SET lock_timeout = '{CLAIM_WAIT_SECONDS}s'")
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
    except errors.LockNotAvailable:
        row = conn.execute(_HOLDER, {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF})
        found = row.fetchone()
        conn.close()
        holder = str(found[0]) if found and found[0] else "another process"  # type: ignore[index]
        raise ExecutorIdInUse(
            f"executor id {executor_id!r} is in use by {holder}: every executing process needs "
            "its own id (EVERLOOP_EXECUTOR_ID, or its own --data-dir)"
        ) from None
    except BaseException:
        conn.close()
        raise
    conn.execute("RESET lock_timeout")
    return conn
