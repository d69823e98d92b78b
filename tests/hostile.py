"""A scriptable misbehaving server on a loopback address, for the hostile-server tests.

Each test says what every path answers — redirects, echoed request bodies, trickled
bytes, odd JSON — and afterwards reads what the client sent (``requests``). One
instance on 127.0.0.1 plays the auth service, the API and the download host; a
second on 127.0.0.2 plays "another host" that must never see a secret or a token.

Import as ``from hostile import Hostile, Reply`` (tests/ is on sys.path).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SECRET = "hostile-test-secret-Zq8xY2vB7nM4kL1pR6tW9sD3fG5hJ0aQ"
CLIENT_ID = "hostile-test-client"


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    def text(self) -> str:
        return " ".join([self.method, self.path, json.dumps(self.query), json.dumps(self.headers),
                         self.body.decode("latin-1")])


@dataclass
class Reply:
    """A plain answer: status, JSON (or bytes) body, extra headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, (bytes, bytearray)):
            return bytes(self.body), "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain"
        return json.dumps(self.body).encode(), "application/json"


Handler = Callable[["Seen", "Exchange"], "Reply | None"]


class Exchange:
    """What a handler may do beyond returning a Reply: write raw bytes slowly."""

    def __init__(self, handler: BaseHTTPRequestHandler, server: Hostile) -> None:
        self._handler = handler
        self._server = server

    def raw(self, data: bytes) -> None:
        self._handler.wfile.write(data)
        self._handler.wfile.flush()

    def trickle(self, data: bytes, every: float, forever: bytes | None = None) -> None:
        """Write ``data`` one byte at a time, then ``forever`` (if given) until the client goes away."""
        try:
            for byte in data:
                if self._server.stopping.is_set():
                    return
                self.raw(bytes([byte]))
                time.sleep(every)
            while forever is not None and not self._server.stopping.is_set():
                self.raw(forever)
                time.sleep(every)
        except OSError:  # the client closed the connection: what the tests want
            self._server.cut.append(self._handler.path)


class Hostile:
    """The server. ``on(method, path, handler_or_reply)`` scripts one path (exact match,
    without the query); anything else answers 404."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.routes: dict[tuple[str, str], Handler | Reply] = {}
        self.requests: list[Seen] = []
        self.issued: list[str] = []
        self.cut: list[str] = []
        self.stopping = threading.Event()
        owner = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                seen = Seen(self.command, parts.path, parse_qs(parts.query),
                            {k.lower(): v for k, v in self.headers.items()}, body)
                owner.requests.append(seen)
                route = owner.routes.get((self.command, parts.path))
                reply = route(seen, Exchange(self, owner)) if callable(route) else route
                if reply is None and route is not None:
                    self.close_connection = True
                    return  # the handler wrote (or refused to write) the answer itself
                reply = reply or Reply(404, {"code": 404, "name": "Not Found",
                                             "description": "Resource does not exist"})
                data, ctype = reply.encoded()
                self.send_response(reply.status)
                headers = {"Content-Type": ctype, "Content-Length": str(len(data)), **reply.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = do_HEAD = _handle  # noqa: N815

        self._server = ThreadingHTTPServer((host, 0), _Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"hostile-{host}", daemon=True)
        self._thread.start()

    # -- scripting ------------------------------------------------------------------------

    def on(self, method: str, path: str, answer: Handler | Reply | Any) -> None:
        if not callable(answer) and not isinstance(answer, Reply):
            answer = Reply(200, answer)
        self.routes[(method.upper(), path)] = answer

    def token_endpoint(self, answer: Callable[[], dict[str, Any]] | None = None) -> None:
        """``/oauth/token``: a fresh (JWT-shaped) token each time, or whatever ``answer()`` returns."""

        def handle(seen: Seen, ex: Exchange) -> Reply:
            if answer is not None:
                return Reply(200, answer())
            return Reply(200, {"access_token": self.new_token(), "token_type": "Bearer", "expires_in": 86400})

        self.on("POST", "/oauth/token", handle)

    def new_token(self) -> str:
        token = f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ{uuid.uuid4().hex}In0.{uuid.uuid4().hex}"
        self.issued.append(token)
        return token

    def seen(self, path: str | None = None, method: str | None = None) -> list[Seen]:
        return [r for r in self.requests if (path is None or r.path == path) and (method is None or r.method == method)]

    def reset(self) -> None:
        self.routes.clear()
        self.requests.clear()
        self.issued.clear()
        self.cut.clear()

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
