"""``Sandbox``: the two loopback servers (API + auth, and downloads) and their controls.

Each origin is a cheroot WSGI server (``serving.OriginServer``): HTTP/1.1 with
keep-alive, a pool of worker threads, optional TLS with a throwaway CA. ``stop()``
closes the connections clients keep open (and requests stuck in an injected
delay) and leaves no thread or listening socket behind.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import socket
import tempfile
import threading
import weakref
from pathlib import Path
from types import TracebackType

from . import seed as seeding
from .app import SandboxApp
from .constants import AUDIENCE, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from .downloads import DownloadApp, LinkSigner
from .faults import Fault
from .middleware import Gate, HostPolicy, Monitor, RequestRecord
from .serving import OriginServer, TLSAdapter, listen, make_tls
from .shape import AnswerShape
from .store import Store
from .tokens import TokenIssuer

__all__ = ["Sandbox"]

_LOGGER = logging.getLogger(__name__)
_JOIN_TIMEOUT = 5.0
# Requests each origin serves at once (idle keep-alive connections need no thread):
# a 16-worker fan-out plus a study polling 4 workflows plus requests held in
# injected delays fit in the API's pool; downloads are fewer and longer.
API_THREADS = 32
DOWNLOAD_THREADS = 16
DEFAULT_MAX_UPLOAD_MIB = 1024


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(scheme: str, host: str, port: int) -> str:
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _certificate_names(host: str, allow_remote: bool) -> list[str]:
    names = ["127.0.0.1", "::1", "localhost"]
    if allow_remote:
        extra = socket.gethostname() if host in ("", "0.0.0.0", "::") else host
        if extra not in names:
            names.append(extra)
    return names


class Sandbox:
    """A local Metafold: auth service, API and download links on loopback.

    Args:
        host: interface to listen on; loopback only unless ``allow_remote``.
        port: API/auth port (0 picks a free one). The download origin always
            gets a free port of its own.
        token_lifetime: seconds issued tokens live (``expires_in``).
        workflow_duration: seconds a dispatched workflow takes in total. A run
            request may override it with the parameter ``"sandbox.duration": "<s>"``.
        link_lifetime: seconds a signed download link stays valid.
        seed: load the demo data (otherwise only an empty default project).
        bulk_projects: extra generated projects (for benchmarks).
        bulk_asset_mib: if > 0, add ``bulk.bin`` of that many MiB (deterministic
            bytes in a temporary file) to the default project.
        download_mib_s: if > 0, serve download links no faster than this, to
            emulate a network link (progress bars in demos, realistic benchmarks).
        allow_remote: allow a non-loopback ``host``.
        max_running_workflows: answer a dispatch with 429 and ``Retry-After`` while
            this many workflows are pending or started (None: no limit; settable).
        answer_shape: ``"live"`` (what the service and the official SDK do) or
            ``"reference"`` (the published OpenAPI reference: ISO dates, ``link``
            on asset list items, no ``link`` in the dispatch answer,
            ``{code, name, description}`` errors). Switch at runtime with
            ``sandbox.shape.set(...)``; ``reset()`` restores the value given here.
        date_style: ``"rfc1123"``, ``"iso8601"``, or None to follow ``answer_shape``.
        allow_remote: allow a non-loopback ``host`` (requests must then name
            it, a loopback address or, for 0.0.0.0/::, any IP in ``Host``).
        tls: serve both origins over HTTPS with a throwaway CA whose
            certificate is at :attr:`ca_bundle` (needs ``trustme``).
        max_upload_mib: largest upload accepted; bigger ones are answered 413.

    Raises:
        ValueError: on a non-loopback host without ``allow_remote``, or bad numbers.
        ImportError: ``tls=True`` without ``trustme`` installed.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token_lifetime: int = 86400,
        workflow_duration: float = 3.0,
        link_lifetime: float = 3600,
        seed: bool = True,
        bulk_projects: int = 0,
        bulk_asset_mib: int = 0,
        download_mib_s: float = 0.0,
        allow_remote: bool = False,
        max_running_workflows: int | None = None,
        answer_shape: str = "live",
        date_style: str | None = None,
        tls: bool = False,
        max_upload_mib: float = DEFAULT_MAX_UPLOAD_MIB,
    ) -> None:
        if not _is_loopback(host) and not allow_remote:
            raise ValueError(
                f"refusing to serve the sandbox on {host!r}: it is not a loopback address and the sandbox's "
                "credentials are public; use 127.0.0.1, or pass allow_remote=True (--allow-remote) to expose it"
            )
        if token_lifetime <= 0 or workflow_duration <= 0 or link_lifetime <= 0:
            raise ValueError("token_lifetime, workflow_duration and link_lifetime must be positive")
        if bulk_projects < 0 or bulk_asset_mib < 0:
            raise ValueError("bulk_projects and bulk_asset_mib must not be negative")
        self.shape = AnswerShape(answer_shape, date_style)
        if download_mib_s < 0:
            raise ValueError("download_mib_s must not be negative")
        if not max_upload_mib > 0:
            raise ValueError("max_upload_mib must be positive")
        self.host = host
        self.port = port
        self.client_id = SANDBOX_CLIENT_ID
        self.client_secret = SANDBOX_CLIENT_SECRET
        self.audience = AUDIENCE
        self._seed = seed
        self._bulk_projects = bulk_projects
        self._allow_remote = allow_remote
        self.max_upload_mib = max_upload_mib
        self._url: str | None = None
        self._download_url: str | None = None
        self._servers: list[OriginServer] = []
        self._state_lock = threading.Lock()
        self._state = "new"

        self._tmp = Path(tempfile.mkdtemp(prefix="metafold-sandbox-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self._tmp), True)
        self._bulk_asset = None
        if bulk_asset_mib > 0:
            path = self._tmp / "bulk.bin"
            size, checksum = seeding.write_bulk_file(path, bulk_asset_mib)
            self._bulk_asset = (path, size, checksum)
        self._tls_context = None
        self.ca_bundle: Path | None = None
        """Path of the throwaway CA's certificate (PEM) when ``tls=True``, else None."""
        if tls:
            self._tls_context, self.ca_bundle = make_tls(_certificate_names(host, allow_remote), self._tmp)

        self._monitor = Monitor()
        self.store = Store(
            self._tmp / "blobs", workflow_duration=workflow_duration, max_running_workflows=max_running_workflows
        )
        self.tokens = TokenIssuer(
            lambda: f"{self._public_url() or 'http://sandbox.invalid'}/", AUDIENCE, token_lifetime
        )
        self.signer = LinkSigner(lambda: self._download_url or "http://127.0.0.1:0", link_lifetime)
        self.api_app = SandboxApp(
            self.store,
            self.tokens,
            self.signer,
            client_id=self.client_id,
            client_secret=self.client_secret,
            audience=self.audience,
            public_url=self._public_url,
            shape=self.shape,
            max_upload_bytes=int(max_upload_mib * (1 << 20)),
        )
        self.download_app = DownloadApp(self.store, self.signer, download_mib_s)
        # The API origin as one WSGI callable, for in-process use (werkzeug's test
        # Client): the servers' gate without their Host check.
        self.app = Gate(self.api_app, "api", self._monitor)
        self._load()

    # --------------------------------------------------------------- lifecycle
    def _public_url(self) -> str | None:
        return self._url

    def start(self) -> Sandbox:
        """Bind both ports and serve in background threads; returns ``self``.

        Raises:
            OSError: if a port cannot be bound.
            RuntimeError: if the sandbox was stopped already.
        """
        with self._state_lock:
            if self._state == "running":
                return self
            if self._state == "stopped":
                raise RuntimeError("a stopped Sandbox cannot be restarted; create a new one")
            api_sock = listen(self.host, self.port)
            try:
                download_sock = listen(self.host, 0)
            except OSError:
                api_sock.close()
                raise
            scheme = "https" if self._tls_context is not None else "http"
            remote = self.host if self._allow_remote else None
            servers = []
            try:
                for sock, app, origin, threads in (
                    (api_sock, self.api_app, "api", API_THREADS),
                    (download_sock, self.download_app, "download", DOWNLOAD_THREADS),
                ):
                    port = sock.getsockname()[1]
                    gate = Gate(app, origin, self._monitor, hosts=HostPolicy(port, scheme, remote))
                    server = OriginServer(
                        sock,
                        gate,
                        name=f"metafold-sandbox-{origin}",
                        threads=threads,
                        tls=TLSAdapter(self._tls_context) if self._tls_context is not None else None,
                        shutdown_timeout=int(_JOIN_TIMEOUT),
                    )
                    servers.append(server)
                self._url = _origin(scheme, self.host, api_sock.getsockname()[1])
                self._download_url = _origin(scheme, self.host, download_sock.getsockname()[1])
                for server in servers:
                    server.serve_in_thread()
            except BaseException:
                self._url = self._download_url = None
                for server in servers:
                    server.close(_JOIN_TIMEOUT)
                api_sock.close()
                download_sock.close()
                raise
            self._servers = servers
            self._state = "running"
        _LOGGER.info("Metafold sandbox serving on %s (downloads on %s)", self._url, self._download_url)
        return self

    def stop(self) -> None:
        """Stop serving, close open connections, join every thread and delete the temp files (idempotent)."""
        with self._state_lock:
            if self._state == "stopped":
                return
            was_running = self._state == "running"
            self._state = "stopped"
        self._monitor.stopping.set()
        if was_running:
            for server in self._servers:
                server.close(_JOIN_TIMEOUT)
        self._cleanup()
        _LOGGER.info("Metafold sandbox stopped")

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Sandbox {self._state} url={self._url!r} download_url={self._download_url!r}>"

    # --------------------------------------------------------------- origins
    @property
    def url(self) -> str:
        """API and auth origin, e.g. ``http://127.0.0.1:8123`` (no trailing slash)."""
        if self._url is None:
            raise RuntimeError("the sandbox is not started; call start() first")
        return self._url

    @property
    def token_url(self) -> str:
        """``<url>/oauth/token``."""
        return self.url + "/oauth/token"

    @property
    def download_url(self) -> str:
        """The second origin, serving signed download links (no token needed)."""
        if self._download_url is None:
            raise RuntimeError("the sandbox is not started; call start() first")
        return self._download_url

    @property
    def default_project_id(self) -> str:
        """ID of the main demo project ("Sandbox playground")."""
        return str(self.store.default_project_id)

    # ------------------------------------------------------------------ state
    def _load(self) -> None:
        seeding.load(self.store, demo=self._seed, bulk_projects=self._bulk_projects, bulk_asset=self._bulk_asset)

    def reset(self) -> None:
        """Restore the seeded data; clear faults, latency, revocations and logs (same ports)."""
        with self.store.lock:
            self.store.clear()
            self._load()
        self._monitor.reset()
        self.tokens.reset()
        self.shape.reset()

    def env(self) -> dict[str, str]:
        """The ``METAFOLD_*`` settings that point a client at this sandbox."""
        return {
            "METAFOLD_AUTH_DOMAIN": self.url,
            "METAFOLD_BASE_URL": self.url,
            "METAFOLD_CLIENT_ID": self.client_id,
            "METAFOLD_CLIENT_SECRET": self.client_secret,
            "METAFOLD_PROJECT_ID": self.default_project_id,
        }

    def set_quota(self, **remaining: int) -> None:
        """Set remaining quota counts, e.g. ``set_quota(project=0)`` to test the 403."""
        self.store.set_quota(**remaining)

    def expire_license(self) -> None:
        """Let the licence expire now: counted actions answer 403 until ``reset()``."""
        self.store.expire_license()

    @property
    def max_running_workflows(self) -> int | None:
        """Workflows in flight past which a dispatch gets 429 + ``Retry-After`` (None: no limit; settable)."""
        return self.store.max_running_workflows

    @max_running_workflows.setter
    def max_running_workflows(self, value: int | None) -> None:
        self.store.max_running_workflows = value

    # ------------------------------------------------------------------ faults
    def inject(
        self,
        path: str,
        *,
        method: str | None = None,
        status: int | None = None,
        count: int = 1,
        retry_after: float | str | None = None,
        body: str | bytes | None = None,
        content_type: str | None = None,
        drop: bool = False,
        delay: float = 0.0,
        redirect: str | None = None,
        origin: str = "api",
        truncate: int | None = None,
    ) -> None:
        """Script a fault for the next ``count`` requests matching ``path`` (exact or fnmatch glob).

        Args:
            path: request path or glob, e.g. ``"/projects/*/assets"``, ``"/oauth/token"``.
            method: only this HTTP method (default: any).
            status: answer this status, with a body in the shape of that origin
                (Auth0, API, or S3 XML) unless ``body`` is given.
            count: how many requests it hits.
            retry_after: adds ``Retry-After`` (seconds).
            body: answer this body instead (with ``content_type``).
            content_type: e.g. ``"text/html"`` for a proxy's 502 page.
            drop: close the connection without any answer.
            delay: sleep first (then answer normally unless status/drop is set).
            redirect: answer 307 (or ``status``) with ``Location: redirect``.
            origin: ``"api"`` or ``"download"``.
            truncate: send only the first ``truncate`` bytes of the body (the
                headers still announce the full length), then close the connection.

        Raises:
            ValueError: on inconsistent arguments.
        """
        self._monitor.faults.add(
            Fault(
                path=path,
                method=method,
                status=status,
                count=count,
                retry_after=retry_after,
                body=body,
                content_type=content_type,
                drop=drop,
                delay=delay,
                redirect=redirect,
                origin=origin,
                truncate=truncate,
            )
        )

    def clear_faults(self) -> None:
        """Remove every pending fault."""
        self._monitor.faults.clear()

    @property
    def faults(self) -> list[Fault]:
        """Copies of the faults still pending."""
        return self._monitor.faults.pending()

    @property
    def latency(self) -> float:
        """Seconds added to every API-origin request (settable at runtime)."""
        return self._monitor.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("latency must not be negative")
        self._monitor.latency = float(seconds)

    def revoke_tokens(self) -> None:
        """Make every token issued so far answer 401 (like deleting the client)."""
        self.tokens.revoke_all()

    # ------------------------------------------------------------- observation
    @property
    def token_exchanges(self) -> int:
        """Number of ``POST /oauth/token`` requests received (any outcome)."""
        return self._monitor.token_exchanges

    @property
    def requests(self) -> list[RequestRecord]:
        """Snapshot of every request received since the last reset."""
        return self._monitor.records

    @property
    def accepted_connections(self) -> dict[str, int]:
        """TCP connections each origin accepted since start, e.g. ``{"api": 1, "download": 0}``.

        With keep-alive, a client that reuses its connections adds far fewer
        connections than requests.
        """
        return {server.name.rsplit("-", 1)[1]: server.accepted for server in self._servers}

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token issued since the last reset."""
        return self.tokens.issued
