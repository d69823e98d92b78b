"""The HTTP server under each of the sandbox's origins: cheroot, HTTP/1.1 keep-alive, optional TLS.

Why cheroot (CherryPy's WSGI server) rather than werkzeug's development server
(which answers ``Connection: close`` every time) or waitress (which has no TLS):
it keeps HTTP/1.1 connections alive, parks idle keep-alive connections in a
selector instead of pinning a worker thread to each, serves from a fixed pool of
worker threads, and takes TLS through an adapter.

What this module adds around it:

- one listening socket bound by the caller (a busy port is a plain ``OSError``
  in the caller's thread), served from a daemon thread, so a kernel that never
  stops its embedded sandbox can still exit;
- ``close()`` shuts down the connections a worker is serving (a client's open
  keep-alive connection, a raw connection that never sent a request) before
  cheroot's own stop, so stopping never waits for a socket timeout, and joins
  every thread it started;
- a gateway that puts the connection's socket into the WSGI environ (under
  ``middleware.SOCKET_KEY``) and treats ``middleware.ConnectionDropped`` as
  "close without another byte", for the injected faults;
- TLS with the handshake done by the worker thread that serves the connection,
  not by the thread that accepts connections (cheroot's builtin adapter
  handshakes in the acceptor, so one client that connects and sends nothing
  stalls every other client: cherrypy/cheroot#748);
- answers written with ``socket.sendall`` (cheroot's own writer is a pure-Python
  buffered file that copies every block several times: a third of the
  download speed over loopback);
- a count of accepted connections, so tests can prove connection reuse.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import ssl
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cheroot import errors as cheroot_errors
from cheroot import wsgi
from cheroot.makefile import MakeFile
from cheroot.server import HTTPConnection
from cheroot.ssl import Adapter

from .middleware import SOCKET_KEY, ConnectionDropped

__all__ = ["OriginServer", "TLSAdapter", "make_tls", "listen"]

_LOGGER = logging.getLogger(__name__)

# Seconds an idle keep-alive connection stays open (and the socket timeout of a
# connection a worker is reading from). Production API fronts keep idle
# connections for about a minute; clients re-check a pooled connection before reuse.
KEEP_ALIVE_TIMEOUT = 60
# Parked (idle) keep-alive connections per origin before answers say "Connection: close".
_KEEP_ALIVE_LIMIT = 256
_MAX_HEADER_BYTES = 256 * 1024
# A request body the app left unread (an early 401/404) is read and dropped in
# blocks up to this size before the answer, so the connection stays usable;
# past it the connection is closed instead (cheroot alone would read the whole
# rest into memory at once).
_DRAIN_LIMIT = 64 << 20
_BLOCK = 1 << 20
_PLAIN_HTTP_TEXT = b"The client sent a plain HTTP request, but this server only speaks HTTPS.\n"
_PLAIN_HTTP_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_PLAIN_HTTP_TEXT), _PLAIN_HTTP_TEXT)
)


class TLSAdapter(Adapter):
    """cheroot's TLS hook, wrapping accepted sockets without handshaking yet.

    The handshake happens in :meth:`_Connection.communicate`, on the worker
    thread that serves the connection.

    Args:
        context: a server-side ``ssl.SSLContext`` with its certificate loaded.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(None, None)
        self.context = context

    def bind(self, sock: socket.socket) -> socket.socket:
        """The listening socket stays a plain socket."""
        return sock

    def wrap(self, sock: socket.socket) -> tuple[ssl.SSLSocket, dict[str, str]]:
        """Wrap an accepted socket for TLS (no handshake here: this runs in the acceptor)."""
        try:
            wrapped = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        except OSError as exc:  # the client is already gone
            sock.close()
            raise cheroot_errors.FatalSSLAlert(str(exc)) from exc
        return wrapped, self.get_environ()

    def get_environ(self) -> dict[str, str]:
        """WSGI environ entries of every request on a TLS connection."""
        return {"HTTPS": "on", "wsgi.url_scheme": "https"}

    def makefile(self, sock: socket.socket, mode: str = "r", bufsize: int = io.DEFAULT_BUFFER_SIZE) -> Any:
        """The same socket files as plain connections use (the connection replaces the write side)."""
        return MakeFile(sock, mode, bufsize)


