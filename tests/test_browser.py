"""The login form in a real JupyterLab and Notebook 7, driven by headless Chromium (Playwright).

A user opens a notebook, runs ``%metafold_login --prompt``, types the sandbox's
client ID and secret into the ipywidgets form, logs in, lists projects, and saves
the notebook with its widget state. Nothing secret may end up in the saved file,
and the password field must be empty once the form has been submitted.

The form is submitted both ways a user would: clicking "Log in" (the secret's sync
on blur and the click may reach the kernel in either order, even on two threads),
and pressing Enter in the secret field.
Keys are typed at a human pace, so the kernel has seen the client ID long before
the secret is submitted, as it has when a person types.

Each front-end's server (tests/browser_support.py) runs with private config/data/
runtime/IPython/settings dirs, saves widget state (off by default), and is shut
down with its kernels once its tests are done. The page may load nothing from
beyond loopback (the widget manager comes from the server, not a CDN).
Artefacts: tests/artifacts/browser-login.png (JupyterLab, Enter),
browser-login-button.png, browser-login-nb7.png, browser-login-nb7-button.png, and
browser-failure*.png when something fails.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from browser_support import (
    ARTIFACTS,
    CHROMIUM_ARGS,
    FRONTENDS,
    OUTSIDE_URL,
    JupyterServer,
    OfflineGuard,
    free_port,
    headless_chromium,
    is_loopback_url,
)
from helpers import leaks, secrets_of

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
LAB_SETTINGS = {  # JupyterLab's plugins, which Notebook 7 is built from, so both read them
    # off by default: without it the saved notebook holds no widget state and the leak check is hollow
    "@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True},
    # offline and quiet: no news, no update check, no autosave racing the explicit save
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension:plugin": {"autosave": False},
}
START_TIMEOUT = 120_000  # ms: the front-end's first page load and the kernel start
STEP_TIMEOUT = 60_000  # ms: each cell, the login, the save
SETTLED_TIMEOUT = 5_000  # ms: for a state that should already hold
TYPING_DELAY = 30  # ms between keys


class LoginStatusWrong(AssertionError):
    """The kernel is logged in, but the form's status line does not say so."""


@pytest.fixture(scope="module")
def chromium_browser():
    """Headless Chromium (Debian's, through Playwright), shared by the tests of this module."""
    # find_chromium() reads METAFOLD_TEST_CHROMIUM before the autouse fixture strips METAFOLD_*
    # (module-scoped fixtures run first)
    with headless_chromium(CHROMIUM_ARGS) as browser:
        yield browser


@pytest.fixture(scope="module", params=FRONTENDS, ids=lambda frontend: frontend.id)
def server(request, tmp_path_factory):
    """A private server of each front-end in turn (stopped, with its kernels, after its tests)."""
    frontend = request.param
    base = tmp_path_factory.mktemp(f"jupyter-{frontend.id}")
    root = base / "notebooks"
    root.mkdir()
    for folder in (root, *root.parents):
        assert not (folder / ".env").exists(), f"{folder / '.env'} would give the kernel credentials"
    with JupyterServer(frontend, base / "jupyter", root, lab_settings=LAB_SETTINGS) as running:
        yield running


def write_notebook(path: Path, sb) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext metafold_jupyter"),
        nbformat.v4.new_code_cell(
            f"%metafold_login --prompt --auth-domain {sb.url} --base-url {sb.url} --project {sb.default_project_id}"
        ),
        nbformat.v4.new_code_cell("%metafold projects"),
    ]
    nbformat.write(nb, str(path))


