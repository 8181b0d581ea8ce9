"""The worker process that runs session SQL, and the frames it speaks over its stdin/stdout.

The server never runs an agent's SQL itself: a statement may spend seconds in one C call that
SQLite's progress handler never interrupts, and on the server it would hold a thread, memory
and (before this design) the app database's write lock. ``everloop.sql_pool`` starts these
workers (``python -m everloop.sql_worker``), hands each one a request at a time and kills it when
the request runs past its time limit.

A frame is two big-endian 32-bit lengths, a JSON header and a binary blob (the database bytes).
No pickle: a worker is assumed hostile once it has run someone's SQL, so the server parses only
JSON and a blob of bounded size from it.

Request header: ``{"op": "query" | "execute" | "describe", "sql", "params", "limits"}`` with the
database as the blob. Reply header: ``{"result": ...}`` or ``{"error": message}``; after an
``execute`` that changed the database, the blob is its new bytes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import struct
import sys
from dataclasses import asdict
from typing import Any, BinaryIO

import orjson

from everloop import sql_sandbox
from everloop.sql_sandbox import Limits, SandboxError

FRAME = struct.Struct(">II")
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def encode_frame(header: dict[str, Any], blob: bytes = b"") -> bytes:
    """One frame; ``TypeError`` if the header is not JSON (e.g. a lone surrogate)."""
    data = orjson.dumps(header)
    return FRAME.pack(len(data), len(blob)) + data + blob


def request(op: str, content: bytes, limits: Limits, sql: str = "", params: Any = ()) -> bytes:
    return encode_frame(
        {"op": op, "sql": sql, "params": list(params), "limits": asdict(limits)}, content
    )


def handle(header: dict[str, Any], content: bytes) -> tuple[dict[str, Any], bytes]:
    """Run one request; the reply header and blob."""
    limits = Limits(**header["limits"])
    sql, params = str(header["sql"]), header["params"]
    try:
        match header["op"]:
            case "query":
                found = sql_sandbox.query(content, sql, params, limits)
                rows = {"columns": found.columns, "rows": found.rows, "truncated": found.truncated}
                return {"result": rows}, b""
            case "execute":
                done = sql_sandbox.execute(content, sql, params, limits)
                result = {
                    "rows_affected": done.rows_affected,
                    "last_insert_rowid": done.last_insert_rowid,
                    "changed": done.changed,
                }
                return {"result": result}, done.content if done.changed else b""
            case "describe":
                return {"result": sql_sandbox.describe(content, limits)}, b""
    except SandboxError as exc:
        return {"error": str(exc)}, b""
    return {"error": f"unknown operation {header['op']!r}"}, b""


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


READY: dict[str, Any] = {"ready": True}


def serve(source: BinaryIO, sink: BinaryIO) -> None:
    """Say the worker is ready (its imports done), then answer requests until the server
    closes the pipe."""
    sink.write(encode_frame(READY))
    sink.flush()
    while (head := _read_exactly(source, FRAME.size)) is not None:
        header_size, blob_size = FRAME.unpack(head)
        header = _read_exactly(source, header_size)
        blob = _read_exactly(source, blob_size)
        if header is None or blob is None:
            return
        reply, reply_blob = handle(orjson.loads(header), blob)
        try:
            frame = encode_frame(reply, reply_blob)
        except TypeError as exc:  # a value orjson cannot write; cannot come from SQLite text
            frame = encode_frame({"error": f"the result cannot be sent: {exc}"})
        sink.write(frame)
        sink.flush()


def die_with(server_pid: int) -> None:
    """Have the kernel kill this worker when the server exits, even by ``kill -9``, so no
    statement outlives the server that asked for it (Linux; elsewhere a busy worker exits when
    it next reads the closed pipe)."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != server_pid:  # the server died before the line above took effect
        os._exit(0)


def main() -> None:
    die_with(int(sys.argv[1]))
    # Frames go to a private copy of stdout; anything printed by mistake goes to stderr.
    sink = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer, sink)


if __name__ == "__main__":
    main()
