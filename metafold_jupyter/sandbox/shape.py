"""How the sandbox words its answers: like the live service, or like the published reference.

Metafold's published OpenAPI reference and the live service (as the official SDK
sees it) disagree on a few details (``metafold-api.md``, last section). A client
must cope with both, so the sandbox can answer either way, chosen per sandbox and
switchable at runtime (one running sandbox can serve a test in either shape):

- ``answers="live"`` (default): exactly what the official SDK's strict models
  accept — RFC 1123 dates, ``link`` only on download-link, dispatch and status
  answers, errors in the service's three shapes.
- ``answers="reference"``: ISO 8601 dates, a signed download ``link`` on every
  asset list item, no ``link`` in the dispatch answer (clients fall back to
  ``/projects/{pid}/workflows/{wid}/status``), and every API error as
  ``{code, name, description}``.
- ``date_style``: ``"rfc1123"`` (``Tue, 04 Mar 2025 14:05:09 GMT``) or
  ``"iso8601"`` (``2025-03-04T14:05:09+00:00``); ``None`` follows ``answers``.

The app snapshots the shape once per request into a context variable, so every
date formatted while answering that request (resource records, nested assets in
jobs, the licence) uses the same style without passing it through every handler,
and a switch at runtime never mixes two styles in one answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from email.utils import formatdate

__all__ = ["ANSWER_SHAPES", "DATE_STYLES", "AnswerShape", "Style", "current_style", "format_date"]

ANSWER_SHAPES = ("live", "reference")
DATE_STYLES = ("rfc1123", "iso8601")


@dataclass(frozen=True)
class Style:
    """The shape of one answer (an immutable snapshot of :class:`AnswerShape`)."""

    answers: str = "live"
    dates: str = "rfc1123"

    @property
    def reference(self) -> bool:
        """True when answering like the published reference."""
        return self.answers == "reference"


_LIVE = Style()
_CURRENT: ContextVar[Style] = ContextVar("metafold_sandbox_style", default=_LIVE)


def current_style() -> Style:
    """The style of the answer being built (live and RFC 1123 outside a request)."""
    return _CURRENT.get()


def format_date(ts: float | None) -> str | None:
    """Format a POSIX time in the current answer's date style (``None`` stays ``None``)."""
    if ts is None:
        return None
    if _CURRENT.get().dates == "iso8601":
        # Whole seconds, like RFC 1123, so both styles carry the same instant.
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))
    return formatdate(ts, usegmt=True)


def _check(answers: str, date_style: str | None) -> None:
    if answers not in ANSWER_SHAPES:
        raise ValueError(f"answer_shape must be one of {', '.join(ANSWER_SHAPES)}, not {answers!r}")
    if date_style is not None and date_style not in DATE_STYLES:
        raise ValueError(f"date_style must be one of {', '.join(DATE_STYLES)} (or None), not {date_style!r}")


class AnswerShape:
    """The sandbox's answer shape and date style, settable at runtime.

    Args:
        answers: ``"live"`` or ``"reference"``.
        date_style: ``"rfc1123"``, ``"iso8601"`` or ``None`` (``reference`` answers
            use ISO 8601, ``live`` answers RFC 1123).

    Raises:
        ValueError: on an unknown value.
    """

    def __init__(self, answers: str = "live", date_style: str | None = None) -> None:
        _check(answers, date_style)
        self._initial = (answers, date_style)
        self._lock = threading.Lock()
        self._answers = answers
        self._date_style = date_style

    @property
    def answers(self) -> str:
        """``"live"`` or ``"reference"``."""
        return self._answers

    @answers.setter
    def answers(self, value: str) -> None:
        self.set(answers=value, date_style=self._date_style)

    @property
    def date_style(self) -> str:
        """The date style in effect (``"rfc1123"`` or ``"iso8601"``); set ``None`` to follow ``answers``."""
        return self.snapshot().dates

    @date_style.setter
    def date_style(self, value: str | None) -> None:
        self.set(answers=self._answers, date_style=value)

    def set(self, answers: str = "live", date_style: str | None = None) -> None:
        """Switch both at once (a request in flight keeps the style it started with)."""
        _check(answers, date_style)
        with self._lock:
            self._answers, self._date_style = answers, date_style

    def reset(self) -> None:
        """Back to the values given at construction (``Sandbox.reset()`` calls this)."""
        self.set(*self._initial)

    def snapshot(self) -> Style:
        """The current choice as an immutable :class:`Style`."""
        with self._lock:
            answers, dates = self._answers, self._date_style
        if dates is None:
            dates = "iso8601" if answers == "reference" else "rfc1123"
        return Style(answers, dates)

    @contextmanager
    def active(self) -> Iterator[Style]:
        """Answer one request: dates formatted inside the block follow this shape."""
        token = _CURRENT.set(self.snapshot())
        try:
            yield _CURRENT.get()
        finally:
            _CURRENT.reset(token)

    def __repr__(self) -> str:
        style = self.snapshot()
        return f"<AnswerShape answers={style.answers!r} date_style={style.dates!r}>"
