"""No client secret or token in exceptions, reprs or logs captured at DEBUG."""

from __future__ import annotations

import logging

import pytest
from helpers import leaks, login_to, secrets_of, shown

import metafold_jupyter as mf
from metafold_jupyter.errors import MetafoldError


def attempts_into(texts: list[str]):
    """A runner that calls a failing step and adds every way its MetafoldError is shown to ``texts``."""

    def attempt(fn):
        try:
            fn()
        except MetafoldError as exc:
            texts.extend(shown(exc))

    return attempt


@pytest.fixture
def debug_logs(caplog):
    for name in ("", "urllib3", "metafold_jupyter", "requests"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def test_no_secret_or_token_in_errors_or_debug_logs(sandbox, debug_logs):
    texts: list[str] = []
    attempt = attempts_into(texts)

    attempt(lambda: mf.login(sandbox.client_id, sandbox.client_secret + "x",
                             auth_domain=sandbox.url, base_url=sandbox.url))
    s = login_to(sandbox, timeout=(1, 0.5))
    texts += [repr(s), str(s.status()), s._repr_html_(), s.describe(), repr(s._credentials), repr(s.settings)]
    sandbox.revoke_tokens()
    s.get_json("/user/usage")  # 401, refresh, replay
    sandbox.inject("/user/usage", status=503, count=2, retry_after=0)
    s.get_json("/user/usage")
    sandbox.inject("/user/quota", status=401, count=2)
    attempt(lambda: s.get_json("/user/quota"))
    sandbox.inject("/projects", method="POST", status=500, count=1)
    attempt(lambda: s.request("POST", "/projects", json={"name": "x"}))
    sandbox.inject("/user/license", delay=30, count=3)
    attempt(lambda: s.get_json("/user/license"))
    attempt(lambda: s.get_json("/projects/999999"))
    attempt(lambda: s.request("GET", "http://127.0.0.1:9/"))
    sandbox.inject("/oauth/token", status=503, count=20)
    s._credentials.invalidate(s._credentials.token())
    attempt(lambda: s.get_json("/user/usage"))
    texts += [r.getMessage() for r in debug_logs.records]
    texts.append(debug_logs.text)
    assert len(debug_logs.records) > 5  # the logs really were captured
    assert len([t for t in texts if "failed" in t or "refused" in t]) >= 5
    assert any("Secret('********')" in t for t in texts)  # frames holding the secret were rendered, wrapped
    assert leaks(texts, secrets_of(sandbox)) == []


def test_no_secret_in_tracebacks_with_locals_from_every_entry_point(sandbox, tmp_path, monkeypatch):
    """Each way credentials come in (arguments, environment, .env, the prompt), each failing."""
    from metafold_jupyter import kernel_session

    texts: list[str] = []
    attempt = attempts_into(texts)

    wrong = sandbox.client_secret + "-wrong"
    attempt(lambda: mf.login(sandbox.client_id, wrong, auth_domain=sandbox.url, base_url=sandbox.url))
    attempt(lambda: kernel_session.login_with_prompted(sandbox.client_id, wrong, auth_domain=sandbox.url,
                                                       base_url=sandbox.url))
    env = tmp_path / "creds.env"
    env.write_text(f"METAFOLD_CLIENT_ID={sandbox.client_id}\nMETAFOLD_CLIENT_SECRET={wrong}\n"
                   f"METAFOLD_AUTH_DOMAIN={sandbox.url}\nMETAFOLD_BASE_URL={sandbox.url}\n")
    env.chmod(0o600)
    attempt(lambda: mf.login(env_file=env))
    monkeypatch.setenv("METAFOLD_CLIENT_ID", sandbox.client_id)
    monkeypatch.setenv("METAFOLD_CLIENT_SECRET", wrong)
    attempt(lambda: mf.login(auth_domain=sandbox.url, base_url=sandbox.url))
    attempt(lambda: mf.login(auth_domain="http://auth.example.invalid"))  # refused before sending
    monkeypatch.setattr("builtins.input", lambda prompt="": sandbox.client_id)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": wrong)
    attempt(lambda: mf.login(prompt=True, auth_domain=sandbox.url, base_url=sandbox.url))
    assert len(texts) == 6 * 4
    assert leaks(texts, [wrong, *secrets_of(sandbox)]) == []
