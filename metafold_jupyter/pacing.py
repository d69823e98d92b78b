"""Pacing of concurrent calls: how many requests are in flight, and a shared pause after a 429.

Transport layer (imports only urllib3). urllib3's ``Retry`` already retries a 429 and
honours its ``Retry-After``, but per request: six workers of a fan-out would each
discover the rate limit, each sleep, and all six come back at once. A
:class:`Throttle` is the state those workers share:

- a limit on requests in flight, starting at the session's ``concurrency``; it is
  halved when the server says "slow down" (at most once per pause, so one burst of
  429s counts once) and grows back by one after ``limit`` calls in a row succeed;
- a pause: after a 429 (or a 503 carrying ``Retry-After``) no new request starts
  until the ``Retry-After`` has passed (1 s when the server gave none).

The retry policy stays urllib3's (policy as data). :func:`paced` wraps the API's
``Retry`` in a subclass that, only in a thread working for a throttle (see
:meth:`Throttle.slot`), reports each retryable answer to it *before* retrying and
waits out the shared pause (interruptibly) instead of sleeping on its own. Outside
a throttle it behaves exactly like the policy it wraps.
"""

from __future__ import annotations

import contextvars
import email.utils
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from urllib3.util.retry import Retry

__all__ = ["Throttle", "Cancelled", "paced", "current", "SLOW_DOWN_STATUSES", "DEFAULT_PAUSE"]

_LOGGER = logging.getLogger(__name__)

#: Answers that mean "you are too fast": 429 always, 503 when it says when to come back.
SLOW_DOWN_STATUSES = frozenset({429, 503})
DEFAULT_PAUSE = 1.0  # seconds, after a 429 without Retry-After
MAX_PAUSE = 60.0  # never stop the fan-out longer than this on one answer
_MAX_SAMPLES = 10_000

_current: contextvars.ContextVar[Throttle | None] = contextvars.ContextVar("metafold_throttle", default=None)


class Cancelled(Exception):
    """The throttle was cancelled (Ctrl-C in the thread that owns the fan-out)."""


