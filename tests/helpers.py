"""Small helpers shared by tests (import as ``from helpers import ...``)."""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterable


def login_to(sb, **kwargs):
    """Log in to a sandbox with its public client credentials, as a user's .env would."""
    import metafold_jupyter as mf

    return mf.login(sb.client_id, sb.client_secret, auth_domain=sb.url, base_url=sb.url, **kwargs)


def token_of(sb) -> str:
    """A token from the sandbox's token endpoint, exchanged by hand."""
    import requests

    r = requests.post(sb.url + "/oauth/token", json={
        "grant_type": "client_credentials", "client_id": sb.client_id,
        "client_secret": sb.client_secret, "audience": sb.audience}, timeout=10)
    r.raise_for_status()
    return r.json()["access_token"]


class SandboxApi:
    """Raw requests against one sandbox with a fresh token: ``api.get("/projects")``, ``api.post(...)``.

    Paths are relative to the sandbox's URL; absolute URLs (status and download links) go as they are.
    """

    def __init__(self, sb):
        import requests

        self.sb = sb
        self.pid = sb.default_project_id
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token_of(sb)}"

    def __getattr__(self, method):
        return lambda path, **kw: self.http.request(
            method.upper(), path if path.startswith("http") else self.sb.url + path, timeout=10, **kw)


def secrets_of(sb) -> list[str]:
    """Everything that must never be shown: the client secret and every token issued."""
    return [sb.client_secret, *sb.issued_tokens]


def leaks(texts: Iterable[str], secrets: Iterable[str]) -> list[str]:
    """The secrets (shortened) that appear in any of the texts."""
    secrets = [s for s in secrets if s]
    found = []
    for text in texts:
        for secret in secrets:
            if secret in text:
                found.append(secret[:8] + "…")
    return found


def shown(exc: BaseException) -> list[str]:
    """Every way an exception is shown: str, repr, a plain traceback and one with local variables.

    The traceback starts at the first frame of the package: the test's own frame holds
    what the test knows (the secret, the tokens), as a user's cell would.
    """
    tb = exc.__traceback__
    while tb is not None and f"{os.sep}metafold_jupyter{os.sep}" not in tb.tb_frame.f_code.co_filename:
        tb = tb.tb_next
    assert tb is not None, "the exception did not come from the package"
    exc = exc.with_traceback(tb)
    return [
        str(exc),
        repr(exc),
        "".join(traceback.format_exception(exc)),
        "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format()),
    ]
