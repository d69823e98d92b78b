"""Overall deadlines for HTTP exchanges (transport layer).

A read timeout bounds each wait for the next bytes, not the exchange: a server
that sends one byte every 1.5 s keeps a call with a 2 s read timeout alive for
ever, and urllib3's ``Timeout(total=...)`` only caps the connect plus the first
read wait. So every attempt (one request and its whole answer, the body of a
non-streamed answer included) gets a deadline, and a single watchdog thread shuts
down the socket of an attempt that outlives it: the blocked read returns at once,
and the call fails with a one-line ``TransportError``. An attempt cut short is not
retried.

How an attempt is tracked: :func:`deadline` marks the calling thread's call;
the connection pools mounted by the transport (:class:`DeadlineAdapter`) arm the
watchdog when urllib3 starts an attempt on a connection, and disarm it when the
connection goes back to the pool; leaving :func:`deadline` disarms whatever is
left (a streamed answer's body is then read under the stall detector of
``operations`` instead).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_LOGGER = logging.getLogger(__name__)

_local = threading.local()
_lock = threading.Lock()
_MARK = "_metafold_deadline"  # attribute set on a connection while an attempt on it is armed


class DeadlineExceeded(Exception):
    """An attempt of this call already ran past its deadline (deliberately not an OSError,
    so that urllib3 does not retry it)."""


class Call:
    """One transport call: its per-attempt budget, whether an attempt ran out, its armed entries."""

    __slots__ = ("budget", "expired", "entries")

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.expired = False
        self.entries: list[_Entry] = []

    def attempt(self, conn: Any) -> None:
        """An attempt starts on ``conn``: arm the watchdog (or refuse if a previous attempt ran out)."""
        with _lock:
            if self.expired:
                raise DeadlineExceeded()
            entry = _Entry(self, conn, time.monotonic() + self.budget)
            old = getattr(conn, _MARK, None)
            if old is not None:
                old.cancelled = True
            setattr(conn, _MARK, entry)
            self.entries.append(entry)
        _WATCHDOG.arm(entry)

    def finish(self) -> None:
        """The call is over: nothing of it may be cut any more."""
        with _lock:
            for entry in self.entries:
                entry.cancelled = True
                if getattr(entry.conn, _MARK, None) is entry:
                    setattr(entry.conn, _MARK, None)
            self.entries.clear()


class _Entry:
    __slots__ = ("call", "conn", "when", "cancelled")

    def __init__(self, call: Call, conn: Any, when: float) -> None:
        self.call = call
        self.conn = conn
        self.when = when
        self.cancelled = False

    def fire(self) -> None:
        with _lock:
            if self.cancelled or getattr(self.conn, _MARK, None) is not self:
                return
            self.cancelled = True
            self.call.expired = True
            sock = getattr(self.conn, "sock", None)
        if sock is not None:
            _LOGGER.debug("an answer took longer than %.3g s: closing its connection", self.call.budget)
            _shutdown(sock)


def _shutdown(sock: Any) -> None:
    # SSLSocket.shutdown would also drop its SSL object under a reader in another
    # thread; the plain socket's shutdown just makes the blocked read return.
    raw = getattr(sock, "socket", sock)  # urllib3's SSLTransport (TLS in TLS) wraps a socket
    try:
        socket.socket.shutdown(raw, socket.SHUT_RDWR)
    except (OSError, TypeError):
        pass


class _Watchdog:
    """One daemon thread firing entries at their time (a heap; cancelled entries are skipped)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Entry]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, entry: _Entry) -> None:
        with self._cond:
            earliest = self._heap[0][0] if self._heap else None
            heapq.heappush(self._heap, (entry.when, next(self._counter), entry))
            if len(self._heap) > 1024 and len(self._heap) % 1024 == 0:
                self._heap = [item for item in self._heap if not item[2].cancelled]
                heapq.heapify(self._heap)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="metafold-deadlines", daemon=True)
                self._thread.start()
            elif earliest is None or entry.when < earliest:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2].cancelled:
                        heapq.heappop(self._heap)
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    if wait is not None and wait <= 0:
                        entry = heapq.heappop(self._heap)[2]
                        break
                    self._cond.wait(wait)
            entry.fire()


_WATCHDOG = _Watchdog()


@contextmanager
def deadline(budget: float) -> Iterator[Call]:
    """Give every attempt of the enclosed call ``budget`` seconds for its whole exchange."""
    call = Call(budget)
    previous = getattr(_local, "call", None)
    _local.call = call
    try:
        yield call
    finally:
        _local.call = previous
        call.finish()


def current_call() -> Call | None:
    return getattr(_local, "call", None)


class _DeadlinePool:
    """Mixed into urllib3's pools: each attempt on a connection is armed, a returned one disarmed."""

    def _make_request(self, conn: Any, *args: Any, **kwargs: Any) -> Any:
        call = current_call()
        if call is not None:
            call.attempt(conn)
        return super()._make_request(conn, *args, **kwargs)  # type: ignore[misc]

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            with _lock:
                entry = getattr(conn, _MARK, None)
                if entry is not None:
                    entry.cancelled = True
                    setattr(conn, _MARK, None)
        super()._put_conn(conn)  # type: ignore[misc]


class _HTTPPool(_DeadlinePool, HTTPConnectionPool):
    pass


class _HTTPSPool(_DeadlinePool, HTTPSConnectionPool):
    pass


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' HTTPAdapter whose connection pools (proxied ones too) honour :func:`deadline`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        pools = getattr(manager, "pool_classes_by_scheme", None)
        # an HTTP(S) proxy uses urllib3's own pools; a SOCKS proxy has pools of its own, left alone
        if pools is not None and pools.get("https") is HTTPSConnectionPool:
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager
