"""The listening socket ``everloop serve`` binds itself is one asyncio serves without Nagle's
delay: an accepted connection has ``TCP_NODELAY`` set (without it every response of the server
waited for the client's delayed ACK, about 40 ms a request)."""

from __future__ import annotations

import asyncio
import socket

from everloop.cli.claims import bind_port


async def test_accepted_connections_have_nagle_off() -> None:
    sock = bind_port("127.0.0.1", 0)
    nodelay: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = writer.get_extra_info("socket")
        nodelay.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=sock)
    async with server:
        port = sock.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(nodelay, timeout=10) != 0
        writer.close()
