"""Session layer: the kernel-level session, the package's only mutable global.

One :class:`Session` per kernel, shared by every cell: it holds the settings, the
token source and the transport. ``login()`` builds a new one (exchanging a token
at once, so bad credentials fail there) and only then replaces the old one, so a
failed login leaves a working session untouched.
"""

from __future__ import annotations

import atexit
import html
import logging
import sys
import threading
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from dataclasses import replace
from urllib.parse import urljoin

from .answers import json_of, object_of, records_of
from .auth import ClientCredentials, Credentials, StaticToken
from .config import DEFAULT_TIMEOUT, Secret, Settings, ask_credentials, origin_of, resolve_settings
from .errors import APIError, ConfigError, NotLoggedInError
from .paths import api_path, segment
from .redaction import Scrubber
from .sandbox.constants import SANDBOX_CLIENT_ID

if TYPE_CHECKING:  # pragma: no cover
    import os

    import requests

_LOGGER = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 6  # requests in flight in an account-wide fan-out
MAX_CONCURRENCY = 16  # the transport's connection pool holds 32; stay well inside it

_lock = threading.RLock()
_current: Session | None = None
_sandbox: Any = None  # the embedded sandbox this kernel started; reused by later logins


class Session:
    """The kernel-level Metafold session. Never shows the secret or the token."""

    def __init__(self, settings: Settings, credentials: Credentials, transport: Any, *, sandbox: bool = False) -> None:
        self._settings = settings
        self._credentials = credentials
        self._transport = transport
        self._sandbox = sandbox
        self._project_id = settings.project_id
        self._closed = False
        self._concurrency = DEFAULT_CONCURRENCY

    # -- state -----------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def project_id(self) -> str | None:
        """The default project of project-scoped calls (``METAFOLD_PROJECT_ID``)."""
        return self._project_id

    @property
    def sandbox(self) -> bool:
        return self._sandbox

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    @property
    def concurrency(self) -> int:
        """How many requests an account-wide call keeps in flight (1..16, default 6)."""
        return self._concurrency

    @concurrency.setter
    def concurrency(self, value: int) -> None:
        self._concurrency = check_concurrency(value)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def token_exchanges(self) -> int:
        """How many client-credentials exchanges this session has made."""
        return getattr(self._credentials, "exchanges", 0)

    def status(self) -> SessionStatus:
        """Where and as whom this session is logged in, and until when (no secret, no token)."""
        expires_at = self._credentials.expires_at
        expires_in = None if expires_at is None else max(0, int(expires_at.timestamp() - time.time()))
        return SessionStatus(
            logged_in=not self._closed,
            client_id=self._settings.masked_client_id or "(access token)",
            sandbox=self._sandbox,
            project_id=self._project_id,
            base_url=self._settings.base_url,
            expires_at=expires_at,
            expires_in=expires_in,
            source=self._settings.source,
            refreshable=self._credentials.refreshable,
            token_exchanges=self.token_exchanges,
        )

    def describe(self) -> str:
        """One status line, e.g. for ``%metafold_login``."""
        return self.status().describe()

    def __repr__(self) -> str:
        s = self.status()
        if not s["logged_in"]:
            return "<metafold_jupyter.Session logged out>"
        kind = "sandbox" if s["sandbox"] else "metafold"
        expiry = "" if s["expires_in"] is None else f" expires_in={_duration(s['expires_in'])}"
        return (
            f"<metafold_jupyter.Session {kind} {s['base_url'].rstrip('/')} "
            f"client_id={s['client_id']!r} project={s['project_id']!r}{expiry}>"
        )

    def _repr_html_(self) -> str:
        return self.status()._repr_html_()

    # -- project -----------------------------------------------------------------

    def use_project(self, project_id: str | None) -> None:
        """Set (after checking it exists) or clear the default project."""
        if project_id is not None:
            project_id = str(project_id).strip()
            self.get_json(api_path("/projects/{pid}", pid=project_id))  # a typo fails here, with the API's 404
        self._project_id = project_id

    def require_project(self, project: str | None = None) -> str:
        """The project for a project-scoped call: explicit, else the default one.

        Raises:
            ConfigError: neither is set.
        """
        project = project or self._project_id
        if not project:
            raise ConfigError(
                "no project given and no default project set",
                hint="pass project=ID (--project ID), set METAFOLD_PROJECT_ID, or run %metafold project ID",
            )
        return str(project)

    # -- requests ------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send an authorized request to the API (a path or an absolute URL).

        Raises:
            APIError: any non-2xx answer (``TransportError`` when there was no answer).
            NotLoggedInError: the session was logged out.
        """
        self._check_open()
        return self._transport.request(method, path, **kwargs)

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``path`` and return the parsed JSON body."""
        return json_of(self.request("GET", path, params=params))

    def get_records(self, path: str, params: dict[str, Any] | None = None, what: str = "objects") -> list[dict[str, Any]]:
        """GET a list endpoint: its JSON array of objects (``what`` names them in messages).

        Raises:
            APIError: the answer is not a JSON array of objects (``null``, ``[1, 2]``, ``[[1]]``...).
        """
        return records_of(self.request("GET", path, params=params), what)

    def get_object(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET an endpoint that answers one JSON object.

        Raises:
            APIError: the answer is not a JSON object.
        """
        return object_of(self.request("GET", path, params=params))

    def api_url(self, path: str) -> str:
        """The absolute URL of an API path (``/projects``, ``user/license``).

        Raises:
            ConfigError: ``path`` is a URL or names another host (``//host/x``), or holds
                whitespace or control characters.
        """
        text = str(path).strip()
        if not text or "://" in text or text.startswith(("//", "\\")) or any(
            c.isspace() or ord(c) < 32 or ord(c) == 127 or c == "\\" for c in text
        ):
            raise ConfigError(
                f"{text[:60]!r} is not a path on the Metafold API",
                hint="give a path such as /projects or user/license (never a URL or //host)",
            )
        url = urljoin(self._settings.base_url, "/" + text.lstrip("/"))
        if origin_of(url) != self._settings.api_origin:  # belt and braces
            raise ConfigError(f"{text[:60]!r} leaves the API origin", hint="give a path such as /projects")
        return url

    def scrub(self, text: Any) -> str:
        """``text`` without this session's secret and tokens, nor anything shaped like a credential."""
        return self._transport.scrub(text)

    def access_token(self) -> str:
        """A valid (refreshed if due) token for your own calls. Keep it secret."""
        self._check_open()
        return self._credentials.token()

    @property
    def http(self) -> requests.Session:
        """The underlying keep-alive requests.Session (no token attached by itself)."""
        return self._transport.http

    def close(self, *, forget: bool = False) -> None:
        """Close the connections; with ``forget``, also drop the token and its cached copy (logout)."""
        self._closed = True
        if forget:
            forget_token = getattr(self._credentials, "forget", None)
            if forget_token is not None:
                forget_token()
        self._transport.close()

    def _check_open(self) -> None:
        if self._closed:
            raise NotLoggedInError("this session was logged out")


class SessionStatus(dict):
    """The dict of :meth:`Session.status`, shown as a readable table in notebooks."""

    def describe(self) -> str:
        """One line: where, as whom, credentials source, project, token expiry."""
        if not self["logged_in"]:
            return "Logged out of Metafold."
        url = self["base_url"].rstrip("/")
        if self["source"] == "sandbox":
            line = f"Logged in to the embedded Metafold sandbox at {url} as {self['client_id']}"
        else:
            where = "the Metafold sandbox" if self["sandbox"] else "Metafold"
            line = f"Logged in to {where} at {url} as {self['client_id']}"
            if self["source"]:
                line += f" (credentials from {self['source']})"
        parts = [line, f"project {self['project_id']}" if self["project_id"] else "no default project"]
        if self["expires_at"] is not None:
            renew = "renewed automatically" if self["refreshable"] else "cannot be renewed"
            parts.append(
                f"token valid until {self['expires_at']:%Y-%m-%d %H:%M} UTC "
                f"({_duration(self['expires_in'])}, {renew})"
            )
        return " · ".join(parts)

    def _rows(self) -> list[tuple[str, str]]:
        shown = dict(self)
        if self["expires_at"] is not None:
            shown["expires_at"] = f"{self['expires_at']:%Y-%m-%d %H:%M:%S} UTC"
            shown["expires_in"] = f"{self['expires_in']} s ({_duration(self['expires_in'])})"
        return [(k, "" if v is None else str(v)) for k, v in shown.items()]

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        width = max(len(k) for k in self)
        printer.text("\n".join(f"{k:<{width}}  {v}" for k, v in self._rows()))

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in self._rows()
        )
        return f"<table><caption style='text-align:left'>Metafold session</caption>{rows}</table>"


# -- the kernel-level session ------------------------------------------------------


def login(
    client_id: str | None = None,
    client_secret: str | Secret | None = None,
    *,
    env_file: str | os.PathLike | None = None,
    project: str | None = None,
    sandbox: bool = False,
    prompt: bool | None = None,
    auth_domain: str | None = None,
    base_url: str | None = None,
    audience: str | None = None,
    remember: bool = False,
    timeout: tuple[float, float] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> Session:
    """Start (or replace) the kernel-level session and exchange a token right away.

    Credentials come from the arguments, the environment, a dotenv file, the embedded
    sandbox (``sandbox=True`` or ``METAFOLD_SANDBOX=1``) or a prompt, in that order.

    Args:
        prompt: ``True`` always asks; ``False`` never does; ``None`` asks only when
            nothing else supplied credentials (and the frontend can ask).
        remember: reuse and keep the token in the user cache directory (0600) so a
            restarted kernel does not exchange again.
        timeout: ``(connect, read)`` seconds for every call (default 3.05, 30).
        concurrency: requests in flight in account-wide calls (1..16; ``Session.concurrency``).

    Raises:
        MissingCredentialsError: nothing supplied credentials and no prompt was possible.
        ConfigError: other missing or insecure settings.
        AuthenticationError: the auth service rejected the credentials.
    """
    client_secret = Secret.of(client_secret)  # never a plain string in a frame (tracebacks show locals)
    concurrency = check_concurrency(concurrency)  # before any exchange
    if sandbox:
        return start_session(_sandbox_settings(project, timeout), remember=remember, concurrency=concurrency)
    resolution = resolve_settings(
        client_id,
        client_secret,
        env_file=env_file,
        project=project,
        auth_domain=auth_domain,
        base_url=base_url,
        audience=audience,
        timeout=timeout,
    )
    settings = resolution.settings
    found = settings.has_pair or settings.access_token is not None
    if prompt is True or not found:
        if prompt is not True and resolution.sandbox_requested:
            settings = _sandbox_settings(project or settings.project_id, timeout)
        elif prompt is False or (prompt is None and not _can_prompt()):
            raise resolution.missing_credentials_error()
        else:
            # refuse an insecure URL, or routing taken from a stray .env, before the user types a secret
            replace(settings, secret_source="prompt").checked()
            cid, secret = ask_credentials()
            settings = settings.with_credentials(cid, secret, "prompt")
    return start_session(settings, remember=remember, concurrency=concurrency)


def login_with_prompted(client_id: str, client_secret: str | Secret | None, **options: Any) -> Session:
    """Log in with a pair typed into a prompt (the login form); other settings resolve as usual.

    Args:
        options: ``env_file``, ``project``, ``auth_domain``, ``base_url``, ``audience``,
            ``remember``, ``timeout``, ``concurrency`` as for :func:`login`.
    """
    client_secret = Secret.of(client_secret)  # never a plain string in a frame
    remember = options.pop("remember", False)
    concurrency = check_concurrency(options.pop("concurrency", DEFAULT_CONCURRENCY))
    settings = prompt_settings(**options)
    return start_session(
        settings.with_credentials(client_id, client_secret, "prompt"), remember=remember, concurrency=concurrency
    )


def prompt_settings(**options: Any) -> Settings:
    """The settings a prompted secret would be sent with, checked before anyone types it.

    Args:
        options: ``env_file``, ``project``, ``auth_domain``, ``base_url``, ``audience``, ``timeout``.

    Raises:
        ConfigError: an insecure URL, or a routing setting from a ``.env`` found by searching.
    """
    options = {k: v for k, v in options.items() if k not in ("remember", "concurrency")}
    settings = resolve_settings(**options).settings
    replace(settings, secret_source="prompt").checked()
    return settings


def headless() -> bool:
    """True in a kernel whose current request cannot be answered by a person (nbclient,
    papermill, ``jupyter nbconvert --execute``, voila): it was sent with ``allow_stdin=False``,
    which every interactive frontend (JupyterLab, Notebook, VS Code) sets to True."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return False
    try:
        parent = kernel.get_parent("shell") or {}
        allow = parent.get("content", {}).get("allow_stdin")
    except (AttributeError, TypeError, LookupError):
        allow = None
    if allow is None:
        allow = getattr(kernel, "_allow_stdin", True)
    return not allow


def start_session(settings: Settings, *, remember: bool = False, concurrency: int = DEFAULT_CONCURRENCY) -> Session:
    """Build a session from resolved settings, exchange a token, and make it current."""
    from .token_cache import TokenCache
    from .transport import Transport, build_http, exchange_token

    settings.checked()
    if settings.project_id is not None:
        segment(settings.project_id, "project ID")  # "3#" would address something else: refuse it now
    scrubber = Scrubber(settings.client_secret, settings.access_token)
    credentials: Credentials
    if settings.has_pair:
        cache = (
            TokenCache(settings.auth_origin, settings.audience, settings.client_id or "", settings.client_secret)
            if remember and settings.client_secret is not None
            else None
        )
        http = build_http(settings)
        credentials = ClientCredentials(partial(exchange_token, http, settings, scrubber), cache=cache,
                                        scrubber=scrubber)
    elif settings.access_token is not None:
        credentials = StaticToken(settings.access_token)
        http = build_http(settings)
    else:
        raise ConfigError("no credentials to log in with", hint="see %metafold_login?")
    try:
        credentials.token()  # bad credentials fail here, not in the first cell that needs them
    except BaseException:
        http.close()
        raise
    # the sandbox's client ID is public and fixed: a session logged in to any sandbox
    # (embedded, or one started with python -m metafold_jupyter.sandbox) says so
    sandbox = settings.sandbox or settings.client_id == SANDBOX_CLIENT_ID
    new = Session(settings, credentials, Transport(settings, credentials, http, scrubber), sandbox=sandbox)
    new.concurrency = concurrency
    global _current
    with _lock:
        old, _current = _current, new
    if old is not None:
        old.close()
    _LOGGER.info("logged in to %s as %s (%s)", settings.base_url, settings.masked_client_id, settings.source)
    return new


def logout() -> None:
    """Forget the credentials and the token; later calls raise NotLoggedInError."""
    global _current
    with _lock:
        old, _current = _current, None
    if old is not None:
        old.close(forget=True)  # a remembered token is deleted too


def session() -> Session:
    """The current kernel-level session.

    Raises:
        NotLoggedInError: nobody logged in (or after ``logout()``).
    """
    current = _current
    if current is None:
        raise NotLoggedInError()
    return current


def current_session() -> Session | None:
    """The current session, or None (no error)."""
    return _current


def reset_session() -> None:
    """Log out and stop the embedded sandbox (for tests)."""
    global _sandbox
    logout()
    with _lock:
        sb, _sandbox = _sandbox, None
    if sb is not None:
        sb.stop()


def embedded_sandbox() -> Any:
    """The sandbox this kernel runs (started on first use, then reused)."""
    global _sandbox
    with _lock:
        if _sandbox is None:
            from .sandbox import Sandbox  # the one place the library starts the sandbox

            _sandbox = Sandbox().start()
            atexit.register(_sandbox.stop)
        return _sandbox


def _sandbox_settings(project: str | None, timeout: tuple[float, float] | None) -> Settings:
    sb = embedded_sandbox()
    return Settings(
        client_id=sb.client_id,
        client_secret=Secret(sb.client_secret),
        project_id=project or sb.default_project_id,
        auth_origin=sb.url,
        base_url=sb.url + "/",
        audience=sb.audience,
        source="sandbox",
        sandbox=True,
        timeout=timeout or DEFAULT_TIMEOUT,
        secret_source="sandbox",
    )


def check_concurrency(value: Any) -> int:
    """``value`` as a concurrency (an int in 1..16).

    Raises:
        ConfigError: not an int, or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise ConfigError(
            f"concurrency must be a whole number from 1 to {MAX_CONCURRENCY}, not {value!r}",
            hint=f"e.g. mf.session().concurrency = 4 (default {DEFAULT_CONCURRENCY})",
        )
    return value


def _can_prompt() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if getattr(shell, "kernel", None) is not None:  # a Jupyter kernel asks through the frontend...
        return not headless()  # ...unless nobody is there to answer
    stdin = sys.stdin
    try:
        return stdin is not None and stdin.isatty()
    except (ValueError, OSError):
        return False


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"