def run_cell(page, cell, expect) -> None:
    """Click into the cell's editor, run it with Shift+Enter, and wait until it has finished.

    The prompt turns to "[*]:" as soon as the front-end sends the cell to the kernel; a prompt
    still "[ ]:" means nothing was sent (the frontend was not ready for the key), so
    pressing again cannot run the cell twice.
    """
    prompt = cell.locator(".jp-InputArea-prompt")
    for attempt in range(3):
        cell.locator(".jp-InputArea-editor .cm-content").click()
        page.keyboard.press("Shift+Enter")
        try:
            expect(prompt).not_to_have_text(re.compile(r"^\[ \]:$"), timeout=10_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
    # "[*]:" while queued or running, "[n]:" once done
    expect(prompt).to_have_text(re.compile(r"^\[\d+\]:$"), timeout=STEP_TIMEOUT)


def wait_for_kernel(page, server, name: str, expect) -> None:
    """Wait until the notebook's kernel is idle and this page is connected to it."""

    def connected():
        sessions = [s for s in server.api("GET", "/api/sessions") if s.get("path", "").endswith(name)]
        kernel = sessions[0]["kernel"] if sessions else {}
        return kernel.get("execution_state") == "idle" and kernel.get("connections", 0) >= 1

    wait_until(connected, START_TIMEOUT / 1000, f"the kernel of {name} to be idle and connected")
    server.frontend.check_page(page)
    server.frontend.expect_kernel_idle(page, expect, START_TIMEOUT)


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def saved_notebook(path: Path) -> tuple[str, dict] | None:
    """The saved file once it holds the projects table and the widget state, else None."""
    try:
        text = path.read_text()
        nb = json.loads(text)
    except (OSError, ValueError):
        return None
    outputs = json.dumps(nb["cells"][2].get("outputs", []))
    if "Sandbox playground" in outputs and nb.get("metadata", {}).get("widgets"):
        return text, nb
    return None


@pytest.mark.parametrize("submit", ["button", "enter"])
def test_login_form_in_frontend(chromium_browser, sandbox, server, submit):
    from playwright.sync_api import expect

    frontend = server.frontend
    name = f"browser-login-{submit}.ipynb"
    notebook = server.root_dir / name
    write_notebook(notebook, sandbox)
    suffix = frontend.suffix + ("" if submit == "enter" else f"-{submit}")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"browser-failure{suffix}.png").unlink(missing_ok=True)  # a stale one would mislead
    console: list[str] = []

    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    offline = OfflineGuard(context)
    try:
        page = context.new_page()
        page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}") if msg.type == "error" else None)
        page.set_default_timeout(STEP_TIMEOUT)
        try:
            page.goto(server.notebook_url(name, workspace=f"login-{submit}"), timeout=START_TIMEOUT)
            panel = page.locator(".jp-NotebookPanel:visible")
            cells = panel.locator(".jp-Notebook .jp-Cell")
            expect(cells).to_have_count(3, timeout=START_TIMEOUT)
            wait_for_kernel(page, server, name, expect)

            run_cell(page, cells.nth(0), expect)
            run_cell(page, cells.nth(1), expect)

            form = cells.nth(1).locator(".metafold-login")
            client_id = form.locator("input[type='text']")
            secret = form.locator("input[type='password']")
            button = form.get_by_role("button", name=re.compile("Log in"))
            status = form.locator(".metafold-login-status")
            expect(client_id).to_be_editable()
            expect(secret).to_be_editable()
            expect(button).to_be_enabled()
            expect(status).to_contain_text("Enter the client credentials")

            # real typing, as a user would
            client_id.click()
            page.keyboard.type(sandbox.client_id, delay=TYPING_DELAY)
            secret.click()
            page.keyboard.type(sandbox.client_secret, delay=TYPING_DELAY)
            if submit == "button":
                button.click()
            else:
                page.keyboard.press("Enter")

            # the login has been handled (it must be done before the next cell needs the session)
            expect(status).to_have_text(re.compile(r"Logged in|✗"), timeout=STEP_TIMEOUT)
            expect(secret).to_have_value("")  # cleared in the frontend too, not only in the kernel

            run_cell(page, cells.nth(2), expect)
            table = cells.nth(2).locator(".jp-OutputArea-output table.dataframe")
            expect(table).to_contain_text("Sandbox playground", timeout=STEP_TIMEOUT)
            # every message of the login has arrived by now: the form must say it worked, and how
            # (checked to the end, so the saved notebook is still examined when this fails)
            expect(secret).to_have_value("", timeout=SETTLED_TIMEOUT)
            status_problem = None
            try:
                expect(status).to_have_text(
                    re.compile(r"^✓ Logged in .*credentials from prompt"), timeout=SETTLED_TIMEOUT
                )
            except AssertionError:
                status_problem = (
                    f"the projects table shows the kernel is logged in, but the form's status line says "
                    f"{status.inner_text()!r}"
                )

            screenshot = ARTIFACTS / f"browser-login{suffix}.png"
            page.screenshot(path=str(screenshot), full_page=True)
            print(f"screenshot: {screenshot}")

            # nothing secret in the page itself
            assert leaks([page.content()], secrets_of(sandbox)) == [], "a secret or token is in the page"

            cells.nth(2).locator(".jp-InputArea-prompt").click()  # command mode, focus in the notebook
            page.keyboard.press("Control+s")
            text, nb = wait_until(lambda: saved_notebook(notebook), STEP_TIMEOUT / 1000, f"{name} to be saved")
        except Exception as exc:
            failure = ARTIFACTS / f"browser-failure{suffix}.png"
            try:
                page.screenshot(path=str(failure), full_page=True)
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
            raise AssertionError(
                f"browser test ({frontend.title}, {submit}) failed: {exc}\nscreenshot: {failure}\n"
                f"requests beyond loopback:\n{offline.report()}\n"
                "browser console errors:\n" + "\n".join(console[-20:])
                + f"\n{frontend.title} log:\n{server.log_tail()}"
            ) from exc
    finally:
        context.close()
        server.shutdown_kernels(name)

    offline.check()  # the widget manager and everything else came from the server, not a CDN

    # the widget state was saved, so the check below looks at what a shared notebook would hold
    state = nb["metadata"]["widgets"][WIDGET_STATE]["state"]
    models = {entry["model_name"] for entry in state.values()}
    assert {"PasswordModel", "TextModel", "ButtonModel"} <= models, models
    password = [entry["state"] for entry in state.values() if entry["model_name"] == "PasswordModel"]
    assert password and all(not s.get("value") for s in password), password
    assert sandbox.issued_tokens, "the login form did not obtain a token from the sandbox"
    assert leaks([text], secrets_of(sandbox)) == [], "a secret or token is in the saved notebook"
    if status_problem:
        raise LoginStatusWrong(f"{status_problem} (screenshot: {screenshot})")


