"""The login form in a real JupyterLab, driven by headless Chromium (Playwright).

A user opens a notebook, runs ``%metafold_login --prompt``, types the sandbox's
client ID and secret into the ipywidgets form, logs in, lists projects, and saves
the notebook with its widget state. Nothing secret may end up in the saved file,
and the password field must be empty once the form has been submitted.

The form is submitted both ways a user would: clicking "Log in" (the secret's sync
on blur and the click may reach the kernel in either order, even on two threads),
and pressing Enter in the secret field.
Keys are typed at a human pace, so the kernel has seen the client ID long before
the secret is submitted, as it has when a person types.

JupyterLab (tests/browser_support.py) runs with private config/data/runtime/
IPython/settings dirs, saves widget state (off by default), and is shut down
with its kernels at the end of the module. Artefacts: tests/artifacts/
browser-login.png (Enter), browser-login-button.png, and browser-failure*.png
when something fails.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from browser_support import ARTIFACTS, CHROMIUM_ARGS, JupyterLab, headless_chromium
from helpers import leaks, secrets_of

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
LAB_SETTINGS = {
    # off by default: without it the saved notebook holds no widget state and the leak check is hollow
    "@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True},
    # offline and quiet: no news, no update check, no autosave racing the explicit save
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension:plugin": {"autosave": False},
}
START_TIMEOUT = 120_000  # ms: JupyterLab's first page load and the kernel start
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


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A private JupyterLab server (stopped, with its kernels, at the end of the module)."""
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "notebooks"
    root.mkdir()
    for folder in (root, *root.parents):
        assert not (folder / ".env").exists(), f"{folder / '.env'} would give the kernel credentials"
    with JupyterLab(base / "jupyter", root, lab_settings=LAB_SETTINGS) as server:
        yield server


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

    The prompt turns to "[*]:" as soon as JupyterLab sends the cell to the kernel; a prompt
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


def wait_for_kernel(page, lab, name: str, expect) -> None:
    """Wait until the notebook's kernel is idle and this page is connected to it."""

    def connected():
        sessions = [s for s in lab.api("GET", "/api/sessions") if s.get("path", "").endswith(name)]
        kernel = sessions[0]["kernel"] if sessions else {}
        return kernel.get("execution_state") == "idle" and kernel.get("connections", 0) >= 1

    wait_until(connected, START_TIMEOUT / 1000, f"the kernel of {name} to be idle and connected")
    expect(page.locator("#jp-main-statusbar")).to_contain_text(
        re.compile(r"Python 3 \(ipykernel\) \| Idle"), timeout=START_TIMEOUT
    )


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
def test_login_form_in_jupyterlab(chromium_browser, sandbox, lab, submit):
    from playwright.sync_api import expect

    name = f"browser-login-{submit}.ipynb"
    notebook = lab.root_dir / name
    write_notebook(notebook, sandbox)
    suffix = "" if submit == "enter" else f"-{submit}"
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"browser-failure{suffix}.png").unlink(missing_ok=True)  # a stale one would mislead
    console: list[str] = []

    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}") if msg.type == "error" else None)
        page.set_default_timeout(STEP_TIMEOUT)
        try:
            # a workspace of its own, so no tab of an earlier test is restored beside this notebook
            page.goto(lab.lab_url(name, workspace=f"login-{submit}"), timeout=START_TIMEOUT)
            panel = page.locator(".jp-NotebookPanel:visible")
            cells = panel.locator(".jp-Notebook .jp-Cell")
            expect(cells).to_have_count(3, timeout=START_TIMEOUT)
            wait_for_kernel(page, lab, name, expect)

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
                f"browser test ({submit}) failed: {exc}\nscreenshot: {failure}\n"
                "browser console errors:\n" + "\n".join(console[-20:]) + f"\nJupyterLab log:\n{lab.log_tail()}"
            ) from exc
    finally:
        context.close()
        lab.shutdown_kernels(name)

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
