"""Issue 9: the client against a hostile server (127.0.0.1) and "another host" (127.0.0.2).

Every test reproduces one numbered item of the review and checks the behaviour users
get now; each item's tests fail on the code before the hardening (except the few that
check what must keep working, e.g. a redirect to loopback http is still followed).
Items 3, 6, 11, 12, 17 are also tested where their code lives (test_config, test_session,
test_magics, test_headless); item 15 belongs to the sandbox.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import threading
import time
import warnings

import pytest
from helpers import leaks, shown
from hostile import CLIENT_ID, SECRET, Hostile, Reply, free_port

import metafold_jupyter as mf
from metafold_jupyter.errors import (
    APIError,
    AuthenticationError,
    ConfigError,
    DestinationExistsError,
    InvalidIdError,
    MetafoldError,
    NotLoggedInError,
    TransportError,
)


@pytest.fixture(scope="module")
def evil_server():
    server = Hostile("127.0.0.1")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def other_server():
    server = Hostile("127.0.0.2")
    yield server
    server.stop()


@pytest.fixture
def evil(evil_server):
    """The auth service, API and download host, answering only what each test scripts."""
    evil_server.reset()
    evil_server.token_endpoint()
    yield evil_server
    evil_server.reset()


@pytest.fixture
def other(other_server):
    """Another host: it must never receive a secret or a token."""
    other_server.reset()
    yield other_server
    other_server.reset()


def fresh_shell():
    """A real InteractiveShell whose history stays in memory."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    InteractiveShell.clear_instance()
    return InteractiveShell.instance(config=config)


def login_evil(server, **kwargs):
    return mf.login(CLIENT_ID, SECRET, auth_domain=server.url, base_url=server.url, **kwargs)


def serve_asset(server, filename="part.stl", content=b"solid part\nendsolid part\n", *, meta=None, blob=None):
    """Asset 7 of project 1, with a download link on the same server."""
    record = {"id": "7", "filename": filename, "size": len(content),
              "checksum": "sha256:" + hashlib.sha256(content).hexdigest(), "project_id": "1"}
    if meta is not None:
        record = meta(record)
    server.on("GET", "/projects/1/assets/7", {**record, "link": server.url + "/blob/7?sig=s3cr3t-signature"})
    server.on("GET", "/blob/7", blob if blob is not None else Reply(200, content))
    return record


def part_files(directory):
    return [p.name for p in directory.iterdir() if p.name.endswith(".part")]


# -- 1. the token request never follows a redirect ------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_token_request_never_follows_a_redirect(evil, other, status):
    other.token_endpoint()
    evil.on("POST", "/oauth/token", Reply(status, {}, {"Location": other.url + "/oauth/token"}))
    with pytest.raises(AuthenticationError) as info:
        login_evil(evil)
    assert f"HTTP {status}" in str(info.value) and other.url in str(info.value)
    assert info.value.status == status
    assert other.requests == [] and len(evil.seen("/oauth/token")) == 1  # the secret went nowhere else
    with pytest.raises(NotLoggedInError):
        mf.session()


# -- 2. downloads: never overwrite, no unsafe server-sent names --------------------------------


def test_download_refuses_a_dotfile_name_and_keeps_the_users_env(evil, tmp_path):
    serve_asset(evil, ".env", b"METAFOLD_AUTH_DOMAIN=http://127.0.0.2:1\n")
    mine = tmp_path / ".env"
    mine.write_text("MINE=1\n")
    mine.chmod(0o600)
    login_evil(evil, project="1")
    with pytest.raises(MetafoldError, match="starts with a dot") as info:
        mf.download_asset("7", progress=False)
    assert "pass the destination file name" in str(info.value)
    assert mine.read_text() == "MINE=1\n" and part_files(tmp_path) == []
    assert evil.seen("/blob/7") == []  # refused before anything was fetched
    # the user's own choice of name is theirs to make
    assert mf.download_asset("7", tmp_path / "from-server.env", progress=False).read_bytes().startswith(b"METAFOLD")


@pytest.mark.parametrize("name", ["..", ".", "../escape.stl", "sub/dir.stl", "a\\b.stl", "x\x00y.stl",
                                  "bad\x1b[31m.stl", "a" * 300 + ".stl", "", " lead.stl", "zero\u200bwidth.stl",
                                  "new\nline.stl", None, 42])
