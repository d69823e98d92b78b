"""Support for the browser tests: find Chromium, run a private Jupyter server, keep the page offline.

The tests drive two front-ends (``FRONTENDS``): JupyterLab and Notebook 7. Both are
built from JupyterLab's components, so cells, prompts, editors and outputs carry the
same DOM classes; a ``Frontend`` holds what differs (the ``jupyter`` subcommand, the
notebook's address, where the kernel's state is shown, the artefacts' names).

The server (``JupyterServer``) runs as a subprocess with its own config, data,
runtime, IPython and lab settings directories (all under a temporary directory), so
the user's own Jupyter configuration never leaks in, and it is always torn down: a
graceful ``/api/shutdown`` first (which also stops its kernels), then SIGTERM, then
SIGKILL for the server and for any process it started that is still alive.

``OfflineGuard`` refuses (and records) every request a page makes to anything but a
loopback address, so a widget manager or renderer that reaches for a CDN fails the test.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

#: Flags that let Chromium run headless as root on a machine with no network but loopback.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def find_chromium() -> str | None:
    """``$METAFOLD_TEST_CHROMIUM`` (set by tests/run.py), else chromium on PATH or /usr/bin."""
    candidate = os.environ.get("METAFOLD_TEST_CHROMIUM")
    if candidate:
        return candidate if os.access(candidate, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


@contextlib.contextmanager
def headless_chromium(args: list[str]) -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright; the test is skipped (one line) without either."""
    import pytest

    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - the test extras install it
        pytest.skip(f"playwright (python) is not installed: {exc}")
    chromium = find_chromium()
    if chromium is None:
        configured = os.environ.get("METAFOLD_TEST_CHROMIUM")
        where = f"METAFOLD_TEST_CHROMIUM={configured!r} is not executable" if configured else "none on PATH"
        pytest.skip(f"no Chromium ({where}): install Debian's chromium; tests/run.py does and sets the variable")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=args)
        try:
            yield browser
        finally:
            browser.close()


# -- the front-ends ----------------------------------------------------------------------------


class Frontend:
    """One web front-end the browser tests drive; the subclasses say what differs.

    Attributes:
        id: the test ID, and (but for JupyterLab, whose artefacts kept their first names) the
            artefacts' suffix.
        title: the name people know it by, for messages.
        subcommand: ``jupyter <subcommand>`` starts its server.
        app_name: what its pages call themselves (``appName`` in their ``#jupyter-config-data``).
    """

    id = ""
    title = ""
    subcommand = ""
    app_name = ""

    @property
    def suffix(self) -> str:
        """What artefact names carry for this front-end: ``browser-login{suffix}.png``."""
        return f"-{self.id}"

    def notebook_path(self, notebook: str, workspace: str | None) -> str:
        """The page (path and query, without the token) that opens ``notebook``."""
        raise NotImplementedError

    def expect_kernel_idle(self, page: Any, expect: Any, timeout: float) -> None:
        """Wait until the page shows the notebook's kernel as idle (``timeout`` in ms)."""
        raise NotImplementedError

    def check_page(self, page: Any) -> None:
        """Fail unless the page is this front-end's (either server serves both: the address decides)."""
        config = json.loads(page.locator("#jupyter-config-data").text_content() or "{}")
        assert config.get("appName") == self.app_name, f"the page is {config.get('appName')!r}, not {self.title}"


class _JupyterLab(Frontend):
    id = "lab"
    title = "JupyterLab"
    subcommand = "lab"
    app_name = "JupyterLab"

    @property
    def suffix(self) -> str:
        return ""

    def notebook_path(self, notebook: str, workspace: str | None) -> str:
        # a workspace of its own, so no tab of an earlier test is restored beside this notebook
        prefix = f"/lab/workspaces/{workspace}" if workspace else "/lab"
        return f"{prefix}/tree/{notebook}?reset"

    def expect_kernel_idle(self, page: Any, expect: Any, timeout: float) -> None:
        expect(page.locator("#jp-main-statusbar")).to_contain_text(
            re.compile(r"Python 3 \(ipykernel\) \| Idle"), timeout=timeout
        )


