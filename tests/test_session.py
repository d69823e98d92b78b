"""The kernel-level session against the sandbox over loopback HTTP."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timezone

import pytest
import requests
from helpers import login_to, token_of

import metafold_jupyter as mf
from metafold_jupyter import kernel_session
from metafold_jupyter.errors import (
    APIError,
    AuthenticationError,
    ConfigError,
    NotLoggedInError,
)


def write_env(path, sb, **extra):
    values = {
        "METAFOLD_CLIENT_ID": sb.client_id,
        "METAFOLD_CLIENT_SECRET": sb.client_secret,
        "METAFOLD_AUTH_DOMAIN": sb.url,
        "METAFOLD_BASE_URL": sb.url,
        **extra,
    }
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)
    return path


def test_login_exchanges_once_and_status_shows_no_secret(sandbox):
    s = login_to(sandbox, project=sandbox.default_project_id)
    assert sandbox.token_exchanges == 1
    st = s.status()
    assert st["logged_in"] is True and st["project_id"] == sandbox.default_project_id
    assert st["sandbox"] is True  # recognised by the sandbox's public client ID
    assert st["base_url"] == sandbox.url + "/"
    assert isinstance(st["expires_at"], datetime) and st["expires_at"].tzinfo == timezone.utc
    assert 86000 < st["expires_in"] <= 86400
    assert st["client_id"] != sandbox.client_id and "…" in st["client_id"]
    shown = repr(s) + s._repr_html_() + str(st) + s.describe()
    assert sandbox.client_secret not in shown and sandbox.issued_tokens[0] not in shown
    assert mf.session() is s


def test_login_from_dotenv_leaves_environ_untouched(sandbox, tmp_path):
    env = write_env(tmp_path / ".env", sandbox)
    s = mf.login()
    assert s.status()["source"] == str(env)
    assert not any(k.startswith("METAFOLD_") for k in os.environ)
    assert s.get_json("/user/license")["product"]


def test_login_environment_wins_over_dotenv(sandbox, tmp_path, monkeypatch):
    write_env(tmp_path / ".env", sandbox, METAFOLD_CLIENT_SECRET="wrong-secret-in-dotenv")
    monkeypatch.setenv("METAFOLD_CLIENT_SECRET", sandbox.client_secret)
    # where the secret goes comes from where the secret comes from (the environment here)
    monkeypatch.setenv("METAFOLD_AUTH_DOMAIN", sandbox.url)
    monkeypatch.setenv("METAFOLD_BASE_URL", sandbox.url)
    assert mf.login().status()["source"] == f"{tmp_path / '.env'} + environment"


def test_login_wrong_secret_fails_after_exactly_one_exchange(sandbox):
    with pytest.raises(AuthenticationError) as info:
        mf.login(sandbox.client_id, "not-the-secret", auth_domain=sandbox.url, base_url=sandbox.url)
    err = info.value
    assert (err.status, err.error, err.error_description) == (401, "access_denied", "Unauthorized")
    assert sandbox.token_exchanges == 1
    assert "not-the-secret" not in str(err) + repr(err)
    with pytest.raises(NotLoggedInError):
        mf.session()


def test_login_wrong_audience_is_403(sandbox):
    with pytest.raises(AuthenticationError) as info:
        login_to(sandbox, audience="https://elsewhere.example.com")
    assert info.value.status == 403 and "not authorized" in info.value.error_description


def test_failed_login_keeps_the_previous_session(session, sandbox):
    with pytest.raises(AuthenticationError):
        mf.login(sandbox.client_id, "bad", auth_domain=sandbox.url, base_url=sandbox.url)
    assert mf.session() is session and session.get_json("/user/usage")


def test_login_replaces_and_closes_the_old_session(session, sandbox):
    new = login_to(sandbox)
    assert mf.session() is new and session.closed
    with pytest.raises(NotLoggedInError):
        session.get_json("/user/usage")


def test_logout_then_calls_raise_not_logged_in(session):
    mf.logout()
    with pytest.raises(NotLoggedInError):
        mf.session()
    with pytest.raises(NotLoggedInError):
        session.request("GET", "/user/usage")
    assert session.status()["logged_in"] is False


def test_login_without_credentials_names_what_is_missing(tmp_path):
    with pytest.raises(ConfigError) as info:
        mf.login(prompt=False)
    assert "METAFOLD_CLIENT_ID and METAFOLD_CLIENT_SECRET are not set" in str(info.value)
    assert f"no .env from {tmp_path}" in str(info.value)


def test_login_missing_env_file_is_an_error_not_a_fallback(sandbox, monkeypatch, tmp_path):
    monkeypatch.setenv("METAFOLD_CLIENT_ID", sandbox.client_id)
    monkeypatch.setenv("METAFOLD_CLIENT_SECRET", sandbox.client_secret)
    with pytest.raises(ConfigError, match="does not exist"):
        mf.login(env_file=tmp_path / "missing.env")
    assert sandbox.token_exchanges == 0


def test_login_sandbox_flag_when_nothing_else(monkeypatch):
    monkeypatch.setenv("METAFOLD_SANDBOX", "1")
    try:
        s = mf.login(prompt=False)
        st = s.status()
        assert st["sandbox"] is True and st["source"] == "sandbox" and st["project_id"]
        assert s.get_json("/projects")
    finally:
        kernel_session.reset_session()


def test_login_sandbox_true_starts_an_embedded_sandbox():
    try:
        s = mf.login(sandbox=True)
        assert s.status()["sandbox"] and "sandbox" in s.describe()
        again = mf.login(sandbox=True)  # the same embedded sandbox is reused
        assert again.base_url == s.base_url
    finally:
        kernel_session.reset_session()


def test_login_prompt_asks_with_getpass(sandbox, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda prompt="": sandbox.client_id)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": sandbox.client_secret)
    s = mf.login(prompt=True, auth_domain=sandbox.url, base_url=sandbox.url)
    assert s.status()["source"] == "prompt"


def test_login_prompt_refuses_insecure_url_before_asking(monkeypatch):
    asked = []
    monkeypatch.setattr("getpass.getpass", lambda prompt="": asked.append(prompt) or "x")
    monkeypatch.setattr("builtins.input", lambda prompt="": asked.append(prompt) or "x")
    with pytest.raises(ConfigError, match="plain http"):
        mf.login(prompt=True, auth_domain="http://auth.example.com")
    assert asked == []


@pytest.mark.parametrize("where", ["auth_domain", "base_url"])
def test_login_insecure_url_refused_with_no_request_sent(monkeypatch, where):
    sent = []
    real_send = requests.adapters.HTTPAdapter.send
    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send",
                        lambda self, req, **kw: sent.append(req.url) or real_send(self, req, **kw))
    kwargs = {where: "http://metafold.example.com"}
    with pytest.raises(ConfigError, match="plain http") as info:
        mf.login("cid", "super-secret-value", **kwargs)
    assert sent == [] and "super-secret-value" not in str(info.value)


def test_use_project_checks_and_sets_the_default(session, sandbox):
    with pytest.raises(APIError) as info:
        session.use_project("999999")
    assert info.value.status == 404 and session.project_id == sandbox.default_project_id
    other = [p["id"] for p in session.get_json("/projects") if p["id"] != sandbox.default_project_id][0]
    session.use_project(other)
    assert session.project_id == other and session.require_project() == other
    session.use_project(None)
    with pytest.raises(ConfigError, match="no default project"):
        session.require_project()


def test_access_token_is_valid_for_own_calls(session, sandbox):
    token = session.access_token()
    r = requests.get(sandbox.url + "/user/usage", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert r.status_code == 200


def test_access_token_mode_uses_the_token_without_exchange(sandbox, monkeypatch):
    token = token_of(sandbox)
    monkeypatch.setenv("METAFOLD_ACCESS_TOKEN", token)
    monkeypatch.setenv("METAFOLD_BASE_URL", sandbox.url)
    s = mf.login()
    assert sandbox.token_exchanges == 1  # only ours above
    assert s.status()["refreshable"] is False and s.status()["client_id"] == "(access token)"
    assert s.get_json("/user/quota")


def test_access_token_mode_expired_token_is_a_clear_error(monkeypatch):
    import base64
    import json

    claims = base64.urlsafe_b64encode(json.dumps({"exp": 1_000_000_000}).encode()).decode().rstrip("=")
    monkeypatch.setenv("METAFOLD_ACCESS_TOKEN", f"eyJhbGciOiJIUzI1NiJ9.{claims}.c2ln")
    with pytest.raises(AuthenticationError, match="expired .* cannot be refreshed") as info:
        mf.login()
    assert info.value.error == "expired_token" and "c2ln" not in str(info.value)


def test_token_cache_file_mode_and_contents(sandbox, tmp_path):
    s = login_to(sandbox, remember=True)
    files = list((tmp_path / "cache").rglob("token-*.json"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(files[0].parent.stat().st_mode) == 0o700
    content = files[0].read_text()
    assert sandbox.client_secret not in content and sandbox.client_id not in content
    import json

    data = json.loads(content)
    assert set(data) == {"access_token", "expires_at", "lifetime"}
    assert data["access_token"] == sandbox.issued_tokens[-1]
    s = login_to(sandbox, remember=True)  # as a restarted kernel would: no new exchange
    assert sandbox.token_exchanges == 1 and s.get_json("/user/usage")


def test_token_cache_discarded_on_401(sandbox, tmp_path):
    login_to(sandbox, remember=True)
    sandbox.revoke_tokens()
    s = login_to(sandbox, remember=True)  # cached token is reused, then rejected
    assert s.get_json("/user/usage")
    assert sandbox.token_exchanges == 2
    (cached,) = (tmp_path / "cache").rglob("token-*.json")
    assert sandbox.issued_tokens[-1] in cached.read_text()


def test_token_cache_is_opt_in(sandbox, tmp_path):
    login_to(sandbox)
    assert not list((tmp_path / "cache").rglob("token-*.json"))


def test_concurrency_defaults_to_6_and_is_checked(sandbox):
    s = login_to(sandbox, concurrency=3)
    assert s.concurrency == 3
    s.concurrency = 16
    assert s.concurrency == 16
    for bad in (0, 17, 2.5, "4", True):
        with pytest.raises(ConfigError, match="concurrency"):
            s.concurrency = bad
    assert s.concurrency == 16
    assert login_to(sandbox).concurrency == 6


def test_login_with_bad_concurrency_fails_before_any_exchange(sandbox):
    with pytest.raises(ConfigError, match="from 1 to 16"):
        login_to(sandbox, concurrency=0)
    assert sandbox.token_exchanges == 0


# -- token cache hardening (issue 9, item 6) -----------------------------------------------------


def cache_files(tmp_path):
    return list((tmp_path / "cache").rglob("token-*.json"))


def test_token_cache_wrong_secret_still_fails_at_login(sandbox, tmp_path):
    login_to(sandbox, remember=True)
    assert len(cache_files(tmp_path)) == 1 and sandbox.token_exchanges == 1
    with pytest.raises(AuthenticationError) as info:
        mf.login(sandbox.client_id, "not-the-secret", auth_domain=sandbox.url, base_url=sandbox.url, remember=True)
    assert info.value.status == 401 and sandbox.token_exchanges == 2  # no login from the cache


def test_token_cache_logout_deletes_the_token(sandbox, tmp_path):
    login_to(sandbox, remember=True)
    (cached,) = cache_files(tmp_path)
    mf.logout()
    assert not cached.exists()
    login_to(sandbox, remember=True)
    assert sandbox.token_exchanges == 2


def test_token_cache_planted_symlinks_receive_nothing(sandbox, tmp_path):
    import os

    login_to(sandbox, remember=True)
    (cached,) = cache_files(tmp_path)
    mf.logout()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    # the old fixed temporary name, and the cache file itself, both pointing at the victim
    cached.with_suffix(f".{os.getpid()}.tmp").symlink_to(victim)
    cached.symlink_to(victim)
    s = login_to(sandbox, remember=True)  # the symlink is not read as a cache...
    assert sandbox.token_exchanges == 2 and s.get_json("/user/usage")
    assert victim.read_text() == "precious"  # ...and the token is never written through it
    assert cached.is_file() and not cached.is_symlink()
    assert sandbox.issued_tokens[-1] in cached.read_text()


def test_token_cache_directory_others_can_write_is_fixed(sandbox, tmp_path):
    directory = tmp_path / "cache" / "metafold-jupyter"
    directory.mkdir(parents=True)
    directory.chmod(0o777)
    login_to(sandbox, remember=True)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700 and len(cache_files(tmp_path)) == 1


def test_token_cache_directory_of_another_user_is_refused(sandbox, tmp_path, caplog):
    import os

    if os.geteuid() != 0:
        pytest.skip("needs root to give a directory to another user")
    directory = tmp_path / "cache" / "metafold-jupyter"
    directory.mkdir(parents=True)
    os.chown(directory, 65534, 65534)
    s = login_to(sandbox, remember=True)
    assert s.get_json("/user/usage") and cache_files(tmp_path) == []
    assert "belongs to another user" in caplog.text


@pytest.mark.parametrize("change", [
    {"expires_at": 1e300}, {"expires_at": float("inf")}, {"expires_at": "tomorrow"}, {"lifetime": -1},
    {"lifetime": 1e9}, {"access_token": None}, {"access_token": "has spaces in it"}, "not json",
])
def test_token_cache_implausible_values_are_dropped(sandbox, tmp_path, change):
    import json

    login_to(sandbox, remember=True)
    (cached,) = cache_files(tmp_path)
    if isinstance(change, dict):
        cached.write_text(json.dumps({**json.loads(cached.read_text()), **change}))
    else:
        cached.write_text(change)
    s = login_to(sandbox, remember=True)
    assert sandbox.token_exchanges == 2  # not used: a new exchange
    st = s.status()
    assert st["expires_in"] <= 86400 and s.describe()