def test_offline_guard_refuses_requests_beyond_loopback(chromium_browser, sandbox):
    """The guard the front-end tests rely on: it lets loopback through and refuses the rest."""
    for url, local in [
        ("http://127.0.0.1:8888/lab", True), ("http://127.0.0.2/x", True), ("ws://[::1]:1/api", True),
        ("data:text/css,a{}", True), ("blob:http://127.0.0.1:1/uuid", True),
        ("https://cdn.jsdelivr.net/npm/plotly.js", False), ("http://localhost:8888/", False),
        ("http://127.0.0.1@cdn.example.invalid/", False), ("http://127.0.0.1.example.invalid/", False),
        ("ftp://127.0.0.1/x", False),
    ]:
        assert is_loopback_url(url) is local, url
        assert (OUTSIDE_URL.match(url) is None) is local, f"the driver's pattern disagrees on {url}"

    cdn = "https://cdn.example.invalid/widgets.js"
    named = f"http://localhost:{free_port()}/x.png"
    socket = "ws://ws.example.invalid/kernel"
    other_host = f"http://127.0.0.2:{free_port()}/x.png"  # loopback, nothing listening
    here = f"{sandbox.url}/guard-probe.png"
    context = chromium_browser.new_context()
    guard = OfflineGuard(context)
    failed: dict[str, str] = {}
    answered: set[str] = set()
    try:
        page = context.new_page()
        page.on("requestfailed", lambda request: failed.__setitem__(request.url, request.failure or ""))
        page.on("requestfinished", lambda request: answered.add(request.url))
        page.goto(f"{sandbox.url}/", wait_until="commit")
        page.set_content(
            f'<script src="{cdn}"></script><img src="{named}"><img src="{other_host}"><img src="{here}">'
            f'<script>new WebSocket("{socket}")</script>'
        )
        deadline = time.monotonic() + STEP_TIMEOUT / 1000
        while not ({cdn, named, other_host} <= failed.keys() and here in answered and socket in guard.outside):
            assert time.monotonic() < deadline, f"requests still open: failed {failed}, answered {answered}"
            page.wait_for_timeout(100)  # lets Playwright deliver the events
    finally:
        context.close()
    assert sorted(guard.outside) == sorted([cdn, named, socket]), guard.outside
    assert "BLOCKED_BY_CLIENT" in failed[cdn] and "BLOCKED_BY_CLIENT" in failed[named], failed
    assert "BLOCKED_BY_CLIENT" not in failed[other_host], failed  # refused by the OS, not by the guard
    with pytest.raises(AssertionError, match=r"3 request\(s\) beyond loopback"):
        guard.check()
