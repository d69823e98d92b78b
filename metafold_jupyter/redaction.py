"""Redaction: credentials out of every text that is shown or logged (the lowest layer).

Two kinds of protection, used together:

- :func:`scrub` removes what *looks* like a credential from any text: JWT-shaped
  strings, the value after ``Bearer``/``Basic``, and the value of fields named like
  ``client_secret`` / ``access_token`` / ``password``. Every :class:`MetafoldError`
  message goes through it.
- a :class:`Scrubber` also knows the *actual* values of one session (its client
  secret and every token issued to it), so an auth service or API that echoes the
  request back (``error_description: "bad body {...client_secret...}"``) cannot put
  them in an exception message or a log line, whatever their shape.

Server-supplied text (error bodies, job errors, redirect targets) passes through the
session's scrubber before it enters a message, a warning or a log record.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from typing import Any, NoReturn
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

__all__ = ["REDACTED", "JWT", "redact_url", "redact_query_values", "scrub", "Scrubber"]

REDACTED = "***"

#: A JWT: base64url of '{"' starts every header and (almost) every payload.
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
# the value after an auth scheme: 8+ token characters, not a plain word ("Bearer token required")
_AUTH_SCHEME = re.compile(
    r"(?i)\b(bearer|basic)(?:\s+|%20|\+)(?=[A-Za-z0-9._~+/=-]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,}"
)
_FIELD = re.compile(
    r"""(?ix)
    ((?:\\?["'])?\b(?:client[_-]?secret|access[_-]?token|refresh[_-]?token|id[_-]?token|password|passwd|secret)\b
     (?:\\?["'])?\s*[:=]\s*(?:\\?["'])?)
    ([^\s"'&,;}\]\\]+)
    """
)
_SENSITIVE_QUERY = re.compile(
    r"(sig|signature|token|secret|key|credential|password|auth|x-amz-.*|expires)$",
    re.IGNORECASE,
)
_QUERY_VALUE = re.compile(
    r"([?&](?:[\w.-]*(?:sig|signature|token|secret|key|credential|password|auth)|x-amz-[\w-]+|expires)=)"
    r"[^&\s\"'#<>]*",
    re.IGNORECASE,
)
_MIN_KNOWN = 6  # shorter "secrets" would mangle ordinary words; real ones are 32+ characters
_MAX_TOKENS = 32


def redact_url(url: str) -> str:
    """Return ``url`` with credential-like query values replaced by ``REDACTED``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if not parts.query:
        return url
    query = [
        (k, "REDACTED" if _SENSITIVE_QUERY.search(k) else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*:")))


def redact_query_values(text: str) -> str:
    """Redact credential-like query values in free text (log lines that hold a URL or a path)."""
    return _QUERY_VALUE.sub(r"\1REDACTED", text)


def scrub(text: Any, known: Iterable[str] = ()) -> str:
    """``text`` without credentials: the ``known`` values, and anything shaped like one
    (JWTs, ``Bearer`` values, ``client_secret=``-like fields, signed-URL query values).

    Args:
        text: any text (non-strings are converted with ``str``).
        known: actual secret values to remove (also in their JSON- and URL-escaped forms).
    """
    text = text if isinstance(text, str) else str(text)
    for value in _variants(known):
        if value in text:
            text = text.replace(value, REDACTED)
    if "eyJ" in text:
        text = JWT.sub(REDACTED, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    if "=" in text:
        text = _QUERY_VALUE.sub(r"\1REDACTED", text)
        text = _FIELD.sub(lambda m: m.group(1) + REDACTED, text)
    elif ":" in text:
        text = _FIELD.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def _variants(known: Iterable[str]) -> list[str]:
    out: set[str] = set()
    for value in known:
        if not value or len(value) < _MIN_KNOWN:
            continue
        out.update({value, json.dumps(value)[1:-1], quote(value, safe=""), quote_plus(value)})
    return sorted(out, key=len, reverse=True)  # longest first: a variant may contain another


class Scrubber:
    """The secret values of one session, to scrub from server-supplied text.

    Holds the client secret (or the static access token) for the session's life and
    the most recent tokens issued to it. Values are kept privately: the scrubber
    never shows them (repr), cannot be pickled, and lives only in memory.
    """

    __slots__ = ("_pinned", "_tokens", "_lock")

    def __init__(self, *pinned: Any) -> None:
        self._pinned = tuple(v for v in (_reveal(p) for p in pinned) if v)
        self._tokens: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add(self, value: Any) -> None:
        """Remember an issued token (a str or a ``Secret``)."""
        raw = _reveal(value)
        if raw:
            with self._lock:
                if raw not in self._tokens:
                    self._tokens = (*self._tokens[-(_MAX_TOKENS - 1):], raw)

    def scrub(self, text: Any) -> str:
        """``text`` without this session's secret and tokens, nor anything shaped like a credential."""
        return scrub(text, (*self._pinned, *self._tokens))

    def __repr__(self) -> str:
        return f"<Scrubber of {len(self._pinned) + len(self._tokens)} secret values>"

    def __reduce__(self) -> NoReturn:  # noqa: D105 - never pickled (multiprocessing, %store)
        raise TypeError("a Scrubber cannot be pickled")


def _reveal(value: Any) -> str | None:
    if value is None:
        return None
    reveal = getattr(value, "reveal", None)
    raw = reveal() if callable(reveal) else value
    return raw if isinstance(raw, str) and raw else None
