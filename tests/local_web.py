"""A tiny HTTP server on 127.0.0.1 (or ``::1``) for egress and web_fetch tests (a real server,
in a thread).

Routes: ``/`` an HTML page, ``/text`` plain text, ``/binary`` a PNG-typed body, ``/big`` 1 MiB of
text, ``/sized?bytes=N`` ``sized_text(N)`` as plain text, ``/redirect?to=URL`` a 302 to URL,
``/loop`` a redirect to itself, ``/held`` plain text, but the first request to it is answered
only once ``release`` is set (``entered`` says it arrived). Every request's path is recorded in
``requests``.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

PAGE = (
    "<!doctype html><html><head><title>Local page</title><style>p{color:red}</style>"
    "<script>alert('x')</script></head><body><h1>Hello egress</h1>"
    "<p>Some <b>bold</b> text and a <a href='/text'>link</a>.</p>"
    "<ul><li>one</li><li>two</li></ul></body></html>"
)


def sized_text(size: int) -> bytes:
    """``size`` bytes of numbered lines of text, none alike (so a cut or a shift shows)."""
    lines = (f"line {n:07d} {n * 7919 % 1000003:07d} the quick brown fox\n" for n in range(size))
    out = bytearray()
    for line in lines:
        if len(out) >= size:
            break
        out += line.encode()
    return bytes(out[:size])


def ipv6_loopback_available() -> bool:
    """Whether this machine can listen on ``::1`` (some containers have no IPv6 loopback)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class LocalWeb:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.requests: list[str] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        web = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_GET(self) -> None:
                web.requests.append(self.path)
                parts = urlsplit(self.path)
                if parts.path == "/":
                    self._send(200, "text/html; charset=utf-8", PAGE.encode())
                elif parts.path == "/text":
                    self._send(200, "text/plain; charset=utf-8", b"plain words")
                elif parts.path == "/binary":
                    self._send(200, "image/png", b"\x89PNG\r\n\x1a\n" + bytes(100))
                elif parts.path == "/big":
                    self._send(200, "text/plain", b"x" * (1024 * 1024))
                elif parts.path == "/sized":
                    size = int(parse_qs(parts.query)["bytes"][0])
                    self._send(200, "text/plain; charset=utf-8", sized_text(size))
                elif parts.path == "/redirect":
                    target = parse_qs(parts.query)["to"][0]
                    self._redirect(target)
                elif parts.path == "/loop":
                    self._redirect("/loop")
                elif parts.path == "/held":
                    first = not web.entered.is_set()
                    web.entered.set()
                    if first:
                        web.release.wait(timeout=30)
                    self._send(200, "text/plain", b"held words")
                else:
                    self._send(404, "text/plain", b"not found")

            def _redirect(self, target: str) -> None:
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (a test killed it mid-request)

        server_class = _Server6 if ":" in host else ThreadingHTTPServer
        self._server = server_class((host, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> LocalWeb:
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