def test_download_refuses_unsafe_server_names(evil, tmp_path, monkeypatch, name):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    serve_asset(evil, name)
    login_evil(evil, project="1")
    with pytest.raises(MetafoldError, match="is not safe to create here"):
        mf.download_asset("7", progress=False)
    assert list((tmp_path / "work").iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def test_download_never_overwrites_unless_asked(evil, tmp_path):
    serve_asset(evil, "part.stl", b"new contents")
    (tmp_path / "part.stl").write_bytes(b"old contents")
    login_evil(evil, project="1")
    for dest in (None, tmp_path, tmp_path / "part.stl"):
        with pytest.raises(DestinationExistsError) as info:
            mf.download_asset("7", dest, progress=False)
        assert isinstance(info.value, FileExistsError) and "overwrite=True" in str(info.value)
    assert (tmp_path / "part.stl").read_bytes() == b"old contents" and evil.seen("/blob/7") == []
    assert mf.download_asset("7", progress=False, overwrite=True).read_bytes() == b"new contents"


def test_download_never_replaces_a_file_that_appears_meanwhile(evil, tmp_path):
    content = b"solid x\nendsolid x\n"

    def blob(seen, ex):
        (tmp_path / "part.stl").write_bytes(b"appeared while downloading")
        return Reply(200, content)

    serve_asset(evil, "part.stl", content, blob=blob)
    login_evil(evil, project="1")
    with pytest.raises(DestinationExistsError):
        mf.download_asset("7", progress=False)
    assert (tmp_path / "part.stl").read_bytes() == b"appeared while downloading" and part_files(tmp_path) == []


# -- 3. dotenv trust: a found .env must not redirect a secret that comes from elsewhere ---------------


def write_dotenv(path, **values):
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)
    return path


