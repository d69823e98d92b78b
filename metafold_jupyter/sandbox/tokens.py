"""Issuing and checking the sandbox's access tokens (Auth0-like HS256 JWTs).

Each sandbox signs with its own random key, so tokens of one sandbox never work
on another. Expiry is checked against the exact issue time kept in memory (the
JWT's integer ``exp`` is rounded up), so ``token_lifetime=1`` really means one
second.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt

__all__ = ["TokenError", "TokenIssuer"]


class TokenError(Exception):
    """A token the API refuses (answered 401 ``{"msg": ...}``)."""


class TokenIssuer:
    """Issues and verifies access tokens.

    Args:
        issuer: returns the ``iss`` claim (``<sandbox url>/``).
        audience: the API audience.
        lifetime: seconds a token stays valid (``expires_in``).
        clock: returns the current POSIX time.
    """

    def __init__(
        self,
        issuer: Callable[[], str],
        audience: str,
        lifetime: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuer = issuer
        self.audience = audience
        self.lifetime = lifetime
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}  # jti -> exact expiry; survives reset()
        self._revoked: set[str] = set()
        self._issued: list[str] = []

    def issue(self, client_id: str) -> str:
        """Return a new signed access token for ``client_id``."""
        now = self._clock()
        jti = uuid.uuid4().hex
        claims = {
            "iss": self._issuer(),
            "sub": f"{client_id}@clients",
            "aud": self.audience,
            "iat": int(now),
            "exp": math.ceil(now + self.lifetime),
            "jti": jti,
            "gty": "client-credentials",
            "azp": client_id,
        }
        token = jwt.encode(claims, self._key, algorithm="HS256")
        with self._lock:
            self._expiry[jti] = now + self.lifetime
            self._issued.append(token)
        return token

    def verify(self, token: str) -> dict[str, Any]:
        """Return the claims of a valid token.

        Raises:
            TokenError: bad signature or format, wrong audience, expired or revoked.
        """
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                audience=self.audience,
                # No issuer check: the per-instance key already proves the origin,
                # and a token issued before start() (werkzeug test client) stays valid.
                options={"require": ["exp", "iat", "sub", "aud", "jti"], "verify_exp": False, "verify_iss": False},
            )
        except jwt.InvalidAudienceError as exc:
            raise TokenError("Invalid audience") from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenError("Signature verification failed") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"Missing claim: {exc.claim}") from exc
        except jwt.DecodeError as exc:
            raise TokenError("Invalid token: not a JWT issued by this sandbox") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenError("Invalid token") from exc
        jti = claims["jti"]
        with self._lock:
            expiry = self._expiry.get(jti, float(claims["exp"]))
            revoked = jti in self._revoked
        if self._clock() >= expiry:
            raise TokenError("Token has expired")
        if revoked:
            raise TokenError("Token has been revoked")
        return claims

    def revoke_all(self) -> None:
        """Revoke every token issued so far."""
        with self._lock:
            self._revoked.update(self._expiry)

    def reset(self) -> None:
        """Forget revocations and the list of issued tokens (tokens stay valid)."""
        with self._lock:
            self._revoked.clear()
            self._issued.clear()

    @property
    def issued(self) -> list[str]:
        """Every token issued since the last reset (a copy)."""
        with self._lock:
            return list(self._issued)
