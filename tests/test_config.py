"""Settings resolution and URL policy (no network)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings

import pytest

from metafold_jupyter.config import (
    DEFAULT_AUDIENCE,
    InsecureFileWarning,
    Secret,
    auth_origin_of,
    check_secure_url,
    find_dotenv,
    is_loopback,
    mask,
    resolve_settings,
)
from metafold_jupyter.errors import ConfigError


def write_env(path, **values):
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)
    return path


def test_resolve_arguments_win_over_environment_and_dotenv(tmp_path, monkeypatch):
    write_env(tmp_path / ".env", METAFOLD_CLIENT_ID="from-dotenv", METAFOLD_CLIENT_SECRET="s-dotenv")
    monkeypatch.setenv("METAFOLD_CLIENT_ID", "from-env")
    monkeypatch.setenv("METAFOLD_CLIENT_SECRET", "s-env")
    s = resolve_settings("from-args", "s-args").settings
    assert (s.client_id, s.client_secret.reveal(), s.source) == ("from-args", "s-args", "arguments")


def test_resolve_environment_wins_over_dotenv(tmp_path, monkeypatch):
    write_env(tmp_path / ".env", METAFOLD_CLIENT_ID="from-dotenv", METAFOLD_CLIENT_SECRET="s-dotenv",
              METAFOLD_PROJECT_ID="7")
    monkeypatch.setenv("METAFOLD_CLIENT_ID", "from-env")
    monkeypatch.setenv("METAFOLD_CLIENT_SECRET", "s-env")
    s = resolve_settings().settings
    assert (s.client_id, s.client_secret.reveal(), s.source) == ("from-env", "s-env", "environment")
    assert s.project_id == "7"  # each variable on its own: the project still comes from .env


def test_resolve_nearest_dotenv_upwards(tmp_path, monkeypatch):
    write_env(tmp_path / ".env", METAFOLD_CLIENT_ID="outer", METAFOLD_CLIENT_SECRET="s-outer")
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    s = resolve_settings().settings
    assert s.client_id == "outer" and s.source == str(tmp_path / ".env")
    write_env(tmp_path / "a" / ".env", METAFOLD_CLIENT_ID="nearer", METAFOLD_CLIENT_SECRET="s-nearer")
    assert resolve_settings().settings.client_id == "nearer"
    assert find_dotenv(inner) == tmp_path / "a" / ".env"


def test_resolve_explicit_env_file_beats_nearest(tmp_path):
    write_env(tmp_path / ".env", METAFOLD_CLIENT_ID="near", METAFOLD_CLIENT_SECRET="s-near")
    other = write_env(tmp_path / "team.env", METAFOLD_CLIENT_ID="team", METAFOLD_CLIENT_SECRET="s-team")
    s = resolve_settings(env_file=other).settings
    assert s.client_id == "team" and s.source == str(other)


def test_resolve_missing_explicit_env_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_settings(env_file=tmp_path / "nope.env")


def test_resolve_explicit_env_file_without_pair_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("METAFOLD_CLIENT_ID", "from-env")
    monkeypatch.setenv("METAFOLD_CLIENT_SECRET", "s-env")
    partial = write_env(tmp_path / "partial.env", METAFOLD_CLIENT_ID="only-id")
    with pytest.raises(ConfigError, match="METAFOLD_CLIENT_ID / METAFOLD_CLIENT_SECRET pair"):
        resolve_settings(env_file=partial)


def test_resolve_dotenv_values_not_copied_into_environ(tmp_path):
    write_env(tmp_path / ".env", METAFOLD_CLIENT_ID="cid", METAFOLD_CLIENT_SECRET="dotenv-secret-42")
    assert resolve_settings().settings.client_secret.reveal() == "dotenv-secret-42"
    assert "METAFOLD_CLIENT_SECRET" not in os.environ
    child = subprocess.run([sys.executable, "-c", "import os; print(dict(os.environ))"],
                           capture_output=True, text=True, check=True)
    assert "dotenv-secret-42" not in child.stdout


def test_resolve_missing_secret_names_the_variable_and_places(tmp_path, monkeypatch):
    monkeypatch.setenv("METAFOLD_CLIENT_ID", "cid")
    res = resolve_settings()
    err = res.missing_credentials_error()
    assert "METAFOLD_CLIENT_SECRET is not set" in str(err)
    assert "the environment" in str(err) and f"no .env from {tmp_path}" in str(err)


def test_resolve_sandbox_flag_and_defaults(monkeypatch):
    monkeypatch.setenv("METAFOLD_SANDBOX", "1")
    res = resolve_settings()
    assert res.sandbox_requested and not res.settings.has_pair
    s = res.settings
    assert s.token_url == "https://metafold3d.us.auth0.com/oauth/token"
    assert s.base_url == "https://api.metafold3d.com/" and s.audience == DEFAULT_AUDIENCE


def test_resolve_access_token_used_only_without_pair(monkeypatch):
    monkeypatch.setenv("METAFOLD_ACCESS_TOKEN", "tok-abc")
    assert resolve_settings().settings.access_token.reveal() == "tok-abc"
    monkeypatch.setenv("METAFOLD_CLIENT_ID", "cid")
    monkeypatch.setenv("METAFOLD_CLIENT_SECRET", "sec")
    s = resolve_settings().settings
    assert s.has_pair and s.access_token is None


@pytest.mark.parametrize(
    ("domain", "origin"),
    [("metafold3d.us.auth0.com", "https://metafold3d.us.auth0.com"),
     ("http://127.0.0.1:5000/", "http://127.0.0.1:5000"),
     ("https://auth.example.com", "https://auth.example.com")],
)
def test_auth_origin_bare_host_means_https(domain, origin):
    assert auth_origin_of(domain) == origin


@pytest.mark.parametrize("url", ["http://localhost:1/", "http://127.0.0.1/", "http://127.3.4.5:80/x",
                                 "http://[::1]:9/", "https://api.metafold3d.com/"])
def test_check_secure_url_accepts_https_and_loopback_http(url):
    assert check_secure_url(url, "URL") == url


@pytest.mark.parametrize("url", ["http://api.metafold3d.com/", "http://10.0.0.1/", "http://128.0.0.1/",
                                 "http://localhost.evil.com/", "ftp://x/", "http:///nohost"])
def test_check_secure_url_refuses_plain_http_elsewhere(url):
    with pytest.raises(ConfigError):
        check_secure_url(url, "URL")


def test_is_loopback():
    assert is_loopback("localhost") and is_loopback("127.9.9.9") and is_loopback("::1")
    assert not is_loopback("example.com") and not is_loopback("0.0.0.0") and not is_loopback(None)


def test_secret_never_shows_itself():
    s = Secret("hunter2-very-secret")
    shown = [repr(s), str(s), f"{s}", f"{s!r}", "%s" % s]
    assert all("hunter2" not in x for x in shown)
    assert s.reveal() == "hunter2-very-secret"
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_settings_repr_hides_credentials(tmp_path):
    write_env(tmp_path / ".env", METAFOLD_CLIENT_ID="cid-123456789", METAFOLD_CLIENT_SECRET="s3cr3t-value")
    s = resolve_settings().settings
    assert "s3cr3t-value" not in repr(s) and "cid-123456789" not in repr(s)
    assert s.masked_client_id == "cid-…6789" and mask("ab") == "ab…"


def test_dotenv_readable_by_others_warns_once(tmp_path):
    env = write_env(tmp_path / ".env", METAFOLD_CLIENT_ID="cid", METAFOLD_CLIENT_SECRET="sec")
    env.chmod(0o644)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        resolve_settings()
        resolve_settings()
    insecure = [w for w in caught if issubclass(w.category, InsecureFileWarning)]
    assert len(insecure) == 1 and "chmod 600" in str(insecure[0].message)


def test_dotenv_private_file_does_not_warn(tmp_path):
    write_env(tmp_path / ".env", METAFOLD_CLIENT_ID="cid", METAFOLD_CLIENT_SECRET="sec")
    with warnings.catch_warnings():
        warnings.simplefilter("error", InsecureFileWarning)
        resolve_settings()


# -- dotenv trust (issue 9, item 3) and loopback names (item 12) ---------------------------------


def owned_by_someone_else(path, monkeypatch):
    """Make ``path`` another user's: really (chown, as root), or by changing who we are."""
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)
    else:  # cannot give a file away without root: be someone else instead
        real = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: real + 1)


