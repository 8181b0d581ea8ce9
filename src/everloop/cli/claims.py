"""What a server process claims before anything else starts: its data dir and its port.

``everloop serve`` and ``everloop worker`` run turns under the executor id kept in the data dir
(``executor-id``). A second process on the same data dir would launch its engine under the same
id and could recover (take over) the turns the first one is running. So an executing process
first takes an exclusive ``flock`` on ``<data-dir>/everloop.lock`` and holds it for its whole
life. The OS releases it when the process ends in any way, ``kill -9`` included, so a crash
leaves no stale lock; the pid written into the file names the holder when a second process is
refused. ``everloop api`` (it executes nothing) and management commands (``everloop token``)
take no lock and keep working beside a server.

The port is bound right after, before the database is touched, so a taken port fails the start
at once instead of after the migrations; the bound socket is handed to the HTTP server.

Files the process creates are private, like ``secret.key``: the umask is ``077`` (files 0600,
directories 0700; SQLite gives its WAL and SHM files the mode of their database).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path

LOCK_FILE = "everloop.lock"


class ClaimRefused(Exception):
    """The data dir or the port is taken; the message says by what."""


class DataDirLock:
    """An exclusive ``flock`` on ``<data-dir>/everloop.lock``, held until ``release`` or exit."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


def private_files() -> None:
    """Create every later file of this process 0600 and every directory 0700."""
    os.umask(0o077)


def lock_data_dir(data_dir: Path, role: str) -> DataDirLock:
    """Take the data dir for this process, or raise ``ClaimRefused`` naming the holder's pid."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    # Opened without truncating: the holder's pid must stay readable until the lock is ours.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 200).decode(errors="replace").strip() or "a process (pid unknown)"
        os.close(fd)
        raise ClaimRefused(
            f"data dir {data_dir.resolve()} is in use by {holder}: one server process per data "
            "dir (stop that one, or give this one its own --data-dir)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"everloop {role} (pid {os.getpid()})\n".encode(), 0)
    return DataDirLock(path, fd)


def bind_port(host: str, port: int) -> socket.socket:
    """Bind and listen on ``host:port`` now; ``ClaimRefused`` if that fails (port taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP by name: asyncio turns Nagle off (TCP_NODELAY) only on accepted sockets whose
    # protocol says TCP; with proto 0 every response waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # A restart may find its old connections in TIME_WAIT; a live listener still refuses.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        with contextlib.suppress(OSError):
            sock.close()
        raise ClaimRefused(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(False)
    return sock
