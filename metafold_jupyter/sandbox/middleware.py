"""The gate in front of both origins: request log, Host check, latency and injected faults.

Every request is recorded on arrival (its status is filled in when the answer
starts), then refused with 421 if its ``Host`` is not one the origin answers to
(served origins only: the DNS-rebinding defence), then delayed by the configured
latency (API origin only), then checked against the injected faults, all before
the wrapped app (and so before any token check) sees it. Sleeps wait on the
sandbox's stop event, so ``stop()`` never waits for a sleeping handler: the
request is dropped instead.
"""

from __future__ import annotations

import copy
import ipaddress
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Response

from .faults import FaultInjector, fault_response, s3_error
from .replies import json_reply, status_body

__all__ = ["RequestRecord", "Monitor", "Gate", "HostPolicy", "ConnectionDropped", "SOCKET_KEY"]

_LOGGER = logging.getLogger(__name__)
MAX_RECORDS = 100_000
# WSGI environ key under which the server puts the connection's socket (to drop it).
SOCKET_KEY = "metafold_sandbox.socket"

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class ConnectionDropped(ConnectionAbortedError):
    """Raised out of the app after shutting the socket down; the server then sends nothing more."""


@dataclass
class RequestRecord:
    """One request as the sandbox saw it.

    Attributes:
        origin: ``"api"`` (API and auth) or ``"download"``.
        method: HTTP method.
        path: URL path.
        query: raw query string ("" if none).
        status: the status answered, or None if the connection was dropped
            (or the answer has not started yet).
        authorization: the raw Authorization header, or None.
        time: arrival time (POSIX seconds).
    """

    origin: str
    method: str
    path: str
    query: str
    status: int | None
    authorization: str | None
    time: float