def test_dotenv_of_another_user_is_ignored_with_one_warning(tmp_path, monkeypatch):
    outer = write_env(tmp_path / ".env", METAFOLD_CLIENT_ID="outer", METAFOLD_CLIENT_SECRET="s-outer")
    inner_dir = tmp_path / "shared"
    inner_dir.mkdir()
    planted = write_env(inner_dir / ".env", METAFOLD_CLIENT_ID="planted", METAFOLD_CLIENT_SECRET="s-planted",
                        METAFOLD_AUTH_DOMAIN="https://thief.example.invalid")
    as_root = os.geteuid() == 0
    owned_by_someone_else(planted, monkeypatch)  # without root, every file is now someone else's
    monkeypatch.chdir(inner_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        s = resolve_settings().settings
        resolve_settings()
    ignored = [w for w in caught if issubclass(w.category, InsecureFileWarning) and "ignoring" in str(w.message)]
    assert len(ignored) == 1 and str(planted) in str(ignored[0].message)
    assert "owned by another user" in str(ignored[0].message)
    assert s.auth_origin == "https://metafold3d.us.auth0.com"  # nothing from the planted file
    if as_root:
        assert s.client_id == "outer" and outer.exists()  # the search went on upwards to the user's own file


def test_dotenv_writable_by_others_is_ignored(tmp_path):
    env = write_env(tmp_path / ".env", METAFOLD_CLIENT_ID="cid", METAFOLD_CLIENT_SECRET="sec")
    env.chmod(0o606)
    with pytest.warns(InsecureFileWarning, match="writable by other users"):
        s = resolve_settings().settings
    assert s.client_id is None


def test_explicit_env_file_of_another_user_is_an_error(tmp_path, monkeypatch):
    env = write_env(tmp_path / "team.env", METAFOLD_CLIENT_ID="cid", METAFOLD_CLIENT_SECRET="sec")
    owned_by_someone_else(env, monkeypatch)
    with pytest.raises(ConfigError, match="owned by another user"):
        resolve_settings(env_file=env)


def test_dotenv_search_stops_at_the_repository_root(tmp_path, monkeypatch):
    write_env(tmp_path / ".env", METAFOLD_CLIENT_ID="above-the-repo", METAFOLD_CLIENT_SECRET="s")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "sub").mkdir()
    assert find_dotenv(repo / "sub") is None
    write_env(repo / ".env", METAFOLD_CLIENT_ID="repo", METAFOLD_CLIENT_SECRET="s")
    assert find_dotenv(repo / "sub") == repo / ".env"


