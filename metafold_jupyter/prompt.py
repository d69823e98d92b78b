"""The login prompt: an ipywidgets form in notebooks, getpass in terminals.

The secret typed into the form is read once, then the password field is cleared
at once, so neither the kernel-side widget nor the frontend's widget state (which a
saved notebook may keep) holds it afterwards.

A login happens only when the user asks for it — the Log in button, or Enter in
either field — and once. The frontend syncs the secret when the field loses
focus or on Enter, which may reach the kernel before or after the click or Enter
itself (ipykernel may even handle widget messages on another thread), so a
request waits briefly for the secret instead of failing, and a lock keeps two
requests from logging in twice.
"""

from __future__ import annotations

import html
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from .config import Secret
from .errors import MetafoldError

_LOGGER = logging.getLogger(__name__)

SECRET_GRACE = 1.0  # seconds a Log in request waits for the secret to arrive


def has_widget_frontend() -> bool:
    """True in a Jupyter kernel with ipywidgets (terminal IPython has neither)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if getattr(shell, "kernel", None) is None:
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def _secret_field(**kwargs: Any) -> Any:
    """A Password widget whose value is not echoed back to other frontends."""
    import ipywidgets as w
    from traitlets import Unicode

    class SecretField(w.Password):
        value = Unicode(help="The secret (cleared as soon as it is read)").tag(sync=True, echo_update=False)

    return SecretField(**kwargs)


class LoginForm:
    """Client ID, client secret, a Log in button (Enter submits too) and a status line.

    Args:
        login: called with ``(client_id, client_secret)`` (the secret wrapped in ``Secret``);
            returns the new session or raises.
        describe: turns the new session into the status line shown on success.
    """

    def __init__(self, login: Callable[[str, Secret], Any], describe: Callable[[Any], str] = str) -> None:
        import ipywidgets as w

        self._login = login
        self._describe = describe
        self.client_id = w.Text(description="Client ID", placeholder="METAFOLD_CLIENT_ID",
                                continuous_update=False, layout=w.Layout(width="420px"))
        self.client_secret = _secret_field(description="Secret", placeholder="METAFOLD_CLIENT_SECRET",
                                           continuous_update=False, layout=w.Layout(width="420px"))
        self.button = w.Button(description="Log in", button_style="primary", icon="sign-in")
        self.status = w.HTML(value=_note("Enter the client credentials from your Metafold account page."))
        self.widget = w.VBox(
            [w.HTML("<b>Metafold login</b>"), self.client_id, self.client_secret, self.button, self.status]
        )
        self.widget.add_class("metafold-login")
        self.session: Any = None
        self._lock = threading.Lock()
        self._requested = False  # the user asked to log in (click or Enter)
        self._done = False
        self._grace: threading.Timer | None = None
        self.button.on_click(lambda _button: self.request())
        for field in (self.client_id, self.client_secret):
            field.on_msg(self._on_field_msg)  # Enter sends {"event": "submit"}
        self.client_secret.observe(lambda _change: self._attempt(), names="value")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _on_field_msg(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        if content.get("event") == "submit":
            self.request()

    def request(self) -> None:
        """The user asked to log in: do it now, or as soon as the secret arrives."""
        with self._lock:
            if self._done:
                return
            self._requested = True
        if not self._attempt():
            self._wait_for_secret()

    def _wait_for_secret(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
        self._grace = threading.Timer(SECRET_GRACE, self._give_up)
        self._grace.daemon = True
        self._grace.start()

    def _give_up(self) -> None:
        with self._lock:
            if not self._requested or self._done:
                return
            self._requested = False
        self.status.value = _note("Both the client ID and the secret are needed.", error=True)

    def _attempt(self) -> bool:
        """Log in if asked to and both fields are filled; True if a login was tried."""
        if not self._lock.acquire(blocking=False):
            return True  # a login is under way; it will report
        try:
            if not self._requested or self._done:
                return False
            secret = Secret.of(self.client_secret.value.strip())  # wrapped: tracebacks show locals
            client_id = self.client_id.value.strip()
            if not (secret and client_id):
                return False
            self.client_secret.value = ""  # never keep it in widget state, whatever happens next
            self._requested = False
            self._set_disabled(True)
            self.status.value = _note("Logging in…")
            try:
                self.session = self._login(client_id, secret)
            except MetafoldError as exc:
                self.status.value = _note(str(exc), error=True)  # str() ends with the hint
                self._set_disabled(False)  # let the user try again
            else:
                self._done = True
                self.status.value = _note(self._describe(self.session), ok=True)
            finally:
                del secret
            return True
        finally:
            self._lock.release()

    def _set_disabled(self, disabled: bool) -> None:
        for widget in (self.client_id, self.client_secret, self.button):
            widget.disabled = disabled


def _note(text: str, *, error: bool = False, ok: bool = False) -> str:
    color = "#b00020" if error else "#1b5e20" if ok else "#555"
    mark = "✗ " if error else "✓ " if ok else ""
    return f"<span class='metafold-login-status' style='color:{color}'>{mark}{html.escape(text)}</span>"
