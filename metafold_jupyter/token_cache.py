"""Opt-in token cache across kernel restarts (``login(remember=True)``).

One JSON file per (auth origin, audience, client ID) in the user cache directory,
mode 0600, holding the access token and its expiry only — never the secret. Each
exchange counts against the account's monthly machine-to-machine allotment, so a
restarted kernel reuses a token that is still good.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

from .auth import Token
from .config import Secret

_LOGGER = logging.getLogger(__name__)


def cache_dir() -> Path:
    """The user cache directory of metafold-jupyter (``XDG_CACHE_HOME`` is honoured)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("metafold-jupyter", appauthor=False))


class TokenCache:
    """Reads and writes one cached token file."""

    def __init__(self, auth_origin: str, audience: str, client_id: str, directory: Path | None = None) -> None:
        key = hashlib.sha256(f"{auth_origin}\n{audience}\n{client_id}".encode()).hexdigest()[:32]
        self.path = (directory or cache_dir()) / f"token-{key}.json"

    def __repr__(self) -> str:
        return f"TokenCache({str(self.path)!r})"

    def load(self) -> Token | None:
        """The cached token if it is still worth using, else None (a bad file is removed)."""
        try:
            data = json.loads(self.path.read_text())
            token = Token(Secret(str(data["access_token"])), float(data["expires_at"]), float(data["lifetime"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            self.delete()
            return None
        if time.time() >= token.refresh_at:
            self.delete()
            return None
        _LOGGER.info("reusing a cached token (valid for %.0f s more)", token.expires_at - time.time())
        return token

    def save(self, token: Token) -> None:
        """Write the token atomically with mode 0600 (directory 0700)."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(
                    {"access_token": token.value.reveal(), "expires_at": token.expires_at, "lifetime": token.lifetime},
                    f,
                )
            os.replace(tmp, self.path)
        except OSError as exc:  # a read-only home must not break login
            _LOGGER.warning("could not cache the token in %s: %s", self.path.parent, exc.strerror)

    def delete(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            _LOGGER.warning("could not remove the cached token %s: %s", self.path, exc.strerror)