def test_dotenv_search_stops_at_the_home_directory(tmp_path, monkeypatch):
    write_env(tmp_path / ".env", METAFOLD_CLIENT_ID="above-home", METAFOLD_CLIENT_SECRET="s")
    home = tmp_path / "home" / "me"
    (home / "work").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    assert find_dotenv(home / "work") is None
    write_env(home / ".env", METAFOLD_CLIENT_ID="home", METAFOLD_CLIENT_SECRET="s")
    assert find_dotenv(home / "work") == home / ".env"


def test_dotenv_secret_is_wrapped_as_soon_as_it_is_read(tmp_path):
    from metafold_jupyter.config import read_dotenv

    values = read_dotenv(write_env(tmp_path / ".env", METAFOLD_CLIENT_ID="cid", METAFOLD_CLIENT_SECRET="s3cr3t-value",
                                   METAFOLD_ACCESS_TOKEN="t0ken-value"))
    assert values["METAFOLD_CLIENT_ID"] == "cid"
    assert isinstance(values["METAFOLD_CLIENT_SECRET"], Secret) and "s3cr3t" not in repr(values)


@pytest.mark.parametrize("host", ["metafold.localhost", "a.b.localhost", "localhost.", "127.0.0.1.nip.io"])
def test_names_under_localhost_are_not_loopback(host):
    assert not is_loopback(host)
    with pytest.raises(ConfigError, match="plain http"):
        check_secure_url(f"http://{host}/", "URL")


def test_insecure_url_message_redacts_signatures():
    with pytest.raises(ConfigError) as info:
        check_secure_url("http://dl.example.invalid/blob?sig=abcdef123&x=1", "download link")
    assert "abcdef123" not in str(info.value) and "sig=REDACTED" in str(info.value)
