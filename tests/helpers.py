"""Small helpers shared by tests (import as ``from helpers import ...``)."""

from __future__ import annotations

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
