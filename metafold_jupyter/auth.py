"""Token layer: token state, expiry and single-flight refresh.

As in google-auth, token state is kept apart from the transport: credentials do not
import requests; they receive an ``exchange`` callable that performs the
client-credentials exchange and returns the auth service's JSON answer.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from .config import Secret
from .errors import AuthenticationError, ConfigError, MetafoldError
from .redaction import Scrubber

if TYPE_CHECKING:  # pragma: no cover
    from .token_cache import TokenCache

_LOGGER = logging.getLogger(__name__)

MAX_REFRESH_MARGIN = 300.0  # seconds: refresh a 24 h token 5 min early
REFRESH_MARGIN_FRACTION = 0.1  # ...and a short-lived one at 90 % of its lifetime
FAILED_REFRESH_PAUSE = 30.0  # seconds before retrying a failed refresh while the old token lives
MAX_LIFETIME = 30 * 86400.0  # seconds: no token is trusted for longer (Auth0 issues at most 24 h)
#: A token goes into an HTTP header: visible ASCII without spaces, and not absurdly long.
_TOKEN_TEXT = re.compile(r"[\x21-\x7e]{1,16384}")
_LAST_DATE = 253402300799.0  # 9999-12-31T23:59:59Z: datetime cannot go further


def refresh_margin(lifetime: float) -> float:
    """How long before expiry a token is refreshed: min(5 min, 10 % of its lifetime)."""
    return min(MAX_REFRESH_MARGIN, REFRESH_MARGIN_FRACTION * max(lifetime, 0.0))


@dataclass(frozen=True)
class Token:
    """An access token and when it expires (wall-clock epoch seconds)."""

    value: Secret
    expires_at: float
    lifetime: float

    @property
    def refresh_at(self) -> float:
        return self.expires_at - refresh_margin(self.lifetime)

    def __repr__(self) -> str:
        return f"Token(expires_at={self.expires_at!r}, lifetime={self.lifetime!r})"


class Credentials(Protocol):
    """What the transport needs from a token source."""

    refreshable: bool

    def token(self) -> str: ...

    def invalidate(self, token: str | Secret) -> None: ...

    def forget(self) -> None: ...

    @property
    def expires_at(self) -> datetime | None: ...


class ClientCredentials:
    """Client-credentials tokens, refreshed ahead of expiry, one exchange at a time.

    Args:
        exchange: performs the token exchange and returns the parsed JSON answer
            (``access_token`` — a :class:`Secret` or a string —, ``expires_in``); raises
            a :class:`MetafoldError` otherwise.
        cache: optional on-disk cache (``login(remember=True)``).
        clock: wall-clock seconds (the ``clock`` attribute can be replaced to travel in time in tests).
        scrubber: learns every token issued, so that no server text can echo one into a message.
    """

    refreshable = True

    def __init__(
        self,
        exchange: Callable[[], Mapping[str, Any]],
        *,
        cache: TokenCache | None = None,
        clock: Callable[[], float] = time.time,
        scrubber: Scrubber | None = None,
    ) -> None:
        self._exchange = exchange
        self._cache = cache
        self.clock = clock
        self._scrubber = scrubber if scrubber is not None else Scrubber()
        self._lock = threading.Lock()
        self._token: Token | None = cache.load() if cache is not None else None
        if self._token is not None:
            self._scrubber.add(self._token.value)
        self._next_attempt = 0.0
        self.exchanges = 0

    def __repr__(self) -> str:
        return f"<ClientCredentials expires_at={self.expires_at} exchanges={self.exchanges}>"

    @property
    def expires_at(self) -> datetime | None:
        tok = self._token
        return None if tok is None else datetime.fromtimestamp(tok.expires_at, timezone.utc)

    @property
    def valid(self) -> bool:
        """A token exists and is not yet due for refresh."""
        tok = self._token
        return tok is not None and self.clock() < tok.refresh_at

    def token(self) -> str:
        """Return a valid token, exchanging a new one if due (single flight).

        Raises:
            AuthenticationError: the exchange was rejected and no usable token is left.
            TransportError: the auth service could not be reached and no usable token is left.
        """
        tok = self._token
        if tok is not None and self.clock() < tok.refresh_at:
            return tok.value.reveal()
        with self._lock:  # released on every path, a failed exchange included
            tok = self._token
            now = self.clock()
            if tok is not None and now < tok.refresh_at:
                return tok.value.reveal()  # another thread refreshed while we waited
            if tok is not None and now < tok.expires_at and now < self._next_attempt:
                return tok.value.reveal()  # a refresh failed a moment ago; the old token still works
            try:
                self._token = self._fetch()
            except MetafoldError as exc:
                if tok is None or now >= tok.expires_at:
                    raise
                self._next_attempt = now + min(FAILED_REFRESH_PAUSE, (tok.expires_at - now) / 2)
                _LOGGER.warning(
                    "token refresh failed (%s); using the current token, valid for %.0f s more",
                    exc,
                    tok.expires_at - now,
                )
                return tok.value.reveal()
            return self._token.value.reveal()

    def invalidate(self, token: str | Secret) -> None:
        """Forget ``token`` after the API rejected it (401), so the next call exchanges anew."""
        with self._lock:
            if self._token is not None and self._token.value == Secret.of(token):
                self._token = None
                self._next_attempt = 0.0
                if self._cache is not None:
                    self._cache.delete()

    def forget(self) -> None:
        """Drop the token, and its cached copy on disk (logout)."""
        with self._lock:
            self._token = None
            if self._cache is not None:
                self._cache.delete()

    def _fetch(self) -> Token:
        started = self.clock()  # expiry counts from when we asked, not when we heard back
        self.exchanges += 1
        token = token_from_answer(self._exchange(), started, self._scrubber)
        self._scrubber.add(token.value)
        _LOGGER.info("exchanged client credentials for a token valid for %.0f s", token.lifetime)
        if self._cache is not None:
            self._cache.save(token)
        return token


def token_from_answer(body: Any, started: float, scrubber: Scrubber | None = None) -> Token:
    """The token of an auth service's answer, after checking it can be used as one.

    A token must be a non-empty string of visible ASCII (it goes into a header); its
    ``expires_in`` a finite number of seconds in (0, 30 days]: 0, negative or NaN
    would mean one exchange per call (each counts against the account's monthly
    allotment), ``inf`` or 1e12 an expiry no clock can show; ``token_type``, when
    present, must be Bearer.

    Raises:
        AuthenticationError: saying what was wrong (never the token itself).
    """
    token = _as_secret(body.get("access_token")) if isinstance(body, Mapping) else None
    problem = _token_problem(body, token, scrubber)
    if problem is not None or not isinstance(token, Secret):
        raise AuthenticationError(
            f"the auth service's answer cannot be used as a token: {problem or 'no access_token'}",
            error="invalid_response",
            hint="check METAFOLD_AUTH_DOMAIN points at the Metafold auth service",
        )
    lifetime = float(body["expires_in"])
    return Token(token, started + lifetime, lifetime)


def _as_secret(value: Any) -> Any:
    """A string wrapped at once (no raw token in a local); other values as they are."""
    return Secret(value) if isinstance(value, str) else value


def _token_problem(body: Any, token: Any, scrubber: Scrubber | None) -> str | None:
    if not isinstance(body, Mapping):
        return f"it is a JSON {type(body).__name__}, not an object"
    if token is None:
        return "it has no access_token"
    if not isinstance(token, Secret):
        return f"access_token is a {type(token).__name__}, not a string"
    if not _TOKEN_TEXT.fullmatch(token.reveal()):
        return "access_token is empty, too long, or holds spaces or control characters"
    token_type = body.get("token_type")
    if token_type is not None and (not isinstance(token_type, str) or token_type.lower() != "bearer"):
        return f"token_type is {_shown(token_type, scrubber)}, not Bearer"
    lifetime = body.get("expires_in")
    if lifetime is None:
        return "it has no expires_in"
    number = isinstance(lifetime, (int, float, str)) and not isinstance(lifetime, bool)
    try:
        seconds = float(lifetime) if number else None
    except (ValueError, OverflowError):
        seconds = None
    if seconds is None or not math.isfinite(seconds) or not 0 < seconds <= MAX_LIFETIME:
        return f"expires_in is {_shown(lifetime, scrubber)} (it must be a number of seconds above 0, at most 30 days)"
    return None


def _shown(value: Any, scrubber: Scrubber | None) -> str:
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return scrubber.scrub(text) if scrubber is not None else text


class StaticToken:
    """An already issued token (``METAFOLD_ACCESS_TOKEN``): used as is, never refreshed."""

    refreshable = False

    def __init__(self, token: Secret, *, clock: Callable[[], float] = time.time) -> None:
        if not _TOKEN_TEXT.fullmatch(token.reveal()):
            raise ConfigError(
                "METAFOLD_ACCESS_TOKEN is not a usable token: it is empty, too long, or holds spaces or "
                "control characters",
                hint="copy the token again, without quotes or line breaks",
            )
        self._token = token
        self.clock = clock
        self._exp = jwt_expiry(token.reveal())
        self._rejected = False

    def __repr__(self) -> str:
        return f"<StaticToken expires_at={self.expires_at}>"

    @property
    def expires_at(self) -> datetime | None:
        return None if self._exp is None else datetime.fromtimestamp(self._exp, timezone.utc)

    def token(self) -> str:
        if self._rejected or (self._exp is not None and self.clock() >= self._exp):
            when = f" at {self.expires_at:%Y-%m-%d %H:%M:%S} UTC" if self._exp is not None else ""
            raise AuthenticationError(
                f"the access token from METAFOLD_ACCESS_TOKEN has expired{when} and cannot be refreshed",
                error="expired_token",
                error_description="access token expired",
                hint=(
                    "set METAFOLD_CLIENT_ID and METAFOLD_CLIENT_SECRET (tokens are then refreshed "
                    "automatically), or a new METAFOLD_ACCESS_TOKEN, and log in again"
                ),
            )
        return self._token.reveal()

    def invalidate(self, token: str | Secret) -> None:
        if Secret.of(token) == self._token:
            self._rejected = True

    def forget(self) -> None:
        self._rejected = True


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read without verifying it (None if not a JWT or out of range)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims["exp"]
        if isinstance(exp, bool):
            return None
        exp = float(exp)
    except (IndexError, KeyError, TypeError, ValueError, OverflowError):
        return None
    return exp if math.isfinite(exp) and 0 < exp <= _LAST_DATE else None
