"""Settings layer: where credentials and URLs come from, and which URLs are allowed.

Resolution order (each variable on its own): explicit arguments, then the process
environment, then a dotenv file (an explicit ``env_file``, else the nearest ``.env``
from the working directory upwards). The embedded sandbox and the interactive
prompt come after that and are decided by :mod:`metafold_jupyter.kernel_session`.

Dotenv values are read with python-dotenv into a dict and never copied into
``os.environ``: child processes (``!cmd`` in a notebook) must not inherit the secret.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from .errors import ConfigError, MissingCredentialsError

_LOGGER = logging.getLogger(__name__)

DEFAULT_AUTH_DOMAIN = "metafold3d.us.auth0.com"
DEFAULT_BASE_URL = "https://api.metafold3d.com/"
DEFAULT_AUDIENCE = "https://api.metafold3d.com"
DEFAULT_TIMEOUT = (3.05, 30.0)  # (connect, read) seconds; connect just above a TCP retransmit

ENV_CLIENT_ID = "METAFOLD_CLIENT_ID"
ENV_CLIENT_SECRET = "METAFOLD_CLIENT_SECRET"
ENV_PROJECT_ID = "METAFOLD_PROJECT_ID"
ENV_AUTH_DOMAIN = "METAFOLD_AUTH_DOMAIN"
ENV_BASE_URL = "METAFOLD_BASE_URL"
ENV_AUDIENCE = "METAFOLD_AUDIENCE"
ENV_ACCESS_TOKEN = "METAFOLD_ACCESS_TOKEN"
ENV_SANDBOX = "METAFOLD_SANDBOX"

_TRUE = {"1", "true", "yes", "on"}


class InsecureFileWarning(UserWarning):
    """A dotenv file holding credentials can be read by other users."""


class Secret:
    """A secret string that does not show itself in repr, str, format or pickles."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value (only for the request that needs it)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> NoReturn:  # noqa: D105 - refuse to be pickled (IPython %store, multiprocessing)
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True)
class Settings:
    """Everything a session needs, with the secret and the token kept opaque.

    Attributes:
        source: where the credentials came from: ``"arguments"``, ``"environment"``,
            the path of the dotenv file, ``"prompt"`` or ``"sandbox"``.
    """

    client_id: str | None = field(default=None, repr=False)
    client_secret: Secret | None = field(default=None, repr=False)
    access_token: Secret | None = field(default=None, repr=False)
    project_id: str | None = None
    auth_origin: str = f"https://{DEFAULT_AUTH_DOMAIN}"
    base_url: str = DEFAULT_BASE_URL
    audience: str = DEFAULT_AUDIENCE
    source: str = ""
    sandbox: bool = False
    timeout: tuple[float, float] = DEFAULT_TIMEOUT

    @property
    def token_url(self) -> str:
        return f"{self.auth_origin}/oauth/token"

    @property
    def api_origin(self) -> str:
        return origin_of(self.base_url)

    @property
    def has_pair(self) -> bool:
        return bool(self.client_id and self.client_secret)

    @property
    def masked_client_id(self) -> str:
        return mask(self.client_id)

    def with_credentials(self, client_id: str, client_secret: str, source: str) -> Settings:
        return replace(self, client_id=client_id, client_secret=Secret(client_secret), source=source)

    def checked(self) -> Settings:
        """Validate the URLs (https, or http on loopback) before anything is sent."""
        check_secure_url(self.token_url, "auth service URL (METAFOLD_AUTH_DOMAIN)")
        check_secure_url(self.base_url, "API base URL (METAFOLD_BASE_URL)")
        return self


@dataclass
class Resolution:
    """The outcome of :func:`resolve_settings`, with what was looked at (for error messages)."""

    settings: Settings
    looked_in: list[str]
    sandbox_requested: bool = False

    def missing_credentials_error(self) -> MissingCredentialsError:
        s = self.settings
        where = ", ".join(self.looked_in)
        if s.client_id and not s.client_secret:
            what = f"{ENV_CLIENT_SECRET} is not set (but {ENV_CLIENT_ID} is)"
        elif s.client_secret and not s.client_id:
            what = f"{ENV_CLIENT_ID} is not set (but {ENV_CLIENT_SECRET} is)"
        else:
            what = f"{ENV_CLIENT_ID} and {ENV_CLIENT_SECRET} are not set"
        return MissingCredentialsError(
            f"no Metafold credentials: {what}; looked in {where}",
            hint=(
                "put both in a .env file, or log in with %metafold_login --prompt, "
                f"or try the embedded sandbox with --sandbox ({ENV_SANDBOX}=1)"
            ),
        )


