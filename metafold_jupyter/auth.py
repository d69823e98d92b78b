"""Token layer: token state, expiry and single-flight refresh.

As in google-auth, token state is kept apart from the transport: credentials do not
import requests; they receive an ``exchange`` callable that performs the
client-credentials exchange and returns the auth service's JSON answer.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from .config import Secret
from .errors import AuthenticationError, MetafoldError

if TYPE_CHECKING:  # pragma: no cover
    from .token_cache import TokenCache

_LOGGER = logging.getLogger(__name__)

MAX_REFRESH_MARGIN = 300.0  # seconds: refresh a 24 h token 5 min early
REFRESH_MARGIN_FRACTION = 0.1  # ...and a short-lived one at 90 % of its lifetime
FAILED_REFRESH_PAUSE = 30.0  # seconds before retrying a failed refresh while the old token lives


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

    def invalidate(self, token: str) -> None: ...

    @property
    def expires_at(self) -> datetime | None: ...


class ClientCredentials:
    """Client-credentials tokens, refreshed ahead of expiry, one exchange at a time.

    Args:
        exchange: performs the token exchange and returns the parsed JSON answer
            (``access_token``, ``expires_in``); raises a :class:`MetafoldError` otherwise.
        cache: optional on-disk cache (``login(remember=True)``).
        clock: wall-clock seconds (the ``clock`` attribute can be replaced to travel in time in tests).
    """

    refreshable = True

    def __init__(
        self,
        exchange: Callable[[], dict[str, Any]],
        *,
        cache: TokenCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._exchange = exchange
        self._cache = cache
        self.clock = clock
        self._lock = threading.Lock()
        self._token: Token | None = cache.load() if cache is not None else None
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

    def invalidate(self, token: str) -> None:
        """Forget ``token`` after the API rejected it (401), so the next call exchanges anew."""
        with self._lock:
            if self._token is not None and self._token.value.reveal() == token:
                self._token = None
                self._next_attempt = 0.0
                if self._cache is not None:
                    self._cache.delete()

    def _fetch(self) -> Token:
        started = self.clock()  # expiry counts from when we asked, not when we heard back
        self.exchanges += 1
        body = self._exchange()
        try:
            value = str(body["access_token"])
            lifetime = float(body["expires_in"])
        except (KeyError, TypeError, ValueError):
            raise AuthenticationError(
                "the auth service answered without an access token and its lifetime",
                error="invalid_response",
                hint="check METAFOLD_AUTH_DOMAIN points at the Metafold auth service",
            ) from None
        token = Token(Secret(value), started + lifetime, lifetime)
        _LOGGER.info("exchanged client credentials for a token valid for %.0f s", lifetime)
        if self._cache is not None:
            self._cache.save(token)
        return token


class StaticToken:
    """An already issued token (``METAFOLD_ACCESS_TOKEN``): used as is, never refreshed."""

    refreshable = False

    def __init__(self, token: Secret, *, clock: Callable[[], float] = time.time) -> None:
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

    def invalidate(self, token: str) -> None:
        if token == self._token.reveal():
            self._rejected = True


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read without verifying it (None if not a JWT)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None