def test_found_dotenv_cannot_redirect_a_secret_from_the_environment(evil, other, tmp_path, monkeypatch):
    other.token_endpoint()
    write_dotenv(tmp_path / ".env", METAFOLD_AUTH_DOMAIN=other.url, METAFOLD_BASE_URL=other.url)
    monkeypatch.setenv("METAFOLD_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("METAFOLD_CLIENT_SECRET", SECRET)
    with pytest.raises(ConfigError, match="same place as the secret") as info:
        mf.login()
    assert "METAFOLD_AUTH_DOMAIN" in str(info.value) and str(tmp_path / ".env") in str(info.value)
    assert other.requests == []
    assert leaks(shown(info.value), [SECRET]) == []


def test_found_dotenv_cannot_redirect_an_access_token(other, tmp_path, monkeypatch):
    write_dotenv(tmp_path / ".env", METAFOLD_BASE_URL=other.url)
    monkeypatch.setenv("METAFOLD_ACCESS_TOKEN", "opaque-access-token-0123456789")
    with pytest.raises(ConfigError, match="METAFOLD_BASE_URL comes from"):
        mf.login()
    assert other.requests == []


def test_found_dotenv_with_the_secret_and_explicit_choices_still_work(evil, tmp_path, monkeypatch):
    # the secret and where it goes in one found file: fine
    write_dotenv(tmp_path / ".env", METAFOLD_CLIENT_ID=CLIENT_ID, METAFOLD_CLIENT_SECRET=SECRET,
                 METAFOLD_AUTH_DOMAIN=evil.url, METAFOLD_BASE_URL=evil.url)
    assert mf.login().settings.base_url == evil.url + "/"
    # a file the user names is their choice, whatever holds the secret
    (tmp_path / ".env").unlink()
    team = write_dotenv(tmp_path / "team.env", METAFOLD_ACCESS_TOKEN="unused-here",
                        METAFOLD_AUTH_DOMAIN=evil.url, METAFOLD_BASE_URL=evil.url)
    monkeypatch.setenv("METAFOLD_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("METAFOLD_CLIENT_SECRET", SECRET)
    assert mf.login(env_file=team).settings.token_url == evil.url + "/oauth/token"


def test_found_dotenv_routing_is_refused_before_a_prompt_asks(other, tmp_path, monkeypatch):
    write_dotenv(tmp_path / ".env", METAFOLD_AUTH_DOMAIN=other.url)
    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt="": asked.append(prompt) or CLIENT_ID)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": asked.append(prompt) or SECRET)
    with pytest.raises(ConfigError, match="comes from the prompt"):
        mf.login(prompt=True)
    assert asked == [] and other.requests == []


# -- 4. echoed secrets -----------------------------------------------------------------------


def test_auth_error_echoing_the_request_body_shows_no_secret(evil, caplog):
    caplog.set_level(logging.DEBUG)
    evil.on("POST", "/oauth/token", lambda seen, ex: Reply(401, {
        "error": f"access_denied for {seen.body.decode()}",
        "error_description": f"Unauthorized: we got {seen.body.decode()} and "
                             f"{json.loads(seen.body)['client_secret']}"}))
    with pytest.raises(AuthenticationError) as info:
        login_evil(evil)
    err = info.value
    assert "Unauthorized: we got" in str(err) and err.status == 401  # the message survives, scrubbed
    texts = [*shown(err), err.error or "", err.error_description or "", caplog.text]
    assert leaks(texts, [SECRET]) == []


def test_refresh_failure_warning_echoing_the_secret_shows_none(evil, caplog):
    s = login_evil(evil)
    evil.on("POST", "/oauth/token", lambda seen, ex: Reply(400, {"error_description": f"echo {seen.body.decode()}"}))
    evil.on("GET", "/user/usage", Reply(200, {"project": 1}))
    real = time.time
    s._credentials.clock = lambda: real() + 86400 - 60  # due for refresh, still valid
    caplog.set_level(logging.WARNING, logger="metafold_jupyter")
    assert s.get_json("/user/usage") == {"project": 1}
    (record,) = [r for r in caplog.records if "token refresh failed" in r.getMessage()]
    assert "echo" in record.getMessage()
    assert leaks([record.getMessage(), caplog.text], [SECRET, *evil.issued]) == []


@pytest.mark.parametrize("style", ["jwt", "opaque"])
def test_api_error_echoing_the_token_shows_none(evil, style):
    if style == "opaque":  # not JWT-shaped: only knowing the value can scrub it
        evil.token_endpoint(lambda: {"access_token": f"opaque{len(evil.issued)}-" + "k" * 40,
                                     "token_type": "Bearer", "expires_in": 3600})
    s = login_evil(evil)
    evil.on("GET", "/user/usage", lambda seen, ex: Reply(400, {
        "msg": f"bad header {seen.authorization}; token {seen.authorization.split()[1]}"}))
    with pytest.raises(APIError) as info:
        s.get_json("/user/usage")
    assert "bad header" in str(info.value)
    token = evil.seen("/user/usage")[0].authorization.split()[1]
    assert leaks(shown(info.value), [token, SECRET]) == []


def test_tracebacks_with_local_variables_show_no_secret(evil, tmp_path, monkeypatch):
    """pytest --showlocals, Sentry and friends render every frame's locals."""
    failures: list[BaseException] = []

    def attempt(fn):
        try:
            fn()
        except MetafoldError as exc:
            failures.append(exc)

    evil.on("POST", "/oauth/token", Reply(401, {"error": "access_denied", "error_description": "Unauthorized"}))
    attempt(lambda: login_evil(evil))  # the secret was an argument of login()
    attempt(lambda: mf.login(CLIENT_ID, SECRET, auth_domain=f"http://127.0.0.1:{free_port()}", base_url=evil.url))
    monkeypatch.setenv("METAFOLD_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("METAFOLD_CLIENT_SECRET", SECRET)
    partial = write_dotenv(tmp_path / "partial.env", METAFOLD_PROJECT_ID="1")
    attempt(lambda: mf.login(env_file=partial))  # a ConfigError raised while the environment holds the secret
    attempt(lambda: mf.login(auth_domain=evil.url, base_url=evil.url))
    evil.token_endpoint()
    s = mf.login(auth_domain=evil.url, base_url=evil.url)
    evil.on("GET", "/user/usage", lambda seen, ex: Reply(401, {"msg": f"no {seen.authorization}"}))
    attempt(lambda: s.get_json("/user/usage"))  # 401, refresh, replay, 401
    attempt(lambda: s.get_json("/projects/1"))
    assert len(failures) == 6
    texts = [text for exc in failures for text in shown(exc)]
    assert any("client_secret" in t or "Secret(" in t for t in texts)  # the locals really are rendered
    assert leaks(texts, [SECRET, *evil.issued]) == []


def test_verbose_ipython_tracebacks_show_no_secret(evil, tmp_path, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    write_dotenv(tmp_path / ".env", METAFOLD_CLIENT_ID=CLIENT_ID, METAFOLD_CLIENT_SECRET=SECRET,
                 METAFOLD_AUTH_DOMAIN=evil.url, METAFOLD_BASE_URL=evil.url)
    shell = fresh_shell()
    try:
        shell.run_line_magic("xmode", "Verbose")
        evil.on("POST", "/oauth/token",
                lambda seen, ex: Reply(401, {"error_description": f"echo {seen.body.decode()}"}))
        shell.run_cell("import metafold_jupyter as mf\nsession = mf.login()")
        evil.token_endpoint()
        shell.run_cell("session = mf.login()")
        evil.on("GET", "/user/usage", lambda seen, ex: Reply(403, {"msg": f"no {seen.authorization}"}))
        shell.run_cell("usage = session.get_json('/user/usage')")
    finally:
        InteractiveShell.clear_instance()
    out = capsys.readouterr()
    text = out.out + out.err
    assert text.count("Traceback") >= 2 and "AuthenticationError" in text and "APIError" in text
    assert leaks([text], [SECRET, *evil.issued]) == []


# -- 5. token sanity ---------------------------------------------------------------------------


@pytest.mark.parametrize(("answer", "what"), [
    ({"access_token": "tok-0123456789", "expires_in": 0}, "expires_in is 0"),
    ({"access_token": "tok-0123456789", "expires_in": -5}, "expires_in is -5"),
    ({"access_token": "tok-0123456789", "expires_in": float("nan")}, "expires_in is nan"),
    ({"access_token": "tok-0123456789", "expires_in": float("inf")}, "expires_in is inf"),
    ({"access_token": "tok-0123456789", "expires_in": 1e12}, "expires_in is 1000000000000"),
    ({"access_token": "tok-0123456789", "expires_in": "soon"}, "expires_in is 'soon'"),
    ({"access_token": "tok-0123456789"}, "no expires_in"),
    ({"access_token": None, "expires_in": 3600}, "no access_token"),
    ({"expires_in": 3600}, "no access_token"),
    ({"access_token": "", "expires_in": 3600}, "access_token is empty"),
    ({"access_token": "tok with spaces", "expires_in": 3600}, "spaces"),
    ({"access_token": "tok\r\nX-Evil: 1", "expires_in": 3600}, "control characters"),
    ({"access_token": 12345678, "expires_in": 3600}, "access_token is a int"),
    ({"access_token": "tok-0123456789", "expires_in": 3600, "token_type": "mac"}, "token_type is 'mac'"),
])
def test_token_answer_must_be_a_usable_token(evil, answer, what):
    evil.token_endpoint(lambda: answer)
    evil.on("GET", "/user/usage", Reply(200, {"project": 1}))
    with pytest.raises(AuthenticationError) as info:
        login_evil(evil)
    assert what in str(info.value) and info.value.error == "invalid_response"
    assert len(evil.seen("/oauth/token")) == 1  # one exchange, not one per call
    assert evil.seen("/user/usage") == []  # no "Bearer None"


def test_static_token_with_an_absurd_expiry_still_shows_its_status(evil, monkeypatch):
    for exp in (1e300, 1e12 * 1e6, "soon"):
        claims = base64.urlsafe_b64encode(json.dumps({"exp": exp}).encode()).decode().rstrip("=")
        monkeypatch.setenv("METAFOLD_ACCESS_TOKEN", f"eyJhbGciOiJIUzI1NiJ9.{claims}.c2lnbmF0dXJl")
        s = mf.login(base_url=evil.url)
        assert s.status()["expires_at"] is None and "Session" in repr(s) and s.describe()


# -- 7. netrc, proxies and redirect hops ---------------------------------------------------------


def test_api_redirect_to_another_host_carries_no_token_nor_netrc(evil, other, tmp_path, monkeypatch):
    netrc = tmp_path / ".netrc"
    netrc.write_text(f"machine {other.host} login someone password netrc-password\n"
                     f"machine {evil.host} login someone password netrc-password\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))
    evil.on("GET", "/user/usage", Reply(302, {}, {"Location": other.url + "/elsewhere"}))
    other.on("GET", "/elsewhere", Reply(200, {"ok": 1}))
    s = login_evil(evil)
    assert s.get_json("/user/usage") == {"ok": 1}
    (hop,) = other.seen("/elsewhere")
    assert hop.authorization is None
    assert all((r.authorization or "").startswith("Bearer ") for r in evil.seen("/user/usage"))


@pytest.mark.parametrize("target", ["http://download.example.invalid/blob", "ftp://127.0.0.2/blob"])
def test_download_redirect_off_the_url_policy_is_refused(evil, tmp_path, target):
    serve_asset(evil, blob=Reply(302, {}, {"Location": target}))
    login_evil(evil, project="1")
    with pytest.raises(APIError, match="not followed") as info:
        mf.download_asset("7", progress=False)
    assert info.value.status == 302 and "sig=REDACTED" in info.value.url
    assert list(tmp_path.iterdir()) == []


def test_download_redirect_to_loopback_http_is_followed_without_token(evil, other, tmp_path):
    content = b"solid moved\nendsolid moved\n"
    serve_asset(evil, content=content, blob=Reply(307, {}, {"Location": other.url + "/moved"}))
    other.on("GET", "/moved", Reply(200, content))
    login_evil(evil, project="1")
    assert mf.download_asset("7", progress=False).read_bytes() == content
    assert other.seen("/moved")[0].authorization is None


def test_environment_proxy_never_carries_loopback_traffic(evil, other, monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, other.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    evil.on("GET", "/user/usage", Reply(200, {"project": 1}))
    assert login_evil(evil).get_json("/user/usage") == {"project": 1}
    assert other.requests == []  # the secret never went to a proxy in plain http


# -- 8. raw exceptions become one line; nothing leaks on failure ----------------------------------


def test_download_link_answer_with_only_a_link_fetches_the_metadata(evil, tmp_path):
    content = b"solid only-link\nendsolid only-link\n"
    record = serve_asset(evil, "only-link.stl", content)

    def link_or_record(seen, ex):
        if seen.query.get("download"):
            return Reply(200, {"link": evil.url + "/blob/7?sig=abc"})
        return Reply(200, record)

    evil.on("GET", "/projects/1/assets/7", link_or_record)
    login_evil(evil, project="1")
    path = mf.download_asset("7", progress=False)
    assert path == tmp_path / "only-link.stl" and path.read_bytes() == content
    assert len(evil.seen("/projects/1/assets/7")) == 2


@pytest.mark.parametrize("size", ["abc", -1, 1.5, True, [1], {"n": 1}])
def test_download_with_a_size_that_is_not_a_number_is_one_line(evil, tmp_path, size):
    serve_asset(evil, meta=lambda r: {**r, "size": size})
    login_evil(evil, project="1")
    with pytest.raises(APIError, match="is not a whole number of bytes") as info:
        mf.download_asset("7", progress=False)
    assert "\n" not in str(info.value) and list(tmp_path.iterdir()) == []


def test_download_without_size_and_checksum_warns_it_is_unverified(evil, tmp_path):
    serve_asset(evil, meta=lambda r: {k: v for k, v in r.items() if k not in ("size", "checksum")})
    login_evil(evil, project="1")
    from metafold_jupyter.operations import UnverifiedDownloadWarning

    with pytest.warns(UnverifiedDownloadWarning, match="not verified"):
        assert mf.download_asset("7", progress=False).exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        serve_asset(evil, "checked.stl")
        mf.download_asset("7", progress=False)  # with a size and a checksum: no warning


@pytest.mark.parametrize("answer", [None, [1, 2], [[1]], {"id": "1"}, 3])
def test_list_answers_that_are_not_lists_of_objects_are_one_line(evil, tmp_path, answer):
    evil.on("GET", "/projects/1/assets", Reply(200, answer))
    evil.on("GET", "/projects/1/jobs", Reply(200, answer))
    login_evil(evil, project="1")
    (tmp_path / "mine.stl").write_text("solid m\nendsolid m\n")
    with pytest.raises(APIError, match="expected a list of assets"):
        mf.upload_asset(tmp_path / "mine.stl", progress=False)  # the same-name check
    evil.on("POST", "/projects/1/workflows", Reply(202, {"id": "9", "state": "pending", "jobs": ["1"]}))
    with pytest.raises(APIError, match="expected a list of assets"):
        mf.run_workflow("jobs:\n  a:\n    type: mesh/preprocess\n", assets={"a.mesh": "7"}, progress=False)
    evil.on("GET", "/projects/1/workflows/9/status", Reply(201, {"id": "9", "state": "success", "jobs": ["1"]}))
    with pytest.raises(APIError, match="expected a list of jobs"):
        mf.run_workflow("jobs:\n  a:\n    type: mesh/preprocess\n", progress=False)
    from metafold_jupyter.completion import _records

    assert _records("/projects/1/assets", "filename") == []


def test_failed_downloads_leave_no_thread_and_no_open_response(evil, tmp_path):
    def vanish(seen, ex):  # the destination disappears while the link is fetched
        shutil.rmtree(tmp_path / "dl", ignore_errors=True)
        return Reply(200, b"solid part\nendsolid part\n")

    serve_asset(evil, blob=vanish)
    login_evil(evil, project="1")
    mf.download_asset("7", tmp_path / "warmup", progress=False)  # the connection pool is warm
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    for _ in range(20):
        (tmp_path / "dl").mkdir(exist_ok=True)
        with pytest.raises(MetafoldError) as info:
            mf.download_asset("7", tmp_path / "dl", progress=False)
        assert "\n" not in str(info.value)
    serve_asset(evil, meta=lambda r: {**r, "size": "abc"})
    for _ in range(20):
        with pytest.raises(APIError):
            mf.download_asset("7", tmp_path / "x.stl", progress=False)
    time.sleep(0.2)
    assert [t.name for t in threading.enumerate() if t.name == "metafold-sha256"] == []
    if fds is not None:
        assert len(os.listdir("/proc/self/fd")) <= fds + 3


# -- 10. IDs are one path segment; get PATH stays on the API origin -----------------------------------


def test_ids_cannot_address_other_resources(evil, other):
    s = login_evil(evil)
    evil.on("GET", "/user/license", Reply(200, {"product": "stolen"}))
    for bad in ("3#", "1/../../../../user/license", "a?b=1", ".."):
        with pytest.raises(InvalidIdError):
            s.use_project(bad)
        with pytest.raises(InvalidIdError):
            mf.assets(project=bad)
        with pytest.raises(InvalidIdError):
            mf.download_asset(bad, project="1", progress=False)
    assert evil.seen("/user/license") == [] and s.project_id is None
    with pytest.raises(InvalidIdError):
        login_evil(evil, project="3#")


def test_magic_get_stays_on_the_api_origin(evil, other, capsys):
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell

    other.on("GET", "/x", Reply(200, {"from": "another host"}))
    evil.on("GET", "/user/license", Reply(200, {"product": "real"}))
    login_evil(evil)
    shell = fresh_shell()
    shell.extension_manager.load_extension("metafold_jupyter")
    try:
        for path in (f"//{other.host}:{other.port}/x", f"{other.url}/x", f"/\t/{other.host}:{other.port}/x",
                     f"\\\\{other.host}:{other.port}/x"):
            with pytest.raises(UsageError, match="not a path on the Metafold API"):
                shell.run_line_magic("metafold", f"get '{path}'")
        assert shell.run_line_magic("metafold", "get user/license") == {"product": "real"}
        for answer in (None, [1, 2], [[1]]):  # odd answers are returned, not raised on
            evil.on("GET", "/odd", Reply(200, answer))
            assert shell.run_line_magic("metafold", "get /odd") == answer
    finally:
        shell.extension_manager.unload_extension("metafold_jupyter")
        InteractiveShell.clear_instance()
    assert other.requests == []


def test_status_link_on_another_host_is_not_followed(evil, other):
    evil.on("POST", "/projects/1/workflows", Reply(202, {"id": "9", "state": "pending", "jobs": [],
                                                         "link": other.url + "/status"}))
    evil.on("GET", "/projects/1/workflows/9/status", Reply(201, {"id": "9", "state": "success", "jobs": []}))
    evil.on("GET", "/projects/1/jobs", Reply(200, []))
    login_evil(evil, project="1")
    assert len(mf.run_workflow("jobs:\n  a:\n    type: mesh/preprocess\n", progress=False)) == 0
    assert other.requests == []


# -- 13. signed links stay out of urllib3's DEBUG log --------------------------------------------------


def test_urllib3_debug_log_shows_no_signature(evil, caplog):
    serve_asset(evil)
    caplog.set_level(logging.DEBUG)
    login_evil(evil, project="1")
    mf.download_asset("7", progress=False)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any("/blob/7" in line for line in lines)  # the request was logged...
    assert "s3cr3t-signature" not in caplog.text and any("sig=REDACTED" in line for line in lines)  # ...redacted


# -- 14. deadlines: a trickling server cannot hold a call for ever -----------------------------------------


def trickle_headers(seen, ex):
    ex.trickle(b"HTTP/1.1 200 OK\r\n", every=0.2, forever=b"X")
    return None


def trickle_body(seen, ex):
    ex.raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
    ex.trickle(b"", every=0.2, forever=b" ")
    return None


@pytest.mark.parametrize("handler", [trickle_headers, trickle_body], ids=["headers", "body"])
def test_trickling_api_answer_hits_the_overall_deadline(evil, handler):
    s = login_evil(evil, timeout=(0.5, 0.5))
    evil.on("GET", "/user/usage", handler)
    started = time.monotonic()
    with pytest.raises(TransportError, match=r"no complete answer within 1.5 s") as info:
        s.get_json("/user/usage")
    assert time.monotonic() - started < 30  # without a deadline this never returns
    assert len(evil.seen("/user/usage")) == 1  # cut short, and not retried
    assert "\n" not in str(info.value)
    evil.on("GET", "/user/usage", Reply(200, {"project": 1}))
    assert s.get_json("/user/usage") == {"project": 1}  # the session stays usable


def test_trickling_token_endpoint_hits_the_deadline(evil):
    evil.on("POST", "/oauth/token", trickle_headers)
    with pytest.raises(TransportError, match="no complete answer"):
        login_evil(evil, timeout=(0.5, 0.5))


def test_trickling_download_is_a_stall(evil, tmp_path):
    def blob(seen, ex):
        ex.raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n")
        ex.trickle(b"", every=0.2, forever=b"x")
        return None

    serve_asset(evil, blob=blob)
    login_evil(evil, project="1", timeout=(0.5, 0.5))
    started = time.monotonic()
    with pytest.raises(TransportError, match="stalled") as info:
        mf.download_asset("7", progress=False)
    assert time.monotonic() - started < 30
    assert "sig=REDACTED" in info.value.url and list(tmp_path.iterdir()) == []


def test_slow_but_steady_download_is_not_a_stall(evil, tmp_path, monkeypatch):
    from metafold_jupyter import operations

    monkeypatch.setattr(operations, "STALL_MIN_BYTES", 1000)
    content = bytes(range(256)) * 40

    def blob(seen, ex):
        ex.raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
               + f"Content-Length: {len(content)}\r\n\r\n".encode())
        for i in range(0, len(content), 1024):  # 1 KiB every 0.25 s, for 2.5 s: over the 1.5 s window
            ex.raw(content[i:i + 1024])
            time.sleep(0.25)
        return None

    serve_asset(evil, content=content, blob=blob)
    login_evil(evil, project="1", timeout=(0.5, 0.5))
    assert mf.download_asset("7", progress=False).read_bytes() == content


# -- 16. every error's str() ends with what to do ---------------------------------------------------


def test_every_error_str_ends_with_its_hint():
    from metafold_jupyter import errors

    cases = [
        errors.NotLoggedInError(),
        errors.ConfigError("bad setting", hint="fix it"),
        errors.MissingCredentialsError("no credentials", hint="add them"),
        errors.AuthenticationError("refused", hint="check the secret"),
        errors.APIError(404, "GET", "http://127.0.0.1/x", "Resource does not exist"),
        errors.TransportError("GET", "http://127.0.0.1/x", "connection refused"),
        errors.PollTimeout("9", 1.0, "started"),
        errors.IntegrityError("size mismatch"),
        errors.InvalidIdError("project ID '3#' is not a valid Metafold ID"),
        errors.DestinationExistsError("part.stl already exists"),
    ]
    for exc in cases:
        text = str(exc)
        assert exc.hint and text.endswith(" — " + exc.hint) and text.count(exc.hint) == 1, text
        assert "\n" not in text and text.startswith(exc.args[0])  # (APIError.message is the API's own text)
    assert str(NotLoggedInError()) == "not logged in to Metafold — run %metafold_login (or mf.login()) first"
    assert str(errors.ConfigError("no hint")) == "no hint"
