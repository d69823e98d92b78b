"""Support for the browser test: find Chromium, run a private JupyterLab server.

The server runs as a subprocess with its own config, data, runtime, IPython and
lab settings directories (all under a temporary directory), so the user's own
Jupyter configuration never leaks in, and it is always torn down: a graceful
``/api/shutdown`` first (which also stops its kernels), then SIGTERM, then SIGKILL
for the server and for any process it started that is still alive.
"""

from __future__ import annotations

import contextlib
import json
import os
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


class JupyterLab:
    """A JupyterLab server on 127.0.0.1, isolated in ``base`` and serving ``root_dir``.

    Args:
        base: a fresh directory for Jupyter's config/data/runtime/IPython/settings dirs and the log.
        root_dir: the directory the server serves (and the kernels' working directory).
        lab_settings: ``{plugin id: settings}`` written as lab user settings before start.
    """

    def __init__(self, base: Path, root_dir: Path, lab_settings: dict[str, dict] | None = None) -> None:
        self.base = base
        self.root_dir = root_dir
        self.port = free_port()
        self.token = secrets.token_hex(24)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / "jupyterlab.log"
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
            sys.executable, "-m", "jupyter", "lab",
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
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            cmd, cwd=self.root_dir, env=env, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                self.api("GET", "/api/status", timeout=2)
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.25)
        raise RuntimeError(f"JupyterLab did not answer /api/status within {timeout:.0f} s:\n{self.log_tail()}")

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

    def __enter__(self) -> JupyterLab:
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

    def lab_url(self, notebook: str, workspace: str | None = None) -> str:
        """The page that opens ``notebook``, in a fresh workspace if one is named."""
        prefix = f"/lab/workspaces/{workspace}" if workspace else "/lab"
        return f"{self.url}{prefix}/tree/{notebook}?reset&token={self.token}"

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no JupyterLab log)"
        text = text.replace(self.token, "<token>")
        return "\n".join(text.splitlines()[-lines:])