def make_tls(names: Sequence[str], directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A throwaway CA and a server certificate for ``names``, as a server context.

    Args:
        names: host names and IP addresses the certificate is for.
        directory: where the CA's certificate (PEM) is written.

    Returns:
        The server-side context and the path of the CA bundle clients should trust.

    Raises:
        ImportError: if ``trustme`` is not installed.
    """
    try:
        import trustme
    except ImportError as exc:
        raise ImportError(
            "the sandbox's TLS mode needs the trustme package: pip install 'metafold-jupyter[tls]'"
        ) from exc
    ca = trustme.CA(organization_name="Metafold sandbox (throwaway)")
    leaf = ca.issue_cert(*names)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    bundle = directory / "sandbox-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return context, bundle


class _SocketWriter:
    """The connection's write side: straight to ``sendall`` (zero-copy from Python's side).

    cheroot's ``StreamWriter`` flushes on every write anyway, so nothing is gained by
    its buffer; it is a ``_pyio`` buffered writer whose copies of each block cap a
    loopback download at about a third of what the socket takes.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.bytes_written = 0  # read by cheroot's statistics
        self.closed = False

    def write(self, data: bytes) -> int:
        self._sock.sendall(data)
        self.bytes_written += len(data)
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        self.closed = True


class _Gateway(wsgi.Gateway_10):
    """WSGI 1.0 gateway that exposes the connection's socket and honours a dropped connection."""

    def get_environ(self) -> dict[str, Any]:  # type: ignore[override]  # cheroot's stub says None
        env = super().get_environ()
        env[SOCKET_KEY] = self.req.conn.socket
        return env

    def respond(self) -> None:
        """Run the app and send its answer; after a drop, send nothing more on this connection."""
        req = self.req
        try:
            response = req.server.wsgi_app(self.env, self.start_response)
            try:
                self._finish_reading()
                for chunk in response:
                    if not isinstance(chunk, bytes):
                        raise TypeError("WSGI applications must yield bytes")
                    if chunk:
                        self.write(chunk)
            finally:
                close = getattr(response, "close", None)
                if close is not None:
                    close()
        except ConnectionDropped:
            # The gate shut the socket down on purpose (an injected drop or truncation).
            req.close_connection = True
            req.sent_headers = True
            req.chunked_write = False
            return
        req.ensure_headers_sent()

    def _finish_reading(self) -> None:
        req = self.req
        if req.chunked_read:  # unknown length: read up to the limit, else give up on the connection
            drained = 0
            while drained <= _DRAIN_LIMIT:
                block = req.rfile.read(_BLOCK)
                if not block:
                    return
                drained += len(block)
            req.close_connection = True
            return
        remaining = getattr(req.rfile, "remaining", 0)
        if remaining > _DRAIN_LIMIT:
            req.close_connection = True
            return
        while remaining > 0 and req.rfile.read(min(_BLOCK, remaining)):
            remaining = req.rfile.remaining


class _Connection(HTTPConnection):
    """A connection that registers with its server while a worker serves it, and handshakes TLS there."""

    def __init__(self, server: OriginServer, sock: socket.socket, makefile: Any = MakeFile) -> None:
        super().__init__(server, sock, makefile)
        self.wfile.close()  # cheroot's writer, replaced (closing it leaves the socket open)
        self.wfile = _SocketWriter(sock)
        self._handshake_done = not isinstance(sock, ssl.SSLSocket)
        server.count_accepted()

    def communicate(self) -> bool:
        server: OriginServer = self.server
        if not server.enter(self):
            return False
        try:
            if not self._handshake_done and not self._handshake():
                return False
            keep = super().communicate()
            return keep and not server.closing
        finally:
            server.leave(self)

    def _handshake(self) -> bool:
        try:
            self.socket.do_handshake()
        except ssl.SSLError as exc:
            if getattr(exc, "reason", None) == "HTTP_REQUEST":
                try:
                    # Answer in plain text on the raw socket, bypassing the TLS layer.
                    socket.socket.sendall(self.socket, _PLAIN_HTTP_ANSWER)
                except OSError:
                    pass
            _LOGGER.debug("TLS handshake with %s failed: %s", self.remote_addr, exc)
            return False
        except OSError as exc:  # timed out, or the client left
            _LOGGER.debug("TLS handshake with %s failed: %s", self.remote_addr, exc)
            return False
        self._handshake_done = True
        return True