class Monitor:
    """Shared state of the gates: log, counters, latency, faults and the stop event."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Bounded, so a long-running CLI sandbox does not grow without limit.
        self._records: deque[RequestRecord] = deque(maxlen=MAX_RECORDS)
        self._token_exchanges = 0
        self.latency = 0.0
        self.faults = FaultInjector()
        self.stopping = threading.Event()

    def record(self, record: RequestRecord) -> None:
        """Append a record (the oldest go beyond ``MAX_RECORDS``) and count token exchanges."""
        with self._lock:
            self._records.append(record)
            if record.origin == "api" and record.method == "POST" and record.path == "/oauth/token":
                self._token_exchanges += 1

    def set_status(self, record: RequestRecord, status: int | None) -> None:
        """Fill in the answered status of a record."""
        with self._lock:
            record.status = status

    @property
    def records(self) -> list[RequestRecord]:
        """Snapshot copies of every record."""
        with self._lock:
            return [copy.copy(r) for r in self._records]

    @property
    def token_exchanges(self) -> int:
        """Number of ``POST /oauth/token`` requests received."""
        with self._lock:
            return self._token_exchanges

    def reset(self) -> None:
        """Clear the log, the counters, the faults and the latency."""
        with self._lock:
            self._records.clear()
            self._token_exchanges = 0
        self.latency = 0.0
        self.faults.clear()

    def sleep(self, seconds: float) -> bool:
        """Sleep unless the sandbox stops first; return True if it is stopping."""
        return self.stopping.wait(seconds)


class HostPolicy:
    """The ``Host`` headers one served origin answers to (its DNS-rebinding defence).

    A web page whose DNS name an attacker re-points at 127.0.0.1 reaches the
    sandbox from a browser with ``Host: <attacker's name>:<port>``; the sandbox's
    credentials are public, so such a request must not be answered. Accepted:
    ``localhost`` and loopback IP literals, on the origin's own port; with
    ``allow_remote``, also the configured host, and for a wildcard bind (0.0.0.0,
    ::) any IP literal and this machine's host name. A DNS-rebinding request
    never carries an IP literal.

    Args:
        port: the origin's port.
        scheme: ``"http"`` or ``"https"`` (a Host without a port means 80 or 443).
        remote_host: the configured host when ``allow_remote`` is on, else None.
    """

    def __init__(self, port: int, scheme: str, remote_host: str | None = None) -> None:
        self.port = port
        self.default_port = 443 if scheme == "https" else 80
        self.names = {"localhost"}
        self.any_ip = False
        if remote_host is not None:
            if remote_host in ("", "0.0.0.0", "::"):
                self.any_ip = True
                self.names.add(socket.gethostname().lower())
            else:
                self.names.add(remote_host.strip("[]").lower())

    def allows(self, host: str | None) -> bool:
        """Whether a request with this ``Host`` header is for this origin."""
        if not host:
            return False
        host = host.strip().lower()
        if host.startswith("["):
            name, bracket, rest = host[1:].partition("]")
            if not bracket:
                return False
        else:
            name, _, rest = host.partition(":")
            rest = ":" + rest if _ else ""
            if ":" in rest[1:]:
                return False  # an IPv6 literal must be in brackets
        if rest and not (rest.startswith(":") and rest[1:].isascii() and rest[1:].isdigit()):
            return False
        port = int(rest[1:]) if rest else self.default_port
        if port != self.port:
            return False
        if name in self.names:
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        return address.is_loopback or self.any_ip


class Gate:
    """WSGI middleware applying the monitor to one origin.

    Args:
        app: the wrapped WSGI app.
        origin: ``"api"`` or ``"download"``.
        monitor: the shared monitor.
        hosts: the Host headers to answer (None: any, for in-process test clients).
    """

    def __init__(self, app: WSGIApp, origin: str, monitor: Monitor, hosts: HostPolicy | None = None) -> None:
        self.app = app
        self.origin = origin
        self.monitor = monitor
        self.hosts = hosts

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        record = RequestRecord(
            origin=self.origin,
            method=method,
            path=path,
            query=environ.get("QUERY_STRING", ""),
            status=None,
            authorization=environ.get("HTTP_AUTHORIZATION"),
            time=time.time(),
        )
        monitor = self.monitor
        monitor.record(record)

        def recording_start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
            monitor.set_status(record, int(status.split(None, 1)[0]))
            return start_response(status, headers, exc_info)

        if self.hosts is not None and not self.hosts.allows(environ.get("HTTP_HOST")):
            self._drain(environ)
            return self._misdirected()(environ, recording_start_response)
        latency = monitor.latency if self.origin == "api" else 0.0
        if latency > 0 and monitor.sleep(latency):
            self._drop(environ)
        fault = monitor.faults.take(self.origin, method, path)
        if fault is not None:
            _LOGGER.debug("fault on %s %s %s: %s", self.origin, method, path, fault)
            if fault.delay > 0 and monitor.sleep(fault.delay):
                self._drop(environ)
            if fault.drop:
                # Read the body first so the client sees a clean close, not a reset.
                self._drain(environ)
                self._drop(environ)
            if fault.answers:
                self._drain(environ)
                body = fault_response(fault, path)(environ, recording_start_response)
            else:
                body = self.app(environ, recording_start_response)
            if fault.truncate is not None:
                return self._truncated(body, fault.truncate, environ)
            return body
        return self.app(environ, recording_start_response)

    def _misdirected(self) -> Response:
        """421 in the origin's own error shape."""
        text = (
            "Misdirected request: this sandbox answers only to its own address "
            f"(e.g. Host: 127.0.0.1:{self.hosts.port if self.hosts else 0}), a defence against DNS rebinding"
        )
        if self.origin == "download":
            return s3_error(421, "MisdirectedRequest", text)
        return json_reply(status_body(421, text), 421)

    def _truncated(self, body: Iterable[bytes], limit: int, environ: dict[str, Any]) -> Iterable[bytes]:
        """Pass on the first ``limit`` bytes of the body, then drop the connection."""
        sent = 0
        try:
            for chunk in body:
                if sent + len(chunk) >= limit:
                    if limit > sent:
                        yield chunk[: limit - sent]
                    self._drop(environ)
                sent += len(chunk)
                yield chunk
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    @staticmethod
    def _drain(environ: dict[str, Any]) -> None:
        # Read the request body so the client is not cut off mid-upload.
        stream = environ.get("wsgi.input")
        length = environ.get("CONTENT_LENGTH")
        if stream is None or not length:
            return
        try:
            remaining = int(length)
        except ValueError:
            return
        while remaining > 0:
            chunk = stream.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)

    @staticmethod
    def _drop(environ: dict[str, Any]) -> None:
        """Close the connection without an answer (the client sees it dropped)."""
        sock = environ.get(SOCKET_KEY)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise ConnectionDropped("connection dropped by the sandbox")