class _Notebook7(Frontend):
    id = "nb7"
    title = "Notebook 7"
    subcommand = "notebook"
    app_name = "Jupyter Notebook"

    def notebook_path(self, notebook: str, workspace: str | None) -> str:
        return f"/notebooks/{notebook}"  # one document per page: no workspace to keep apart

    def expect_kernel_idle(self, page: Any, expect: Any, timeout: float) -> None:
        # no status bar: the notebook's toolbar names the kernel and shows its state as a circle
        toolbar = page.locator(".jp-NotebookPanel-toolbar")
        expect(toolbar.locator(".jp-KernelName")).to_contain_text("Python 3 (ipykernel)", timeout=timeout)
        expect(toolbar.locator(".jp-Notebook-ExecutionIndicator")).to_have_attribute(
            "data-status", "idle", timeout=timeout
        )


JUPYTERLAB = _JupyterLab()
NOTEBOOK7 = _Notebook7()
#: The front-ends every browser test runs in (parametrise a module-scoped fixture over them).
FRONTENDS = [JUPYTERLAB, NOTEBOOK7]


# -- offline -----------------------------------------------------------------------------------

#: A URL the page may load: loopback by address (127.0.0.0/8, [::1]; names are not resolved, so
#: not even ``localhost``), or one that never leaves the browser (data:, blob:, about:).
_LOCAL_URL = r"(?:(?:https?|wss?)://(?:127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?(?:[/?#]|$)|data:|blob:|about:)"
#: Every other URL. A regular expression, so Playwright's driver matches it and loopback requests
#: never wait for Python (the sync API runs route handlers only while the test calls Playwright).
OUTSIDE_URL = re.compile(f"^(?!{_LOCAL_URL})")


