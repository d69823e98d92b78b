"""Opt-in token cache across kernel restarts (``login(remember=True)``).

One JSON file per credentials in the user cache directory, mode 0600, holding the
access token and its expiry only — never the secret. Each exchange counts against
the account's monthly machine-to-machine allotment, so a restarted kernel reuses a
token that is still good.

Hardening:

- The file name is a hash of the auth origin, the audience, the client ID *and the
  secret*: a wrong secret finds no cached token, so bad credentials still fail at
  login. (The secret is a long random string issued by Auth0 and the directory is
  private, so the hash tells nobody anything.)
- The directory must be a real directory owned by the user; if others may write to
  it, its mode is reset to 0700; a directory owned by someone else, or a symlink,
  is refused (no cache, one warning).
- The file is written to a ``mkstemp`` file in that directory (``O_EXCL``, a random
  name: a planted symlink receives nothing) and renamed into place; it is read with
  ``O_NOFOLLOW`` and only if it is ours and private.
- Every value read back is range-checked; anything odd deletes the file.
- ``logout()`` deletes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from .auth import MAX_LIFETIME, Token, token_from_answer
from .config import Secret
from .errors import AuthenticationError

_LOGGER = logging.getLogger(__name__)

_KEY_VERSION = b"metafold-jupyter token cache v2"


def cache_dir() -> Path:
    """The user cache directory of metafold-jupyter (``XDG_CACHE_HOME`` is honoured)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("metafold-jupyter", appauthor=False))


class TokenCache:
    """Reads and writes one cached token file."""

    def __init__(
        self,
        auth_origin: str,
        audience: str,
        client_id: str,
        client_secret: Secret,
        directory: Path | None = None,
    ) -> None:
        digest = hashlib.sha256(_KEY_VERSION)
        for part in (auth_origin, audience, client_id):
            digest.update(b"\0" + part.encode())
        digest.update(b"\0" + client_secret.reveal().encode())
        self.path = (directory or cache_dir()) / f"token-{digest.hexdigest()[:40]}.json"

    def __repr__(self) -> str:
        return f"TokenCache({str(self.path)!r})"

    def load(self) -> Token | None:
        """The cached token if it is still worth using, else None (a bad file is removed)."""
        if not self._directory_ok(create=False):
            return None
        data = self._read()
        if data is None:
            return None
        token = _token_of(data)
        if token is None:
            _LOGGER.warning("ignored and removed a damaged or implausible cached token (%s)", self.path.name)
            self.delete()
            return None
        if time.time() >= token.refresh_at:
            self.delete()
            return None
        _LOGGER.info("reusing a cached token (valid for %.0f s more)", token.expires_at - time.time())
        return token

    def save(self, token: Token) -> None:
        """Write the token atomically with mode 0600 (directory 0700)."""
        if not self._directory_ok(create=True):
            return
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".token-", suffix=".tmp")  # 0600, O_EXCL
        except OSError as exc:
            _LOGGER.warning("could not cache the token in %s: %s", self.path.parent, exc.strerror)
            return
        try:
            with os.fdopen(fd, "w") as f:
                f.write(_encoded(token))
            os.replace(tmp, self.path)  # replaces a planted symlink itself, never its target
        except OSError as exc:  # a full or read-only disk must not break login
            _LOGGER.warning("could not cache the token in %s: %s", self.path.parent, exc.strerror)
            _unlink(Path(tmp))

    def delete(self) -> None:
        _unlink(self.path)

    # -- checks ----------------------------------------------------------------------

    def _directory_ok(self, *, create: bool) -> bool:
        directory = self.path.parent
        try:
            if create:
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = os.lstat(directory)
        except FileNotFoundError:
            return False
        except OSError as exc:
            _LOGGER.warning("could not use the token cache %s: %s", directory, exc.strerror)
            return False
        if not stat.S_ISDIR(info.st_mode):
            _warn_refused(directory, "it is not a directory (a symlink?)")
            return False
        geteuid = getattr(os, "geteuid", None)
        if geteuid is None:  # Windows: the per-user cache directory is private by its ACL
            return True
        if info.st_uid != geteuid():
            _warn_refused(directory, "it belongs to another user")
            return False
        if info.st_mode & 0o077:
            try:
                os.chmod(directory, 0o700)  # ours: others must not read or plant files in it
            except OSError as exc:
                _warn_refused(directory, f"its mode cannot be made private ({exc.strerror})")
                return False
        return True

    def _read(self) -> dict[str, Any] | None:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            return None
        except OSError:  # ELOOP: a symlink was planted there
            _LOGGER.warning("removed %s: not a regular file", self.path.name)
            self.delete()
            return None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            geteuid = getattr(os, "geteuid", None)
            if not stat.S_ISREG(info.st_mode) or (
                geteuid is not None and (info.st_uid != geteuid() or info.st_mode & 0o077)
            ):
                _LOGGER.warning("removed %s: not a private file of this user", self.path.name)
                self.delete()
                return None
            try:
                data = json.loads(f.read(65536), object_hook=_wrap_token)
            except (OSError, ValueError):
                data = None
        if not isinstance(data, dict):
            self.delete()
            return None
        return data


def _wrap_token(obj: dict[str, Any]) -> dict[str, Any]:
    """json object_hook: the token is wrapped while parsing, so no frame holds it raw."""
    value = obj.get("access_token")
    if isinstance(value, str):
        obj["access_token"] = Secret(value)
    return obj


def _token_of(data: dict[str, Any]) -> Token | None:
    """The cached token if every value is plausible, else None."""
    numbers = [v for v in (data.get("expires_at"), data.get("lifetime"))
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) != 2 or not all(math.isfinite(v) for v in numbers):
        return None
    expires_at, lifetime = float(numbers[0]), float(numbers[1])
    now = time.time()
    if not (0 < lifetime <= MAX_LIFETIME and now < expires_at <= now + lifetime + 60):
        return None  # expires_at cannot be further away than the token's own lifetime (+ clock slack)
    try:
        token = token_from_answer({"access_token": data.get("access_token"), "expires_in": lifetime}, 0.0)
    except AuthenticationError:
        return None
    return Token(token.value, expires_at, lifetime)


def _encoded(token: Token) -> str:
    return json.dumps(
        {"access_token": token.value.reveal(), "expires_at": token.expires_at, "lifetime": token.lifetime}
    )


def _warn_refused(directory: Path, why: str) -> None:
    _LOGGER.warning("not caching tokens in %s: %s", directory, why)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        _LOGGER.warning("could not remove the cached token %s: %s", path, exc.strerror)