class OriginServer(wsgi.Server):
    """cheroot's WSGI server on an already listening socket, with a clean, complete stop.

    Args:
        sock: a bound, listening TCP socket (the server takes it over).
        app: the WSGI app.
        name: prefix of this server's thread names.
        threads: worker threads, i.e. requests served at the same time (idle
            keep-alive connections need none).
        tls: wraps connections in TLS when given.
        shutdown_timeout: seconds ``close()`` waits for worker threads.
    """

    ConnectionClass = _Connection
    expiration_interval = 0.1  # also how long stopping the acceptor loop may take
    keep_alive_conn_limit = _KEEP_ALIVE_LIMIT
    max_request_header_size = _MAX_HEADER_BYTES

    def __init__(
        self,
        sock: socket.socket,
        app: Any,
        *,
        name: str,
        threads: int,
        tls: TLSAdapter | None = None,
        shutdown_timeout: int = 5,
    ) -> None:
        self._listener = sock
        super().__init__(
            sock.getsockname()[:2],
            app,
            numthreads=threads,
            max=threads,
            request_queue_size=128,
            timeout=KEEP_ALIVE_TIMEOUT,
            shutdown_timeout=shutdown_timeout,
        )
        self.gateway = _Gateway
        self.ssl_adapter = tls
        self.name = name
        self.closing = False
        self.accepted = 0
        self._busy: set[_Connection] = set()
        self._busy_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._side_threads: list[threading.Thread] = []

    # ------------------------------------------------------------- lifecycle
    def serve_in_thread(self) -> None:
        """Start the workers and the acceptor in daemon threads; return once it is serving.

        The threads are daemons (cheroot's workers inherit that from the thread
        that creates them), so an embedded sandbox never holds up interpreter exit.
        """
        prepared = threading.Event()
        failures: list[BaseException] = []

        def run() -> None:
            try:
                self.prepare()
                if self.socket is not self._listener:
                    # cheroot takes fd 3 when LISTEN_PID is set (systemd socket activation)
                    raise RuntimeError("the sandbox cannot run under systemd socket activation (LISTEN_PID is set)")
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                failures.append(exc)
                return
            finally:
                prepared.set()
            self.serve()

        self._thread = threading.Thread(target=run, name=f"{self.name}-serve", daemon=True)
        self._thread.start()
        prepared.wait()
        if failures:
            self.close()
            raise failures[0]

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving: shut down open connections, stop cheroot, join every thread (idempotent)."""
        with self._busy_lock:
            self.closing = True
            busy = list(self._busy)
        for conn in busy:
            try:
                conn.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.stop()  # cheroot: acceptor, listening socket, parked connections, worker threads
        self._listener.close()
        for thread in [self._thread, *self._side_threads]:
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)
                if thread.is_alive():
                    _LOGGER.warning("sandbox server thread %s did not stop", thread.name)

    # ------------------------------------------------------- cheroot's hooks
    def bind(self, family: int, type: int, proto: int = 0) -> socket.socket:  # noqa: A002 - cheroot's signature
        """Adopt the listening socket given to the constructor (cheroot calls this from ``prepare``)."""
        if self.nodelay and family in (socket.AF_INET, socket.AF_INET6):
            # accepted sockets inherit it: no Nagle delay between a header and its body
            self._listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.socket = self._listener
        self.bind_addr = self._listener.getsockname()[:2]
        return self._listener

    def _serve_unservicable(self) -> None:
        # cheroot starts this helper thread in serve(); remember it, to join it on close().
        self._side_threads.append(threading.current_thread())
        threading.current_thread().name = f"{self.name}-overflow"
        super()._serve_unservicable()  # type: ignore[misc]  # private, so not in cheroot's stubs

    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        """cheroot's log lines go to this module's logger (client disconnects are routine: DEBUG)."""
        _LOGGER.log(logging.WARNING if level >= logging.ERROR else logging.DEBUG, "%s: %s", self.name, msg,
                    exc_info=traceback)

    # ------------------------------------------------- connection bookkeeping
    def count_accepted(self) -> None:
        """Count one accepted connection (called by the acceptor thread only)."""
        self.accepted += 1

    def enter(self, conn: _Connection) -> bool:
        """Register a connection a worker starts serving; False once the server is closing."""
        with self._busy_lock:
            if self.closing:
                return False
            self._busy.add(conn)
            return True

    def leave(self, conn: _Connection) -> None:
        """Unregister a connection a worker is done with (for now)."""
        with self._busy_lock:
            self._busy.discard(conn)


def listen(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A bound, listening TCP socket on ``host:port`` (IPv6 when the host has a colon)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if os.name != "nt":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock
