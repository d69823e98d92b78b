"""Settings layer: where credentials and URLs come from, and which URLs are allowed.

Resolution order (each variable on its own): explicit arguments, then the process
environment, then a dotenv file (an explicit ``env_file``, else the nearest ``.env``
from the working directory upwards). The embedded sandbox and the interactive
prompt come after that and are decided by :mod:`metafold_jupyter.kernel_session`.

Dotenv values are read with python-dotenv into a dict and never copied into
``os.environ``: child processes (``!cmd`` in a notebook) must not inherit the secret.

Dotenv trust. A ``.env`` decides where the secret is sent, and files appear in
directories without their owner's doing (a downloaded asset, a shared folder). So:

- the upward search stops at the home directory or the repository root (a
  directory holding ``.git``), and skips (with one warning) a file owned by another
  user or writable by others, as OpenSSH does for its own files (root-owned files
  are trusted: root can change anything anyway);
- the settings that decide where the secret goes (``METAFOLD_AUTH_DOMAIN``,
  ``METAFOLD_BASE_URL``, ``METAFOLD_AUDIENCE``) are taken from a file found by that
  search only when the secret itself comes from the same file. Otherwise login
  fails before anything is sent (:meth:`Settings.checked`): google-auth likewise
  reads a credential's ``token_uri`` only from the same file as its key. Explicit
  arguments, the environment and a file the user names (``--env PATH``) are the
  user's own choice and are always honoured.

Secrets are wrapped in :class:`Secret` as soon as they are read, so no frame of
this package holds one as a plain string (tracebacks with ``capture_locals`` and
IPython's ``%xmode Verbose`` show local variables).
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
from typing import Any, NoReturn
from urllib.parse import urlsplit

from .errors import ConfigError, MissingCredentialsError
from .redaction import redact_url

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
_SECRET_NAMES = frozenset({ENV_CLIENT_SECRET, ENV_ACCESS_TOKEN})
#: Settings that decide where the secret and the token are sent.
ROUTING_SETTINGS = (ENV_AUTH_DOMAIN, ENV_BASE_URL, ENV_AUDIENCE)


class InsecureFileWarning(UserWarning):
    """A dotenv file holding credentials can be read by other users."""


class Secret:
    """A secret string that does not show itself in repr, str, format or pickles."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    @classmethod
    def of(cls, value: str | Secret | None) -> Secret | None:
        """``value`` wrapped (a Secret stays as it is); None for nothing or an empty string."""
        if value is None or isinstance(value, Secret):
            return value or None
        return cls(str(value)) if value else None

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
    #: where the client secret (or the access token) came from, as in ``source``
    secret_source: str = ""
    #: ``(variable, file)`` for each non-default routing setting read from a dotenv
    #: file found by the upward search (not named by the user)
    searched_routing: tuple[tuple[str, str], ...] = ()

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

    def with_credentials(self, client_id: str, client_secret: str | Secret | None, source: str) -> Settings:
        return replace(
            self,
            client_id=client_id,
            client_secret=Secret.of(client_secret),
            access_token=None,
            source=source,
            secret_source=source,
        )

    def checked(self) -> Settings:
        """Check, before anything is sent, that the secret and the token may go where the settings say.

        The URLs must be https (or http on loopback), and routing settings read from a
        dotenv file found by searching upwards must come with the secret from that file.

        Raises:
            ConfigError: an insecure URL, or a routing setting from another source than the secret.
        """
        check_secure_url(self.token_url, "auth service URL (METAFOLD_AUTH_DOMAIN)")
        check_secure_url(self.base_url, "API base URL (METAFOLD_BASE_URL)")
        token_only = self.access_token is not None and not self.has_pair
        for name, file in self.searched_routing:
            if token_only and name != ENV_BASE_URL:
                continue  # the auth service and the audience play no part with a ready token
            if file != self.secret_source:
                secret = ENV_ACCESS_TOKEN if token_only else "the client secret"
                where = {"": "the prompt", "prompt": "the prompt", "environment": "the environment",
                         "arguments": "the arguments"}.get(self.secret_source, self.secret_source)
                raise ConfigError(
                    f"{name} comes from {file} (found by searching upwards from the working directory), "
                    f"but {secret} comes from {where}: a setting that decides where the secret is sent "
                    "must come from the same place as the secret",
                    hint=(
                        f"put the credentials in that file too, name it with --env PATH (env_file=), set {name} "
                        "where the secret is, or pass it explicitly; if you did not write that line, delete it: "
                        "it would send your secret elsewhere"
                    ),
                )
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
    client_secret: str | Secret | None = None,
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
    client_secret = Secret.of(client_secret)  # never a plain string in a frame (tracebacks show locals)
    looked_in = ["arguments", "the environment"]
    dotenv: dict[str, str | Secret] = {}
    dotenv_label = ""
    searched = ""  # the file found by the upward search (not named by the user)
    if env_file is not None:
        path = Path(env_file).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"env file {str(path)!r} does not exist",
                hint="check the path given to --env / env_file=",
            )
        problem = dotenv_problem(path)
        if problem is not None:
            raise ConfigError(
                f"env file {str(path)!r} is {problem}, so it cannot be trusted with where the secret is sent",
                hint=f"if it is yours: chown $USER {path}; chmod 600 {path}",
            )
        dotenv, dotenv_label = read_dotenv(path), str(path.resolve())
        if not ((dotenv.get(ENV_CLIENT_ID) and dotenv.get(ENV_CLIENT_SECRET)) or dotenv.get(ENV_ACCESS_TOKEN)):
            raise ConfigError(
                f"env file {dotenv_label!r} has no {ENV_CLIENT_ID} / {ENV_CLIENT_SECRET} pair",
                hint=f"add both lines to it, e.g. {ENV_CLIENT_ID}=... and {ENV_CLIENT_SECRET}=...",
            )
        looked_in.append(dotenv_label)
    else:
        found = find_dotenv(cwd)
        if found is not None:
            dotenv, dotenv_label = read_dotenv(found), str(found)
            searched = dotenv_label
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
    sources = _Sources(
        [("arguments", explicit), ("environment", os.environ if environ is None else environ), (dotenv_label, dotenv)]
    )
    cid, cid_from = sources.pick(ENV_CLIENT_ID)
    secret, secret_from = sources.pick(ENV_CLIENT_SECRET)
    token, token_from = sources.pick(ENV_ACCESS_TOKEN)
    if cid and secret:
        source = cid_from if cid_from == secret_from else f"{cid_from} + {secret_from}"
        secret_source = secret_from
    elif token:
        source = secret_source = token_from
    else:
        source = secret_source = ""
    picked = {name: sources.pick(name) for name in (ENV_PROJECT_ID, *ROUTING_SETTINGS, ENV_SANDBOX)}
    auth_origin = auth_origin_of(picked[ENV_AUTH_DOMAIN][0] or DEFAULT_AUTH_DOMAIN)
    api_url = normalize_base_url(picked[ENV_BASE_URL][0] or DEFAULT_BASE_URL)
    aud = picked[ENV_AUDIENCE][0] or DEFAULT_AUDIENCE
    effective = {
        ENV_AUTH_DOMAIN: auth_origin != f"https://{DEFAULT_AUTH_DOMAIN}",
        ENV_BASE_URL: api_url != DEFAULT_BASE_URL,
        ENV_AUDIENCE: aud != DEFAULT_AUDIENCE,
    }
    searched_routing = tuple(
        (name, searched) for name in ROUTING_SETTINGS if searched and picked[name][1] == searched and effective[name]
    )
    settings = Settings(
        client_id=cid,
        client_secret=secret,
        access_token=token if token and not (cid and secret) else None,
        project_id=picked[ENV_PROJECT_ID][0],
        auth_origin=auth_origin,
        base_url=api_url,
        audience=aud,
        source=source,
        timeout=timeout or DEFAULT_TIMEOUT,
        secret_source=secret_source,
        searched_routing=searched_routing,
    )
    sandbox_requested = (picked[ENV_SANDBOX][0] or "").lower() in _TRUE
    return Resolution(settings, looked_in, sandbox_requested)


class _Sources:
    """The places settings come from, in order; secret values come out wrapped in :class:`Secret`.

    Its repr names the places only, so a traceback showing local variables shows no value.
    """

    __slots__ = ("_layers",)

    def __init__(self, layers: list[tuple[str, Mapping[str, Any]]]) -> None:
        self._layers = layers

    def __repr__(self) -> str:
        return f"<settings sources: {', '.join(label or '-' for label, _ in self._layers)}>"

    def pick(self, name: str) -> tuple[Any, str]:
        """The first non-blank value of ``name`` and where it came from (``(None, "")`` if none)."""
        for label, values in self._layers:
            value = values.get(name)
            if isinstance(value, Secret):
                value = Secret.of(value.reveal().strip())
            elif value is not None:
                value = str(value).strip() or None
                if value is not None and name in _SECRET_NAMES:
                    value = Secret(value)
            if value:
                return value, label
        return None, ""


def find_dotenv(cwd: str | os.PathLike | None = None) -> Path | None:
    """The nearest trusted ``.env`` from ``cwd`` (default: the working directory) upwards.

    The search stops at the home directory or at a repository root (a directory
    holding ``.git``). A file owned by another user, or writable by others, is
    skipped with one :class:`InsecureFileWarning`.
    """
    directory = Path(cwd or os.getcwd()).resolve()
    home = _home()
    for candidate_dir in (directory, *directory.parents):
        candidate = candidate_dir / ".env"
        if candidate.is_file():
            problem = dotenv_problem(candidate)
            if problem is None:
                return candidate
            warnings.warn(
                f"ignoring {candidate}: it is {problem}, and a .env decides where your Metafold secret is sent; "
                f"if it is yours, run: chown $USER {candidate}; chmod 600 {candidate}",
                InsecureFileWarning,
                stacklevel=2,  # one location (the caller's call of find_dotenv): shown once per file
            )
        if candidate_dir == home or (candidate_dir / ".git").exists():
            break
    return None


def dotenv_problem(path: Path) -> str | None:
    """Why a dotenv file cannot be trusted (another user's, or writable by others), or None.

    Trusted owners are the current user and root, as OpenSSH decides for its own
    files. On Windows (no POSIX owners and modes) every file is trusted.
    """
    geteuid = getattr(os, "geteuid", None)
    if geteuid is None:
        return None
    try:
        link, target = path.lstat(), path.stat()
    except OSError:
        return "unreadable"
    me = geteuid()
    for info in (link, target):
        if info.st_uid not in (me, 0):
            return f"owned by another user ({_user_name(info.st_uid)})"
    if target.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "writable by other users"
    return None


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


def _home() -> Path | None:
    try:
        return Path.home().resolve()
    except (RuntimeError, OSError, KeyError):
        return None


def read_dotenv(path: Path) -> dict[str, str | Secret]:
    """Parse a dotenv file into a dict (python-dotenv), warning if others can read it.

    The secret variables come back wrapped in :class:`Secret`.

    Raises:
        ConfigError: the file cannot be read.
    """
    from dotenv import dotenv_values

    _warn_if_readable_by_others(path)
    try:
        values = dotenv_values(path, interpolate=False)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", hint="check the file's permissions") from None
    return {
        k: (Secret(v) if k in _SECRET_NAMES else v) for k, v in values.items() if v is not None
    }


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


def ask_credentials(project: str | None = None) -> tuple[str, Secret]:
    """Ask for the client ID and secret with ``input``/``getpass`` (terminal or kernel stdin).

    Raises:
        ConfigError: the frontend cannot answer input requests, or nothing was entered.
    """
    import getpass

    try:
        client_id = input("Metafold client ID: ").strip()
        client_secret = Secret.of(getpass.getpass("Metafold client secret: ").strip())
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
    """True for ``localhost``, 127.0.0.0/8 and ::1 (nothing else, per the interface)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost":  # not *.localhost: such names may resolve through DNS
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
    shown = redact_url(url)
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"{what} {shown!r} is not a valid http(s) URL", hint="check the setting's spelling")
    if parts.scheme == "http" and not is_loopback(host):
        raise ConfigError(
            f"{what} {shown!r} uses plain http, which would expose credentials and tokens",
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