def is_loopback_url(url: str) -> bool:
    """True for a URL on a loopback address (or one that never leaves the browser)."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    try:
        return parts.scheme in ("http", "https", "ws", "wss") and ipaddress.ip_address(parts.hostname or "").is_loopback
    except ValueError:
        return False


class OfflineGuard:
    """Refuses and records every request of a browser context that would leave loopback.

    Install it on a fresh context, before its first page: HTTP(S) requests elsewhere are aborted
    before they connect; WebSockets elsewhere (which Playwright routes only by replacing the
    page's ``WebSocket``) are recorded. ``outside`` lists them all; ``check()`` fails on any.
    """

    def __init__(self, context: Any) -> None:
        self.outside: list[str] = []
        context.route(OUTSIDE_URL, self._refuse)
        context.on("page", lambda page: page.on("websocket", self._websocket))

    def _refuse(self, route: Any) -> None:
        url = route.request.url
        if is_loopback_url(url):  # the driver's pattern and this check disagree: let it through
            route.fallback()
            return
        self.outside.append(url)
        route.abort("blockedbyclient")

    def _websocket(self, websocket: Any) -> None:
        if not is_loopback_url(websocket.url):
            self.outside.append(websocket.url)

    def report(self) -> str:
        """The refused requests, one a line (for a failure message)."""
        return "\n".join(self.outside[:20]) or "(none)"

    def check(self) -> None:
        """Fail when the page asked for anything beyond loopback."""
        assert not self.outside, f"the page made {len(self.outside)} request(s) beyond loopback:\n{self.report()}"


# -- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (Linux /proc), deepest last."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name (field 2) is in parentheses and may hold spaces
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class JupyterServer:
    """A Jupyter server for ``frontend`` on 127.0.0.1, isolated in ``base`` and serving ``root_dir``.

    Args:
        frontend: which front-end it serves (``jupyter lab`` or ``jupyter notebook``).
        base: a fresh directory for Jupyter's config/data/runtime/IPython/settings dirs and the log.
        root_dir: the directory the server serves (and the kernels' working directory).
        lab_settings: ``{plugin id: settings}`` written as lab user settings before start (Notebook 7
            reads the same settings directory: its plugins are JupyterLab's).
    """

    def __init__(
        self, frontend: Frontend, base: Path, root_dir: Path, lab_settings: dict[str, dict] | None = None
    ) -> None:
        self.frontend = frontend
        self.base = base
        self.root_dir = root_dir
        self.port = free_port()
        self.token = secrets.token_hex(24)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / f"jupyter-{frontend.subcommand}.log"
        self.lab_settings = lab_settings or {}
        self.process: subprocess.Popen | None = None
        self._log = None

    # -- lifecycle ---------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("METAFOLD_", "JUPYTER", "IPYTHON"))}
        dirs = {
            "JUPYTER_CONFIG_DIR": "config",
            "JUPYTER_DATA_DIR": "data",
            "JUPYTER_RUNTIME_DIR": "runtime",
            "IPYTHONDIR": "ipython",
            "JUPYTERLAB_SETTINGS_DIR": "lab-settings",
            "JUPYTERLAB_WORKSPACES_DIR": "lab-workspaces",
        }
        for name, sub in dirs.items():
            path = self.base / sub
            path.mkdir(parents=True, exist_ok=True)
            env[name] = str(path)
        env["XDG_CACHE_HOME"] = str(self.base / "cache")  # the kernel's token cache, if any
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("PYTHONSTARTUP", None)
        return env

    def _write_settings(self, settings_dir: Path) -> None:
        for plugin, values in self.lab_settings.items():
            package, _, name = plugin.rpartition(":")
            path = settings_dir / package / f"{name}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values, indent=2))

    def start(self, timeout: float = 120.0) -> None:
        env = self.env()
        self._write_settings(Path(env["JUPYTERLAB_SETTINGS_DIR"]))
        cmd = [
            sys.executable, "-m", "jupyter", self.frontend.subcommand,
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",
            "--ServerApp.disable_check_xsrf=False",
            "--ServerApp.terminals_enabled=False",
            # the JupyterLab extension runs inside Notebook 7's server too: no news, no update check,
            # no extension manager asking PyPI
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
        ]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            cmd, cwd=self.root_dir, env=env, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.frontend.title} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                self.api("GET", "/api/status", timeout=2)
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.25)
        raise RuntimeError(f"{self.frontend.title} did not answer /api/status within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Shut the server and its kernels down; kill whatever does not stop in time."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            descendants = _children(process.pid)  # the kernels, started in sessions of their own
            if process.poll() is None:
                try:
                    self.api("POST", "/api/shutdown", timeout=5)
                except (OSError, urllib.error.URLError):
                    pass
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait(timeout=10)
            deadline = time.monotonic() + 10
            for pid in descendants:
                while _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if _alive(pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def __enter__(self) -> JupyterServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers -----------------------------------------------------------------------

    def api(self, method: str, path: str, timeout: float = 10) -> object:
        request = urllib.request.Request(
            self.url + path, method=method, headers={"Authorization": f"token {self.token}"},
            data=b"" if method in ("POST", "PUT", "PATCH") else None,
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self, notebook: str) -> None:
        """End the sessions (and kernels) of a notebook; quietly, as a clean-up step."""
        try:
            for session in self.api("GET", "/api/sessions"):
                if session.get("path", "").endswith(notebook):
                    self.api("DELETE", f"/api/sessions/{session['id']}")
        except (OSError, urllib.error.URLError, ValueError):
            pass

    def notebook_url(self, notebook: str, workspace: str | None = None) -> str:
        """The page that opens ``notebook`` (in a fresh workspace if one is named and the front-end has them)."""
        path = self.frontend.notebook_path(notebook, workspace)
        return f"{self.url}{path}{'&' if '?' in path else '?'}token={self.token}"

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no {self.frontend.title} log)"
        text = text.replace(self.token, "<token>")
        return "\n".join(text.splitlines()[-lines:])