def resolve_settings(
    client_id: str | None = None,
    client_secret: str | None = None,
    *,
    env_file: str | os.PathLike | None = None,
    project: str | None = None,
    auth_domain: str | None = None,
    base_url: str | None = None,
    audience: str | None = None,
    timeout: tuple[float, float] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
) -> Resolution:
    """Merge explicit arguments, the environment and a dotenv file into :class:`Settings`.

    Raises:
        ConfigError: an explicit ``env_file`` is missing or holds no credentials,
            or a URL is invalid or insecure.
    """
    environ = os.environ if environ is None else environ
    looked_in = ["arguments", "the environment"]
    dotenv: dict[str, str] = {}
    dotenv_label = ""
    if env_file is not None:
        path = Path(env_file).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"env file {str(path)!r} does not exist",
                hint="check the path given to --env / env_file=",
            )
        dotenv, dotenv_label = read_dotenv(path), str(path.resolve())
        if not (
            (dotenv.get(ENV_CLIENT_ID) and dotenv.get(ENV_CLIENT_SECRET)) or dotenv.get(ENV_ACCESS_TOKEN)
        ):
            raise ConfigError(
                f"env file {dotenv_label!r} has no {ENV_CLIENT_ID} / {ENV_CLIENT_SECRET} pair",
                hint=f"add both lines to it, e.g. {ENV_CLIENT_ID}=... and {ENV_CLIENT_SECRET}=...",
            )
        looked_in.append(dotenv_label)
    else:
        found = find_dotenv(cwd)
        if found is not None:
            dotenv, dotenv_label = read_dotenv(found), str(found)
            looked_in.append(dotenv_label)
        else:
            looked_in.append(f"no .env from {Path(cwd or os.getcwd())} upwards")

    explicit = {
        ENV_CLIENT_ID: client_id,
        ENV_CLIENT_SECRET: client_secret,
        ENV_PROJECT_ID: project,
        ENV_AUTH_DOMAIN: auth_domain,
        ENV_BASE_URL: base_url,
        ENV_AUDIENCE: audience,
    }
    sources: dict[str, str] = {}

    def pick(name: str) -> str | None:
        for label, values in (("arguments", explicit), ("environment", environ), (dotenv_label, dotenv)):
            value = values.get(name)
            if value:
                sources[name] = label
                return str(value).strip()
        return None

    cid, secret, token = pick(ENV_CLIENT_ID), pick(ENV_CLIENT_SECRET), pick(ENV_ACCESS_TOKEN)
    if cid and secret:
        source = sources[ENV_CLIENT_ID]
        if sources[ENV_CLIENT_SECRET] != source:
            source = f"{source} + {sources[ENV_CLIENT_SECRET]}"
    elif token:
        source = sources[ENV_ACCESS_TOKEN]
    else:
        source = ""
    settings = Settings(
        client_id=cid,
        client_secret=Secret(secret) if secret else None,
        access_token=Secret(token) if token and not (cid and secret) else None,
        project_id=pick(ENV_PROJECT_ID),
        auth_origin=auth_origin_of(pick(ENV_AUTH_DOMAIN) or DEFAULT_AUTH_DOMAIN),
        base_url=normalize_base_url(pick(ENV_BASE_URL) or DEFAULT_BASE_URL),
        audience=pick(ENV_AUDIENCE) or DEFAULT_AUDIENCE,
        source=source,
        timeout=timeout or DEFAULT_TIMEOUT,
    )
    sandbox_requested = (pick(ENV_SANDBOX) or "").lower() in _TRUE
    return Resolution(settings, looked_in, sandbox_requested)


def find_dotenv(cwd: str | os.PathLike | None = None) -> Path | None:
    """Return the nearest ``.env`` file from ``cwd`` (default: the working directory) upwards."""
    directory = Path(cwd or os.getcwd()).resolve()
    for candidate_dir in (directory, *directory.parents):
        candidate = candidate_dir / ".env"
        if candidate.is_file():
            return candidate
    return None


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a dotenv file into a dict (python-dotenv), warning if others can read it."""
    from dotenv import dotenv_values

    _warn_if_readable_by_others(path)
    return {k: v for k, v in dotenv_values(path, interpolate=False).items() if v is not None}


def _warn_if_readable_by_others(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        # The registry of the warnings module shows each distinct message once.
        warnings.warn(
            f"{path} can be read by other users of this machine; run: chmod 600 {path}",
            InsecureFileWarning,
            stacklevel=3,
        )


def ask_credentials(project: str | None = None) -> tuple[str, str]:
    """Ask for the client ID and secret with ``input``/``getpass`` (terminal or kernel stdin).

    Raises:
        ConfigError: the frontend cannot answer input requests, or nothing was entered.
    """
    import getpass

    try:
        client_id = input("Metafold client ID: ").strip()
        client_secret = getpass.getpass("Metafold client secret: ").strip()
    except (EOFError, KeyboardInterrupt) as exc:
        raise ConfigError("login cancelled: no credentials were entered") from exc
    except NotImplementedError:  # IPython's StdinNotImplementedError: this frontend has no stdin
        raise ConfigError(
            "no credentials were found and this frontend cannot ask for them",
            hint=f"put {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET} in a .env file, or use --sandbox",
        ) from None
    if not (client_id and client_secret):
        raise ConfigError("login cancelled: the client ID and the secret are both needed")
    return client_id, client_secret


# -- URL policy ---------------------------------------------------------------


def is_loopback(host: str | None) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_secure_url(url: str, what: str) -> str:
    """Refuse anything but https, except plain http on a loopback host.

    Raises:
        ConfigError: naming ``what`` and the URL, before any secret or token is sent.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"{what} {url!r} is not a valid http(s) URL", hint="check the setting's spelling")
    if parts.scheme == "http" and not is_loopback(host):
        raise ConfigError(
            f"{what} {url!r} uses plain http, which would expose credentials and tokens",
            hint="use https:// (plain http is accepted only for localhost / 127.0.0.1 / ::1)",
        )
    return url


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower-cased, default ports dropped."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def auth_origin_of(domain: str) -> str:
    """A bare host means ``https://HOST``; a value with a scheme is used as is."""
    domain = domain.strip()
    if "://" not in domain:
        domain = f"https://{domain}"
    return domain.rstrip("/")


def normalize_base_url(url: str) -> str:
    url = url.strip()
    if "://" not in url:
        url = f"https://{url}"
    return url if url.endswith("/") else url + "/"


def mask(value: str | None) -> str:
    """Show enough of an identifier to recognise it, not to use it."""
    if not value:
        return ""
    if len(value) <= 8:
        return value[:2] + "…"
    return f"{value[:4]}…{value[-4:]}"