class Throttle:
    """Shared pacing of one group of concurrent calls (an account-wide fan-out, a study).

    Args:
        limit: requests in flight at most (the session's ``concurrency``); also the
            ceiling the limit recovers to.
        floor: the limit never drops below this.
        clock: monotonic seconds (replaceable in tests).

    Attributes:
        slowdowns: how many slow-down answers (429, 503 + Retry-After) were reported.
        cuts: how many times the limit was lowered.
        peak_in_flight: the most requests ever in flight at once.
        samples: ``(time, in_flight, limit)`` each time a request started (the last 10,000).
    """

    def __init__(self, limit: int, *, floor: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1 or floor < 1:
            raise ValueError("limit and floor must be at least 1")
        self.ceiling = limit
        self.floor = min(floor, limit)
        self.clock = clock
        self._cond = threading.Condition()
        self._limit = limit
        self._in_flight = 0
        self._pause_until = 0.0
        self._streak = 0  # calls finished in a row since the last change
        self._cancelled = False
        self.slowdowns = 0
        self.cuts = 0
        self.peak_in_flight = 0
        self.samples: deque[tuple[float, int, int]] = deque(maxlen=_MAX_SAMPLES)

    def __repr__(self) -> str:
        return (
            f"<Throttle limit={self._limit}/{self.ceiling} in_flight={self._in_flight} "
            f"paused={self.paused_for():.1f}s slowdowns={self.slowdowns}>"
        )

    # -- state ---------------------------------------------------------------------

    @property
    def limit(self) -> int:
        """Requests allowed in flight now."""
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def paused_for(self) -> float:
        """Seconds until new requests may start again (0 when not paused)."""
        return max(0.0, self._pause_until - self.clock())

    # -- the slot a request holds ------------------------------------------------------

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the ``limit`` places for the requests made inside the block.

        Waits while the throttle is paused or full; inside the block, this thread's
        retries report to the throttle (see :func:`paced`).

        Raises:
            Cancelled: the throttle was cancelled while waiting (or during the block).
        """
        self._acquire()
        token = _current.set(self)
        ok = False
        try:
            yield
            ok = True
        finally:
            _current.reset(token)
            self._release(ok)

    def _acquire(self) -> None:
        with self._cond:
            while True:
                if self._cancelled:
                    raise Cancelled("cancelled")
                now = self.clock()
                if now < self._pause_until:
                    self._cond.wait(self._pause_until - now)
                elif self._in_flight < self._limit:
                    self._in_flight += 1
                    self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
                    self.samples.append((now, self._in_flight, self._limit))
                    return
                else:
                    self._cond.wait()

    def _release(self, ok: bool) -> None:
        with self._cond:
            self._in_flight -= 1
            if ok and self._limit < self.ceiling and self.clock() >= self._pause_until:
                self._streak += 1
                if self._streak >= self._limit:  # additive increase: one more per full round
                    self._limit += 1
                    self._streak = 0
                    _LOGGER.debug("pace recovering: %d requests in flight allowed", self._limit)
            self._cond.notify_all()

    # -- signals -------------------------------------------------------------------------

    def slow_down(self, retry_after: float | None, status: int = 429) -> None:
        """The server refused a request for speed: pause everyone, and lower the limit.

        The limit is halved once per pause: the other answers of the same burst only
        extend the pause.
        """
        pause = DEFAULT_PAUSE if retry_after is None else min(max(float(retry_after), 0.0), MAX_PAUSE)
        with self._cond:
            now = self.clock()
            self.slowdowns += 1
            self._streak = 0
            fresh = now >= self._pause_until
            self._pause_until = max(self._pause_until, now + pause)
            if fresh and self._limit > self.floor:
                old, self._limit = self._limit, max(self.floor, self._limit // 2)
                self.cuts += 1
                _LOGGER.info(
                    "the server asked to slow down (HTTP %d): pausing new requests %.1f s, "
                    "at most %d in flight (was %d)", status, pause, self._limit, old,
                )
            elif fresh:
                _LOGGER.info("the server asked to slow down (HTTP %d): pausing new requests %.1f s", status, pause)
            self._cond.notify_all()

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, and past the shared pause; wake at once if cancelled.

        Raises:
            Cancelled: the throttle was cancelled.
        """
        with self._cond:
            until = self.clock() + max(seconds, 0.0)
            while True:
                if self._cancelled:
                    raise Cancelled("cancelled")
                left = max(until, self._pause_until) - self.clock()
                if left <= 0:
                    return
                self._cond.wait(left)

    def cancel(self) -> None:
        """Wake every waiting thread with :class:`Cancelled`; no new request starts."""
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()


def current() -> Throttle | None:
    """The throttle this thread is working for (inside :meth:`Throttle.slot`), if any."""
    return _current.get()


class _PacedMixin:
    """Reports retryable answers to the current throttle and waits on it, not on time.sleep."""

    def increment(self, method: Any = None, url: Any = None, response: Any = None, error: Any = None,
                  _pool: Any = None, _stacktrace: Any = None) -> Any:
        throttle = _current.get()
        if throttle is not None and response is not None and response.status in SLOW_DOWN_STATUSES:
            retry_after = self._retry_after(response)
            if response.status == 429 or retry_after is not None:
                throttle.slow_down(retry_after, response.status)
        # reported first: an exhausted policy raises here and the last answer is returned
        return super().increment(method, url, response, error, _pool, _stacktrace)  # type: ignore[misc]

    def sleep(self, response: Any = None) -> None:
        throttle = _current.get()
        if throttle is None:
            return super().sleep(response)  # type: ignore[misc]
        delay = self._retry_after(response) if response is not None else None
        if not delay:  # as urllib3: no (or a zero) Retry-After means the backoff
            delay = self.get_backoff_time()  # type: ignore[attr-defined]
        throttle.wait(delay)  # the longer of our own wait and the shared pause; Ctrl-C wakes it

    def _retry_after(self, response: Any) -> float | None:
        if not self.respect_retry_after_header:  # type: ignore[attr-defined]
            return None
        return self.get_retry_after(response)

    def get_retry_after(self, response: Any) -> float | None:
        """As urllib3, but ``Retry-After: 1.5`` means 1.5 s and a bad value means none
        (urllib3 alone raises ``InvalidHeader``, failing the whole request)."""
        seconds = parse_retry_after(response.headers.get("Retry-After"))
        return None if seconds is None else min(seconds, self.retry_after_max)  # type: ignore[attr-defined]


def parse_retry_after(value: str | None) -> float | None:
    """The seconds a ``Retry-After`` asks for: delta-seconds (fractional too) or an HTTP date.

    Returns:
        The seconds (0 for a date in the past), or None when the header is absent or
        unreadable (not a number nor a date, NaN, negative).
    """
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return max(email.utils.mktime_tz(parsed) - time.time(), 0.0)
    return seconds if seconds == seconds and seconds >= 0 else None


_PACED_CLASSES: dict[type, type] = {}
_PACED_LOCK = threading.Lock()


def paced(retry: Retry) -> Retry:
    """The same retry policy, reporting to the thread's :class:`Throttle` when there is one.

    Works with any ``Retry`` subclass (the policy's own ``is_retry`` and the rest are
    kept); ``Retry.new`` keeps the class, so every increment stays paced.
    """
    base = type(retry)
    if issubclass(base, _PacedMixin):
        return retry
    with _PACED_LOCK:
        cls = _PACED_CLASSES.get(base)
        if cls is None:
            cls = _PACED_CLASSES[base] = type(f"Paced{base.__name__}", (_PacedMixin, base), {"__module__": __name__})
    copy = retry.new()
    copy.__class__ = cls  # same attributes, one more base: the mixin only overrides two methods
    return copy
