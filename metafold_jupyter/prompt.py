"""The login prompt: an ipywidgets form in notebooks, getpass in terminals.

The secret typed into the form is read once, then the password field is cleared
at once, so neither the kernel-side widget nor the frontend's widget state (which a
saved notebook may keep) holds it afterwards.
"""

from __future__ import annotations

import html
import logging
import sys
from collections.abc import Callable
from typing import Any

from .errors import MetafoldError

_LOGGER = logging.getLogger(__name__)


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


class LoginForm:
    """Client ID, client secret, a Log in button (Enter submits too) and a status line.

    Args:
        login: called with ``(client_id, client_secret)``; returns the new session or raises.
        describe: turns the new session into the status line shown on success.
    """

    def __init__(self, login: Callable[[str, str], Any], describe: Callable[[Any], str] = str) -> None:
        import ipywidgets as w

        self._login = login
        self._describe = describe
        self.client_id = w.Text(description="Client ID", placeholder="METAFOLD_CLIENT_ID",
                                continuous_update=False, layout=w.Layout(width="420px"))
        self.client_secret = w.Password(description="Secret", placeholder="METAFOLD_CLIENT_SECRET",
                                        continuous_update=False, layout=w.Layout(width="420px"))
        self.button = w.Button(description="Log in", button_style="primary", icon="sign-in")
        self.status = w.HTML(value=_note("Enter the client credentials from your Metafold account page."))
        self.widget = w.VBox(
            [w.HTML("<b>Metafold login</b>"), self.client_id, self.client_secret, self.button, self.status]
        )
        self.widget.add_class("metafold-login")
        self.session: Any = None
        self._busy = False
        self.button.on_click(lambda _button: self.submit())
        # continuous_update=False: the value arrives on Enter (or when the field loses focus)
        self.client_secret.observe(self._on_secret, names="value")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _on_secret(self, change: dict[str, Any]) -> None:
        if change.get("new") and self.client_id.value.strip():
            self.submit()

    def submit(self) -> None:
        """Read the fields, clear the secret at once, and try to log in."""
        secret = self.client_secret.value
        self.client_secret.value = ""  # never keep it in widget state, whatever happens next
        if self._busy:
            return
        client_id = self.client_id.value.strip()
        if not client_id or not secret:
            self.status.value = _note("Both the client ID and the secret are needed.", error=True)
            return
        self._busy = True
        self._set_disabled(True)
        self.status.value = _note("Logging in…")
        try:
            self.session = self._login(client_id, secret.strip())
        except MetafoldError as exc:
            hint = f" — {exc.hint}" if exc.hint else ""
            self.status.value = _note(f"{exc}{hint}", error=True)
            self._set_disabled(False)  # let the user try again
        else:
            self.status.value = _note(self._describe(self.session), ok=True)
            self.client_secret.placeholder = ""
        finally:
            del secret
            self._busy = False

    def _set_disabled(self, disabled: bool) -> None:
        for widget in (self.client_id, self.client_secret, self.button):
            widget.disabled = disabled


def _note(text: str, *, error: bool = False, ok: bool = False) -> str:
    color = "#b00020" if error else "#1b5e20" if ok else "#555"
    mark = "✗ " if error else "✓ " if ok else ""
    return f"<span class='metafold-login-status' style='color:{color}'>{mark}{html.escape(text)}</span>"
